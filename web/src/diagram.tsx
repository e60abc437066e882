// The diagram of a definition, drawn from DefinitionInfo.outline: a
// sequence top to bottom; switch cases and parallel branches side by side;
// foreach and repeat bodies inside a frame; catch handlers beside the step.
import type { JSX } from "preact";

type Step = Record<string, any>;

interface Shape {
  w: number;
  h: number;
  draw(x: number, y: number): JSX.Element[];
}

const boxW = 170;
const boxH = 40;
const gapY = 22;
const gapX = 24;
const pad = 14;
const headH = 22;

function box(s: Step): Shape {
  const sub = s.task ?? s.signal ?? s.workflow ?? "";
  const label = `${s.kind}${sub ? " · " + sub : ""}`;
  return {
    w: boxW,
    h: boxH,
    draw: (x, y) => [
      <g class={`d-step d-${s.kind}`} data-id={s.id}>
        <rect x={x} y={y} width={boxW} height={boxH} rx={6} />
        <text x={x + boxW / 2} y={y + 16} class="d-id">
          {clip(String(s.id), 22)}
        </text>
        <text x={x + boxW / 2} y={y + 31} class="d-kind">
          {clip(label, 26)}
        </text>
        <title>{`${s.id} (${label})${s.if ? "\nif " + s.if : ""}`}</title>
      </g>,
    ],
  };
}

function clip(s: string, n: number) {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

function sequence(steps: Step[]): Shape {
  const parts = (steps ?? []).map(step);
  if (parts.length === 0) return { w: boxW, h: 24, draw: (x, y) => [<text x={x + boxW / 2} y={y + 16} class="d-empty">(no steps)</text>] };
  const w = Math.max(...parts.map((p) => p.w));
  const h = parts.reduce((a, p) => a + p.h, 0) + gapY * (parts.length - 1);
  return {
    w,
    h,
    draw(x, y) {
      const out: JSX.Element[] = [];
      let cy = y;
      parts.forEach((p, i) => {
        if (i > 0) out.push(<line class="d-arrow" x1={x + w / 2} y1={cy - gapY} x2={x + w / 2} y2={cy - 2} marker-end="url(#arrow)" />);
        out.push(...p.draw(x + (w - p.w) / 2, cy));
        cy += p.h + gapY;
      });
      return out;
    },
  };
}

/** columns lays out labelled bodies side by side under a header box. */
function columns(s: Step, cols: { label: string; steps: Step[] }[]): Shape {
  const head = box(s);
  const bodies = cols.map((c) => ({ label: c.label, shape: sequence(c.steps) }));
  const colsW = bodies.reduce((a, b) => a + b.shape.w, 0) + gapX * Math.max(0, bodies.length - 1);
  const w = Math.max(boxW, colsW);
  const bodyH = Math.max(0, ...bodies.map((b) => b.shape.h));
  const h = boxH + gapY + headH + bodyH + gapY;
  return {
    w,
    h,
    draw(x, y) {
      const out = head.draw(x + (w - boxW) / 2, y);
      const midX = x + w / 2;
      let cx = x + (w - colsW) / 2;
      const top = y + boxH + gapY;
      for (const b of bodies) {
        const bx = cx + b.shape.w / 2;
        out.push(<path class="d-link" d={`M${midX},${y + boxH} C${midX},${top} ${bx},${y + boxH} ${bx},${top}`} />);
        out.push(
          <text x={bx} y={top + 14} class="d-branch">
            {clip(b.label, 28)}
            <title>{b.label}</title>
          </text>,
        );
        out.push(...b.shape.draw(cx, top + headH));
        out.push(<path class="d-link" d={`M${bx},${top + headH + b.shape.h} L${bx},${y + h - 4} L${midX},${y + h}`} />);
        cx += b.shape.w + gapX;
      }
      return out;
    },
  };
}

function frame(s: Step, body: Shape): Shape {
  const head = box(s);
  const w = Math.max(boxW, body.w + 2 * pad);
  const h = boxH + gapY + body.h + pad;
  return {
    w,
    h,
    draw(x, y) {
      const out = [<rect class={`d-frame d-${s.kind}-frame`} x={x} y={y + boxH / 2} width={w} height={h - boxH / 2} rx={8} />];
      out.push(...head.draw(x + (w - boxW) / 2, y));
      out.push(...body.draw(x + (w - body.w) / 2, y + boxH + gapY));
      return out;
    },
  };
}

function withCatch(s: Step, main: Shape): Shape {
  const handlers = (s.catch ?? []) as { errors?: string[]; steps: Step[] }[];
  if (handlers.length === 0) return main;
  const hs = handlers.map((c) => ({ label: "catch " + (c.errors?.length ? c.errors.join(", ") : "any"), shape: sequence(c.steps) }));
  const extraW = hs.reduce((a, c) => a + c.shape.w + gapX, 0);
  const h = Math.max(main.h, ...hs.map((c) => c.shape.h + headH));
  return {
    w: main.w + extraW,
    h,
    draw(x, y) {
      const out = main.draw(x, y);
      let cx = x + main.w + gapX;
      for (const c of hs) {
        out.push(<line class="d-catch-link" x1={x + main.w / 2 + boxW / 2} y1={y + boxH / 2} x2={cx} y2={y + boxH / 2} />);
        out.push(
          <text x={cx + c.shape.w / 2} y={y + 12} class="d-branch d-catch">
            {clip(c.label, 28)}
          </text>,
        );
        out.push(...c.shape.draw(cx, y + headH));
        cx += c.shape.w + gapX;
      }
      return out;
    },
  };
}

function step(s: Step): Shape {
  let shape: Shape;
  switch (s.kind) {
    case "switch": {
      const cols = ((s.cases ?? []) as { when: string; steps: Step[] }[]).map((c) => ({ label: "when " + c.when, steps: c.steps }));
      if (s.default) cols.push({ label: "default", steps: s.default });
      shape = columns(s, cols);
      break;
    }
    case "parallel":
      shape = columns(
        s,
        ((s.branches ?? []) as { id: string; steps: Step[] }[]).map((b) => ({ label: b.id, steps: b.steps })),
      );
      break;
    case "foreach":
    case "repeat":
      shape = frame(s, sequence(s.steps ?? []));
      break;
    default:
      shape = box(s);
  }
  return withCatch(s, shape);
}

export function Diagram({ outline, name }: { outline: Step[]; name: string }) {
  const seq = sequence(outline);
  const w = seq.w + 2 * pad;
  const h = seq.h + 2 * pad;
  return (
    <div class="diagram-wrap" tabIndex={0}>
      <svg class="diagram" width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`Steps of ${name}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="d-arrowhead" />
          </marker>
        </defs>
        {seq.draw(pad, pad)}
      </svg>
    </div>
  );
}

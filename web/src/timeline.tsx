// The timeline of a run: every step attempt as a bar on a time axis, built
// from the history. Rows are steps; a retry is a new bar on its step's row
// after the backoff; waits, sleeps and child runs are waiting bars. Only
// the rows in view are drawn, so a run with thousands of steps stays quick.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { HistoryEvent } from "./gen/weft/v1/workflow_pb";
import { date, valueJson } from "./api";
import { fmtDuration, fmtTime } from "./ui";

export type BarState = "running" | "completed" | "failed" | "waiting" | "canceled" | "skipped";

export interface Bar {
  start: number;
  end: number | null;
  state: BarState;
  attempt: number;
  /** queued is when the attempt was scheduled to run (after a backoff), if later than start. */
  queued?: number;
  note?: string;
}

export interface Row {
  path: string;
  bars: Bar[];
}

export interface Model {
  rows: Row[];
  start: number;
  end: number;
}

const waitTypes = new Set(["WaitStarted", "TimerScheduled", "ChildStarted"]);
/** closeTypes close a run (WorkflowRetried opens a failed one again). */
const closeTypes = new Set(["WorkflowCompleted", "WorkflowFailed", "WorkflowCanceled", "WorkflowExpired"]);

/** buildTimeline folds the history into rows of bars; open bars end at now. */
export function buildTimeline(events: HistoryEvent[], now: number): Model {
  const rows = new Map<string, Row>();
  const open = new Map<string, Bar>();
  let start = Infinity;
  let end = -Infinity;
  const row = (path: string) => {
    let r = rows.get(path);
    if (!r) rows.set(path, (r = { path, bars: [] }));
    return r;
  };
  const begin = (path: string, b: Bar) => {
    // A new attempt ends a suspension (a wait) or else what was open.
    close(path, b.start, open.get(path)?.state === "waiting" ? "completed" : "canceled");
    row(path).bars.push(b);
    open.set(path, b);
  };
  const close = (path: string, t: number, state: BarState, note?: string) => {
    const b = open.get(path);
    if (!b) return false;
    b.end = t;
    // A wait, sleep or child that ended well stays a waiting bar: that is
    // what the step did for its length.
    if (!(b.state === "waiting" && state === "completed")) b.state = state;
    if (note) b.note = note;
    open.delete(path);
    return true;
  };
  for (const e of events) {
    const t = date(e.time)?.getTime() ?? 0;
    if (t < start) start = t;
    if (t > end) end = t;
    if (closeTypes.has(e.type)) {
      // The run closed: what was still open (a wait a cancel cut short,
      // say) ended with it, not at now.
      for (const path of [...open.keys()]) close(path, t, "canceled");
      continue;
    }
    const p = e.stepPath;
    if (!p) continue;
    const data = (valueJson(e.data) ?? {}) as any;
    switch (e.type) {
      case "StepScheduled":
        begin(p, { start: t, end: null, state: "running", attempt: e.attempt || 1 });
        break;
      case "StepStarted":
        begin(p, { start: t, end: null, state: "running", attempt: 0, note: str(data.kind) });
        break;
      case "StepAttemptFailed": {
        const msg = errMsg(data);
        close(p, t, "failed", msg);
        const delay = durMs(str(data.retry_delay));
        begin(p, { start: t, end: null, state: "running", attempt: (e.attempt || 1) + 1, queued: t + delay });
        break;
      }
      case "StepCompleted":
        if (!close(p, t, "completed")) row(p).bars.push({ start: t, end: t, state: "completed", attempt: e.attempt });
        break;
      case "StepFailed":
        if (!close(p, t, "failed", errMsg(data))) row(p).bars.push({ start: t, end: t, state: "failed", attempt: e.attempt, note: errMsg(data) });
        break;
      case "StepSuspended":
        // The last attempt failed; the step waits for ResumeWorkflow.
        close(p, t, "failed", errMsg(data));
        begin(p, { start: t, end: null, state: "waiting", attempt: 0, note: "suspended" });
        break;
      case "StepCanceled":
        close(p, t, "canceled");
        break;
      case "StepSkipped":
        row(p).bars.push({ start: t, end: t, state: "skipped", attempt: 0 });
        break;
      case "StepReopened":
        break;
      default:
        if (waitTypes.has(e.type)) {
          const cur = open.get(p);
          if (cur && cur.state === "waiting") break;
          if (cur) cur.state = "waiting";
          else begin(p, { start: t, end: null, state: "waiting", attempt: 0, note: e.type === "ChildStarted" ? "child " + str(data.workflow_id) : str(data.signal) || "sleep" });
        }
    }
  }
  if (open.size > 0 && now > end) end = now;
  if (!isFinite(start)) start = end = now;
  return { rows: [...rows.values()], start, end: Math.max(end, start + 1) };
}

function str(v: any): string {
  return v === undefined || v === null ? "" : String(v);
}

function errMsg(data: any): string {
  const err = data.error;
  if (!err) return "";
  const typ = str(err.type);
  return (typ ? typ + ": " : "") + str(err.message);
}

/** durMs reads a Go duration string ("1.5s", "200ms", "1m0s"). */
export function durMs(s: string): number {
  let ms = 0;
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, "µs": 0.001, ns: 1e-6 };
  for (const m of s.matchAll(/([\d.]+)(h|ms|m|s|us|µs|ns)/g)) ms += parseFloat(m[1]) * (units[m[2]] ?? 0);
  return ms;
}

const rowH = 22;
const viewRows = 18;

export function Timeline({ model }: { model: Model }) {
  const box = useRef<HTMLDivElement>(null);
  const [scroll, setScroll] = useState(0);
  const [width, setWidth] = useState(800);
  useEffect(() => {
    // For the browser tests' measurements: when a timeline first showed.
    (window as any).__weftTimelineShown ??= performance.now();
  }, []);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    setWidth(el.clientWidth);
    return () => ro.disconnect();
  }, []);
  const span = model.end - model.start;
  // The step labels take at most a third of a narrow screen.
  const labelW = Math.min(220, Math.round(width / 3));
  const plotW = Math.max(120, width - labelW - 16);
  const x = (t: number) => labelW + ((t - model.start) / span) * plotW;
  const first = Math.max(0, Math.floor(scroll / rowH) - 2);
  const last = Math.min(model.rows.length, first + viewRows + 5);
  const height = Math.min(model.rows.length, viewRows) * rowH + 28;
  // The box's borders come on top of the drawing's height.
  const ticks = useMemo(() => axisTicks(span, Math.max(2, Math.min(8, Math.floor(plotW / 110)))), [span, plotW]);
  const visible = model.rows.slice(first, last);
  let bars = 0;
  for (const r of model.rows) bars += r.bars.length;

  return (
    <div class="timeline" data-rows={model.rows.length} data-bars={bars}>
      <div class="tl-legend" aria-hidden="true">
        {(["running", "waiting", "completed", "failed", "canceled"] as const).map((s) => (
          <span>
            <i class={`b-${s}`} /> {s}
          </span>
        ))}
        <span>
          <i class="b-queued" /> backoff
        </span>
      </div>
      <div
        class="tl-scroll"
        ref={box}
        tabIndex={0}
        role="img"
        aria-label={`Timeline of ${model.rows.length} steps over ${fmtDuration(span)}`}
        style={{ height: `${height + 2}px` }}
        onScroll={(e) => setScroll(e.currentTarget.scrollTop)}
      >
        <div style={{ height: `${model.rows.length * rowH + 28}px`, position: "relative" }}>
          <svg class="tl-svg" width={width} height={height} style={{ top: `${scroll}px` }}>
            <g class="tl-axis">
              {ticks.map((t) => (
                <g>
                  <line x1={x(model.start + t)} x2={x(model.start + t)} y1={20} y2={height} />
                  {x(model.start + t) + 60 < width && (
                    <text x={x(model.start + t) + 3} y={14}>
                      +{fmtDuration(t)}
                    </text>
                  )}
                </g>
              ))}
            </g>
            {visible.map((r, i) => {
              const y = 28 + (first + i) * rowH - scroll;
              return (
                <g class="tl-row" data-path={r.path}>
                  <text class="tl-label" x={4} y={y + 15}>
                    {clipLabel(r.path, Math.floor(labelW / 7))}
                    <title>{r.path}</title>
                  </text>
                  {r.bars.map((b) => {
                    const x0 = x(b.start);
                    const x1 = Math.max(x0 + 3, x(b.end ?? model.end));
                    const q = b.queued && b.queued > b.start ? Math.min(x(b.queued), x1) : x0;
                    const title = `${r.path}${b.attempt ? " attempt " + b.attempt : ""}: ${b.end === null ? "open" : b.state}, ${fmtTime(new Date(b.start))} for ${fmtDuration((b.end ?? model.end) - b.start)}${b.note ? " — " + b.note : ""}`;
                    return (
                      <g class={`bar b-${b.end === null && b.state === "running" ? "running" : b.state}`} data-attempt={b.attempt}>
                        {q > x0 && <rect class="b-queued" x={x0} y={y + 4} width={q - x0} height={rowH - 8} />}
                        <rect x={q} y={y + 3} width={Math.max(3, x1 - q)} height={rowH - 6} rx={2} />
                        <title>{title}</title>
                      </g>
                    );
                  })}
                </g>
              );
            })}
          </svg>
        </div>
      </div>
    </div>
  );
}

function clipLabel(s: string, n: number): string {
  return s.length > n ? "…" + s.slice(-(n - 1)) : s;
}

function axisTicks(span: number, n: number): number[] {
  const raw = span / n;
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000];
  const step = steps.find((s) => s >= raw) ?? Math.ceil(raw / 86_400_000) * 86_400_000;
  const out: number[] = [];
  for (let t = 0; t <= span; t += step) out.push(t);
  return out;
}

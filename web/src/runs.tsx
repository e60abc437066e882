// The runs list: newest first, filtered by status, definition, id prefix
// and a query; paged as the API pages; status counts on top; refreshed
// every few seconds.
import { useEffect, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import { Code, date, definitions, errorText, isCode, statusName, statusNames, statusOf, workflows } from "./api";
import type { WorkflowSummary, CountWorkflowsResponse } from "./gen/weft/v1/workflow_pb";
import { A, navigate, params, withParams } from "./router";
import { Badge, ErrorBox, fmtDuration, fmtTime } from "./ui";

const pageSize = 50;
const refreshEvery = 5000;

interface Filters {
  status: string;
  definition: string;
  id: string;
  q: string;
  page: string;
}

function filtersOf(search: string): Filters {
  const p = params(search);
  return { status: p.get("status") ?? "", definition: p.get("definition") ?? "", id: p.get("id") ?? "", q: p.get("q") ?? "", page: p.get("page") ?? "" };
}

export function RunsPage({ search }: { search: string }) {
  const f = filtersOf(search);
  const [rows, setRows] = useState<WorkflowSummary[] | null>(null);
  const [next, setNext] = useState("");
  const [counts, setCounts] = useState<CountWorkflowsResponse | null | "unavailable">(null);
  const [error, setError] = useState<string | null>(null);
  const [defNames, setDefNames] = useState<string[]>([]);
  const [tick, setTick] = useState(0);
  // prev holds the page tokens that led here, for the Previous button.
  const prev = useRef<string[]>([]);
  // shownFor is the search the rows shown are the answer to.
  const shownFor = useRef<string | null>(null);

  useEffect(() => {
    definitions.listDefinitions({}).then((r) => setDefNames(r.definitions.map((d) => d.name).sort()), () => {});
  }, []);

  useEffect(() => {
    let live = true;
    workflows
      .listWorkflows({ status: statusOf(f.status), definition: f.definition, idPrefix: f.id, query: f.q, pageSize, pageToken: f.page })
      .then(
        (r) => {
          if (!live) return;
          shownFor.current = search;
          setRows(r.workflows);
          setNext(r.nextPageToken);
          setError(null);
          // For the browser tests' measurements: when the first page showed.
          requestAnimationFrame(() => {
            (window as any).__weftListShown ??= performance.now();
          });
        },
        (e) => {
          if (!live) return;
          // A list refused for these filters shows no rows: neither the
          // last filters' rows nor placeholders that look as if it were
          // still loading. A refresh that failed keeps what it showed.
          if (shownFor.current !== search) {
            shownFor.current = search;
            setRows([]);
            setNext("");
          }
          setError(errorText(e));
        },
      );
    workflows.countWorkflows({ definition: f.definition, idPrefix: f.id }).then(
      (r) => live && setCounts(r),
      (e) => live && setCounts(isCode(e, Code.Unimplemented) ? "unavailable" : null),
    );
    return () => {
      live = false;
    };
  }, [search, tick]);

  useEffect(() => {
    const id = setInterval(() => document.visibilityState === "visible" && setTick((t) => t + 1), refreshEvery);
    return () => clearInterval(id);
  }, []);

  const go = (g: Partial<Filters>) => navigate(withParams("/", { ...f, page: "", ...g } as any));
  const onSubmit = (e: JSX.TargetedEvent<HTMLFormElement>) => {
    e.preventDefault();
    const d = new FormData(e.currentTarget);
    prev.current = [];
    go({ id: String(d.get("id") ?? "").trim(), q: String(d.get("q") ?? "").trim(), definition: String(d.get("definition") ?? ""), status: String(d.get("status") ?? "") });
  };

  return (
    <div>
      <h1>Runs</h1>
      <Counts counts={counts} current={f.status} onPick={(s) => go({ status: s })} />
      {f.q && <p class="counts-note muted">The counts follow the definition and id filters, not the query.</p>}
      <form class="filters" onSubmit={onSubmit} key={search}>
        <label>
          Status
          <select name="status" value={f.status} onChange={(e) => go({ status: e.currentTarget.value })}>
            <option value="">any</option>
            {Object.values(statusNames).map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Definition
          <select name="definition" value={f.definition} onChange={(e) => go({ definition: e.currentTarget.value })}>
            <option value="">any</option>
            {(f.definition && !defNames.includes(f.definition) ? [f.definition, ...defNames] : defNames).map((n) => (
              <option value={n}>{n}</option>
            ))}
          </select>
        </label>
        <label>
          Id starts with
          <input name="id" defaultValue={f.id} placeholder="id prefix" autocomplete="off" spellcheck={false} />
        </label>
        <label class="grow">
          Query
          <input name="q" defaultValue={f.q} placeholder={'search.customer == "c-7" && created > timestamp("2026-12-01T00:00:00Z")'} autocomplete="off" spellcheck={false} />
        </label>
        <button type="submit">Find</button>
      </form>
      <ErrorBox error={error} />
      <div class="table-wrap">
        <table class="runs" aria-busy={rows === null}>
          <thead>
            <tr>
              <th class="c-id">Id</th>
              <th class="c-status">Status</th>
              <th>Definition</th>
              <th class="c-time">Started</th>
              <th class="c-dur">Duration</th>
              <th class="c-who">Started by</th>
            </tr>
          </thead>
          <tbody>
            {rows === null
              ? Array.from({ length: 8 }, () => (
                  <tr class="placeholder">
                    <td colSpan={6}>&nbsp;</td>
                  </tr>
                ))
              : rows.map((w) => <RunRow w={w} />)}
          </tbody>
        </table>
        {rows !== null && rows.length === 0 && !error && <p class="muted empty">No runs{next ? " on this page (the query looked at a bounded number of runs: try the next page)" : ""}.</p>}
      </div>
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          disabled={!f.page}
          onClick={() => {
            const p = prev.current.pop() ?? "";
            go({ ...f, page: p });
          }}
        >
          ← Newer
        </button>
        <button
          type="button"
          disabled={!next}
          onClick={() => {
            prev.current.push(f.page);
            go({ ...f, page: next });
          }}
        >
          Older →
        </button>
      </nav>
    </div>
  );
}

function RunRow({ w }: { w: WorkflowSummary }) {
  const created = date(w.createdTime);
  const closed = date(w.closedTime);
  const s = statusName(w.status);
  return (
    <tr data-id={w.id}>
      <td class="c-id">
        <A href={`/workflows/${encodeURIComponent(w.id)}`}>{w.id}</A>
      </td>
      <td class="c-status">
        <Badge status={s} />
      </td>
      <td>
        <A href={`/definitions/${encodeURIComponent(w.definition)}?revision=${w.revision}`}>{w.definition}</A> <span class="muted">r{w.revision}</span>
      </td>
      <td class="c-time">{fmtTime(created)}</td>
      <td class="c-dur">{created ? fmtDuration((closed ?? new Date()).getTime() - created.getTime()) + (closed ? "" : " …") : ""}</td>
      <td class="c-who">{w.identity}</td>
    </tr>
  );
}

function Counts({ counts, current, onPick }: { counts: CountWorkflowsResponse | null | "unavailable"; current: string; onPick: (s: string) => void }) {
  if (counts === "unavailable") return <p class="counts muted">Status counts are not available from this server.</p>;
  const by: Record<string, bigint> = {};
  if (counts) for (const c of counts.counts) by[statusName(c.status)] = c.count;
  return (
    <ul class="counts" aria-label="Runs by status">
      <li>
        <button type="button" class={current === "" ? "on" : ""} onClick={() => onPick("")}>
          all <b>{counts ? String(counts.total) : "…"}</b>
        </button>
      </li>
      {Object.values(statusNames).map((s) => (
        <li>
          <button type="button" class={`s-${s} ${current === s ? "on" : ""}`} onClick={() => onPick(s)} data-status={s}>
            {s} <b>{counts ? String(by[s] ?? 0n) : "…"}</b>
          </button>
        </li>
      ))}
    </ul>
  );
}

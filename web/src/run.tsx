// A run: its state, steps, timeline, history and search attributes, with
// the actions signal, cancel and retry. A running run follows its history
// live through WatchWorkflow.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { JsonValue } from "@bufbuild/protobuf";
import { Code, date, errorText, isCode, jsonValue, statusName, StepStatus, stepStatusName, valueJson, workflows, WorkflowStatus } from "./api";
import type { HistoryEvent, Workflow } from "./gen/weft/v1/workflow_pb";
import { A } from "./router";
import { ActionBar, Badge, ErrorBox, fmtDuration, fmtTime, Json, Section, type ActionSpec } from "./ui";
import { buildTimeline, Timeline } from "./timeline";

// historyPage is the GetHistory page size: small enough that decoding one
// page is a short task.
const historyPage = 500;
const tableStep = 100;
// retryEvery is the pause before a page that followed a run live tries
// again after its updates broke off.
const retryEvery = 3000;
// final are the codes of a refused read of the run that trying again
// does not change.
const final = [Code.NotFound, Code.PermissionDenied, Code.Unauthenticated, Code.InvalidArgument];

/** isOpen reports whether w can still change: running, queued or suspended. */
function isOpen(w: Workflow | undefined | null): boolean {
  return w?.status === WorkflowStatus.RUNNING || w?.status === WorkflowStatus.QUEUED || w?.status === WorkflowStatus.SUSPENDED;
}

export function RunPage({ id }: { id: string }) {
  const [wf, setWf] = useState<Workflow | null>(null);
  const [events, setEvents] = useState<HistoryEvent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState(0);
  // following: the page follows the run live, or did until its updates
  // broke off (the server restarted, say); it keeps trying until a load
  // succeeds, however long the server is away.
  const following = useRef(false);

  useEffect(() => {
    const ctl = new AbortController();
    let buf: HistoryEvent[] = [];
    let timer = 0;
    let again = 0;
    // A state read by a load that has been replaced is dropped: it may be older.
    const refresh = () =>
      workflows.getWorkflow({ workflowId: id }, { signal: ctl.signal }).then((r) => {
        if (!ctl.signal.aborted) setWf(r.workflow ?? null);
      });
    // flush shows the events gathered so far, at most a few times a second.
    const flush = () => {
      timer = 0;
      if (ctl.signal.aborted) return;
      setEvents(buf.slice());
      refresh().catch(() => {});
    };
    // read: the run's state was read; a refusal of that read ends the
    // following (the run is gone, say), as a broken call does not.
    let read = false;
    (async () => {
      try {
        const r = await workflows.getWorkflow({ workflowId: id }, { signal: ctl.signal });
        if (ctl.signal.aborted) return;
        read = true;
        setWf(r.workflow ?? null);
        setError(null);
        if (isOpen(r.workflow)) {
          following.current = true;
          for await (const m of workflows.watchWorkflow({ workflowId: id }, { signal: ctl.signal })) {
            if (m.event) buf.push(m.event);
            if (!timer) timer = window.setTimeout(flush, 150);
          }
          window.clearTimeout(timer);
          flush();
          following.current = false;
        } else {
          following.current = false;
          let token = "";
          do {
            const h = await workflows.getHistory({ workflowId: id, pageSize: historyPage, pageToken: token }, { signal: ctl.signal });
            buf = buf.concat(h.events);
            token = h.nextPageToken;
          } while (token);
          if (!ctl.signal.aborted) setEvents(buf);
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
        // Live updates that broke off (the server restarted, say) start
        // again after a pause, and again after every load that fails, until
        // one succeeds; meanwhile the page says that what it shows is stale.
        if (!read && final.some((c) => isCode(e, c))) following.current = false;
        if (following.current) {
          setError(`${errorText(e)}. Live updates stopped: what this page shows may be out of date; trying again every ${retryEvery / 1000} s.`);
          again = window.setTimeout(() => setReload((n) => n + 1), retryEvery);
        } else setError(errorText(e));
      }
    })();
    return () => {
      ctl.abort();
      window.clearTimeout(timer);
      window.clearTimeout(again);
    };
  }, [id, reload]);

  if (!wf)
    return (
      <div>
        <h1 class="run-id">{id}</h1>
        <ErrorBox error={error} />
        {!error && <div class="card placeholder tall" aria-busy="true" />}
      </div>
    );
  return <RunView wf={wf} events={events} error={error} onChanged={() => setReload((n) => n + 1)} />;
}

function RunView({ wf, events, error, onChanged }: { wf: Workflow; events: HistoryEvent[]; error: string | null; onChanged: () => void }) {
  const created = date(wf.createdTime);
  const closed = date(wf.closedTime);
  const status = statusName(wf.status);
  const { started, parent, children, waits, cancel } = useMemo(() => {
    const started = events.find((e) => e.type === "WorkflowStarted");
    const parent = (valueJson(started?.data) as any)?.parent as { workflow_id: string; step_path: string } | undefined;
    const children: { path: string; workflow_id: string; definition: string; replacedBy?: string }[] = events
      .filter((e) => e.type === "ChildStarted")
      .map((e) => ({ path: e.stepPath, ...((valueJson(e.data) as any) ?? {}) }));
    // A step started again (a redrive) starts a new child: the earlier
    // one no longer counts for the run.
    const last: Record<string, string> = {};
    for (let i = children.length - 1; i >= 0; i--) {
      const c = children[i];
      if (last[c.path] !== undefined) c.replacedBy = last[c.path];
      else last[c.path] = c.workflow_id;
    }
    return { started, parent, children, waits: waitsOf(events), cancel: cancelOf(events) };
  }, [events]);
  // The tables come a frame after the timeline, so that neither makes one
  // long task of a big run's first render.
  const [tables, setTables] = useState(false);
  useEffect(() => {
    if (tables || events.length === 0) return;
    const t = setTimeout(() => setTables(true), 0);
    return () => clearTimeout(t);
  }, [events.length > 0]);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!isOpen(wf)) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [wf.status]);
  const model = useMemo(() => {
    const t0 = performance.now();
    const m = buildTimeline(events, isOpen(wf) ? now : (closed?.getTime() ?? now));
    (window as any).__weftTimelineBuildMs = performance.now() - t0;
    return m;
  }, [events, now, wf.status]);

  return (
    <div>
      <h1 class="run-id">
        {wf.id} <Badge status={status} />
      </h1>
      <ErrorBox error={error} />
      <dl class="facts">
        <dt>Definition</dt>
        <dd>
          <A href={`/definitions/${encodeURIComponent(wf.definition)}?revision=${wf.revision}`}>
            {wf.definition} revision {wf.revision}
          </A>
        </dd>
        <dt>Started</dt>
        <dd>{fmtTime(created)}</dd>
        <dt>Closed</dt>
        <dd>{closed ? `${fmtTime(closed)} (after ${fmtDuration(closed.getTime() - (created?.getTime() ?? 0))})` : "open"}</dd>
        <dt>Events</dt>
        <dd>{String(wf.historyLength)}</dd>
        {parent && (
          <>
            <dt>Parent</dt>
            <dd>
              <A href={`/workflows/${encodeURIComponent(parent.workflow_id)}`}>{parent.workflow_id}</A> <span class="muted">step {parent.step_path}</span>
            </dd>
          </>
        )}
        {started?.identity && (
          <>
            <dt>Started by</dt>
            <dd>{started.identity}</dd>
          </>
        )}
      </dl>
      {wf.error && (
        <p class="error run-error" role="alert">
          <b>{wf.error.type || "error"}</b>
          {wf.error.stepPath && <span class="muted"> at {wf.error.stepPath}</span>}: {withoutStep(wf.error.message, wf.error.stepPath)}
        </p>
      )}
      {wf.status === WorkflowStatus.CANCELED && cancel && (
        <p class="note run-note" role="status">
          Canceled{cancel.by && ` by ${cancel.by}`} at {fmtTime(cancel.time)}
          {cancel.reason ? `: ${cancel.reason}` : " (no reason given)"}.
        </p>
      )}
      {wf.status === WorkflowStatus.SUSPENDED && <Suspended wf={wf} />}
      <Actions wf={wf} signals={[...new Set(Object.values(waits).flatMap((w) => (w.signal ? [w.signal] : [])))]} onChanged={onChanged} />
      <Section title="Input and output">
        <Json label="Input" value={valueJson(wf.input)} />
        <Json label="Output" value={valueJson(wf.output)} open={wf.output !== undefined} />
      </Section>
      {children.length > 0 && (
        <Section title="Child runs">
          <ul class="children">
            {children.map((c) => (
              <li class={c.replacedBy ? "replaced" : undefined}>
                <A href={`/workflows/${encodeURIComponent(c.workflow_id)}`}>{c.workflow_id}</A> <span class="muted">{c.definition} from step {c.path}</span>
                {c.replacedBy && <span class="muted">, replaced by {c.replacedBy} when the step started again</span>}
              </li>
            ))}
          </ul>
        </Section>
      )}
      <Section title="Timeline" id="timeline">
        {events.length === 0 ? <div class="placeholder tl-placeholder" aria-busy="true" /> : <Timeline model={model} />}
      </Section>
      <Section title="Steps" id="steps">
        {tables ? <Steps wf={wf} waits={waits} /> : <div class="placeholder" aria-busy="true" />}
      </Section>
      {wf.searchAttributes && Object.keys(wf.searchAttributes).length > 0 && (
        <Section title="Search attributes">
          <dl class="facts attrs">
            {Object.entries(wf.searchAttributes).map(([k, v]) => (
              <>
                <dt>{k}</dt>
                <dd>
                  <code>{JSON.stringify(v)}</code>
                </dd>
              </>
            ))}
          </dl>
        </Section>
      )}
      <Section title="History" id="history">
        {tables ? <History events={events} /> : <div class="placeholder" aria-busy="true" />}
      </Section>
    </div>
  );
}

/** Wait is what a waiting step waits for, from its last WaitStarted or TimerScheduled. */
interface Wait {
  signal?: string;
  until?: Date;
}

/** waitsOf gives the steps that wait for a signal or a timer now, by path. */
function waitsOf(events: HistoryEvent[]): Record<string, Wait> {
  const out: Record<string, Wait> = {};
  for (const e of events) {
    if (!e.stepPath) continue;
    const data = (valueJson(e.data) ?? {}) as any;
    if (e.type === "WaitStarted") out[e.stepPath] = { signal: String(data.signal ?? ""), until: data.timeout_at ? new Date(data.timeout_at) : undefined };
    else if (e.type === "TimerScheduled" && !out[e.stepPath]?.signal) out[e.stepPath] = { until: data.due ? new Date(data.due) : undefined };
    else if (e.type === "StepCompleted" || e.type === "StepFailed" || e.type === "StepCanceled") delete out[e.stepPath];
  }
  return out;
}

/** cancelOf gives who canceled the run, when and why, from its history. */
function cancelOf(events: HistoryEvent[]): { by: string; time: Date | undefined; reason: string } | undefined {
  let by = "";
  for (const e of events) {
    if (e.type === "CancelRequested") by = e.identity;
    if (e.type === "WorkflowCanceled") return { by, time: date(e.time), reason: String((valueJson(e.data) as any)?.reason ?? "") };
  }
  return undefined;
}

/** withoutStep drops the "step PATH: " that a run's error message starts with, shown apart. */
function withoutStep(message: string, path: string): string {
  const prefix = `step ${path}: `;
  return path && message.startsWith(prefix) ? message.slice(prefix.length) : message;
}

/** Suspended says which steps hold the run and why, and what Resume does. */
function Suspended({ wf }: { wf: Workflow }) {
  const held = wf.steps.filter((s) => s.status === StepStatus.SUSPENDED);
  return (
    <p class="note run-note" role="status">
      Suspended
      {held.map((s, i) => (
        <>
          {i > 0 ? "; " : " at "}
          <code>{s.path}</code> after {s.attempts} failed attempt{s.attempts === 1 ? "" : "s"}
          {s.lastError && `: ${s.lastError.type ? s.lastError.type + ": " : ""}${s.lastError.message}`}
        </>
      ))}
      . Nothing else of the run moves until it is resumed: Resume… gives {held.length === 1 ? "this step" : "these steps"} fresh attempts; Cancel… closes the run.
    </p>
  );
}

function Steps({ wf, waits }: { wf: Workflow; waits: Record<string, Wait> }) {
  const [limit, setLimit] = useState(tableStep);
  if (wf.steps.length === 0) return <p class="muted">No steps scheduled yet.</p>;
  return (
    <div class="table-wrap">
      <table class="steps">
        <thead>
          <tr>
            <th>Step</th>
            <th>Status</th>
            <th class="num">Attempts</th>
            <th>Task</th>
            <th>Duration</th>
            <th>Last error</th>
          </tr>
        </thead>
        <tbody>
          {wf.steps.slice(0, limit).map((s) => {
            const depth = s.path.split(".").length - 1;
            const st = date(s.startedTime);
            const cl = date(s.closedTime);
            const wait = s.status === StepStatus.WAITING && !s.waitingFor ? waits[s.path] : undefined;
            return (
              <tr data-path={s.path}>
                <td style={{ paddingLeft: `${0.5 + depth * 1.2}em` }}>
                  <code>{s.path}</code>
                </td>
                <td>
                  <Badge status={stepStatusName(s.status)} />
                  {s.waitingFor && <div class="waiting-for">{s.waitingFor}</div>}
                  {wait && (
                    <div class="waiting-for">
                      {wait.signal ? (
                        <>
                          for signal <code>{wait.signal}</code>
                          {wait.until && `, until ${fmtTime(wait.until)}`}
                        </>
                      ) : (
                        wait.until && `until ${fmtTime(wait.until)}`
                      )}
                    </div>
                  )}
                </td>
                <td class="num">{s.attempts}</td>
                <td>{s.task}</td>
                <td>{st && cl ? fmtDuration(cl.getTime() - st.getTime()) : ""}</td>
                <td class={s.status === StepStatus.COMPLETED ? "err-cell retried" : "err-cell"} title={s.status === StepStatus.COMPLETED && s.lastError ? "an earlier attempt's error; a later attempt completed" : undefined}>
                  {s.lastError ? `${s.lastError.type ? s.lastError.type + ": " : ""}${s.lastError.message}` : ""}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {wf.steps.length > limit && (
        <button type="button" onClick={() => setLimit(limit + tableStep * 5)}>
          Show more steps ({wf.steps.length - limit} more)
        </button>
      )}
    </div>
  );
}

function History({ events }: { events: HistoryEvent[] }) {
  const [limit, setLimit] = useState(tableStep);
  const [open, setOpen] = useState<Set<bigint>>(new Set());
  if (events.length === 0) return <div class="placeholder" aria-busy="true" />;
  const toggle = (seq: bigint) => {
    const n = new Set(open);
    if (n.has(seq)) n.delete(seq);
    else n.add(seq);
    setOpen(n);
  };
  return (
    <div class="table-wrap">
      <table class="history">
        <thead>
          <tr>
            <th class="num">Seq</th>
            <th>Time</th>
            <th>Type</th>
            <th>Step</th>
            <th class="num">Attempt</th>
            <th>Who</th>
            <th>Data</th>
          </tr>
        </thead>
        <tbody>
          {events.slice(0, limit).map((e) => {
            const isOpen = open.has(e.sequence);
            return (
              <tr data-seq={String(e.sequence)} data-type={e.type}>
                <td class="num">{String(e.sequence)}</td>
                <td class="nowrap">{fmtTime(date(e.time))}</td>
                <td>{e.type}</td>
                <td>
                  <code>{e.stepPath}</code>
                </td>
                <td class="num">{e.attempt || ""}</td>
                <td>{e.identity}</td>
                <td class="data-cell">
                  <button type="button" class="link" aria-expanded={isOpen} onClick={() => toggle(e.sequence)}>
                    {isOpen ? "hide" : "show"}
                  </button>
                  {isOpen && <pre>{JSON.stringify(valueJson(e.data), null, 2)}</pre>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {events.length > limit && (
        <button type="button" onClick={() => setLimit(limit + tableStep * 5)}>
          Show more events ({events.length - limit} more)
        </button>
      )}
    </div>
  );
}

function Actions({ wf, signals, onChanged }: { wf: Workflow; signals: string[]; onChanged: () => void }) {
  const open = isOpen(wf);
  const reason = (label: string, required = false) => ({ name: "reason", label, required });
  const actions: ActionSpec[] = [
    {
      key: "signal",
      button: "Signal…",
      enabled: open,
      fields: [
        { name: "name", label: signals.length > 0 ? `Signal name (the run waits for ${signals.join(", ")})` : "Signal name", required: true, suggestions: signals, value: signals.length === 1 ? signals[0] : undefined },
        { name: "payload", label: "Payload (JSON, optional)", multiline: true },
      ],
      question: `Send this signal to ${wf.id}?`,
      confirm: "Send signal",
      async run(d) {
        const name = String(d.get("name") ?? "");
        const text = String(d.get("payload") ?? "");
        let payload: JsonValue | undefined;
        if (text.trim()) {
          try {
            payload = JSON.parse(text);
          } catch (err) {
            throw new Error("The payload is not JSON: " + (err as Error).message);
          }
        }
        await workflows.signalWorkflow({ workflowId: wf.id, name, payload: payload === undefined ? undefined : jsonValue(payload), requestId: crypto.randomUUID() });
        return `Signal ${name} sent.`;
      },
    },
    {
      key: "cancel",
      button: "Cancel…",
      enabled: open,
      fields: [reason("Reason")],
      question: `Cancel ${wf.id}? Its open steps are canceled.`,
      confirm: "Cancel run",
      async run(d) {
        await workflows.cancelWorkflow({ workflowId: wf.id, reason: String(d.get("reason") ?? ""), requestId: crypto.randomUUID() });
        return "Cancel requested.";
      },
    },
    {
      key: "retry",
      button: "Retry…",
      enabled: wf.status === WorkflowStatus.FAILED,
      fields: [reason("Reason (optional)")],
      question: `Retry ${wf.id} from its failed steps?`,
      confirm: "Retry run",
      async run(d) {
        await workflows.retryWorkflow({ workflowId: wf.id, reason: String(d.get("reason") ?? ""), requestId: crypto.randomUUID() });
        return "Run retried.";
      },
    },
  ];
  if (wf.status === WorkflowStatus.SUSPENDED)
    actions.push({
      key: "resume",
      button: "Resume…",
      enabled: true,
      fields: [reason("Reason (optional)")],
      question: `Resume ${wf.id}? Its suspended steps get fresh attempts.`,
      confirm: "Resume run",
      async run(d) {
        await workflows.resumeWorkflow({ workflowId: wf.id, reason: String(d.get("reason") ?? ""), requestId: crypto.randomUUID() });
        return "Run resumed.";
      },
    });
  return <ActionBar actions={actions} onChanged={onChanged} />;
}

// Triggers: the cron schedules with their next fire times, and the trigger
// events that started no run.
import { useEffect, useState } from "preact/hooks";
import { date, errorText, triggers } from "./api";
import type { Schedule, TriggerFailure } from "./gen/weft/v1/trigger_pb";
import { A } from "./router";
import { ErrorBox, fmtTime, Section } from "./ui";

const failurePage = 50;
const decoder = new TextDecoder();

export function TriggersPage() {
  const [schedules, setSchedules] = useState<Schedule[] | null>(null);
  const [failures, setFailures] = useState<TriggerFailure[] | null>(null);
  const [next, setNext] = useState("");
  const [error, setError] = useState<string | null>(null);
  const loadFailures = (token: string) =>
    triggers.listTriggerFailures({ pageSize: failurePage, pageToken: token }).then(
      (r) => {
        setFailures((f) => (token ? [...(f ?? []), ...r.failures] : r.failures));
        setNext(r.nextPageToken);
      },
      (e) => setError(errorText(e)),
    );
  useEffect(() => {
    triggers.listSchedules({}).then(
      (r) => setSchedules(r.schedules),
      (e) => setError(errorText(e)),
    );
    loadFailures("");
  }, []);
  return (
    <div>
      <h1>Triggers</h1>
      <ErrorBox error={error} />
      <Section title="Schedules" id="schedules">
        <div class="table-wrap">
          <table aria-busy={schedules === null}>
            <thead>
              <tr>
                <th>Definition</th>
                <th>Cron</th>
                <th>Time zone</th>
                <th>Next fire time</th>
                <th>Catch-up</th>
              </tr>
            </thead>
            <tbody>
              {(schedules ?? []).map((s) => (
                <tr data-definition={s.definition}>
                  <td>
                    <A href={`/definitions/${encodeURIComponent(s.definition)}`}>{s.definition}</A>
                  </td>
                  <td>
                    <code>{s.cron}</code>
                  </td>
                  <td>{s.timezone}</td>
                  <td>{fmtTime(date(s.nextFireTime))}</td>
                  <td>{s.catchup ? "yes" : "no"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {schedules?.length === 0 && <p class="muted empty">No cron triggers.</p>}
        </div>
      </Section>
      <Section title="Trigger failures" id="failures">
        <div class="table-wrap">
          <table aria-busy={failures === null}>
            <thead>
              <tr>
                <th>Time</th>
                <th>Source</th>
                <th>Definition</th>
                <th>Reason</th>
                <th>Payload</th>
              </tr>
            </thead>
            <tbody>
              {(failures ?? []).map((f) => (
                <tr>
                  <td class="nowrap">{fmtTime(date(f.time))}</td>
                  <td>
                    <code>{f.subject}</code>
                  </td>
                  <td>{f.definition && <A href={`/definitions/${encodeURIComponent(f.definition)}`}>{f.definition}</A>}</td>
                  <td class="err-cell">{f.reason}</td>
                  <td class="data-cell">
                    <details>
                      <summary>{f.payload.length} bytes</summary>
                      <pre>{decoder.decode(f.payload)}</pre>
                    </details>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {failures?.length === 0 && <p class="muted empty">No trigger failures.</p>}
        </div>
        {next && (
          <button type="button" onClick={() => loadFailures(next)}>
            Older failures
          </button>
        )}
      </Section>
    </div>
  );
}

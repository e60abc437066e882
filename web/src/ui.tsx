// Small shared pieces: times, JSON, errors, status badges.
import type { ComponentChildren, JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "./api";
import type { JsonValue } from "@bufbuild/protobuf";

export function fmtTime(d: Date | undefined): string {
  if (!d) return "—";
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function fmtDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return pair(Math.floor(ms / 60_000), "min", Math.round((ms % 60_000) / 1000), "s");
  if (ms < 86_400_000) return pair(Math.floor(ms / 3_600_000), "h", Math.round((ms % 3_600_000) / 60_000), "min");
  return pair(Math.floor(ms / 86_400_000), "d", Math.round((ms % 86_400_000) / 3_600_000), "h");
}

/** pair writes a duration of two units, leaving out a lesser unit of 0. */
function pair(n: number, unit: string, m: number, lesser: string): string {
  return m === 0 ? `${n} ${unit}` : `${n} ${unit} ${m} ${lesser}`;
}

export function Badge({ status }: { status: string }) {
  return <span class={`badge s-${status}`}>{status}</span>;
}

/** Json shows a value as folded, pretty JSON. */
export function Json({ value, label, open }: { value: JsonValue | undefined; label: string; open?: boolean }) {
  if (value === undefined) return <p class="muted">{label}: none</p>;
  const text = JSON.stringify(value, null, 2);
  const short = JSON.stringify(value);
  return (
    <details class="json" open={open}>
      <summary>
        {label} <code class="muted">{short.length > 80 ? short.slice(0, 80) + "…" : short}</code>
      </summary>
      <pre>{text}</pre>
    </details>
  );
}

export function ErrorBox({ error }: { error: string | null | undefined }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  return (
    <section class="card" id={id} aria-label={title}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

/** ActionSpec is one action of an ActionBar: its button, its form, its call. */
export interface ActionSpec {
  key: string;
  button: string;
  enabled: boolean;
  /** suggestions are offered as the field's choices; value fills it in. */
  fields: { name: string; label: string; required?: boolean; multiline?: boolean; suggestions?: string[]; value?: string }[];
  /** question asks for confirmation above the form's buttons. */
  question: string;
  confirm: string;
  /** run makes the call and says what was done; what it throws is shown. */
  run: (d: FormData) => Promise<string>;
}

/**
 * ActionBar shows a button per action; a button opens the action's form,
 * which needs its own confirm button pressed (Escape or Back closes it).
 * A refused call shows the API's code and message.
 */
export function ActionBar({ actions, onChanged }: { actions: ActionSpec[]; onChanged: () => void }) {
  const [current, setCurrent] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  const confirm = useRef<HTMLButtonElement>(null);
  useEffect(() => (first.current ?? confirm.current)?.focus(), [current]);
  const action = actions.find((a) => a.key === current);

  const pick = (key: string | null) => {
    setCurrent(key);
    setError(null);
    setDone(null);
  };
  const submit = async (e: JSX.TargetedEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (!action) return;
    const d = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      setDone(await action.run(d));
      setCurrent(null);
      onChanged();
    } catch (err) {
      setError(err instanceof Error && !("code" in err) ? err.message : errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="actions">
      <div class="buttons" role="toolbar" aria-label="Actions">
        {actions.map((a) => (
          <button type="button" disabled={!a.enabled} onClick={() => pick(a.key)} aria-pressed={current === a.key}>
            {a.button}
          </button>
        ))}
      </div>
      {action && (
        <form class="action-form card" onSubmit={submit} onKeyDown={(e) => e.key === "Escape" && pick(null)} aria-label={action.key}>
          {action.fields.map((f, i) => (
            <label>
              {f.label}
              {f.multiline ? (
                <textarea name={f.name} rows={4} spellcheck={false} required={f.required} />
              ) : (
                <>
                  <input name={f.name} ref={i === 0 ? first : undefined} required={f.required} autocomplete="off" defaultValue={f.value} list={f.suggestions?.length ? `${action.key}-${f.name}-choices` : undefined} />
                  {!!f.suggestions?.length && (
                    <datalist id={`${action.key}-${f.name}-choices`}>
                      {f.suggestions.map((v) => (
                        <option value={v} />
                      ))}
                    </datalist>
                  )}
                </>
              )}
            </label>
          ))}
          <p class="confirm">{action.question}</p>
          <div class="buttons">
            <button type="submit" class="primary" disabled={busy} ref={confirm}>
              {action.confirm}
            </button>
            <button type="button" onClick={() => pick(null)}>
              Back
            </button>
          </div>
        </form>
      )}
      <ErrorBox error={error} />
      {done && (
        <p class="ok" role="status">
          {done}
        </p>
      )}
    </div>
  );
}

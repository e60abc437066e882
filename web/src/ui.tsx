// Small shared pieces: times, JSON, errors, status badges.
import type { ComponentChildren } from "preact";
import type { JsonValue } from "@bufbuild/protobuf";

export function fmtTime(d: Date | undefined): string {
  if (!d) return "—";
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function fmtDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
  return `${Math.floor(ms / 86_400_000)} d ${Math.round((ms % 86_400_000) / 3_600_000)} h`;
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

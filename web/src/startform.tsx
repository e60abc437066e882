// Start a run of a definition: a JSON editor for the input and, where the
// definition declares an input_schema, a form generated from it with one
// field per property. Both edit the same input.
import { useState } from "preact/hooks";
import type { JSX } from "preact";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { errorText, jsonValue, workflows } from "./api";
import { navigate } from "./router";
import { ErrorBox } from "./ui";

type Schema = Record<string, any>;

export function StartForm({ name, revision, schema }: { name: string; revision: number; schema: JsonObject | undefined }) {
  const props = (schema?.properties ?? {}) as Record<string, Schema>;
  const hasForm = schema !== undefined && Object.keys(props).length > 0;
  const [mode, setMode] = useState<"form" | "json">(hasForm ? "form" : "json");
  const [input, setInput] = useState<JsonObject>(() => defaults(props));
  const [text, setText] = useState(() => JSON.stringify(defaults(props), null, 2));
  const [id, setId] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const required = new Set<string>((schema?.required as string[]) ?? []);

  const switchTo = (m: "form" | "json") => {
    setError(null);
    if (m === "json") setText(JSON.stringify(input, null, 2));
    else {
      try {
        const v = JSON.parse(text || "{}");
        if (v && typeof v === "object" && !Array.isArray(v)) setInput(v);
      } catch {
        setError("The JSON does not parse; fix it to use the form.");
        return;
      }
    }
    setMode(m);
  };

  const submit = async (e: JSX.TargetedEvent<HTMLFormElement>) => {
    e.preventDefault();
    setError(null);
    let value: JsonValue;
    if (mode === "json") {
      try {
        value = text.trim() ? JSON.parse(text) : null;
      } catch (err) {
        setError("The input is not JSON: " + (err as Error).message);
        return;
      }
    } else value = input;
    setBusy(true);
    try {
      const r = await workflows.startWorkflow({ definition: name, revision, input: value === null ? undefined : jsonValue(value), workflowId: id.trim(), requestId: crypto.randomUUID() });
      navigate(`/workflows/${encodeURIComponent(r.workflowId)}`);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="start-form" onSubmit={submit} aria-label="Start a run">
      {hasForm && (
        <div class="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={mode === "form"} onClick={() => switchTo("form")}>
            Form
          </button>
          <button type="button" role="tab" aria-selected={mode === "json"} onClick={() => switchTo("json")}>
            JSON
          </button>
        </div>
      )}
      {mode === "form" ? (
        <div class="schema-fields">
          {fieldOrder(props, required).map(([k, s]) => (
            <Field name={k} schema={s} required={required.has(k)} value={input[k]} onChange={(v) => setInput(setKey(input, k, v))} />
          ))}
        </div>
      ) : (
        <label>
          Input (JSON)
          <textarea name="input" class="json-editor" rows={10} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
      )}
      <label>
        Run id (optional)
        <input name="workflow_id" value={id} onInput={(e) => setId(e.currentTarget.value)} autocomplete="off" placeholder="generated when empty" />
      </label>
      <div class="buttons">
        <button type="submit" class="primary" disabled={busy}>
          Start run
        </button>
      </div>
      <ErrorBox error={error} />
    </form>
  );
}

/** fieldOrder puts the required properties first, each group by name: a
 * schema's own order does not survive google.protobuf.Struct. */
function fieldOrder(props: Record<string, Schema>, required: Set<string>): [string, Schema][] {
  return Object.entries(props).sort(([a], [b]) => Number(required.has(b)) - Number(required.has(a)) || a.localeCompare(b));
}

function setKey(o: JsonObject, k: string, v: JsonValue | undefined): JsonObject {
  const n = { ...o };
  if (v === undefined) delete n[k];
  else n[k] = v;
  return n;
}

function defaults(props: Record<string, Schema>): JsonObject {
  const out: JsonObject = {};
  for (const [k, s] of Object.entries(props)) if (s.default !== undefined) out[k] = s.default;
  return out;
}

function typeOf(s: Schema): string {
  const t = s.type;
  if (Array.isArray(t)) return t.find((x) => x !== "null") ?? "string";
  return t ?? (s.enum ? "enum" : "any");
}

/** Field is one property's input, by its schema's type. */
function Field({ name, schema, required, value, onChange }: { name: string; schema: Schema; required: boolean; value: JsonValue | undefined; onChange: (v: JsonValue | undefined) => void }) {
  const t = typeOf(schema);
  const id = "f-" + name;
  const label = (
    <label for={id}>
      {schema.title ?? name}
      {required && <span aria-hidden="true"> *</span>}
      {schema.description && <small class="muted"> — {schema.description}</small>}
    </label>
  );
  let input: JSX.Element;
  if (schema.enum) {
    input = (
      <select id={id} name={name} required={required} value={value === undefined ? "" : JSON.stringify(value)} onChange={(e) => onChange(e.currentTarget.value === "" ? undefined : JSON.parse(e.currentTarget.value))}>
        <option value="">—</option>
        {(schema.enum as JsonValue[]).map((v) => (
          <option value={JSON.stringify(v)}>{typeof v === "string" ? v : JSON.stringify(v)}</option>
        ))}
      </select>
    );
  } else if (t === "boolean") {
    input = <input id={id} name={name} type="checkbox" checked={value === true} onChange={(e) => onChange(e.currentTarget.checked)} />;
  } else if (t === "integer" || t === "number") {
    input = (
      <input
        id={id}
        name={name}
        type="number"
        required={required}
        step={t === "integer" ? 1 : "any"}
        min={schema.minimum}
        max={schema.maximum}
        value={typeof value === "number" ? String(value) : ""}
        onInput={(e) => onChange(e.currentTarget.value === "" ? undefined : Number(e.currentTarget.value))}
      />
    );
  } else if (t === "string") {
    input = (
      <input
        id={id}
        name={name}
        type={schema.format === "email" ? "email" : "text"}
        required={required}
        minLength={schema.minLength}
        maxLength={schema.maxLength}
        value={typeof value === "string" ? value : ""}
        onInput={(e) => onChange(e.currentTarget.value === "" && !required ? undefined : e.currentTarget.value)}
      />
    );
  } else {
    input = <JsonField id={id} name={name} value={value} onChange={onChange} />;
  }
  return (
    <div class={`field field-${t}`}>
      {label}
      {input}
    </div>
  );
}

/** JsonField edits an object or array property as JSON text. */
function JsonField({ id, name, value, onChange }: { id: string; name: string; value: JsonValue | undefined; onChange: (v: JsonValue | undefined) => void }) {
  const [text, setText] = useState(value === undefined ? "" : JSON.stringify(value));
  const [bad, setBad] = useState(false);
  return (
    <textarea
      id={id}
      name={name}
      rows={3}
      spellcheck={false}
      class={bad ? "invalid" : ""}
      aria-invalid={bad}
      value={text}
      onInput={(e) => {
        const t = e.currentTarget.value;
        setText(t);
        try {
          onChange(t.trim() ? JSON.parse(t) : undefined);
          setBad(false);
        } catch {
          setBad(true);
        }
      }}
    />
  );
}

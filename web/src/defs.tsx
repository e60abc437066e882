// The definitions: their list, and one definition's source (any revision),
// diagram and start form.
import { useEffect, useState } from "preact/hooks";
import { date, definitions, errorText, listJson } from "./api";
import type { DefinitionInfo, DefinitionPause } from "./gen/weft/v1/definition_pb";
import { A, navigate, params, withParams } from "./router";
import { ActionBar, ErrorBox, fmtTime, Section, type ActionSpec } from "./ui";
import { Diagram } from "./diagram";
import { StartForm } from "./startform";

export function DefinitionsPage() {
  const [defs, setDefs] = useState<DefinitionInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    definitions.listDefinitions({}).then(
      (r) => setDefs(r.definitions.sort((a, b) => a.name.localeCompare(b.name))),
      (e) => setError(errorText(e)),
    );
  }, []);
  return (
    <div>
      <h1>Definitions</h1>
      <ErrorBox error={error} />
      <div class="table-wrap">
        <table class="defs" aria-busy={defs === null}>
          <thead>
            <tr>
              <th>Name</th>
              <th class="num">Revision</th>
              <th>Stored</th>
              <th>By</th>
              <th>Runs</th>
            </tr>
          </thead>
          <tbody>
            {(defs ?? []).map((d) => (
              <tr data-name={d.name}>
                <td>
                  <A href={`/definitions/${encodeURIComponent(d.name)}`}>{d.name}</A> {d.pause && (
                    <span class="badge s-suspended" title={pauseNote(d.pause)}>
                      paused
                    </span>
                  )}
                </td>
                <td class="num">{d.revision}</td>
                <td>{fmtTime(date(d.createdTime))}</td>
                <td>{d.putBy}</td>
                <td>
                  <A href={withParams("/", { definition: d.name })}>runs</A>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {defs !== null && defs.length === 0 && <p class="muted empty">No definitions yet: put one with `weft def apply -f FILE`.</p>}
      </div>
    </div>
  );
}

export function DefinitionPage({ name, search }: { name: string; search: string }) {
  const want = Number(params(search).get("revision") ?? 0) || 0;
  const [def, setDef] = useState<DefinitionInfo | null>(null);
  const [latest, setLatest] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    setError(null);
    definitions.getDefinition({ name, revision: want }).then(
      (r) => setDef(r.definition ?? null),
      (e) => setError(errorText(e)),
    );
    definitions.getDefinition({ name, revision: 0 }).then(
      (r) => setLatest(r.definition?.revision ?? 0),
      () => {},
    );
  }, [name, want, reload]);
  const actions: ActionSpec[] = [
    {
      key: "pause",
      button: def?.pause ? "Pause again…" : "Pause…",
      enabled: def !== null,
      fields: [{ name: "reason", label: "Reason" }],
      question: `Pause ${name}? Its runs start no new step attempts until it is resumed.`,
      confirm: "Pause definition",
      async run(d) {
        await definitions.pauseDefinition({ name, reason: String(d.get("reason") ?? "") });
        return `${name} paused.`;
      },
    },
    {
      key: "resume",
      button: "Resume…",
      enabled: def?.pause !== undefined,
      fields: [],
      question: `Resume ${name}? Everything that waited goes on.`,
      confirm: "Resume definition",
      async run() {
        await definitions.resumeDefinition({ name });
        return `${name} resumed.`;
      },
    },
  ];
  const outline = def ? (listJson(def.outline) as Record<string, unknown>[]) : [];
  return (
    <div>
      <h1>
        {name} {def && <span class="muted">revision {def.revision}</span>}
      </h1>
      <ErrorBox error={error} />
      {def && (
        <>
          <div class="facts-row">
            <label>
              Revision{" "}
              <select id="revision" value={String(def.revision)} onChange={(e) => navigate(withParams(`/definitions/${encodeURIComponent(name)}`, { revision: e.currentTarget.value }))}>
                {Array.from({ length: Math.max(latest, def.revision) }, (_, i) => Math.max(latest, def.revision) - i).map((r) => (
                  <option value={String(r)}>
                    {r}
                    {r === latest ? " (latest)" : ""}
                  </option>
                ))}
              </select>
            </label>
            <span class="muted">
              stored {fmtTime(date(def.createdTime))}
              {def.putBy && ` by ${def.putBy}`}
            </span>
            <A href={withParams("/", { definition: name })}>Runs of {name}</A>
          </div>
          <ActionBar actions={actions} onChanged={() => setReload((n) => n + 1)} />
          {def.pause && (
            <p class="error paused" role="status">
              {pauseNote(def.pause)}. Its runs start no new step attempts until it is resumed.
            </p>
          )}
          <Section title="Diagram" id="diagram">
            {outline.length > 0 ? <Diagram outline={outline} name={name} /> : <p class="muted">This server gives no outline of the steps.</p>}
          </Section>
          <Section title="Start a run" id="start">
            <StartForm key={`${def.name}@${def.revision}`} name={def.name} revision={def.revision} schema={def.inputSchema} />
          </Section>
          <Section title="Source" id="source">
            <pre class="source">{def.source}</pre>
          </Section>
        </>
      )}
      {!def && !error && <div class="card placeholder tall" aria-busy="true" />}
    </div>
  );
}

/** pauseNote says since when, by whom and why a definition is paused. */
function pauseNote(p: DefinitionPause): string {
  return `Paused since ${fmtTime(date(p.time))}${p.by ? ` by ${p.by}` : ""}${p.reason ? `: ${p.reason}` : ""}`;
}

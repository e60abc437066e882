// The console's entry: the top bar, the token prompt and the page the
// path names.
import { render } from "preact";
import { useEffect, useRef } from "preact/hooks";
import type { JSX } from "preact";
import "./style.css";
import { authNeeded, getToken, setToken } from "./api";
import { A, useLocation } from "./router";
import { useSignal } from "./state";
import { RunsPage } from "./runs";
import { RunPage } from "./run";
import { DefinitionPage, DefinitionsPage } from "./defs";
import { TriggersPage } from "./triggers";

/** decodeSegment decodes a path segment; a malformed escape stays as it is. */
function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function App() {
  const { path, search } = useLocation();
  const seg = path.split("/").map(decodeSegment);
  let page: JSX.Element;
  let title = "Runs";
  if (seg[1] === "workflows" && seg[2]) {
    page = <RunPage id={seg[2]} key={seg[2]} />;
    title = seg[2];
  } else if (seg[1] === "definitions" && seg[2]) {
    page = <DefinitionPage name={seg[2]} search={search} key={seg[2]} />;
    title = seg[2];
  } else if (seg[1] === "definitions") {
    page = <DefinitionsPage />;
    title = "Definitions";
  } else if (seg[1] === "triggers") {
    page = <TriggersPage />;
    title = "Triggers";
  } else page = <RunsPage search={search} />;
  useEffect(() => {
    document.title = `${title} · Weft`;
  }, [title]);
  const section = seg[1] === "definitions" ? "definitions" : seg[1] === "triggers" ? "triggers" : "runs";
  return (
    <>
      <header class="top">
        <a class="skip" href="#main">
          Skip to content
        </a>
        <span class="brand">Weft</span>
        <nav aria-label="Sections">
          <A href="/" class={section === "runs" ? "on" : ""}>
            Runs
          </A>
          <A href="/definitions" class={section === "definitions" ? "on" : ""}>
            Definitions
          </A>
          <A href="/triggers" class={section === "triggers" ? "on" : ""}>
            Triggers
          </A>
        </nav>
      </header>
      <TokenPrompt />
      <main class="page" id="main">
        {page}
      </main>
    </>
  );
}

/** TokenPrompt asks for a bearer token once the API answered Unauthenticated. */
function TokenPrompt() {
  const why = useSignal(authNeeded);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), [why]);
  if (why === null) return null;
  const submit = (e: JSX.TargetedEvent<HTMLFormElement>) => {
    e.preventDefault();
    const t = input.current?.value.trim() ?? "";
    if (!t) return;
    setToken(t);
    location.reload();
  };
  return (
    <div class="overlay" role="dialog" aria-modal="true" aria-labelledby="token-title">
      <form class="card token-form" onSubmit={submit}>
        <h2 id="token-title">Token needed</h2>
        <p>{why}</p>
        <label>
          Bearer token
          <input ref={input} name="token" type="password" autocomplete="off" defaultValue={getToken() ?? ""} />
        </label>
        <p class="muted">It is kept for this tab only (sessionStorage) and sent with every API call.</p>
        <button type="submit" class="primary">
          Use token
        </button>
      </form>
    </div>
  );
}

render(<App />, document.getElementById("app")!);

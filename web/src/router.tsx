// Client-side routing over the History API: the server answers every page
// path with index.html, and the app renders the page the path names.
import type { ComponentChildren, JSX } from "preact";
import { signal, useSignal } from "./state";

export const location$ = signal(currentLocation());

function currentLocation() {
  return { path: window.location.pathname, search: window.location.search };
}

window.addEventListener("popstate", () => location$.set(currentLocation()));

/** navigate goes to url (a path with an optional query) in the app. */
export function navigate(url: string, replace = false) {
  if (url === window.location.pathname + window.location.search) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  location$.set(currentLocation());
  if (!replace) window.scrollTo(0, 0);
}

export function useLocation() {
  return useSignal(location$);
}

/** A is a link within the app: a plain click navigates without a reload. */
export function A(props: { href: string; children: ComponentChildren; class?: string; title?: string }) {
  const onClick = (e: JSX.TargetedMouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.href);
  };
  return (
    <a href={props.href} class={props.class} title={props.title} onClick={onClick}>
      {props.children}
    </a>
  );
}

export function params(search: string): URLSearchParams {
  return new URLSearchParams(search);
}

/** withParams returns path with the non-empty values of p as its query. */
export function withParams(path: string, p: Record<string, string>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

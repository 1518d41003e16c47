// The three states every panel can be in besides "has data": loading, empty and failed, drawn
// the same way everywhere so users learn them once.
import type { ComponentChildren, JSX } from "preact";

export function Loading({ what }: { what: string }) {
  return (
    <div class="state state-loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> Loading {what}…
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="state state-empty">{children}</div>;
}

export function ErrorBox({ title, message }: { title: string; message: string }) {
  return (
    <div class="state state-error" role="alert">
      <strong>{title}</strong>
      <pre>{message}</pre>
    </div>
  );
}

/** A page title with its blurb and a Refresh button, for pages that load one time range at a time. */
export function RefreshHead({ title, blurb, onRefresh }: { title: string; blurb: string; onRefresh: () => void }) {
  return (
    <div class="graph-head">
      <h1>{title}</h1>
      <span class="muted">{blurb}</span>
      <button type="button" onClick={onRefresh}>
        Refresh
      </button>
    </div>
  );
}

/**
 * The whole page while its data loads or after it failed, under the page's head. A plain function
 * rather than a component, so the page's `<main>` and head stay the same elements when the data
 * arrives or a refresh starts (a focused Refresh button keeps its focus).
 */
export function pendingPage(head: ComponentChildren, state: { status: "loading" } | { status: "error"; message: string }, what: string, failure: string): JSX.Element {
  return (
    <main class="page">
      {head}
      {state.status === "loading" ? <Loading what={what} /> : <ErrorBox title={failure} message={state.message} />}
    </main>
  );
}

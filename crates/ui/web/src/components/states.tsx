// The three states every panel can be in besides "has data": loading, empty and failed, drawn
// the same way everywhere so users learn them once.
import type { ComponentChildren } from "preact";

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

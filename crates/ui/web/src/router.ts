// Client-side routing over /ui/<page>: the page and all its state live in the URL (path +
// query), so every view is a link that can be shared, reloaded or opened in a new tab.
import { useEffect, useState } from "preact/hooks";

export const BASE = "/ui";

export interface Route {
  /** Path below /ui, e.g. "/explore" or "/trace/abc". */
  path: string;
  params: URLSearchParams;
}

function current(): Route {
  let path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  if (path === "" || path === "/") path = "/explore";
  return { path, params: new URLSearchParams(location.search) };
}

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((listener) => listener()));

/** Parameters that follow the user from page to page (tenant and time range). */
const STICKY = ["tenant", "from", "to"];

export function href(path: string, params: Record<string, string | undefined> = {}, keepSticky = true): string {
  const query = new URLSearchParams();
  if (keepSticky) {
    const now = new URLSearchParams(location.search);
    for (const key of STICKY) {
      const value = now.get(key);
      if (value) query.set(key, value);
    }
  }
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === "") query.delete(key);
    else query.set(key, value);
  }
  const search = query.toString();
  return `${BASE}${path}${search ? `?${search}` : ""}`;
}

export function navigate(url: string, replace = false) {
  if (url === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  listeners.forEach((listener) => listener());
}

/** Changes some query parameters of the current page, keeping all the others. */
export function setParams(params: Record<string, string | undefined>, replace = false) {
  const route = current();
  const merged: Record<string, string | undefined> = Object.fromEntries(route.params.entries());
  Object.assign(merged, params);
  navigate(href(route.path, merged), replace);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const listener = () => setRoute(current());
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return route;
}

/** Intercepts plain left clicks on same-origin /ui/ links so they route without a reload. */
export function installLinkInterception() {
  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const anchor = (event.target as Element).closest?.("a");
    if (!anchor || anchor.target || anchor.origin !== location.origin || !anchor.pathname.startsWith(BASE)) return;
    event.preventDefault();
    navigate(anchor.pathname + anchor.search);
  });
}

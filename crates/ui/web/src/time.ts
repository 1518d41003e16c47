// Time ranges as the URL stores them (`now-1h` … `now`, or unix seconds) and the formatting of
// durations and timestamps shared by every page.

export const RELATIVE_RANGES = [
  { label: "Last 5 minutes", from: "now-5m" },
  { label: "Last 15 minutes", from: "now-15m" },
  { label: "Last 1 hour", from: "now-1h" },
  { label: "Last 6 hours", from: "now-6h" },
  { label: "Last 24 hours", from: "now-24h" },
  { label: "Last 7 days", from: "now-7d" },
];
export const DEFAULT_FROM = "now-1h";

const UNIT_SECS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Unix seconds for `now`, `now-<n><unit>` or a unix-seconds number; undefined when malformed. */
export function resolveTime(text: string, nowSecs: number): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "now") return nowSecs;
  const relative = /^now-(\d+)([smhdw])$/.exec(trimmed);
  if (relative) return nowSecs - Number(relative[1]) * UNIT_SECS[relative[2]];
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  return undefined;
}

export interface ResolvedRange {
  startSecs: number;
  endSecs: number;
}

export function resolveRange(from: string | null, to: string | null): ResolvedRange {
  const nowSecs = Math.floor(Date.now() / 1000);
  const endSecs = resolveTime(to || "now", nowSecs) ?? nowSecs;
  let startSecs = resolveTime(from || DEFAULT_FROM, nowSecs) ?? nowSecs - 3600;
  if (startSecs >= endSecs) startSecs = endSecs - 1;
  return { startSecs, endSecs };
}

export function describeRange(from: string | null, to: string | null): string {
  const fromText = from || DEFAULT_FROM;
  const toText = to || "now";
  if (toText === "now") {
    const preset = RELATIVE_RANGES.find((range) => range.from === fromText);
    if (preset) return preset.label;
  }
  const { startSecs, endSecs } = resolveRange(fromText, toText);
  const start = formatDateTime(startSecs * 1000);
  const end = formatDateTime(endSecs * 1000);
  // The end's date only when it differs: the label stays short enough for the top bar.
  return `${start} → ${end.slice(0, 10) === start.slice(0, 10) ? end.slice(11) : end}`;
}

function pad(n: number, width = 2) {
  return String(n).padStart(width, "0");
}

/** Local time, `YYYY-MM-DD HH:MM:SS`: sortable and unambiguous across locales. */
export function formatDateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** For `<input type="datetime-local">`. */
export function toLocalInput(secs: number): string {
  return formatDateTime(secs * 1000).replace(" ", "T");
}

export function fromLocalInput(text: string): number | undefined {
  const ms = new Date(text).getTime();
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

/** A duration in nanoseconds at a readable precision: `812µs`, `12.3ms`, `1.52s`, `2m 5s`. */
export function formatDuration(nanos: number): string {
  if (!Number.isFinite(nanos)) return "–";
  if (nanos < 1_000) return `${Math.round(nanos)}ns`;
  if (nanos < 1_000_000) return `${trim(nanos / 1_000)}µs`;
  if (nanos < 1_000_000_000) return `${trim(nanos / 1_000_000)}ms`;
  const secs = nanos / 1_000_000_000;
  if (secs < 60) return `${trim(secs)}s`;
  const minutes = Math.floor(secs / 60);
  return `${minutes}m ${Math.round(secs - minutes * 60)}s`;
}

function trim(value: number): string {
  return value >= 100 ? String(Math.round(value)) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

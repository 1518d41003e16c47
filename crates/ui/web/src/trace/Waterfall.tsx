// The waterfall: a virtualised list (only rows in the viewport are in the DOM, so 10,000+ spans
// scroll smoothly), a collapsible span tree, service colours, error marks, the critical path and
// a time axis. Keyboard: ↑/↓ select, ←/→ collapse/expand, Home/End.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { formatDuration } from "../time";
import { Trace, niceTicks, serviceColor, visibleRows } from "./model";

export const ROW_HEIGHT = 24;
const OVERSCAN = 12;

export function Waterfall(props: {
  trace: Trace;
  critical: Map<number, [number, number][]>;
  selected: number;
  onSelect: (index: number) => void;
  /** Spans matching the find box, marked in their rows. */
  matches: Set<number>;
}) {
  const { trace, critical, selected } = props;
  const [collapsed, setCollapsed] = useState<Set<number>>(new Set());
  const rows = useMemo(() => visibleRows(trace, collapsed), [trace, collapsed]);
  const scroller = useRef<HTMLDivElement>(null);
  const [viewport, setViewport] = useState({ top: 0, height: 600 });
  const total = Math.max(trace.durationNanos, 1);
  const percent = (nanos: number) => `${(nanos / total) * 100}%`;

  useLayoutEffect(() => {
    const element = scroller.current!;
    const update = () => setViewport({ top: element.scrollTop, height: element.clientHeight });
    update();
    element.addEventListener("scroll", update, { passive: true });
    const observer = new ResizeObserver(update);
    observer.observe(element);
    return () => {
      element.removeEventListener("scroll", update);
      observer.disconnect();
    };
  }, []);

  // A span selected from the URL (or a collapsed ancestor) must be visible: expand its ancestors.
  useEffect(() => {
    if (selected < 0) return;
    let parent = trace.spans[selected].parent;
    let changed = false;
    const next = new Set(collapsed);
    while (parent !== -1) {
      if (next.delete(parent)) changed = true;
      parent = trace.spans[parent].parent;
    }
    if (changed) setCollapsed(next);
  }, [selected, trace]);

  const rowOfSelected = useMemo(() => rows.indexOf(selected), [rows, selected]);
  useEffect(() => {
    const element = scroller.current;
    if (!element || rowOfSelected < 0) return;
    const top = rowOfSelected * ROW_HEIGHT;
    if (top < element.scrollTop || top + ROW_HEIGHT > element.scrollTop + element.clientHeight) {
      element.scrollTop = Math.max(0, top - element.clientHeight / 3);
    }
  }, [rowOfSelected]);

  const toggle = (index: number, open?: boolean) => {
    const next = new Set(collapsed);
    const isOpen = !next.has(index);
    if (open === undefined ? isOpen : !open) next.add(index);
    else next.delete(index);
    setCollapsed(next);
  };

  const onKey = (event: KeyboardEvent) => {
    const at = rowOfSelected < 0 ? 0 : rowOfSelected;
    let target = -1;
    if (event.key === "ArrowDown") target = Math.min(rows.length - 1, rowOfSelected < 0 ? 0 : at + 1);
    else if (event.key === "ArrowUp") target = Math.max(0, at - 1);
    else if (event.key === "Home") target = 0;
    else if (event.key === "End") target = rows.length - 1;
    else if (event.key === "PageDown") target = Math.min(rows.length - 1, at + Math.floor(viewport.height / ROW_HEIGHT));
    else if (event.key === "PageUp") target = Math.max(0, at - Math.floor(viewport.height / ROW_HEIGHT));
    else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && selected >= 0) {
      event.preventDefault();
      if (trace.spans[selected].children.length) toggle(selected, event.key === "ArrowRight");
      else if (event.key === "ArrowLeft" && trace.spans[selected].parent !== -1) props.onSelect(trace.spans[selected].parent);
      return;
    } else return;
    event.preventDefault();
    if (target >= 0 && target < rows.length) props.onSelect(rows[target]);
  };

  const first = Math.max(0, Math.floor(viewport.top / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((viewport.top + viewport.height) / ROW_HEIGHT) + OVERSCAN);
  const drawn = [];
  for (let row = first; row < last; row++) {
    const index = rows[row];
    const span = trace.spans[index];
    const color = serviceColor(span.service);
    const hasChildren = span.children.length > 0;
    const isCollapsed = collapsed.has(index);
    // The duration label goes after the bar, or before it when the bar reaches the right edge,
    // or inside its right end when the bar spans nearly the whole trace.
    const startFraction = span.startNanos / total;
    const endFraction = span.endNanos / total;
    const labelPlace = endFraction < 0.85 ? "after" : startFraction > 0.3 ? "before" : "inside";
    const labelStyle =
      labelPlace === "after"
        ? { left: `calc(${endFraction * 100}% + 4px)` }
        : labelPlace === "before"
          ? { right: `calc(${(1 - startFraction) * 100}% + 4px)` }
          : { right: `calc(${(1 - endFraction) * 100}% + 4px)` };
    drawn.push(
      <div
        key={index}
        class={`wf-row${index === selected ? " selected" : ""}${span.error ? " error" : ""}${props.matches.has(index) ? " match" : ""}`}
        style={{ top: `${row * ROW_HEIGHT}px` }}
        role="row"
        aria-selected={index === selected}
        data-span-id={span.spanId}
        onClick={() => props.onSelect(index)}
      >
        <div class="wf-name" style={{ paddingLeft: `${4 + Math.min(span.depth, 40) * 14}px` }} role="gridcell">
          {hasChildren ? (
            <button
              type="button"
              tabIndex={-1}
              class="wf-toggle"
              aria-label={isCollapsed ? "Expand" : "Collapse"}
              onClick={(event) => {
                event.stopPropagation();
                toggle(index);
              }}
            >
              {isCollapsed ? "▸" : "▾"}
            </button>
          ) : (
            <span class="wf-toggle-space" />
          )}
          <span class="wf-service-mark" style={{ background: color }} />
          {span.error && <span class="wf-error-mark" title={`error${span.statusMessage ? `: ${span.statusMessage}` : ""}`}>!</span>}
          <span class="wf-service">{trace.services[span.service]}</span>
          <span class="wf-span-name">{span.name}</span>
          {isCollapsed && <span class="wf-hidden-count">+{span.children.length}</span>}
        </div>
        <div class="wf-timeline" role="gridcell">
          <div class="wf-bar" style={{ left: percent(span.startNanos), width: `max(1px, ${percent(span.endNanos - span.startNanos)})`, background: color }}>
            {(critical.get(index) ?? []).map(([from, to]) => (
              <span class="wf-critical" style={{ left: `${((from - span.startNanos) / Math.max(span.endNanos - span.startNanos, 1)) * 100}%`, width: `${((to - from) / Math.max(span.endNanos - span.startNanos, 1)) * 100}%` }} />
            ))}
          </div>
          <span class={`wf-duration${labelPlace === "inside" ? " inside" : ""}`} style={labelStyle}>
            {formatDuration(span.endNanos - span.startNanos)}
          </span>
        </div>
      </div>,
    );
  }

  const ticks = niceTicks(total).map((nanos, i) => (
    <span key={i} class={`wf-tick${nanos / total > 0.93 ? " end" : ""}`} style={{ left: `${(nanos / total) * 100}%` }}>
      {formatDuration(nanos)}
    </span>
  ));

  return (
    <div class="waterfall">
      <div class="wf-header">
        <div class="wf-name">
          Service · span <span class="muted">({rows.length} of {trace.spans.length} rows)</span>
        </div>
        <div class="wf-timeline wf-axis">{ticks}</div>
      </div>
      <div
        class="wf-scroller"
        ref={scroller}
        tabIndex={0}
        role="grid"
        aria-label="Spans of the trace"
        aria-rowcount={rows.length}
        data-row-count={rows.length}
        data-row-height={ROW_HEIGHT}
        onKeyDown={onKey}
      >
        <div class="wf-spacer" style={{ height: `${rows.length * ROW_HEIGHT}px` }}>
          <div class="wf-gridlines" aria-hidden="true">
            {niceTicks(total).map((nanos, i) => (
              <span key={i} style={{ left: `${(nanos / total) * 100}%` }} />
            ))}
          </div>
          {drawn}
        </div>
      </div>
    </div>
  );
}

// A time-series panel on uPlot: one or more lines over a shared time axis (optionally stacked), a
// legend with units, and optional exemplar points (each a trace) that open their trace on click.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { cssVar, mountPlot } from "./plot";
import { stackColumns } from "./stack";

export interface Line {
  label: string;
  color: string;
  values: (number | null)[];
}
export interface Exemplar {
  timeSecs: number;
  value: number;
  traceId: string;
}

function exemplarPoints(plot: uPlot, exemplars: Exemplar[]): string {
  return JSON.stringify(exemplars.map((e) => ({ traceId: e.traceId, left: plot.valToPos(e.timeSecs, "x"), top: plot.valToPos(e.value, "y") })));
}

/** How far from an exemplar's point a click still opens it, in CSS pixels. */
const EXEMPLAR_HIT_PX = 8;

export function TimeSeries(props: {
  xsSecs: number[];
  lines: Line[];
  format: (value: number) => string;
  height?: number;
  exemplars?: Exemplar[];
  onExemplar?: (traceId: string) => void;
  /** A sparkline: no axes, legend or cursor. */
  compact?: boolean;
  /** Shown by default; off where a table beside the plot names the series already. */
  legend?: boolean;
  /** Each line on top of the ones before it, the areas between them filled; the legend and
   * cursor still read each line's own value. Exemplars are not drawn (their heights would lie). */
  stacked?: boolean;
}) {
  const host = useRef<HTMLDivElement>(null);
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    const element = host.current!;
    const height = props.height ?? 180;
    // Exemplars are an extra points-only series at their own times; uPlot aligns every series to
    // one x array, so the x array is the sorted union and the lines get gaps at exemplar times.
    // Two exemplars at one time would share a column cell, so a later one moves on by a
    // millisecond (invisible on any range) until its time is free.
    const taken = new Set(props.xsSecs);
    const exemplars = (props.stacked ? [] : props.exemplars ?? []).map((exemplar) => {
      let timeSecs = exemplar.timeSecs;
      while (taken.has(timeSecs)) timeSecs += 0.001;
      taken.add(timeSecs);
      return { ...exemplar, timeSecs };
    });
    const xs = [...taken].sort((a, b) => a - b);
    const indexOfX = new Map(xs.map((x, i) => [x, i]));
    const columns = props.lines.map((line) => {
      const column: (number | null)[] = xs.map(() => null);
      props.xsSecs.forEach((x, i) => (column[indexOfX.get(x)!] = line.values[i]));
      return column;
    });
    // A value with no neighbour draws no line, so it gets a dot (a short burst, a new series).
    const isolated = props.lines.map((line) =>
      line.values.flatMap((v, i) => (v !== null && (line.values[i - 1] ?? null) === null && (line.values[i + 1] ?? null) === null ? [indexOfX.get(props.xsSecs[i])!] : [])),
    );
    const exemplarColumn: (number | null)[] = xs.map(() => null);
    for (const exemplar of exemplars) exemplarColumn[indexOfX.get(exemplar.timeSecs)!] = exemplar.value;

    const drawn = props.stacked ? stackColumns(columns) : columns;
    // The height the lines reach, kept on the element (as the waterfall keeps its row count) so a
    // test can tell stacked lines (the top one is the sum) from plain ones without reading pixels.
    element.dataset.drawnMax = String(Math.max(0, ...drawn.flat().filter((v): v is number => v !== null)));
    const data = [xs, ...drawn, ...(exemplars.length ? [exemplarColumn] : [])] as uPlot.AlignedData;
    // Each band fills between a line and the one below it; the lowest line fills to zero.
    const bands: uPlot.Band[] = props.stacked ? props.lines.slice(1).map((_, i) => ({ series: [i + 2, i + 1] as [number, number] })) : [];
    return mountPlot(element, 120, height, (width) => {
      // Colours come from the theme's CSS variables, so they are read again at every redraw.
      const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid"), width: 1 }, ticks: { stroke: cssVar("--grid"), width: 1 } };
      const series: uPlot.Series[] = [
        {},
        ...props.lines.map((line, lineIndex) => ({
          label: line.label,
          stroke: line.color,
          fill: props.stacked ? `${line.color}55` : undefined,
          width: props.compact ? 1.25 : 1.5,
          // Exemplar times put nulls between samples; only real gaps (no data) should break a line.
          spanGaps: exemplars.length > 0,
          points: { show: true, size: props.compact ? 3 : 5, fill: line.color, filter: () => isolated[lineIndex] },
          // Stacked, the drawn value is a running total: the legend shows the line's own.
          value: (_u: uPlot, v: number | null, _series: number, index: number | null) => {
            const own = props.stacked ? (index == null ? null : columns[lineIndex][index]) : v;
            return own == null ? "–" : latest.current.format(own);
          },
        })),
      ];
      if (exemplars.length) {
        series.push({
          label: "exemplars",
          stroke: cssVar("--fg"),
          paths: () => null,
          points: { show: true, size: 7, stroke: cssVar("--fg"), fill: cssVar("--bg") },
          value: (_u: uPlot, v: number | null) => (v == null ? "–" : latest.current.format(v)),
        });
      }
      const plot = new uPlot(
        {
          width,
          height,
          legend: { show: !props.compact && props.legend !== false },
          cursor: props.compact ? { show: false } : { drag: { x: false, y: false } },
          scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
          axes: props.compact
            ? [{ show: false }, { show: false }]
            : [axis, { ...axis, size: 64, values: (_u, ticks) => ticks.map((t) => latest.current.format(t)) }],
          series,
          bands,
          // Where each exemplar is drawn (CSS pixels in the plotting area), kept on the element so
          // a test can click a known one.
          hooks: exemplars.length ? { draw: [(u: uPlot) => (element.dataset.exemplars = exemplarPoints(u, exemplars))] } : {},
        },
        data,
        element,
      );
      if (exemplars.length && !props.compact) {
        // The nearest point to the click, in both directions: the cursor's index alone picks by
        // time, and exemplars of different latencies often come from the same second.
        plot.over.addEventListener("click", (event) => {
          const box = plot.over.getBoundingClientRect();
          const [x, y] = [event.clientX - box.left, event.clientY - box.top];
          let nearest: Exemplar | undefined;
          let nearestDistance = EXEMPLAR_HIT_PX;
          for (const exemplar of exemplars) {
            const distance = Math.hypot(plot.valToPos(exemplar.timeSecs, "x") - x, plot.valToPos(exemplar.value, "y") - y);
            if (distance <= nearestDistance) [nearest, nearestDistance] = [exemplar, distance];
          }
          if (nearest) latest.current.onExemplar?.(nearest.traceId);
        });
      }
      return plot;
    });
  }, [props.xsSecs, props.lines, props.exemplars, props.stacked]);

  return <div class={props.compact ? "sparkline" : "timeseries"} ref={host} />;
}

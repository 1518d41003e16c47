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
    const exemplars = props.stacked ? [] : props.exemplars ?? [];
    const xs = [...new Set([...props.xsSecs, ...exemplars.map((e) => e.timeSecs)])].sort((a, b) => a - b);
    const indexOfX = new Map(xs.map((x, i) => [x, i]));
    const columns = props.lines.map((line) => {
      const column: (number | null)[] = xs.map(() => null);
      props.xsSecs.forEach((x, i) => (column[indexOfX.get(x)!] = line.values[i]));
      return column;
    });
    const exemplarColumn: (number | null)[] = xs.map(() => null);
    const exemplarAt = new Map<number, Exemplar>();
    for (const exemplar of exemplars) {
      const at = indexOfX.get(exemplar.timeSecs)!;
      exemplarColumn[at] = exemplar.value;
      exemplarAt.set(at, exemplar);
    }

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
          points: { show: false },
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
        },
        data,
        element,
      );
      if (exemplars.length && !props.compact) {
        plot.over.addEventListener("click", () => {
          const index = plot.cursor.idx;
          const exemplar = index == null ? undefined : exemplarAt.get(index);
          if (exemplar) latest.current.onExemplar?.(exemplar.traceId);
        });
      }
      return plot;
    });
  }, [props.xsSecs, props.lines, props.exemplars, props.stacked]);

  return <div class={props.compact ? "sparkline" : "timeseries"} ref={host} />;
}

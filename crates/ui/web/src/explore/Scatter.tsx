// Duration-against-start-time scatter of the search results (uPlot, points only); a click on a
// point opens that trace, the same as a click on its table row.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { cssVar, mountPlot } from "../components/plot";
import { formatDuration } from "../time";

export interface ScatterPoint {
  traceId: string;
  startSecs: number;
  durationMs: number;
  error: boolean;
}

export function ResultScatter({ points, onOpen }: { points: ScatterPoint[]; onOpen: (traceId: string) => void }) {
  const host = useRef<HTMLDivElement>(null);
  const latestOpen = useRef(onOpen);
  latestOpen.current = onOpen;

  useEffect(() => {
    const element = host.current!;
    // uPlot wants x ascending; errors and successes are two series so they get two colours.
    const sorted = [...points].sort((a, b) => a.startSecs - b.startSecs);
    const xs = sorted.map((p) => p.startSecs);
    const ok = sorted.map((p) => (p.error ? null : Math.max(p.durationMs, 0.001)));
    const failed = sorted.map((p) => (p.error ? Math.max(p.durationMs, 0.001) : null));
    const pointsOnly = (color: string) => ({
      stroke: color,
      fill: color,
      paths: () => null,
      points: { show: true, size: 7, stroke: color, fill: color },
      value: (_u: uPlot, v: number | null) => (v == null ? "–" : formatDuration(v * 1e6)),
    });
    return mountPlot(element, 200, 160, (width) => {
      // Read at every redraw: a theme change remakes the plot with the new colours.
      const axisStyle = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid"), width: 1 }, ticks: { stroke: cssVar("--grid"), width: 1 } };
      const plot = new uPlot(
        {
          width,
          height: 160,
          legend: { show: false },
          cursor: { points: { size: 9 }, drag: { x: false, y: false } },
          scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.1] } },
          axes: [axisStyle, { ...axisStyle, size: 70, values: (_u, ticks) => ticks.map((t) => formatDuration(t * 1e6)) }],
          series: [{}, { label: "ok", ...pointsOnly(cssVar("--accent")) }, { label: "error", ...pointsOnly(cssVar("--error")) }],
        },
        [xs, ok, failed] as uPlot.AlignedData,
        element,
      );
      plot.over.addEventListener("click", () => {
        const index = plot.cursor.idx;
        if (index != null && sorted[index]) latestOpen.current(sorted[index].traceId);
      });
      plot.over.style.cursor = "pointer";
      return plot;
    });
  }, [points]);

  return <div class="scatter" ref={host} aria-label="Duration of each trace against its start time" role="img" />;
}

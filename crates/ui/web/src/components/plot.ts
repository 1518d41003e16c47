// What the uPlot panels (time series, the search scatter) share: colours read from the theme's CSS
// variables, and a plot that is redrawn when the theme changes and resized when its box does.
import uPlot from "uplot";

export function cssVar(name: string) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/**
 * Puts the plot that `create` makes (at the given width) into `element`, remakes it on every theme
 * change and follows the element's width; returns the clean-up for the effect that calls it.
 */
export function mountPlot(element: HTMLElement, minWidth: number, height: number, create: (width: number) => uPlot): () => void {
  let plot: uPlot | null = null;
  // uPlot takes colours as values, not CSS variables, so a theme change needs a new plot.
  const draw = () => {
    plot?.destroy();
    plot = create(Math.max(element.clientWidth, minWidth));
  };
  draw();
  // Only a real width change resizes: setSize itself must not feed the observer a new size.
  let width = element.clientWidth;
  const observer = new ResizeObserver(() => {
    if (element.clientWidth === width) return;
    width = element.clientWidth;
    plot?.setSize({ width: Math.max(width, minWidth), height });
  });
  observer.observe(element);
  window.addEventListener("andante:theme", draw);
  return () => {
    observer.disconnect();
    window.removeEventListener("andante:theme", draw);
    plot?.destroy();
  };
}

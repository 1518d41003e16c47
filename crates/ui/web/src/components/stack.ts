// Stacked plots: each line drawn at the running total of itself and the lines before it, so the
// top line is the sum; a line with no value at a time keeps its gap there, and adds nothing to
// the lines above it.

export function stackColumns(columns: (number | null)[][]): (number | null)[][] {
  const totals: number[] = columns.length ? columns[0].map(() => 0) : [];
  return columns.map((column) =>
    column.map((value, i) => {
      if (value === null || !Number.isFinite(value)) return null;
      totals[i] += value;
      return totals[i];
    }),
  );
}

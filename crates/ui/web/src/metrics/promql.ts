// PromQL in CodeMirror: a stream tokenizer for highlighting, the detection of what is being typed
// at the cursor (a metric or function, a label name, a label value), and the completion source
// that asks the Prometheus API for names and values, narrowed to the metric being written.
import type { Completion, CompletionContext, CompletionResult } from "@codemirror/autocomplete";
import { StreamLanguage } from "@codemirror/language";
import type { EditorView } from "@codemirror/view";
import { promLabelNames, promLabelValues, promMetricNames } from "../api";
import type { CompletionRange } from "../explore/traceql";

export const AGGREGATIONS = ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio"];
export const FUNCTIONS = [
  "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
  "clamp_min", "cos", "cosh", "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv", "exp",
  "floor", "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
  "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
  "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
  "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc", "sqrt", "stddev_over_time", "stdvar_over_time",
  "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
];
const KEYWORDS = ["by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless", "atan2"];
const NOT_METRICS = new Set([...AGGREGATIONS, ...FUNCTIONS, ...KEYWORDS, "inf", "nan"]);
const GROUPING = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)$/;
const GROUPING_ANYWHERE = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)?/g;

const promqlParser = {
  name: "promql",
  startState: () => ({ inString: "" as string, inBraces: false }),
  token(stream: any, state: { inString: string; inBraces: boolean }): string | null {
    if (state.inString) {
      while (!stream.eol()) {
        const ch = stream.next();
        if (ch === "\\" && state.inString !== "`") stream.next();
        else if (ch === state.inString) {
          state.inString = "";
          break;
        }
      }
      return "string";
    }
    if (stream.eatSpace()) return null;
    if (stream.match("#")) {
      stream.skipToEnd();
      return "comment";
    }
    const ch = stream.peek();
    if (ch === '"' || ch === "'" || ch === "`") {
      stream.next();
      state.inString = ch;
      return promqlParser.token(stream, state);
    }
    if (ch === "{") state.inBraces = true;
    if (ch === "}") state.inBraces = false;
    if (stream.match(/^\d+(\.\d+)?(ms|s|m|h|d|w|y)\b/)) return "number";
    if (stream.match(/^-?(\d+(\.\d+)?([eE][-+]?\d+)?|0x[0-9a-fA-F]+)/)) return "number";
    if (stream.match(/^[A-Za-z_:][\w:]*/)) {
      const word = stream.current();
      if (state.inBraces) return "propertyName";
      if (AGGREGATIONS.includes(word) || KEYWORDS.includes(word)) return "keyword";
      if (FUNCTIONS.includes(word)) return "atom";
      return "variableName";
    }
    if (stream.match(/^(==|!=|=~|!~|>=|<=|[-+*/%^=<>])/)) return "operator";
    if (stream.match(/^[{}()[\],]/)) return "bracket";
    stream.next();
    return null;
  },
  languageData: { closeBrackets: { brackets: ["(", "[", "{", '"'] } },
};

export const promqlLanguage = StreamLanguage.define(promqlParser);

// ---- what is being typed ----

export type PromqlContext =
  /** A metric name, function, aggregation or keyword; `prefix` is typed already. */
  | { kind: "name"; prefix: string }
  /** A label name, of the series `selector` picks (empty: any series). */
  | { kind: "labelName"; prefix: string; selector: string }
  /** A value of `label`; `quoted` when the opening quote is typed (it is part of what gets replaced). */
  | { kind: "labelValue"; label: string; prefix: string; quoted: boolean; selector: string };

/** `text` with the contents of its strings blanked (same length), so brackets inside them do not count. */
function blankStrings(text: string): string {
  return text.replace(/"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|`[^`]*`?/g, (s) => s[0] + " ".repeat(Math.max(0, s.length - 1)));
}

/** The first metric name in a whole query: for `by (…)`, which names the labels of what follows it. */
export function firstMetric(query: string): string {
  const plain = blankStrings(query).replace(/\{[^}]*\}?/g, " ").replace(/\[[^\]]*\]?/g, " ").replace(GROUPING_ANYWHERE, " ");
  for (const match of plain.matchAll(/(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!NOT_METRICS.has(match[1])) return match[1];
  }
  return "";
}

/**
 * What the cursor is in, from the text before it (and the whole query, for grouping labels);
 * null where nothing is offered (numbers, durations, inside a string that is not a label value).
 */
export function promqlContext(before: string, whole: string = before, explicit = false): PromqlContext | null {
  const plain = blankStrings(before);
  // Inside a selector's braces: the innermost `{` not closed before the cursor.
  const open = plain.lastIndexOf("{");
  if (open >= 0 && plain.indexOf("}", open) < 0) {
    const metric = /([A-Za-z_:][\w:]*)\s*$/.exec(before.slice(0, open))?.[1] ?? "";
    const inside = before.slice(open + 1);
    // Matchers complete before the one at the cursor narrow the series asked about.
    const complete: string[] = [];
    const matcher = /\s*([A-Za-z_][\w]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*,/y;
    let position = 0;
    for (let found = matcher.exec(inside); found; found = matcher.exec(inside)) {
      complete.push(`${found[1]}${found[2]}${found[3]}`);
      position = matcher.lastIndex;
    }
    const current = inside.slice(position);
    const metricName = NOT_METRICS.has(metric) ? "" : metric;
    const selector = complete.length ? `${metricName}{${complete.join(",")}}` : metricName;
    const value = /^\s*([A-Za-z_][\w]*)\s*(?:=~|!~|!=|=)\s*(")?((?:[^"\\]|\\.)*)$/.exec(current);
    if (value) return { kind: "labelValue", label: value[1], prefix: value[3], quoted: value[2] === '"', selector };
    const name = /^\s*([A-Za-z_][\w]*)?$/.exec(current);
    if (name) return { kind: "labelName", prefix: name[1] ?? "", selector };
    return null;
  }
  // Inside a string or a range/offset duration: nothing to offer.
  if ((plain.match(/"/g) || []).length % 2 === 1 || /\[[^\]]*$/.test(plain)) return null;
  const grouping = GROUPING.exec(plain);
  if (grouping) {
    const prefix = /([A-Za-z_][\w]*)?$/.exec(grouping[1])![1] ?? "";
    if (/^\s*([A-Za-z_][\w]*\s*,\s*)*[A-Za-z_]?[\w]*$/.test(grouping[1])) return { kind: "labelName", prefix, selector: firstMetric(whole) };
    return null;
  }
  const word = /(?<![\w:.])([A-Za-z_:][\w:]*)$/.exec(before);
  if (word) return { kind: "name", prefix: word[1] };
  if (explicit && /(^|[\s(,+\-*/%^=<>])$/.test(before)) return { kind: "name", prefix: "" };
  return null;
}

// ---- completion ----

const cache = new Map<string, { at: number; value: Promise<string[]> }>();
function cached(key: string, load: () => Promise<{ data?: string[] }>): Promise<string[]> {
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < 30_000) return hit.value;
  const value = load().then((answer) => answer.data ?? []);
  cache.set(key, { at: Date.now(), value });
  value.catch(() => cache.delete(key));
  return value;
}

function quote(value: string): string {
  return JSON.stringify(value);
}

const STATIC_NAMES: Completion[] = [
  ...AGGREGATIONS.map((name) => ({ label: name, type: "keyword", detail: "aggregation" })),
  ...FUNCTIONS.map((name) => ({ label: name, type: "function", detail: "function", apply: `${name}(` })),
  ...KEYWORDS.map((name) => ({ label: name, type: "keyword", detail: "keyword" })),
];

/** Inserts a quoted value, over the closing quote closeBrackets put after the cursor if it is there. */
function replaceClosingQuote(view: EditorView, completion: Completion, from: number, to: number) {
  const end = view.state.sliceDoc(to, to + 1) === '"' ? to + 1 : to;
  view.dispatch({ changes: { from, to: end, insert: completion.label }, selection: { anchor: from + completion.label.length }, userEvent: "input.complete" });
}

export function promqlCompletion(getRange: () => CompletionRange) {
  return async (context: CompletionContext): Promise<CompletionResult | null> => {
    const before = context.state.doc.sliceString(0, context.pos);
    const found = promqlContext(before, context.state.doc.toString(), context.explicit);
    if (!found) return null;
    const { startSecs, endSecs } = getRange();
    const window = `${startSecs}|${endSecs}`;
    if (found.kind === "name") {
      if (!found.prefix && !context.explicit) return null;
      const metrics = await cached(`names|${window}`, () => promMetricNames(startSecs, endSecs));
      // Metrics first: they are what a query is about; the language's words follow.
      const options = [...metrics.map((name) => ({ label: name, type: "variable", detail: "metric", boost: 1 })), ...STATIC_NAMES];
      return { from: context.pos - found.prefix.length, options, validFor: /^[\w:]*$/ };
    }
    if (found.kind === "labelName") {
      const names = await cached(`labels|${found.selector}|${window}`, () => promLabelNames(found.selector, startSecs, endSecs));
      const options = names.filter((name) => name !== "__name__").map((name) => ({ label: name, type: "property", detail: "label" }));
      return { from: context.pos - found.prefix.length, options, validFor: /^\w*$/ };
    }
    const values = await cached(`values|${found.label}|${found.selector}|${window}`, () => promLabelValues(found.label, found.selector, startSecs, endSecs));
    return {
      from: context.pos - found.prefix.length - (found.quoted ? 1 : 0),
      options: values.map((value) => ({ label: quote(value), type: "text", detail: found.label, apply: replaceClosingQuote })),
      validFor: /^"?(?:[^"\\]|\\.)*$/,
    };
  };
}

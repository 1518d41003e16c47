// TraceQL in CodeMirror: a stream tokenizer for highlighting (no grammar build step), and the
// completion source that asks the server for scopes, tag names and tag values valid at the
// cursor, scoped by the query typed so far (the server's lenient parser reads partial queries).
import type { Completion, CompletionContext, CompletionResult } from "@codemirror/autocomplete";
import { HighlightStyle, StreamLanguage, syntaxHighlighting } from "@codemirror/language";
import { tags } from "@lezer/highlight";
import { tagNames, tagValues } from "../api";

const KEYWORDS = new Set(["true", "false", "nil", "by", "select", "with", "coalesce", "count", "avg", "min", "max", "sum"]);
const ENUMS = new Set(["ok", "error", "unset", "unspecified", "internal", "server", "client", "producer", "consumer"]);
const INTRINSIC_WORDS = new Set(["name", "status", "statusMessage", "duration", "kind", "rootName", "rootServiceName", "traceDuration", "childCount"]);

interface TokenState {
  inString: false | '"' | "`";
}

const traceqlParser = {
  name: "traceql",
  startState: (): TokenState => ({ inString: false }),
  token(stream: any, state: TokenState): string | null {
    if (state.inString) {
      const quote = state.inString;
      while (!stream.eol()) {
        const ch = stream.next();
        if (ch === "\\" && quote === '"') stream.next();
        else if (ch === quote) {
          state.inString = false;
          break;
        }
      }
      return "string";
    }
    if (stream.eatSpace()) return null;
    if (stream.match("//")) {
      stream.skipToEnd();
      return "comment";
    }
    const ch = stream.peek();
    if (ch === '"' || ch === "`") {
      stream.next();
      state.inString = ch;
      return traceqlParser.token(stream, state);
    }
    // Scoped attributes and intrinsics: span.x, resource.x, .x, span:name, trace:rootService.
    if (stream.match(/^(span|resource|event|link|instrumentation|parent)?\.[\w.\-/]+/)) return "propertyName";
    if (stream.match(/^(span|resource|event|link|instrumentation|parent)?\."/)) {
      state.inString = '"';
      return "propertyName";
    }
    if (stream.match(/^(span|trace|event|link|instrumentation):[A-Za-z]+/)) return "atom";
    if (stream.match(/^-?\d+(\.\d+)?(ns|us|µs|ms|s|m|h)\b/)) return "number";
    if (stream.match(/^-?\d+(\.\d+)?([eE][-+]?\d+)?/)) return "number";
    if (stream.match(/^[A-Za-z_][\w]*/)) {
      const word = stream.current();
      if (KEYWORDS.has(word) || /_over_time$|^rate$|^topk$|^bottomk$|^compare$/.test(word)) return "keyword";
      if (ENUMS.has(word)) return "bool";
      if (INTRINSIC_WORDS.has(word)) return "atom";
      return "variableName";
    }
    if (stream.match(/^(&&|\|\||!=|=~|!~|>=|<=|>>|<<|!>>|!<<|&>>|&<<|[=<>!~|&+\-*/%^])/)) return "operator";
    if (stream.match(/^[{}()[\],]/)) return "bracket";
    stream.next();
    return null;
  },
  languageData: { closeBrackets: { brackets: ["(", "{", '"'] } },
};

export const traceqlLanguage = StreamLanguage.define(traceqlParser);

// Colours come from CSS variables so the light and dark themes restyle the editor with no rebuild.
export const traceqlHighlighting = syntaxHighlighting(
  HighlightStyle.define([
    { tag: tags.propertyName, color: "var(--syntax-attr)" },
    { tag: tags.atom, color: "var(--syntax-intrinsic)" },
    { tag: tags.string, color: "var(--syntax-string)" },
    { tag: tags.number, color: "var(--syntax-number)" },
    { tag: tags.bool, color: "var(--syntax-enum)" },
    { tag: tags.keyword, color: "var(--syntax-keyword)", fontWeight: "600" },
    { tag: tags.operator, color: "var(--syntax-operator)" },
    { tag: tags.comment, color: "var(--muted)", fontStyle: "italic" },
    { tag: tags.bracket, color: "var(--syntax-bracket)" },
  ]),
);

// ---- completion ----

// Scopes rank first: typing `sp` most often means `span.`, not an intrinsic like `span:kind`.
const SCOPES: Completion[] = [
  { label: "resource.", type: "namespace", detail: "resource attribute", boost: 2 },
  { label: "span.", type: "namespace", detail: "span attribute", boost: 2 },
  { label: "event.", type: "namespace", detail: "event attribute", boost: 2 },
  { label: "link.", type: "namespace", detail: "link attribute", boost: 2 },
  { label: "instrumentation.", type: "namespace", detail: "scope attribute", boost: 2 },
  { label: ".", type: "namespace", detail: "span or resource attribute", boost: 2 },
];
const OPERATORS = ["=", "!=", "=~", "!~", ">", ">=", "<", "<="];

export interface CompletionRange {
  startSecs: number;
  endSecs: number;
}

/** The filters typed before the condition being edited, as a query the lenient parser accepts. */
export function queryBefore(text: string): string {
  let before = text.replace(/(&&|\|\|)\s*$/, "").trimEnd();
  const opens = (before.match(/{/g) || []).length;
  const closes = (before.match(/}/g) || []).length;
  if (opens > closes) before += " }";
  if (!before.includes("{")) return "";
  return before.replace(/{\s*}/g, "{}");
}

const cache = new Map<string, { at: number; value: Promise<unknown> }>();
function cached<T>(key: string, load: () => Promise<T>): Promise<T> {
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < 30_000) return hit.value as Promise<T>;
  const value = load();
  cache.set(key, { at: Date.now(), value });
  value.catch(() => cache.delete(key));
  return value;
}

function quoteValue(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

async function attributeCompletions(prefix: string, q: string, range: CompletionRange): Promise<Completion[]> {
  const response = await cached(`tags|${q}|${range.startSecs}`, () => tagNames(q, range.startSecs, range.endSecs));
  const options: Completion[] = [];
  for (const scope of response.scopes ?? []) {
    for (const tag of scope.tags ?? []) {
      if (scope.name === "intrinsic") {
        options.push({ label: tag, type: "keyword", detail: "intrinsic", boost: tag.includes(":") ? 1 : 0 });
      } else {
        const quoted = /^[\w.\-/]+$/.test(tag) ? tag : `"${tag}"`;
        options.push({ label: `${scope.name}.${quoted}`, type: "property", detail: scope.name });
        if (prefix.startsWith(".")) options.push({ label: `.${quoted}`, type: "property", detail: `${scope.name} (unscoped)` });
      }
    }
  }
  const seen = new Set<string>();
  return [...SCOPES, ...options].filter((option) => !seen.has(option.label) && seen.add(option.label) !== undefined);
}

export function traceqlCompletion(getRange: () => CompletionRange) {
  return async (context: CompletionContext): Promise<CompletionResult | null> => {
    const line = context.state.doc.sliceString(0, context.pos);
    const range = getRange();

    // A value: `<attribute> <operator> "partial` or `<attribute> <operator> partial`.
    const valueMatch = /((?:\b(?:span|resource|event|link|instrumentation)\.|\.)[\w.\-/]+|\b(?:span|trace|event|link|instrumentation):[A-Za-z]+|\b(?:name|status|kind|rootName|rootServiceName|statusMessage))\s*(=|!=|=~|!~|>=|<=|>|<)\s*("(?:[^"\\]|\\.)*|[\w.\-]*)$/.exec(line);
    if (valueMatch) {
      const [whole, attribute, , partial] = valueMatch;
      const conditionStart = context.pos - whole.length;
      const q = queryBefore(line.slice(0, conditionStart));
      const response = await cached(`values|${attribute}|${q}|${range.startSecs}`, () => tagValues(attribute, q, range.startSecs, range.endSecs));
      const options = (response.tagValues ?? [])
        .filter((tv) => tv.value !== "")
        .map((tv) => ({
          label: tv.type === "string" ? quoteValue(tv.value) : tv.value,
          type: tv.type === "keyword" ? "enum" : "text",
          detail: tv.type,
        }));
      return { from: context.pos - partial.length, options, validFor: /^"?[^"]*$/ };
    }

    // An operator after a complete attribute and a space.
    const operatorMatch = /((?:\b(?:span|resource|event|link|instrumentation)\.|\.)[\w.\-/]+|\b(?:span|trace|event|link|instrumentation):[A-Za-z]+)\s+([=!<>~]*)$/.exec(line);
    if (operatorMatch) {
      const partial = operatorMatch[2];
      return { from: context.pos - partial.length, options: OPERATORS.map((op) => ({ label: op, type: "operator" })) };
    }

    // An attribute or intrinsic right after `{`, `&&`, `||`, `(` or `by(`/`select(`.
    const attributeMatch = /(?:^|[{(,]|&&|\|\|)\s*((?:[a-z]+[.:])?[\w.\-/:]*)$/.exec(line);
    if (attributeMatch && (context.explicit || attributeMatch[1].length > 0 || /[{(]\s*$|&&\s*$|\|\|\s*$/.test(line))) {
      const prefix = attributeMatch[1];
      const q = queryBefore(line.slice(0, context.pos - prefix.length));
      const options = await attributeCompletions(prefix, q, range);
      return { from: context.pos - prefix.length, options, validFor: /^[\w.\-/:]*$/ };
    }
    return null;
  };
}

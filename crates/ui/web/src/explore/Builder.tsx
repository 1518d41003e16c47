// The search builder for people who do not know TraceQL: each field becomes one condition of a
// single `{ … && … }` written into the editor, so the query stays visible and teaches the syntax.
import { useEffect, useState } from "preact/hooks";
import { tagValues } from "../api";
import type { CompletionRange } from "./traceql";

export interface BuilderFields {
  service: string;
  spanName: string;
  status: string;
  minDuration: string;
  maxDuration: string;
  attributeKey: string;
  attributeValue: string;
}

const EMPTY: BuilderFields = { service: "", spanName: "", status: "", minDuration: "", maxDuration: "", attributeKey: "", attributeValue: "" };
const DURATION = /^\d+(\.\d+)?(ns|us|µs|ms|s|m|h)$/;

function quote(value: string) {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The TraceQL for the filled-in fields; `{ }` when none is. Throws a user-facing message. */
export function buildTraceql(fields: BuilderFields): string {
  const conditions: string[] = [];
  if (fields.service.trim()) conditions.push(`resource.service.name = ${quote(fields.service.trim())}`);
  if (fields.spanName.trim()) conditions.push(`name = ${quote(fields.spanName.trim())}`);
  if (fields.status) conditions.push(`status = ${fields.status}`);
  for (const [text, op, label] of [[fields.minDuration, ">=", "Min duration"], [fields.maxDuration, "<=", "Max duration"]] as const) {
    const trimmed = text.trim();
    if (!trimmed) continue;
    if (!DURATION.test(trimmed)) throw new Error(`${label} must look like 100ms, 1.5s or 2m`);
    conditions.push(`duration ${op} ${trimmed}`);
  }
  const key = fields.attributeKey.trim();
  if (key) {
    const scoped = /^(span|resource|event|link|instrumentation)?\./.test(key) ? key : `.${key}`;
    const value = fields.attributeValue.trim();
    const literal = /^-?\d+(\.\d+)?$/.test(value) || value === "true" || value === "false" ? value : quote(value);
    conditions.push(value === "" ? `${scoped} != nil` : `${scoped} = ${literal}`);
  }
  return conditions.length ? `{ ${conditions.join(" && ")} }` : "{ }";
}

export function SearchBuilder(props: { range: CompletionRange; onQuery: (query: string) => void }) {
  const [fields, setFields] = useState<BuilderFields>(EMPTY);
  const [services, setServices] = useState<string[]>([]);
  const [spanNames, setSpanNames] = useState<string[]>([]);
  const [problem, setProblem] = useState("");

  useEffect(() => {
    const abort = new AbortController();
    tagValues("resource.service.name", "", props.range.startSecs, props.range.endSecs, abort.signal)
      .then((response) => setServices((response.tagValues ?? []).map((tv) => tv.value).sort()))
      .catch(() => setServices([]));
    return () => abort.abort();
  }, [props.range.startSecs, props.range.endSecs]);

  // Span names narrow to the chosen service, through the same `q` scoping the editor uses.
  useEffect(() => {
    const abort = new AbortController();
    const q = fields.service ? `{ resource.service.name = ${quote(fields.service)} }` : "";
    tagValues("name", q, props.range.startSecs, props.range.endSecs, abort.signal)
      .then((response) => setSpanNames((response.tagValues ?? []).map((tv) => tv.value).sort()))
      .catch(() => setSpanNames([]));
    return () => abort.abort();
  }, [fields.service, props.range.startSecs, props.range.endSecs]);

  const set = (key: keyof BuilderFields) => (event: Event) => setFields({ ...fields, [key]: (event.target as HTMLInputElement).value });
  const submit = (event: Event) => {
    event.preventDefault();
    try {
      setProblem("");
      props.onQuery(buildTraceql(fields));
    } catch (error) {
      setProblem((error as Error).message);
    }
  };

  return (
    <form class="builder" onSubmit={submit} aria-label="Search builder">
      <label>
        Service
        <select name="service" value={fields.service} onChange={set("service")}>
          <option value="">any</option>
          {services.map((service) => (
            <option key={service} value={service}>
              {service}
            </option>
          ))}
        </select>
      </label>
      <label>
        Span name
        <input name="spanName" list="builder-span-names" value={fields.spanName} onInput={set("spanName")} placeholder="any" />
        <datalist id="builder-span-names">
          {spanNames.map((name) => (
            <option key={name} value={name} />
          ))}
        </datalist>
      </label>
      <label>
        Status
        <select name="status" value={fields.status} onChange={set("status")}>
          <option value="">any</option>
          <option value="error">error</option>
          <option value="ok">ok</option>
          <option value="unset">unset</option>
        </select>
      </label>
      <label>
        Min duration
        <input name="minDuration" value={fields.minDuration} onInput={set("minDuration")} placeholder="e.g. 100ms" size={8} />
      </label>
      <label>
        Max duration
        <input name="maxDuration" value={fields.maxDuration} onInput={set("maxDuration")} placeholder="e.g. 2s" size={8} />
      </label>
      <label>
        Attribute
        <input name="attributeKey" value={fields.attributeKey} onInput={set("attributeKey")} placeholder="span.http.route" size={14} />
      </label>
      <label>
        = value
        <input name="attributeValue" value={fields.attributeValue} onInput={set("attributeValue")} placeholder="(exists)" size={10} />
      </label>
      <div class="builder-actions">
        <button type="submit">Write TraceQL &amp; search</button>
        <button type="button" class="link-button" onClick={() => setFields(EMPTY)}>
          Clear
        </button>
      </div>
      {problem && <div class="field-error" role="alert">{problem}</div>}
    </form>
  );
}

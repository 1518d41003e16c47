// The selected span in full: identity, timing and status, then its attributes, resource, scope,
// events and links (a link opens the linked trace at the linked span).
import type { ComponentChildren } from "preact";
import type { KeyValue } from "../api";
import { formatValue } from "../api";
import { href } from "../router";
import { formatDuration } from "../time";
import { SpanRecord, Trace, serviceColor } from "./model";

function KvTable({ attributes, section }: { attributes: KeyValue[]; section?: string }) {
  return (
    <table class="kv" data-section={section}>
      <tbody>
        {attributes.map((kv) => (
          <tr key={kv.key}>
            <th>{kv.key}</th>
            <td>{formatValue(kv.value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A titled list with its count, and "none" rather than an empty list so absence reads as data. */
function CountedSection({ title, count, children }: { title: string; count: number; children?: ComponentChildren }) {
  return (
    <section class="detail-section">
      <h3>
        {title} <span class="muted">({count})</span>
      </h3>
      {count === 0 && <div class="muted">none</div>}
      {children}
    </section>
  );
}

function Attributes({ title, attributes }: { title: string; attributes: KeyValue[] }) {
  return (
    <CountedSection title={title} count={attributes.length}>
      {attributes.length > 0 && <KvTable attributes={[...attributes].sort((a, b) => a.key.localeCompare(b.key))} section={title.toLowerCase()} />}
    </CountedSection>
  );
}

export function SpanDetail({ trace, span, onClose, onSelect }: { trace: Trace; span: SpanRecord; onClose: () => void; onSelect: (index: number) => void }) {
  const parent = span.parent === -1 ? null : trace.spans[span.parent];
  return (
    <aside class="span-detail" aria-label="Span detail" data-span-id={span.spanId}>
      <div class="detail-head">
        <h2>
          <span class="wf-service-mark" style={{ background: serviceColor(span.service) }} />
          {span.name || <span class="muted">(no name)</span>}
        </h2>
        <button type="button" class="icon-button" aria-label="Close span detail" onClick={onClose}>
          ✕
        </button>
      </div>
      <dl class="detail-facts">
        <dt>Service</dt>
        <dd>{trace.services[span.service]}</dd>
        <dt>Duration</dt>
        <dd>{formatDuration(span.endNanos - span.startNanos)}</dd>
        <dt>Start</dt>
        <dd>+{formatDuration(span.startNanos)}</dd>
        <dt>Kind</dt>
        <dd>{span.kind}</dd>
        <dt>Status</dt>
        <dd class={span.error ? "error-text" : ""}>
          {span.statusCode}
          {span.statusMessage ? `: ${span.statusMessage}` : ""}
        </dd>
        <dt>Span ID</dt>
        <dd class="mono">{span.spanId}</dd>
        <dt>Parent</dt>
        <dd class="mono">
          {parent ? (
            <button type="button" class="link-button mono" onClick={() => onSelect(parent.index)}>
              {parent.spanId}
            </button>
          ) : span.parentSpanId ? (
            `${span.parentSpanId} (not in this trace)`
          ) : (
            "none (root)"
          )}
        </dd>
      </dl>
      <Attributes title="Attributes" attributes={span.attributes} />
      <Attributes title="Resource" attributes={span.resource} />
      <section class="detail-section">
        <h3>Scope</h3>
        <div>
          {span.scopeName || <span class="muted">(unnamed)</span>} {span.scopeVersion && <span class="muted">{span.scopeVersion}</span>}
        </div>
        {span.scopeAttributes.length > 0 && <Attributes title="Scope attributes" attributes={span.scopeAttributes} />}
      </section>
      <CountedSection title="Events" count={span.events.length}>
        {span.events.map((event, i) => (
          <div class="event" key={i}>
            <div>
              <span class="mono">+{formatDuration(event.offsetNanos - span.startNanos)}</span> <strong>{event.name}</strong>
            </div>
            {event.attributes.length > 0 && <KvTable attributes={event.attributes} />}
          </div>
        ))}
      </CountedSection>
      <CountedSection title="Links" count={span.links.length}>
        {span.links.map((link, i) => (
          <div class="event" key={i}>
            <a class="mono" href={href(`/trace/${link.traceId}`, { span: link.spanId })}>
              {link.traceId}
            </a>{" "}
            <span class="muted mono">span {link.spanId}</span>
            {link.attributes.length > 0 && <KvTable attributes={link.attributes} />}
          </div>
        ))}
      </CountedSection>
    </aside>
  );
}

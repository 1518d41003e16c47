// The selected span in full: identity, timing and status, then its attributes, resource, scope,
// events and links (a link opens the linked trace at the linked span).
import type { KeyValue } from "../api";
import { formatValue } from "../api";
import { href } from "../router";
import { formatDuration } from "../time";
import { SpanRecord, Trace, serviceColor } from "./model";

function Attributes({ title, attributes }: { title: string; attributes: KeyValue[] }) {
  return (
    <section class="detail-section">
      <h3>
        {title} <span class="muted">({attributes.length})</span>
      </h3>
      {attributes.length === 0 ? (
        <div class="muted">none</div>
      ) : (
        <table class="kv" data-section={title.toLowerCase()}>
          <tbody>
            {[...attributes]
              .sort((a, b) => a.key.localeCompare(b.key))
              .map((kv) => (
                <tr key={kv.key}>
                  <th>{kv.key}</th>
                  <td>{formatValue(kv.value)}</td>
                </tr>
              ))}
          </tbody>
        </table>
      )}
    </section>
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
      <section class="detail-section">
        <h3>
          Events <span class="muted">({span.events.length})</span>
        </h3>
        {span.events.length === 0 && <div class="muted">none</div>}
        {span.events.map((event, i) => (
          <div class="event" key={i}>
            <div>
              <span class="mono">+{formatDuration(event.offsetNanos - span.startNanos)}</span> <strong>{event.name}</strong>
            </div>
            {event.attributes.length > 0 && (
              <table class="kv">
                <tbody>
                  {event.attributes.map((kv) => (
                    <tr key={kv.key}>
                      <th>{kv.key}</th>
                      <td>{formatValue(kv.value)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        ))}
      </section>
      <section class="detail-section">
        <h3>
          Links <span class="muted">({span.links.length})</span>
        </h3>
        {span.links.length === 0 && <div class="muted">none</div>}
        {span.links.map((link, i) => (
          <div class="event" key={i}>
            <a class="mono" href={href(`/trace/${link.traceId}`, { span: link.spanId })}>
              {link.traceId}
            </a>{" "}
            <span class="muted mono">span {link.spanId}</span>
            {link.attributes.length > 0 && (
              <table class="kv">
                <tbody>
                  {link.attributes.map((kv) => (
                    <tr key={kv.key}>
                      <th>{kv.key}</th>
                      <td>{formatValue(kv.value)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        ))}
      </section>
    </aside>
  );
}

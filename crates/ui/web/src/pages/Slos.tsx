// SLOs (/ui/slos): every SLO of the tenant as /api/slos reports it: its definition, the SLI over
// its window, the error budget left, the error ratio and burn rate of each recorded window, the
// multi-window burn-rate alerts with the figures they compare, and the alerts they raise now.
import { useEffect, useState } from "preact/hooks";
import { SloReport, slos } from "../api";
import { durationSecs, formatAgo } from "../alerts/model";
import { Empty, RefreshHead, pendingPage } from "../components/states";
import { Route, href } from "../router";
import { formatDateTime } from "../time";
import { LabelChips, StateBadge } from "./Alerts";

type State = { status: "loading" } | { status: "error"; message: string } | { status: "done"; slos: SloReport[]; atMs: number };

/** A ratio as a percentage with enough digits to tell 99.9 % from 99.95 %. */
export function percent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return "no data";
  const value = ratio * 100;
  const digits = Math.abs(value) >= 99 && Math.abs(value) < 100 ? 3 : Math.abs(value) < 1 ? 3 : 1;
  return `${Number(value.toFixed(digits))}%`;
}

function burn(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return "no data";
  return `${Number(rate.toPrecision(3))}×`;
}

function seriesQuery(metric: string, slo: string): string {
  return `${metric}{slo=${JSON.stringify(slo)}}`;
}

function Definition({ slo }: { slo: SloReport }) {
  const spec = slo.spec;
  return (
    <dl class="detail-facts slo-definition">
      <dt>Kind</dt>
      <dd>{spec.kind}</dd>
      {spec.service && (
        <>
          <dt>Service</dt>
          <dd>
            <a href={href(`/service/${encodeURIComponent(spec.service)}`)}>{spec.service}</a>
          </dd>
        </>
      )}
      {spec.operation && (
        <>
          <dt>Operation</dt>
          <dd class="mono">{spec.operation}</dd>
        </>
      )}
      {spec.latency_threshold && (
        <>
          <dt>Slower than</dt>
          <dd>{spec.latency_threshold} counts as bad</dd>
        </>
      )}
      {spec.error_query && (
        <>
          <dt>Bad events</dt>
          <dd class="mono">{spec.error_query}</dd>
        </>
      )}
      {spec.total_query && (
        <>
          <dt>All events</dt>
          <dd class="mono">{spec.total_query}</dd>
        </>
      )}
      <dt>Defined</dt>
      <dd>{slo.source === "file" ? "in a file (rules.slo_path)" : "through /api/slos"}</dd>
      {spec.labels && Object.keys(spec.labels).length > 0 && (
        <>
          <dt>Labels</dt>
          <dd>
            <LabelChips labels={spec.labels} />
          </dd>
        </>
      )}
    </dl>
  );
}

function Budget({ slo }: { slo: SloReport }) {
  const remaining = slo.errorBudgetRemaining;
  const width = remaining === null ? 0 : Math.min(100, Math.max(0, remaining * 100));
  const tone = remaining === null ? "" : remaining <= 0 ? "exhausted" : remaining < 0.25 ? "low" : "ok";
  return (
    <div class="slo-figures">
      <div class="figure">
        <div class="figure-label">SLI over {slo.spec.window}</div>
        <div class="figure-value" data-testid="sli" data-value={String(slo.sli)}>
          {percent(slo.sli)}
        </div>
        <div class="muted">objective {percent(slo.objective)}</div>
      </div>
      <div class="figure budget">
        <div class="figure-label">Error budget remaining</div>
        <div class={`figure-value budget-${tone}`} data-testid="budget-remaining" data-value={String(remaining)}>
          {percent(remaining)}
        </div>
        <div class="budget-bar" aria-hidden="true">
          <span class={`budget-fill budget-${tone}`} style={{ width: `${width}%` }} />
        </div>
        <div class="muted">of a {percent(slo.errorBudget)} budget (bad events allowed)</div>
      </div>
    </div>
  );
}

function Windows({ slo }: { slo: SloReport }) {
  // Shortest first; the report's object is keyed in text order (1d before 1h).
  const windows = Object.keys(slo.errorRatios).sort((a, b) => durationSecs(a) - durationSecs(b));
  return (
    <table class="table compact burn-rates" data-testid="burn-rates">
      <thead>
        <tr>
          <th>Window</th>
          <th class="num">Error ratio</th>
          <th class="num">Burn rate</th>
        </tr>
      </thead>
      <tbody>
        {windows.map((window) => {
          const rate = slo.burnRates[window];
          return (
            <tr key={window} data-window={window}>
              <td>
                <a href={href("/metrics", { lang: "promql", q: seriesQuery(`slo:sli_error:ratio_rate${window}`, slo.name), unit: "ratio" })} title="This window's error ratio over time">
                  {window}
                </a>
              </td>
              <td class="num" data-testid="error-ratio" data-value={String(slo.errorRatios[window])}>
                {percent(slo.errorRatios[window])}
              </td>
              <td class={`num${rate !== null && rate > 1 ? " error-text" : ""}`} data-testid="burn-rate" data-value={String(rate)}>
                {burn(rate)}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function BurnAlerts({ slo }: { slo: SloReport }) {
  return (
    <table class="table compact burn-alerts" data-testid="burn-alerts">
      <thead>
        <tr>
          <th>Severity</th>
          <th>Fires when the burn rate is above</th>
          <th class="num">Long window now</th>
          <th class="num">Short window now</th>
        </tr>
      </thead>
      <tbody>
        {slo.burnRateAlerts.map((alert) => {
          const long = slo.burnRates[alert.longWindow];
          const short = slo.burnRates[alert.shortWindow];
          const over = (rate: number | null | undefined) => (rate !== null && rate !== undefined && rate > alert.factor ? " error-text" : "");
          return (
            <tr key={`${alert.severity}-${alert.longWindow}`} data-severity={alert.severity} data-factor={alert.factor}>
              <td>{alert.severity}</td>
              <td>
                {alert.factor}× over {alert.longWindow} and {alert.shortWindow}
              </td>
              <td class={`num${over(long)}`}>{burn(long)}</td>
              <td class={`num${over(short)}`}>{burn(short)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function SloCard({ slo, nowMs }: { slo: SloReport; nowMs: number }) {
  const alertsLink = href("/alerts", { group: slo.group });
  return (
    <section class="panel slo" aria-label={`SLO ${slo.name}`} data-testid="slo" data-slo={slo.name}>
      <div class="group-head">
        <h2>{slo.name}</h2>
        <span class="muted">
          {percent(slo.objective)} good over {slo.spec.window}
        </span>
        <a href={alertsLink}>Its rules and alerts</a>
      </div>
      <div class="slo-body">
        <div>
          <Budget slo={slo} />
          <Definition slo={slo} />
        </div>
        <div>
          <h3>Windows</h3>
          <Windows slo={slo} />
        </div>
        <div>
          <h3>Burn-rate alerts</h3>
          <BurnAlerts slo={slo} />
          <h3>Alerts now</h3>
          {slo.alerts.length === 0 ? (
            <div class="muted" data-testid="slo-alerts-none">
              None pending or firing.
            </div>
          ) : (
            <ul class="slo-alerts" data-testid="slo-alerts">
              {slo.alerts.map((alert) => (
                <li key={JSON.stringify(alert.labels)} data-alertname={alert.labels.alertname} data-state={alert.state}>
                  <StateBadge state={alert.state} /> <a href={href("/alerts", { group: slo.group, state: alert.state })}>{alert.labels.alertname}</a>{" "}
                  {alert.labels.severity && <span class="chip mono">severity="{alert.labels.severity}"</span>}{" "}
                  <span class="muted">since {formatDateTime(Date.parse(alert.activeAt))} ({formatAgo(Date.parse(alert.activeAt), nowMs)})</span>
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
    </section>
  );
}

export function SlosPage({ route }: { route: Route }) {
  const tenant = route.params.get("tenant") ?? "";
  const [refresh, setRefresh] = useState(0);
  const [state, setState] = useState<State>({ status: "loading" });

  useEffect(() => {
    const abort = new AbortController();
    setState({ status: "loading" });
    slos(abort.signal)
      .then((answer) => setState({ status: "done", slos: answer.slos ?? [], atMs: Date.now() }))
      .catch((error) => {
        if ((error as Error).name !== "AbortError") setState({ status: "error", message: (error as Error).message });
      });
    return () => abort.abort();
  }, [tenant, refresh]);

  const head = <RefreshHead title="SLOs" blurb="Service-level objectives: what is left of each error budget and how fast it burns." onRefresh={() => setRefresh((n) => n + 1)} />;
  if (state.status !== "done") return pendingPage(head, state, "SLOs", "Could not load the SLOs");
  return (
    <main class="page slos-page">
      {head}
      {state.slos.length === 0 ? (
        <Empty>
          No SLOs: define them in files (<code>rules.slo_path</code>) or with <code>PUT /api/slos/&lt;name&gt;</code>.
        </Empty>
      ) : (
        state.slos.map((slo) => <SloCard key={slo.name} slo={slo} nowMs={state.atMs} />)
      )}
    </main>
  );
}

// Alerts (/ui/alerts): the pending and firing alerts (Prometheus' /api/v1/alerts) with their root
// cause when the ruler found one, and every rule group with its rules' health and state
// (/api/v1/rules). `state` filters by alert state, `group` narrows to one group (the SLO page
// links here that way). A firing alert opens insights around its start; every expression opens
// in metrics explore.
import { Fragment } from "preact";
import { useEffect, useState } from "preact/hooks";
import { AlertingRule, PromAlert, Rule, RuleGroup, promAlerts, promRules } from "../api";
import { ROOT_CAUSE_ANNOTATIONS, RULE_STATES, expressionParams, formatAgo, formatSeconds, insightsParams, isTraceql, neverEvaluated, ruleMatchesState, ruleOfAlert, ruleStateCounts } from "../alerts/model";
import { Empty, RefreshHead, pendingPage } from "../components/states";
import { Route, href, setParams } from "../router";
import { formatDateTime } from "../time";

type State = { status: "loading" } | { status: "error"; message: string } | { status: "done"; groups: RuleGroup[]; alerts: PromAlert[]; atMs: number };

export function LabelChips({ labels, skip = [] }: { labels: Record<string, string> | undefined; skip?: string[] }) {
  const entries = Object.entries(labels ?? {}).filter(([name]) => !skip.includes(name));
  if (!entries.length) return null;
  return (
    <span class="chips">
      {entries.map(([name, value]) => (
        <span class="chip mono" key={name}>
          {name}="{value}"
        </span>
      ))}
    </span>
  );
}

/** A sample value as Go formats it (`2.3466666666666666e-01`) read at four significant digits. */
function formatSample(text: string): string {
  const value = Number(text);
  return Number.isFinite(value) ? String(Number(value.toPrecision(4))) : text;
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge badge-${state}`}>{state}</span>;
}

function RootCause({ annotations, insights }: { annotations: Record<string, string>; insights: string }) {
  if (!annotations.root_cause) return null;
  // `root_causes` is the ranked list, one "n. kind name (score): summary" per line.
  const ranked = (annotations.root_causes ?? "").split("\n").filter((line) => line.trim());
  return (
    <div class="root-cause" data-testid="root-cause">
      <div>
        <strong>Root cause:</strong> {annotations.root_cause}
      </div>
      {ranked.length > 1 && (
        <ol class="ranked-causes">
          {ranked.map((line) => (
            <li key={line}>{line.replace(/^\d+\.\s*/, "")}</li>
          ))}
        </ol>
      )}
      <a class="button-link" href={insights}>
        Open the analysis in insights
      </a>
    </div>
  );
}

function AlertCard({ alert, groups, nowMs }: { alert: PromAlert; groups: RuleGroup[]; nowMs: number }) {
  const owner = ruleOfAlert(groups, alert);
  const annotations = alert.annotations ?? {};
  const insights = href("/insights", insightsParams(alert, Math.floor(nowMs / 1000)));
  const activeMs = Date.parse(alert.activeAt);
  const others = Object.entries(annotations).filter(([name]) => !ROOT_CAUSE_ANNOTATIONS.includes(name));
  return (
    <li class={`alert-card alert-${alert.state}`} data-testid="alert" data-alertname={alert.labels.alertname} data-state={alert.state}>
      <div class="alert-head">
        <StateBadge state={alert.state} />
        <strong class="alert-name">{alert.labels.alertname}</strong>
        <LabelChips labels={alert.labels} skip={["alertname"]} />
      </div>
      <div class="alert-facts muted">
        active since <span class="mono">{formatDateTime(activeMs)}</span> ({formatAgo(activeMs, nowMs)}) · value{" "}
        <span class="mono" data-testid="alert-value" title={alert.value}>
          {formatSample(alert.value)}
        </span>
        {owner && (
          <>
            {" "}
            · rule group <span class="mono">{owner.group.name}</span>
          </>
        )}
      </div>
      <RootCause annotations={annotations} insights={insights} />
      {others.length > 0 && (
        <dl class="annotations">
          {others.map(([name, value]) => (
            <Fragment key={name}>
              <dt>{name}</dt>
              <dd>{/^https?:\/\//.test(value) ? <a href={value} target="_blank" rel="noreferrer">{value}</a> : value}</dd>
            </Fragment>
          ))}
        </dl>
      )}
      <div class="alert-links">
        {alert.state === "firing" && !annotations.root_cause && (
          <a class="button-link" href={insights} data-testid="alert-insights">
            Insights around its start
          </a>
        )}
        {owner && (
          <a class="button-link" href={href("/metrics", expressionParams(owner.rule.query))} data-testid="alert-expression">
            Its expression in metrics
          </a>
        )}
      </div>
    </li>
  );
}

function RuleRow({ rule }: { rule: Rule }) {
  const alerting = rule.type === "alerting" ? (rule as AlertingRule) : null;
  const language = isTraceql(rule.query) ? "TraceQL" : "PromQL";
  return (
    <tr data-rule={rule.name} data-type={rule.type} data-state={alerting?.state ?? ""} data-health={rule.health}>
      <td>
        <strong>{rule.name}</strong>
        <div>
          <LabelChips labels={rule.labels} />
        </div>
      </td>
      <td>{rule.type}</td>
      <td class="rule-expr">
        <a class="mono" href={href("/metrics", expressionParams(rule.query))} title={`Open in metrics explore (${language})`}>
          {rule.query}
        </a>
        <span class="lang-tag">{language}</span>
        {rule.lastError && <div class="error-text rule-error">{rule.lastError}</div>}
      </td>
      <td>{alerting ? <StateBadge state={alerting.state} /> : <span class="muted">–</span>}</td>
      <td class={rule.health === "ok" ? "" : "error-text"}>{rule.health}</td>
      <td class="num">{alerting ? formatSeconds(alerting.duration) : ""}</td>
      <td class="num">{alerting ? (alerting.alerts ?? []).length : ""}</td>
    </tr>
  );
}

function GroupPanel({ group, rules, nowMs }: { group: RuleGroup; rules: Rule[]; nowMs: number }) {
  const lastMs = Date.parse(group.lastEvaluation);
  return (
    <section class="panel rule-group" aria-label={`Rule group ${group.name}`} data-group={group.name}>
      <div class="group-head">
        <h3>{group.name}</h3>
        <span class="muted mono">{group.file}</span>
        <span class="muted">
          every {formatSeconds(group.interval)} · last evaluated{" "}
          {neverEvaluated(group.lastEvaluation) ? "never" : `${formatDateTime(lastMs)} (${formatAgo(lastMs, nowMs)})`} · took {(group.evaluationTime * 1000).toFixed(1)} ms
        </span>
      </div>
      <table class="table compact rules" data-testid="rules">
        <thead>
          <tr>
            <th>Rule</th>
            <th>Type</th>
            <th>Expression</th>
            <th>State</th>
            <th>Health</th>
            <th class="num">For</th>
            <th class="num">Alerts</th>
          </tr>
        </thead>
        <tbody>
          {rules.map((rule, i) => (
            <RuleRow key={`${rule.name}-${i}`} rule={rule} />
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function AlertsPage({ route }: { route: Route }) {
  const tenant = route.params.get("tenant") ?? "";
  const stateFilter = RULE_STATES.includes(route.params.get("state") as never) ? route.params.get("state")! : "";
  const groupFilter = route.params.get("group") ?? "";
  const [refresh, setRefresh] = useState(0);
  const [state, setState] = useState<State>({ status: "loading" });

  useEffect(() => {
    const abort = new AbortController();
    setState({ status: "loading" });
    Promise.all([promRules(abort.signal), promAlerts(abort.signal)])
      .then(([rules, alerts]) => setState({ status: "done", groups: rules.data?.groups ?? [], alerts: alerts.data?.alerts ?? [], atMs: Date.now() }))
      .catch((error) => {
        if ((error as Error).name !== "AbortError") setState({ status: "error", message: (error as Error).message });
      });
    return () => abort.abort();
  }, [tenant, refresh]);

  const head = <RefreshHead title="Alerts" blurb="Alerting and recording rules, and the alerts they raise." onRefresh={() => setRefresh((n) => n + 1)} />;
  if (state.status !== "done") return pendingPage(head, state, "rules and alerts", "Could not load the rules and alerts");

  const groups = groupFilter ? state.groups.filter((group) => group.name === groupFilter) : state.groups;
  const counts = ruleStateCounts(groups);
  const alerts = state.alerts
    .filter((alert) => stateFilter === "" || alert.state === stateFilter)
    .filter((alert) => !groupFilter || ruleOfAlert(groups, alert) !== undefined)
    // Firing before pending, then the longest active first.
    .sort((a, b) => (a.state === b.state ? Date.parse(a.activeAt) - Date.parse(b.activeAt) : a.state === "firing" ? -1 : 1));
  const shownGroups = groups.map((group) => ({ group, rules: group.rules.filter((rule) => ruleMatchesState(rule, stateFilter)) })).filter(({ rules }) => rules.length > 0);
  const ruleCount = groups.reduce((sum, group) => sum + group.rules.length, 0);

  return (
    <main class="page alerts-page">
      {head}
      <div class="query-options">
        <div class="segmented" role="radiogroup" aria-label="Filter by state" data-testid="state-filter">
          <button type="button" role="radio" aria-checked={stateFilter === ""} class={stateFilter === "" ? "active" : ""} onClick={() => setParams({ state: undefined })}>
            All rules ({ruleCount})
          </button>
          {RULE_STATES.map((s) => (
            <button type="button" role="radio" key={s} data-state={s} aria-checked={stateFilter === s} class={stateFilter === s ? "active" : ""} onClick={() => setParams({ state: s })} title={`Alerting rules that are ${s}`}>
              {s[0].toUpperCase() + s.slice(1)} (<span data-testid={`count-${s}`}>{counts[s]}</span>)
            </button>
          ))}
        </div>
        {groupFilter && (
          <span class="muted">
            Group <code>{groupFilter}</code> only · <a href={href("/alerts", { state: stateFilter || undefined })}>all groups</a>
          </span>
        )}
      </div>
      {state.groups.length === 0 ? (
        <Empty>
          No rules: load rule files with <code>rules.path</code>, write groups through the ruler API (<code>/prometheus/config/v1/rules</code>), or define SLOs.
        </Empty>
      ) : (
        <>
          <section aria-label="Active alerts">
            <h2>
              {stateFilter === "" ? "Firing and pending alerts" : `${stateFilter[0].toUpperCase() + stateFilter.slice(1)} alerts`} ({alerts.length})
            </h2>
            {alerts.length === 0 ? (
              <Empty>{stateFilter === "inactive" ? "Inactive rules raise no alerts; they are listed below." : "No alerts right now."}</Empty>
            ) : (
              <ul class="alert-list" data-testid="alerts">
                {alerts.map((alert) => (
                  <AlertCard key={JSON.stringify(alert.labels)} alert={alert} groups={groups} nowMs={state.atMs} />
                ))}
              </ul>
            )}
          </section>
          <section aria-label="Rule groups">
            <h2>Rule groups ({shownGroups.length})</h2>
            {shownGroups.length === 0 ? (
              <Empty>No rules {stateFilter ? `are ${stateFilter}` : "in this group"}.</Empty>
            ) : (
              shownGroups.map(({ group, rules }) => <GroupPanel key={`${group.file}/${group.name}`} group={group} rules={rules} nowMs={state.atMs} />)
            )}
          </section>
        </>
      )}
    </main>
  );
}

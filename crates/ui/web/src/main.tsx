// The app shell: nav, trace-ID box, time range, tenant, login and theme, and the page for the URL.
import { Fragment, render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, FORBIDDEN_EVENT, NEEDS_LOGIN_EVENT, NEEDS_TENANT_EVENT, getJson, hasCredentials, setCredentials, setTenant } from "./api";
import { LoginForm } from "./components/Login";
import { TimeRangePicker } from "./components/TimeRangePicker";
import { AlertsPage } from "./pages/Alerts";
import { ExplorePage } from "./pages/Explore";
import { GraphPage } from "./pages/Graph";
import { InsightsPage } from "./pages/Insights";
import { MetricsPage } from "./pages/Metrics";
import { ServicePage } from "./pages/Service";
import { SlosPage } from "./pages/Slos";
import { TracePage } from "./pages/Trace";
import { href, installLinkInterception, navigate, setParams, useRoute } from "./router";
import { currentTheme, toggleTheme } from "./theme";
import "./styles.css";

const TENANT_KEY = "andante.tenant";
const TENANTS_KEY = "andante.tenants";

function storedTenants(): string[] {
  try {
    return JSON.parse(localStorage.getItem(TENANTS_KEY) || "[]");
  } catch {
    return [];
  }
}

function rememberTenant(tenant: string) {
  try {
    localStorage.setItem(TENANT_KEY, tenant);
    const known = [tenant, ...storedTenants().filter((t) => t !== tenant)].slice(0, 20);
    localStorage.setItem(TENANTS_KEY, JSON.stringify(known));
  } catch {
    /* private mode: the URL still carries the tenant */
  }
}

function TenantPicker({ tenant }: { tenant: string }) {
  const [draft, setDraft] = useState(tenant);
  useEffect(() => setDraft(tenant), [tenant]);
  const apply = (event: Event) => {
    event.preventDefault();
    const chosen = draft.trim();
    if (chosen) rememberTenant(chosen);
    setParams({ tenant: chosen || undefined });
  };
  return (
    <form class={`tenant ${tenant ? "" : "tenant-missing"}`} onSubmit={apply} title="Tenant, sent as X-Scope-OrgID">
      <label>
        Tenant
        <input name="tenant" list="known-tenants" value={draft} placeholder="X-Scope-OrgID" size={12} onInput={(e) => setDraft((e.target as HTMLInputElement).value)} />
      </label>
      <datalist id="known-tenants">
        {storedTenants().map((t) => (
          <option key={t} value={t} />
        ))}
      </datalist>
      <button type="submit">Use</button>
    </form>
  );
}

function TraceIdBox() {
  const [value, setValue] = useState("");
  const [invalid, setInvalid] = useState(false);
  const open = (event: Event) => {
    event.preventDefault();
    const id = value.trim().toLowerCase();
    if (!/^[0-9a-f]{1,32}$/.test(id)) {
      setInvalid(true);
      return;
    }
    setInvalid(false);
    setValue("");
    navigate(href(`/trace/${id}`));
  };
  return (
    <form class="trace-box" onSubmit={open} role="search">
      <input
        id="trace-id-box"
        aria-label="Open trace by ID"
        aria-invalid={invalid}
        placeholder="Trace ID  (t)"
        value={value}
        onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        title={invalid ? "A trace ID is 1 to 32 hex digits" : "Open a trace by its ID"}
      />
    </form>
  );
}

function App() {
  const route = useRoute();
  const tenantInUrl = route.params.get("tenant") || "";
  const [tenantRequired, setTenantRequired] = useState(false);
  // Why credentials are wanted (the server's message) while the login form is up, else null.
  const [loginReason, setLoginReason] = useState<string | null>(null);
  const [forbidden, setForbidden] = useState("");
  // Bumped on login and logout: the page is mounted afresh, so it loads again with the new credential.
  const [session, setSession] = useState(0);
  const [theme, setThemeState] = useState(currentTheme());
  // Set before children render so their first request already carries the tenant.
  setTenant(tenantInUrl);

  useEffect(() => setForbidden(""), [tenantInUrl]);

  useEffect(() => {
    const needTenant = () => setTenantRequired(true);
    const needLogin = (event: Event) => setLoginReason((event as CustomEvent<string>).detail);
    const refused = (event: Event) => setForbidden((event as CustomEvent<string>).detail);
    window.addEventListener(NEEDS_TENANT_EVENT, needTenant);
    window.addEventListener(NEEDS_LOGIN_EVENT, needLogin);
    window.addEventListener(FORBIDDEN_EVENT, refused);
    // A remembered tenant restores itself when the URL names none (a fresh tab, a bare link).
    if (!tenantInUrl) {
      let remembered = "";
      try {
        remembered = localStorage.getItem(TENANT_KEY) || "";
      } catch {
        /* no storage */
      }
      // Probe once: the tags endpoint is cheap and answers 401 `no org id` when a tenant is needed.
      getJson("/api/v2/search/tags", { scope: "intrinsic" }).catch((error) => {
        if (remembered && error instanceof ApiError && error.needsTenant) setParams({ tenant: remembered }, true);
      });
    }
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (target.closest("input, textarea, select, .cm-editor") || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "t") {
        event.preventDefault();
        document.getElementById("trace-id-box")?.focus();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => {
      window.removeEventListener(NEEDS_TENANT_EVENT, needTenant);
      window.removeEventListener(NEEDS_LOGIN_EVENT, needLogin);
      window.removeEventListener(FORBIDDEN_EVENT, refused);
      document.removeEventListener("keydown", onKey);
    };
  }, []);

  const from = route.params.get("from");
  const to = route.params.get("to");
  let page;
  let title = "Andante";
  const traceMatch = /^\/trace\/([^/]+)$/.exec(route.path);
  const serviceMatch = /^\/service\/([^/]+)$/.exec(route.path);
  if (route.path === "/explore") {
    page = <ExplorePage route={route} />;
    title = "Explore traces · Andante";
  } else if (route.path === "/insights") {
    page = <InsightsPage route={route} />;
    title = "Insights · Andante";
  } else if (route.path === "/metrics") {
    page = <MetricsPage route={route} />;
    title = "Metrics · Andante";
  } else if (route.path === "/alerts") {
    page = <AlertsPage route={route} />;
    title = "Alerts · Andante";
  } else if (route.path === "/slos") {
    page = <SlosPage route={route} />;
    title = "SLOs · Andante";
  } else if (route.path === "/graph") {
    page = <GraphPage route={route} />;
    title = "Service graph · Andante";
  } else if (serviceMatch) {
    const service = decodeURIComponent(serviceMatch[1]);
    page = <ServicePage service={service} route={route} />;
    title = `${service} · Andante`;
  } else if (traceMatch) {
    page = <TracePage traceId={decodeURIComponent(traceMatch[1])} route={route} />;
    title = `Trace ${traceMatch[1].slice(0, 8)} · Andante`;
  } else {
    page = (
      <main class="page">
        <h1>Page not found</h1>
        <p>
          There is no page at <code>/ui{route.path}</code>. <a href={href("/explore")}>Explore traces</a>
        </p>
      </main>
    );
  }
  useEffect(() => {
    document.title = title;
  }, [title]);

  const logIn = (authorization: string) => {
    setCredentials(authorization);
    setLoginReason(null);
    setForbidden("");
    setSession((n) => n + 1);
  };
  const logOut = () => {
    setCredentials("");
    setForbidden("");
    setLoginReason("You logged out.");
    setSession((n) => n + 1);
  };

  return (
    <>
      <header class="topbar">
        <a class="brand" href={href("/explore")} aria-label="Andante home">
          <span class="brand-mark" aria-hidden="true">♩</span> Andante
        </a>
        <nav aria-label="Pages">
          <a href={href("/explore")} aria-current={route.path === "/explore" ? "page" : undefined}>
            Explore
          </a>
          <a href={href("/graph")} aria-current={route.path === "/graph" ? "page" : undefined}>
            Service graph
          </a>
          <a href={href("/metrics")} aria-current={route.path === "/metrics" ? "page" : undefined}>
            Metrics
          </a>
          <a href={href("/insights")} aria-current={route.path === "/insights" ? "page" : undefined}>
            Insights
          </a>
          <a href={href("/alerts")} aria-current={route.path === "/alerts" ? "page" : undefined}>
            Alerts
          </a>
          <a href={href("/slos")} aria-current={route.path === "/slos" ? "page" : undefined}>
            SLOs
          </a>
        </nav>
        {/* One group, so when the bar is too narrow the tools wrap together to the right. */}
        <div class="topbar-tools">
          <TraceIdBox />
          <TimeRangePicker from={from} to={to} onChange={(newFrom, newTo) => setParams({ from: newFrom, to: newTo === "now" ? undefined : newTo })} />
          {(tenantRequired || tenantInUrl || forbidden) && <TenantPicker tenant={tenantInUrl} />}
          {hasCredentials() && loginReason === null && (
            <button type="button" onClick={logOut} title="Forget the credential this tab signed in with">
              Log out
            </button>
          )}
          <button
            type="button"
            class="icon-button"
            aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}
            title={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}
            onClick={() => setThemeState(toggleTheme())}
          >
            {theme === "dark" ? "☀" : "☾"}
          </button>
        </div>
      </header>
      {loginReason !== null ? (
        <LoginForm message={loginReason} onLogin={logIn} />
      ) : tenantRequired && !tenantInUrl ? (
        <main class="page">
          <div class="state state-empty">
            This server has multitenancy on: enter a tenant (its <code>X-Scope-OrgID</code>) at the top right to see its data.
          </div>
        </main>
      ) : (
        <>
          {forbidden && (
            <div class="state state-error banner" role="alert" data-testid="forbidden">
              <strong>Not allowed:</strong> {forbidden}. Choose another tenant at the top right, or log out and sign in with a credential that may use it.
            </div>
          )}
          <Fragment key={session}>{page}</Fragment>
        </>
      )}
    </>
  );
}

installLinkInterception();
render(<App />, document.getElementById("app")!);

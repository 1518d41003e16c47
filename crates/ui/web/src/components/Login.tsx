// The login form, shown when the server answers 401 asking for credentials (`auth.tokens_file`):
// a bearer token, or a username and password for HTTP basic. The credential is tried once before
// it is kept, so a wrong one shows the server's own message and never reaches the pages.
import { useState } from "preact/hooks";
import { ApiError, basicAuthorization, readableError, request } from "../api";

type Method = "token" | "basic";

export function LoginForm({ message, onLogin }: { message: string; onLogin: (authorization: string) => void }) {
  const [method, setMethod] = useState<Method>("token");
  const [token, setToken] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [problem, setProblem] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    let authorization: string;
    if (method === "token") {
      if (!token.trim()) return setProblem("Enter a token.");
      authorization = `Bearer ${token.trim()}`;
    } else {
      if (!username) return setProblem("Enter a username.");
      // RFC 7617: the first colon ends the username, so one inside it cannot be sent.
      if (username.includes(":")) return setProblem("A username cannot contain “:” in HTTP basic authentication.");
      authorization = basicAuthorization(username, password);
    }
    setBusy(true);
    setProblem("");
    try {
      // `/api/echo` is the cheapest route behind authentication: it only says whether the
      // credential is accepted.
      await request("/api/echo", {}, { accept: "text/plain", authorizationOverride: authorization });
      onLogin(authorization);
    } catch (error) {
      // 403: the credential is good but may not use the tenant chosen; the page says so once
      // signed in, where the tenant can be changed.
      if (error instanceof ApiError && error.status === 403) return onLogin(authorization);
      setProblem(error instanceof ApiError ? readableError(error.message) : (error as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="page">
      <form class="login" onSubmit={submit} aria-labelledby="login-title" data-testid="login">
        <h1 id="login-title">Sign in to Andante</h1>
        <p class="muted">
          This server requires credentials. <span class="login-reason">{message}</span>
        </p>
        <div class="segmented" role="radiogroup" aria-label="Kind of credential">
          {(["token", "basic"] as const).map((m) => (
            <button type="button" role="radio" key={m} aria-checked={method === m} class={method === m ? "active" : ""} onClick={() => setMethod(m)}>
              {m === "token" ? "Token" : "Username & password"}
            </button>
          ))}
        </div>
        {method === "token" ? (
          <label>
            Token
            <input name="token" type="password" autocomplete="off" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
          </label>
        ) : (
          <>
            <label>
              Username
              <input name="username" autocomplete="username" value={username} onInput={(e) => setUsername((e.target as HTMLInputElement).value)} />
            </label>
            <label>
              Password
              <input name="password" type="password" autocomplete="current-password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
            </label>
          </>
        )}
        {problem && (
          <div class="field-error" role="alert" data-testid="login-error">
            {problem}
          </div>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p class="muted hint">Kept for this browser tab only (session storage); “Log out” at the top right forgets it.</p>
      </form>
    </main>
  );
}

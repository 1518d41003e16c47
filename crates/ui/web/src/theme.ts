// Light/dark theme: follows the system until the user toggles, then the choice is remembered.
const THEME_KEY = "andante.theme";

export type Theme = "light" | "dark";

export function currentTheme(): Theme {
  const chosen = document.documentElement.dataset.theme;
  if (chosen === "light" || chosen === "dark") return chosen;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function toggleTheme(): Theme {
  const next: Theme = currentTheme() === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  try {
    localStorage.setItem(THEME_KEY, next);
  } catch {
    /* storage off: the choice lasts for this page */
  }
  window.dispatchEvent(new Event("andante:theme"));
  return next;
}

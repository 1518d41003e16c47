// Runs before first paint (a classic blocking script, external because the server's CSP forbids
// inline scripts) so a user who chose a theme never sees the other one flash.
try {
  var chosenTheme = localStorage.getItem("andante.theme");
  if (chosenTheme === "light" || chosenTheme === "dark") document.documentElement.dataset.theme = chosenTheme;
} catch (e) {}

// Authorize / Re-Authorize / Change tenant open Microsoft's sign-in in a pop-up (the same window when pop-ups are blocked),
// and reloads this page when the pop-up reports back.
"use strict";
(function () {
  const forms = document.querySelectorAll("form[target='o365-authorize']");  // Authorize, Change tenant
  if (!forms.length) { return; }
  forms.forEach(function (form) {
    form.addEventListener("submit", function () {
      const popup = window.open("", "o365-authorize", "popup,width=520,height=700");
      if (!popup) { form.target = "_self"; }
    });
    form.dataset.popupReady = "1";  // wired: a click now opens the pop-up (or falls back to this window)
  });
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin) { return; }
    if (event.data && event.data.type === "o365-authorize-finished") { window.location.reload(); }
  });
})();

// Shown at the end of an authorization. In a pop-up: tell the data source page, then close.
// In the main window (pop-ups blocked): go back to the data source page.
"use strict";
(function () {
  const result = document.getElementById("authorize-result");
  if (!result) { return; }
  if (window.opener && !window.opener.closed) {
    try {
      window.opener.postMessage({ type: "o365-authorize-finished", ok: result.dataset.ok === "1" },
                                window.location.origin);
      window.close();
      return;
    } catch (error) { /* the opener navigated elsewhere: fall through */ }
  }
  window.location.replace(result.dataset.target);
})();

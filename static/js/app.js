// Behaviour for the gateway's pages. Loaded as a file: the Content-Security-Policy forbids inline script.
"use strict";
(function () {
  // A form that came back with errors: put the focus on the first invalid field, whose message it names
  // (aria-describedby), so keyboard and screen-reader users land where the problem is.
  const invalid = document.querySelector('main [aria-invalid="true"]');
  if (invalid && typeof invalid.focus === "function") {
    invalid.focus();
  }
})();

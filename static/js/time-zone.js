// Time zone selects: offer this browser's zone (Intl) when it differs from the one chosen. Offered, never applied
// on its own: the user clicks to choose it, then saves the form.
"use strict";
(function () {
  let browserZone = "";
  try { browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (error) { return; }
  document.querySelectorAll("select[data-offer-browser-zone]").forEach(function (select) {
    const known = Array.prototype.some.call(select.options, function (option) { return option.value === browserZone; });
    if (!browserZone || !known || select.value === browserZone) { return; }
    const offer = document.createElement("p");
    offer.className = "small mt-1 mb-0 browser-zone-offer";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-link btn-sm p-0 align-baseline";
    button.textContent = "Use " + browserZone.replace(/_/g, " ") + " (this browser's time zone)";
    button.addEventListener("click", function () {
      select.value = browserZone;
      select.dispatchEvent(new Event("change", { bubbles: true }));
      offer.remove();
      select.focus();
    });
    offer.appendChild(button);
    select.insertAdjacentElement("afterend", offer);
  });
})();

// A run's page: poll its progress (small JSON) and update the <progress> bar and the counts without reloading.
"use strict";
(function () {
  const section = document.getElementById("run-progress");
  if (!section || section.dataset.done === "true") { return; }
  const bar = document.getElementById("progress-bar");
  const url = section.dataset.progressUrl;
  const colours = { "succeeded": "success", "failed": "danger", "needs confirmation": "warning", "running": "primary", "queued": "secondary" };

  function setField(name, value) {
    document.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = value; });
  }

  function update(data) {
    ["pages", "processed", "created", "updated", "disabled", "removed", "unchanged", "errors", "graph_requests", "resyncs"]
      .forEach(function (name) { setField(name, String(data[name])); });
    if (data.duration !== null) { setField("duration", data.duration.toFixed(1) + " s"); }
    setField("started", data.started);
    setField("step-label", data.step ? " — " + data.step : "");
    if (data.total) {
      bar.max = Math.max(data.total, data.processed);
      bar.value = Math.min(data.processed, bar.max);
      setField("total-label", " of about " + data.total);
    }
    const badge = document.querySelector('#run-status [data-field="status"]');
    if (badge) {
      badge.textContent = data.status;
      badge.className = "badge text-bg-" + (colours[data.status] || "secondary");
    }
    if (data.error) {
      const box = document.getElementById("run-error");
      box.textContent = data.error;
      box.classList.remove("d-none");
    }
    if (data.done) {
      bar.max = 1;
      bar.value = 1;
      section.dataset.done = "true";
      const more = document.getElementById("run-finished");
      if (more) { more.classList.remove("d-none"); }
      return;
    }
    window.setTimeout(poll, 700);
  }

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(update)
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();

// A bulk job's page: poll its status (small JSON) and move the progress bar and the counts; when the job ends,
// reload once so the results, the outcome and "Retry the failed" show.
"use strict";
(function () {
  const section = document.getElementById("bulk-progress");
  if (!section || section.dataset.done === "true") { return; }
  const bar = document.getElementById("bulk-bar");
  const labels = { "null": "waiting", "added": "added", "already_member": "already a member", "removed": "removed",
    "not_member": "not a member", "assigned": "assigned", "already_assigned": "already held", "unassigned": "removed",
    "not_assigned": "did not hold it", "failed": "failed", "not_found": "not found",
    "usage_location_required": "no usage location", "no_seats_left": "no seats left", "not_attempted": "not attempted" };

  function setField(name, value) {
    section.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = value; });
  }

  function update(data) {
    setField("processed", String(data.processed));
    setField("total", String(data.total));
    setField("status", data.status);
    bar.max = Math.max(1, data.total);
    bar.value = data.processed;
    bar.textContent = data.processed + " of " + data.total;
    const counts = document.getElementById("bulk-counts");
    const parts = [];
    Object.keys(data.counts).sort().forEach(function (key) { parts.push((labels[key] || key) + ": " + data.counts[key]); });
    if (data.pending) { parts.push("waiting: " + data.pending); }
    counts.textContent = parts.join(" · ");
    if (data.finished) {
      section.dataset.done = "true";
      window.location.reload();
      return;
    }
    window.setTimeout(poll, 1000);
  }

  function poll() {
    fetch(section.dataset.statusUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(update)
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
})();

// Scheduled task form: show only the fields of the chosen schedule ("Hourly" asks for the minute past the hour,
// not for "Every N minutes" or a time of day). Without this script every field shows, each label saying which
// schedule uses it; the server reads and checks only the fields of the chosen schedule either way.
"use strict";
(function () {
  const schedule = document.getElementById("schedule");
  const boxes = document.querySelectorAll(".schedule-field[data-schedules]");
  if (!schedule || !boxes.length) { return; }

  function showFieldsOfSchedule() {
    boxes.forEach(function (box) {
      const applies = box.dataset.schedules.split(" ").indexOf(schedule.value) >= 0;
      box.hidden = !applies;
      box.querySelectorAll("input, select, textarea").forEach(function (input) { input.disabled = !applies; });
    });
  }

  schedule.addEventListener("change", showFieldsOfSchedule);
  showFieldsOfSchedule();
})();

// Progressive touches only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Traces filters: apply a select as soon as it changes.
  var filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("select").forEach(function (el) {
      el.addEventListener("change", function () { filters.submit(); });
    });
  }
  // A job's page follows the job through the JSON API until it ends, then reloads once.
  var job = document.querySelector("[data-job-active]");
  if (job && window.fetch) {
    var url = job.getAttribute("data-job-url");
    var poll = function () {
      window.fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (j) {
          if (!j) { return; }
          var state = document.getElementById("job-state");
          state.textContent = j.state;
          state.className = "badge state-" + j.state;
          if (j.progress !== null) {
            document.getElementById("job-progress").value = j.progress;
            document.getElementById("job-percent").textContent = Math.round(j.progress * 100) + "%";
          }
          document.getElementById("job-message").textContent = j.message || "";
          if (j.log_tail) { document.getElementById("job-log").textContent = j.log_tail; }
          if (j.state === "queued" || j.state === "running") {
            window.setTimeout(poll, 1000);
          } else {
            window.location.reload();
          }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    };
    window.setTimeout(poll, 1000);
  }
  // Pages showing live work (a training run) refresh themselves every few seconds.
  var live = document.querySelector("[data-refresh-seconds]");
  if (live) {
    var seconds = parseInt(live.getAttribute("data-refresh-seconds"), 10) || 5;
    window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }
});

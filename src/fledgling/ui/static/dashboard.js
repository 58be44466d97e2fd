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
  // Pages showing live work (a training run) refresh themselves every few seconds.
  var live = document.querySelector("[data-refresh-seconds]");
  if (live) {
    var seconds = parseInt(live.getAttribute("data-refresh-seconds"), 10) || 5;
    window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }
});

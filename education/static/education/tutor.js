// Tutor pages: follow a material's embedding state until it settles; show that a question is being answered.
(function () {
  "use strict";
  function poll(badge) {
    var url = badge.getAttribute("data-tutor-poll");
    var timer = window.setInterval(function () {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) { window.clearInterval(timer); return; }
          badge.textContent = data.label;
          if (data.state === "ready" || data.state === "failed") {
            window.clearInterval(timer);
            badge.classList.remove("badge-run");
            badge.classList.add(data.state === "ready" ? "badge-ok" : "badge-bad");
          }
        })
        .catch(function () { window.clearInterval(timer); });
    }, 2000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-tutor-poll]").forEach(poll);
    document.querySelectorAll("form[data-tutor-ask]").forEach(function (form) {
      form.addEventListener("submit", function () {
        var button = form.querySelector("button[type=submit]");
        if (button) { button.disabled = true; button.textContent = "Looking in the course material…"; }
      });
    });
  });
})();

// batchframework dashboard: shows times in the viewer's time zone and refreshes the parts of a
// page marked `data-refresh` every few seconds. The pages are complete without it.
(function () {
  "use strict";

  var pad = function (n) { return (n < 10 ? "0" : "") + n; };

  // <time datetime="...Z" title="... UTC">: the text in local time, UTC stays on hover.
  function localizeTimes(root) {
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      if (el.dataset.local) continue;
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) continue;
      el.textContent = at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) +
        " " + pad(at.getHours()) + ":" + pad(at.getMinutes()) + ":" + pad(at.getSeconds());
      el.dataset.local = "1";
    }
  }

  // Replaces each [data-refresh][id] section with the one of a freshly served copy of the page,
  // unless the user is busy in it (a focused field, an open <details> they opened).
  function refresh() {
    if (document.visibilityState !== "visible") return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var parts = document.querySelectorAll("[data-refresh][id]");
        for (var i = 0; i < parts.length; i++) {
          var part = parts[i];
          if (part.contains(document.activeElement) && document.activeElement !== document.body) continue;
          var next = fresh.getElementById(part.id);
          if (!next) continue;
          localizeTimes(next);
          part.replaceWith(document.importNode(next, true));
        }
      })
      .catch(function () { /* the next round tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes(document);
    var seconds = parseInt(document.body.dataset.refreshSeconds || "0", 10);
    if (seconds > 0 && document.querySelector("[data-refresh][id]")) {
      window.setInterval(refresh, seconds * 1000);
    }
    // Confirmation for destructive buttons, where the page asks for it.
    var forms = document.querySelectorAll("form[data-confirm]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (event) {
        if (!window.confirm(this.dataset.confirm)) event.preventDefault();
      });
    }
  });
})();

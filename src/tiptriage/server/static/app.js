// Keyboard use of the queue, a confirmation before closing a case, and the idle lock shown before the server's own.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.item"));
  var current = -1;
  function focusRow(i) {
    if (!rows.length) return;
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r) { r.classList.remove("current"); });
    rows[current].classList.add("current");
    var link = rows[current].querySelector("a.open");
    if (link) link.focus();
  }
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j") { focusRow(current + 1); e.preventDefault(); }
    else if (e.key === "k") { focusRow(current - 1); e.preventDefault(); }
    else if (e.key === "/") { var s = document.getElementById("search"); if (s) { s.focus(); e.preventDefault(); } }
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) { if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault(); });
  });
  var idle = parseInt(document.body.getAttribute("data-idle-seconds") || "0", 10);
  if (idle > 0) {
    var timer;
    var reset = function () {
      clearTimeout(timer);
      timer = setTimeout(function () { window.location.assign("/login?reason=" + encodeURIComponent("Locked after 30 minutes without activity.")); }, idle * 1000);
    };
    ["keydown", "mousedown", "touchstart", "scroll"].forEach(function (ev) { document.addEventListener(ev, reset, { passive: true }); });
    reset();
  }
})();

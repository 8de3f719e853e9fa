/* Live countdowns: every element with class "countdown" and a data-due (RFC 3339) shows the time left
   to that moment, red and marked "overdue" once it has passed. The wording comes from the page's
   message catalogue (<meta name="gx-countdown">), so it is the viewer's language. No inline script,
   no eval: this file is served by the console itself (CSP script-src 'self'). */
(function () {
  "use strict";
  var words = { d: "%(n)dd", h: "%(n)dh", m: "%(n)dm", left: "%(time)s left", over: "overdue by %(time)s" };

  function loadWords() {
    var meta = document.querySelector('meta[name="gx-countdown"]');
    if (!meta) { return; }
    try { words = JSON.parse(meta.getAttribute("content")); } catch (e) { /* keep the defaults */ }
  }

  function describe(seconds) {
    var breached = seconds < 0;
    var total = Math.floor(Math.abs(seconds) / 60);
    var days = Math.floor(total / 1440);
    var hours = Math.floor((total % 1440) / 60);
    var minutes = total % 60;
    var parts = [];
    if (days) { parts.push(words.d.replace("%(n)d", String(days))); }
    if (days || hours) { parts.push(words.h.replace("%(n)d", String(hours))); }
    parts.push(words.m.replace("%(n)d", String(minutes)));
    var text = (breached ? words.over : words.left).replace("%(time)s", parts.join(" "));
    return { text: text, breached: breached };
  }

  function tick() {
    var now = Date.now();
    var nodes = document.querySelectorAll(".countdown[data-due]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) { continue; }
      var state = describe((due - now) / 1000);
      if (el.textContent !== state.text) { el.textContent = state.text; }
      el.classList.toggle("breached", state.breached);
      var row = el.closest("tr");
      if (row) { row.classList.toggle("is-breached", state.breached); }
    }
  }

  function start() {
    loadWords();
    tick();
    window.setInterval(tick, 1000);
    document.body.addEventListener("htmx:afterSwap", tick);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());

/* Keyboard shortcut of the console: "/" puts the cursor in the header's search box from anywhere, unless
   the person is typing in a field. Served by the console itself (CSP script-src 'self'), no inline script. */
(function () {
  "use strict";

  function typing(target) {
    if (!target) { return false; }
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var box = document.getElementById("search-q");
    if (!box) { return; }
    event.preventDefault();
    box.focus();
    box.select();
  });
}());

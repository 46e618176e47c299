// Keyboard shortcuts of the spam queue (j/k move, x selects, r releases, c confirms the selection).
// The page works without this script: it only presses the form's own buttons.
(function () {
  "use strict";
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#queue tr.queue-item")); }
  var current = -1;
  function focusRow(index) {
    var all = rows();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (row, i) { row.classList.toggle("selected", i === current); });
    all[current].querySelector("input[type=checkbox]").focus();
  }
  function press(decision) {
    var button = document.querySelector("#review-form button[value=" + decision + "]");
    if (button && document.querySelector("#review-form input[name=event_id]:checked")) { button.click(); }
  }
  document.addEventListener("keydown", function (event) {
    if (!document.getElementById("queue") || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" && event.target.type !== "checkbox") { return; }
    if (event.key === "j") { focusRow(current + 1); }
    else if (event.key === "k") { focusRow(current - 1); }
    else if (event.key === "x" && current >= 0) {
      var box = rows()[current].querySelector("input[type=checkbox]");
      box.checked = !box.checked;
    }
    else if (event.key === "r") { press("release"); }
    else if (event.key === "c") { press("confirm"); }
    else { return; }
    event.preventDefault();
  });
}());

// The live inbox: new leads arrive as server-sent events (HTML rows) and go on top of the unfiltered inbox.
(function () {
  "use strict";
  var body = document.getElementById("lead-rows");
  if (!body || !body.dataset.live || !window.EventSource) { return; }
  var source = new EventSource(body.dataset.live);
  source.addEventListener("leads", function (event) {
    var empty = body.querySelector("td[colspan]");
    if (empty) { empty.parentNode.remove(); }
    body.insertAdjacentHTML("afterbegin", event.data);
  });
  // a search replaces the rows: stop adding unfiltered ones to them
  document.addEventListener("htmx:beforeRequest", function () { source.close(); });
}());

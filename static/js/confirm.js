// The in-place confirmation of destructive actions (dashboards/confirm.py, _confirm.html).
// A trigger button posts without `confirm=yes`; the server answers with the question, which
// htmx swaps in place of the trigger. This script remembers each trigger so that Keep (or
// Escape) puts it back and returns the keyboard focus to it; without the script Keep is a
// plain link back to the page. Loaded with `defer` after htmx.
(function () {
  "use strict";

  if (!window.htmx) return;

  var TRIGGER = "form.confirm-trigger";
  var PANEL = "[data-confirm]";
  var HTMX_STATE = ["htmx-request", "htmx-swapping", "htmx-settling", "htmx-added"];
  // Trigger id → its markup, kept while its question is shown (data-confirm names it).
  var triggers = {};

  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.matches || !target.matches(TRIGGER)) return;
    var copy = target.cloneNode(true);
    HTMX_STATE.forEach(function (name) { copy.classList.remove(name); });
    triggers[target.id] = copy.outerHTML;
  });

  function keep(panel) {
    var markup = triggers[panel.dataset.confirm];
    if (!markup) return false;  // nothing to restore: let Keep follow its link
    var holder = document.createElement("div");
    holder.innerHTML = markup;
    var trigger = holder.firstElementChild;
    panel.replaceWith(trigger);
    window.htmx.process(trigger);
    var button = trigger.querySelector("button");
    if (button) button.focus();
    return true;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-confirm-keep]");
    if (!link) return;
    var panel = link.closest(PANEL);
    if (panel && keep(panel)) event.preventDefault();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) return;
    var panel = event.target.closest(PANEL);
    if (panel && keep(panel)) event.preventDefault();
  });

  // The object went away meanwhile (another tab, another manager) or access changed: htmx
  // drops error answers, so submit the form the plain way and show the server's own page.
  document.body.addEventListener("htmx:responseError", function (event) {
    var form = event.detail.elt;
    var status = event.detail.xhr && event.detail.xhr.status;
    if ((status === 403 || status === 404) && form && form.matches &&
        (form.matches(TRIGGER) || form.closest(PANEL))) {
      form.submit();
    }
  });
})();

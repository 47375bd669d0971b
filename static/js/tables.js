// A table wider than its box scrolls sideways inside its .table-wrap. Keyboard users can scroll
// such a box only if it takes focus, and screen readers need its name (WCAG 2.1.1; axe-core's
// "scrollable-region-focusable"). Whether a box scrolls depends on the window's width, so it is
// checked here, on load, after every htmx swap and whenever a box changes size; a box that fits
// gets no tab stop.
(function () {
  "use strict";

  var SELECTOR = ".table-wrap";

  function nameOf(wrap) {
    var caption = wrap.querySelector("caption");
    if (caption && caption.textContent.trim()) return caption.textContent.trim();
    var section = wrap.closest("section, article, main");
    var heading = section && section.querySelector("h1, h2, h3");
    return heading ? heading.textContent.trim() : "Table";
  }

  function mark(wrap) {
    var scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
    if (scrolls && !wrap.hasAttribute("data-scrolls")) {
      wrap.setAttribute("data-scrolls", "");
      wrap.setAttribute("tabindex", "0");
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", nameOf(wrap) + " (scrolls sideways)");
    } else if (!scrolls && wrap.hasAttribute("data-scrolls")) {
      ["data-scrolls", "tabindex", "role", "aria-label"].forEach(function (name) {
        wrap.removeAttribute(name);
      });
    }
  }

  var resized = window.ResizeObserver
    ? new ResizeObserver(function (entries) {
        entries.forEach(function (entry) { mark(entry.target); });
      })
    : null;

  function within(root) {
    if (!root || root.nodeType !== Node.ELEMENT_NODE) return;
    var wraps = Array.prototype.slice.call(root.querySelectorAll(SELECTOR));
    var around = root.closest(SELECTOR);  // rows swapped into a table already on the page
    if (around) wraps.push(around);
    wraps.forEach(function (wrap) {
      mark(wrap);
      if (resized) resized.observe(wrap);
    });
  }

  if (window.htmx) {
    window.htmx.onLoad(within);
  } else {
    document.addEventListener("DOMContentLoaded", function () { within(document.body); });
  }
})();

// Draws server-built Plotly figures without inline scripts (the CSP forbids them):
//   <div data-plotly="fig-id"></div>  +  {{ figure|json_script:"fig-id" }}
// where the JSON is {data, layout, config}. Loaded with `defer` after htmx and, on pages with
// charts, after the Plotly bundle, so both globals exist when this runs.
(function () {
  "use strict";

  var SELECTOR = "[data-plotly]";

  function draw(el) {
    var source = document.getElementById(el.dataset.plotly);
    if (!source) {
      console.warn("charts.js: no figure data #" + el.dataset.plotly);
      return;
    }
    var figure = JSON.parse(source.textContent);
    // responsive: Plotly resizes the chart with the window, so no resize handler here.
    var config = Object.assign({ responsive: true, displaylogo: false }, figure.config);
    window.Plotly.newPlot(el, figure.data, figure.layout || {}, config);
  }

  function drawWithin(root) {
    // Pages without charts do not load Plotly: nothing to draw, and no error either.
    if (!window.Plotly || !root || root.nodeType !== Node.ELEMENT_NODE) return;
    // htmx.onLoad passes the swapped-in element itself: when a chart *is* the new content,
    // querySelectorAll alone would miss it.
    if (root.matches(SELECTOR)) draw(root);
    root.querySelectorAll(SELECTOR).forEach(draw);
  }

  if (!window.htmx) {
    // htmx failed to load: still draw what the page was served with.
    document.addEventListener("DOMContentLoaded", function () { drawWithin(document.body); });
    return;
  }

  // Runs once for document.body after load, then for every piece of content htmx swaps in.
  window.htmx.onLoad(drawWithin);

  // A body too large is refused before any view reads it; the answer names its own target
  // (HX-Retarget) and says why, so show it rather than drop it as htmx does with errors.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 413) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Plotly keeps listeners and state per chart: free them before htmx removes the element,
  // or every swap leaks a chart.
  document.body.addEventListener("htmx:beforeCleanupElement", function (event) {
    var el = event.target;
    if (window.Plotly && el.matches && el.matches(SELECTOR)) window.Plotly.purge(el);
  });
})();

// Fills a slug field from another field as the user types: <input data-slug-from="name">
// follows the form's `name` field until the user edits the slug by hand (emptying it hands it
// back). The slug is made as Django's slugify makes it, so the server keeps what it is shown.
// Listens on the document, so forms that htmx swaps in (a form with errors) work as well.
(function () {
  "use strict";

  var SLUG = "input[data-slug-from]";

  function slugify(text) {
    return text.normalize("NFKD").replace(/[^\x00-\x7f]/g, "")
      .toLowerCase().replace(/[^\w\s-]/g, "").trim()
      .replace(/[-\s]+/g, "-").replace(/^[-_]+|[-_]+$/g, "");
  }

  function fitted(slug, value) {
    var longest = parseInt(slug.getAttribute("maxlength"), 10);
    if (longest > 0 && value.length > longest) {
      value = value.slice(0, longest).replace(/[-_]+$/, "");
    }
    return value;
  }

  function sourceOf(slug) {
    return slug.form && slug.form.elements.namedItem(slug.dataset.slugFrom);
  }

  // What the slug would be if it followed the source: until it differs, it follows.
  function expected(slug) {
    var source = sourceOf(slug);
    return source ? fitted(slug, slugify(source.value)) : "";
  }

  function follows(slug) {
    if (slug.dataset.slugFollows === undefined) {
      slug.dataset.slugFollows = String(slug.value === "" || slug.value === expected(slug));
    }
    return slug.dataset.slugFollows === "true";
  }

  // Before the first keystroke in the source: does the slug still follow it?
  document.addEventListener("focusin", function (event) {
    var form = event.target.form;
    if (!form) return;
    form.querySelectorAll(SLUG).forEach(function (slug) {
      if (sourceOf(slug) === event.target) follows(slug);
    });
  });

  document.addEventListener("input", function (event) {
    var field = event.target;
    if (!field.form) return;
    if (field.matches(SLUG)) {
      // Typed by hand: it stays as typed; emptied: it follows the name again.
      field.dataset.slugFollows = String(field.value === "");
      return;
    }
    field.form.querySelectorAll(SLUG).forEach(function (slug) {
      if (sourceOf(slug) !== field || !follows(slug)) return;
      slug.value = expected(slug);
    });
  });
})();

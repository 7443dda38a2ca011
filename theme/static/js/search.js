/* The search page: Pagefind's UI on the index in /pagefind/ (written by the build from the
   published articles and pages). Without JavaScript, or without an index, the page still links
   to the archives. Nothing here contacts a third party. */
(function () {
  "use strict";
  var box = document.getElementById("search");
  if (!box || typeof PagefindUI === "undefined") return;
  var note = box.querySelector(".search-note");
  if (note) note.remove();  // the search box takes its place
  new PagefindUI({
    element: "#search",
    bundlePath: box.dataset.bundle,
    baseUrl: box.dataset.base,
    showImages: false,
    showSubResults: true,
    resetStyles: false,
    autofocus: true,
    translations: { placeholder: "Search the articles" }
  });
})();

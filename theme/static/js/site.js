/* Progressive enhancement only: every feature below works (or degrades to a plain link or a
   plain form post) without this file. Nothing here contacts a third party. */
(function () {
  "use strict";

  function say(el, text, state) {
    if (!el) return;
    el.textContent = text;
    if (state) el.setAttribute("data-state", state); else el.removeAttribute("data-state");
  }

  // Share: copy the link, and the Web Share API where the browser has it.
  document.querySelectorAll(".share").forEach(function (box) {
    var status = box.querySelector(".share-status");
    var copy = box.querySelector(".share-copy");
    var native = box.querySelector(".share-native");
    if (copy && navigator.clipboard && window.isSecureContext) {
      copy.hidden = false;
      copy.addEventListener("click", function () {
        navigator.clipboard.writeText(copy.dataset.url).then(
          function () { say(status, "Link copied."); },
          function () { say(status, "Could not copy; the address is " + copy.dataset.url); }
        );
      });
    }
    if (native && navigator.share) {
      native.hidden = false;
      native.addEventListener("click", function () {
        navigator.share({ title: native.dataset.title, url: native.dataset.url }).catch(function () {});
      });
    }
  });

  // Videos: the facade's button swaps in the youtube-nocookie.com player; nothing loads before.
  document.querySelectorAll("figure.video[data-video]").forEach(function (figure) {
    var button = figure.querySelector(".video-play");
    var link = figure.querySelector(".video-link");
    if (!button || !link) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var frame = document.createElement("iframe");
      frame.src = "https://www.youtube-nocookie.com/embed/" + encodeURIComponent(figure.dataset.video) + "?autoplay=1";
      var title = figure.querySelector(".video-title");
      frame.title = title ? title.textContent : "Video";
      frame.width = 480;
      frame.height = 360;
      frame.allow = "autoplay; encrypted-media; picture-in-picture; fullscreen";
      frame.allowFullscreen = true;
      frame.className = "video-frame";
      link.replaceWith(frame);
      button.remove();
      frame.focus();
    });
  });

  // Comments: load our own Isso embed only when the reader reaches the section or asks for it.
  var thread = document.getElementById("isso-thread");
  var loadButton = document.querySelector("[data-isso]");
  if (thread && loadButton) {
    var loaded = false;
    var load = function () {
      if (loaded) return;
      loaded = true;
      var base = loadButton.getAttribute("data-isso").replace(/\/$/, "");
      var script = document.createElement("script");
      script.src = base + "/js/embed.min.js";
      script.setAttribute("data-isso", base + "/");
      script.setAttribute("data-isso-vote", "false");
      script.async = true;
      document.body.appendChild(script);
      loadButton.parentNode.hidden = true;
    };
    loadButton.addEventListener("click", load);
    if ("IntersectionObserver" in window) {
      new IntersectionObserver(function (entries, observer) {
        if (entries.some(function (e) { return e.isIntersecting; })) { observer.disconnect(); load(); }
      }, { rootMargin: "200px" }).observe(document.getElementById("comments"));
    }
  }

  // Exercise cards: "Print this exercise" prints that card alone; "Add to my calendar" loads
  // exercise-calendar.js (its form and the .ics) on the first click, never before. They join
  // the card's row of actions (the page's card has one, with the plan's calendar feed link,
  // before its "Follow this plan by email" form), else a row of their own at its end: Print
  // first, "Add to my calendar" last, so its form (opened under the row) comes next by Tab.
  var me = document.currentScript || document.querySelector("script[src$='/site.js']");
  var here = me ? me.src : location.href, waiting = null;
  document.querySelectorAll("section.exercise[data-per-week][data-weeks]").forEach(function (card) {
    var row = card.querySelector(".exercise-actions");
    if (!row) {
      row = card.appendChild(document.createElement("div"));
      row.className = "exercise-actions";
    }
    var print = row.insertBefore(document.createElement("button"), row.firstChild);
    var add = row.appendChild(document.createElement("button"));
    print.type = add.type = "button";
    print.className = "button-secondary";
    print.textContent = "Print this exercise";
    add.textContent = "Add to my calendar";
    add.setAttribute("aria-expanded", "false");
    print.addEventListener("click", function () {
      document.documentElement.classList.add("print-exercise");
      card.classList.add("print-this");
      window.print();
    });
    add.addEventListener("click", function () {
      if (window.exerciseCalendar) return window.exerciseCalendar(card, add);
      if (waiting) {
        if (!waiting.some(function (args) { return args[0] === card; })) waiting.push([card, add]);
        return;
      }
      waiting = [[card, add]];
      var script = document.createElement("script");
      script.src = new URL("exercise-calendar.js", here).href;
      script.onload = function () {
        waiting.forEach(function (args) { window.exerciseCalendar(args[0], args[1]); });
      };
      script.onerror = function () { script.remove(); waiting = null; };
      document.head.appendChild(script);
    });
  });
  window.addEventListener("afterprint", function () {
    document.documentElement.classList.remove("print-exercise");
    document.querySelectorAll(".print-this").forEach(function (card) { card.classList.remove("print-this"); });
  });

  // "Stay tuned": post in place and show the answer; on any network failure, submit normally.
  document.querySelectorAll(".subscribe-form").forEach(function (form) {
    var status = form.querySelector(".form-status");
    form.addEventListener("submit", function (event) {
      if (!window.fetch || !window.FormData) return;
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      say(status, "Sending…");
      fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: "application/json" },
        credentials: "omit"
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          var message = data.message || (response.ok ? "Thanks! Check your inbox." : "That did not work. Please try again.");
          say(status, message, response.ok ? "ok" : "error");
          if (response.ok) form.reset();
        });
      }).catch(function () {
        form.submit();
      }).finally(function () { button.disabled = false; });
    });
  });
})();

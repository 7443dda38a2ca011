/* "Add to my calendar" for the exercise cards: a small form (start date, days, time) and an
   iCalendar file (RFC 5545) with one weekly recurring event, made here in the browser from the
   card itself, so any static host serves it. site.js loads this file on the first click of the
   button; window.exerciseCalendar(card, toggle) shows or hides that card's form. */
(function () {
  "use strict";

  var DAYS = [["MO", "Mon", "Monday"], ["TU", "Tue", "Tuesday"], ["WE", "Wed", "Wednesday"],
    ["TH", "Thu", "Thursday"], ["FR", "Fri", "Friday"], ["SA", "Sat", "Saturday"], ["SU", "Sun", "Sunday"]];
  // The days ticked by default for n sessions a week (Monday is 0): 3 gives Mon, Wed, Fri.
  var SPREAD = ["0", "0", "13", "024", "0134", "01234", "012345", "0123456"];
  var MINUTES = 20, REMINDER = 10;

  function text(node) { return node ? node.textContent.replace(/\s+/g, " ").trim() : ""; }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function whole(value) { return Math.max(1, parseInt(value, 10) || 1); }

  function make(tag, parent, props) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) { node[key] = props[key]; });
    if (parent) parent.appendChild(node);
    return node;
  }

  function plan(card) {
    var perWeek = whole(card.dataset.perWeek), weeks = whole(card.dataset.weeks);
    return { perWeek: perWeek, weeks: weeks, count: perWeek * weeks };
  }

  function form(card) {
    var id = card.id, p = plan(card), today = new Date();
    var box = make("form", null, { className: "exercise-calendar", id: id + "-calendar" });
    make("p", box, { textContent: p.count + " sessions: " + p.perWeek + " a week for " + p.weeks +
      " weeks, with a reminder " + REMINDER + " minutes before each one." });
    var when = make("div", box, { className: "exercise-when" });
    [["start", "Start on", "date", today.getFullYear() + "-" + pad(today.getMonth() + 1) + "-" + pad(today.getDate())],
      ["time", "Time", "time", "08:00"]].forEach(function (field) {
      var wrap = make("div", when);
      make("label", wrap, { htmlFor: id + "-" + field[0], textContent: field[1] });
      make("input", wrap, { id: id + "-" + field[0], name: field[0], type: field[2], value: field[3], required: true });
    });
    var set = make("fieldset", box);
    make("legend", set, { textContent: "On these days" });
    var days = make("div", set, { className: "exercise-days" });
    var ticked = SPREAD[Math.min(p.perWeek, 7)];
    DAYS.forEach(function (day, index) {
      var label = make("label", days);
      var input = make("input", label, { type: "checkbox", name: "day", value: day[0], checked: ticked.indexOf(index) >= 0 });
      input.setAttribute("aria-label", day[2]);
      label.appendChild(document.createTextNode(day[1]));
    });
    make("button", box, { type: "submit", textContent: "Download .ics" });
    var status = make("p", box, { className: "form-status" });
    status.setAttribute("role", "status");
    box.addEventListener("submit", function (event) {
      event.preventDefault();
      var chosen = [];
      box.querySelectorAll("input[name=day]").forEach(function (input, index) { if (input.checked) chosen.push(index); });
      var date = /^(\d{4})-(\d\d)-(\d\d)$/.exec(box.elements.start.value);
      var time = /^(\d\d):(\d\d)/.exec(box.elements.time.value);
      status.setAttribute("data-state", "error");
      if (!chosen.length) { status.textContent = "Pick at least one day."; return set.querySelector("input").focus(); }
      if (!date || !time) { status.textContent = "Pick a start date and a time."; return; }
      var first = new Date(+date[1], date[2] - 1, +date[3]);
      while (chosen.indexOf((first.getDay() + 6) % 7) < 0) first.setDate(first.getDate() + 1);
      var name = card.id.replace(/^exercise-/, "").replace(/[^\w-]+/g, "-") + ".ics";
      download(name, calendar(card, first, time[1] + time[2], chosen));
      status.removeAttribute("data-state");
      status.textContent = "Saved " + name + ": " + p.count + " sessions from " +
        first.toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long" }) + " at " +
        time[1] + ":" + time[2] + ". Open it to add them to your calendar.";
    });
    return box;
  }

  // RFC 5545 3.3.11: TEXT escapes backslash, semicolon, comma and newlines; no control characters.
  function escape(value) {
    return value.replace(/[\\;,]/g, "\\$&").replace(/\r\n|\r|\n/g, "\\n").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
  }

  // RFC 5545 3.1: lines of at most 75 octets (UTF-8), folded with CRLF and a space, never inside a
  // character (for...of walks code points, so an emoji's surrogate pair stays whole).
  function fold(line) {
    var out = "", size = 0;
    for (var ch of line) {
      var code = ch.codePointAt(0);
      var bytes = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
      if (size + bytes > 75) { out += "\r\n "; size = 1; }
      out += ch;
      size += bytes;
    }
    return out;
  }

  function calendar(card, first, hhmm, chosen) {
    var canonical = document.querySelector("link[rel=canonical]");
    var page = new URL(canonical ? canonical.href : location.href);
    var url = new URL("#" + card.id, page).href;
    var name = text(card.querySelector(".exercise-name"));
    var lines = [text(card.querySelector(".exercise-targets")), ""];
    card.querySelectorAll(".exercise-steps li").forEach(function (step, index) {
      lines.push(index + 1 + ". " + text(step));
    });
    lines.push("");
    card.querySelectorAll(".exercise-prescription dt").forEach(function (term) {
      lines.push(text(term) + ": " + text(term.nextElementSibling));
    });
    lines.push("", url);
    var random = crypto.getRandomValues(new Uint8Array(16)).reduce(function (hex, byte) {
      return hex + (byte < 16 ? "0" : "") + byte.toString(16);
    }, "");
    var start = "" + first.getFullYear() + pad(first.getMonth() + 1) + pad(first.getDate()) + "T" + hhmm + "00";
    var host = page.hostname || "localhost";
    return [
      "BEGIN:VCALENDAR",
      "VERSION:2.0",
      "PRODID:-//" + host + "//Exercise card//EN",
      "CALSCALE:GREGORIAN",
      "METHOD:PUBLISH",
      "BEGIN:VEVENT",
      "UID:" + random + "@" + host,
      "DTSTAMP:" + new Date().toISOString().replace(/[-:]|\.\d+/g, ""),
      "DTSTART:" + start,
      "DURATION:PT" + MINUTES + "M",
      "RRULE:FREQ=WEEKLY;BYDAY=" + chosen.map(function (i) { return DAYS[i][0]; }).join(",") + ";COUNT=" + plan(card).count,
      "SUMMARY:" + escape(name),
      "DESCRIPTION:" + escape(lines.join("\n")),
      "URL:" + url,
      "BEGIN:VALARM",
      "ACTION:DISPLAY",
      "TRIGGER:-PT" + REMINDER + "M",
      "DESCRIPTION:" + escape(name),
      "END:VALARM",
      "END:VEVENT",
      "END:VCALENDAR"
    ].map(fold).join("\r\n") + "\r\n";
  }

  function download(name, data) {
    var link = make("a", document.body, { download: name, hidden: true });
    link.href = URL.createObjectURL(new Blob([data], { type: "text/calendar;charset=utf-8" }));
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 60000);
  }

  window.exerciseCalendar = function (card, toggle) {
    var box = card.querySelector(".exercise-calendar");
    if (!box) {
      box = card.insertBefore(form(card), toggle.parentNode.nextSibling);  // under its button's row
      toggle.setAttribute("aria-controls", box.id);
    } else {
      box.hidden = !box.hidden;
    }
    toggle.setAttribute("aria-expanded", String(!box.hidden));
  };
})();

/* The Mastodon share page: asks for the reader's server, then opens that server's own share page
   (https://SERVER/share?text=...). Loaded only on /share/mastodon/; contacts nobody by itself. */
(function () {
  "use strict";
  var form = document.getElementById("share-mastodon");
  if (!form) return;
  var server = document.getElementById("mastodon-server");
  var text = document.getElementById("mastodon-text");
  var status = document.getElementById("mastodon-status");
  var nojs = document.getElementById("share-mastodon-nojs");
  var params = new URLSearchParams(window.location.search);
  text.value = params.get("text") || "";
  try {
    var saved = window.localStorage.getItem("mastodon-server");
    if (saved) server.value = saved;
  } catch (e) { /* storage blocked: keep the default */ }
  form.hidden = false;
  if (nojs) nojs.hidden = true;

  // "https://Fosstodon.org/@me" -> "fosstodon.org"; null when it is not a host name.
  function host(value) {
    var name = value.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/^@?[^@\/]*@/, "");
    name = name.split(/[\/?#]/)[0].toLowerCase();
    return /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:\d{1,5})?$/.test(name) ? name : null;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var name = host(server.value);
    if (!name) {
      status.textContent = "That does not look like a server name; try for example mastodon.social.";
      status.setAttribute("data-state", "error");
      server.focus();
      return;
    }
    status.textContent = "";
    status.removeAttribute("data-state");
    try { window.localStorage.setItem("mastodon-server", name); } catch (e) { /* fine */ }
    window.location.assign("https://" + name + "/share?text=" + encodeURIComponent(text.value));
  });
})();

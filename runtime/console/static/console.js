// The console's live updates: one EventSource per page. On an event, every element whose
// data-refresh names it is fetched again from the server (the same page, or data-src) and
// swapped in place: server-rendered, escaped HTML; nothing here builds markup from data.
(function () {
  "use strict";
  var body = document.body;
  if (!body.dataset.live || !window.EventSource) { return; }
  var prefix = body.dataset.prefix;
  var badge = document.getElementById("pending-count");

  function refresh(kind) {
    var parts = document.querySelectorAll("[data-refresh~='" + kind + "']");
    Array.prototype.forEach.call(parts, function (el) {
      var src = el.dataset.src || (location.pathname + location.search);
      fetch(src, { credentials: "same-origin", headers: { "X-Console-Part": el.id } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(el.id);
          var current = document.getElementById(el.id);
          if (fresh && current) {
            current.replaceWith(document.adoptNode(fresh));
            document.dispatchEvent(new CustomEvent("console:refreshed", { detail: el.id }));
          }
        })
        .catch(function () { /* the next event tries again */ });
    });
  }

  var source = new EventSource(prefix + "/events");
  source.addEventListener("approvals", function (e) {
    var data = JSON.parse(e.data);
    if (badge) {
      badge.textContent = String(data.count);
      badge.hidden = data.count === 0;
    }
    refresh("approvals");
  });
  source.addEventListener("runs", function () { refresh("runs"); });
  source.addEventListener("signed_out", function () {
    source.close();
    location.reload();
  });
})();

// The replay's player: one step shown at a time. The timeline's links, the Previous/Next
// buttons, the arrow keys (Home, End) and the address's #step-N choose it. Runs in the replay
// file (inlined, allowed by its hash) and on the console's run page; builds no markup.
(function () {
  "use strict";
  var current = null;

  function sections() {
    return Array.prototype.slice.call(document.querySelectorAll("section.step[data-step]"));
  }

  function numbers() {
    return sections().map(function (s) { return s.dataset.step; });
  }

  function fillImages(section) {
    var waiting = section.querySelectorAll("img[data-same-as]:not([src])");
    Array.prototype.forEach.call(waiting, function (img) {
      var from = document.getElementById(img.dataset.sameAs);
      if (from && from.getAttribute("src")) { img.setAttribute("src", from.getAttribute("src")); }
    });
  }

  function show(step, remember) {
    var all = sections();
    var target = all.filter(function (s) { return s.dataset.step === step; })[0];
    if (!target) { return false; }
    all.forEach(function (s) { s.hidden = s !== target; });
    fillImages(target);
    var links = document.querySelectorAll("#timeline a[data-step]");
    Array.prototype.forEach.call(links, function (a) {
      if (a.dataset.step === step) {
        a.setAttribute("aria-current", "step");
        if (a.scrollIntoView) { a.scrollIntoView({ block: "nearest", inline: "nearest" }); }
      } else {
        a.removeAttribute("aria-current");
      }
    });
    current = step;
    if (remember && location.hash !== "#step-" + step) {
      try {
        history.replaceState(null, "", "#step-" + step);
      } catch (e) { /* some file: pages refuse; the step is shown all the same */ }
    }
    return true;
  }

  function move(how) {
    var list = numbers();
    if (!list.length) { return; }
    var at = list.indexOf(current);
    var next = {
      next: Math.min(at + 1, list.length - 1),
      prev: Math.max(at - 1, 0),
      first: 0,
      last: list.length - 1
    }[how];
    show(list[next], true);
  }

  function fromHash() {
    var m = /^#step-(\d+)$/.exec(location.hash);
    return m ? show(m[1], false) : false;
  }

  function start() {
    if (!document.getElementById("timeline")) { return; }
    if (!fromHash()) {
      var list = numbers();
      if (list.length) { show(list[0], false); }
    }
  }

  document.addEventListener("click", function (e) {
    var el = e.target instanceof Element ? e.target : null;
    var link = el && el.closest("#timeline a[data-step]");
    if (link) {
      e.preventDefault();
      show(link.dataset.step, true);
      return;
    }
    var button = el && el.closest("button[data-go]");
    if (button && document.getElementById("timeline")) { move(button.dataset.go); }
  });

  var KEYS = { ArrowRight: "next", ArrowLeft: "prev", Home: "first", End: "last" };
  document.addEventListener("keydown", function (e) {
    var how = KEYS[e.key];
    if (!how || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) { return; }
    var t = e.target;
    if (t instanceof Element && (t.closest("input, textarea, select, [contenteditable]"))) {
      return;
    }
    if (!document.getElementById("timeline")) { return; }
    e.preventDefault();
    move(how);
  });

  window.addEventListener("hashchange", fromHash);
  document.addEventListener("console:refreshed", function () {
    if (current !== null) { show(current, false); }
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// referee review console: click-to-reveal images and one-key verdict shortcuts.
// u uphold · o overturn · e escalate · c change (focuses the action) · r reveal images · s skip
(function () {
  "use strict";
  function reveal(img) { img.classList.toggle("blurred"); }
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t instanceof HTMLImageElement && t.classList.contains("media")) { reveal(t); }
    if (t instanceof HTMLButtonElement && t.dataset.verdict) {
      document.getElementById("verdict").value = t.dataset.verdict;
    }
  });
  function submitVerdict(kind) {
    var form = document.getElementById("verdict-form");
    if (!form || !form.querySelector('[data-verdict="' + kind + '"]')) { return; }
    document.getElementById("verdict").value = kind;
    form.submit();
  }
  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target && ev.target.tagName) || "";
    if (ev.ctrlKey || ev.metaKey || ev.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(tag)) { return; }
    var key = ev.key.toLowerCase();
    if (key === "u") { submitVerdict("uphold"); }
    else if (key === "o") { submitVerdict("overturn"); }
    else if (key === "e") { submitVerdict("escalate"); }
    else if (key === "c") { var a = document.getElementById("change-action"); if (a) { ev.preventDefault(); a.focus(); } }
    else if (key === "r") { document.querySelectorAll("img.media").forEach(reveal); }
    else if (key === "s") { var s = document.getElementById("skip"); if (s) { s.click(); } }
    else { return; }
  });
})();

// Propose the browser's time zone in the signup form's time zone list (the reader can change
// it, and the server checks it). Without this script the list stays at its default (UTC).
(function () {
  "use strict";
  var select = document.querySelector("select[data-browser-time-zone]");
  if (!select || select.dataset.chosen) return;
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  if (zone && Array.prototype.some.call(select.options, function (o) { return o.value === zone; })) {
    select.value = zone;
  }
})();

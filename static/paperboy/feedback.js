// The feedback page's form, submitted for the reader once the page is in front of them.
//
// A GET of a feedback link never records anything: mail scanners and link-preview bots open
// every link of a message. A person's browser runs this and posts the form, so one click in
// the email is enough; a scanner that fetches the page (and even this file) posts nothing.
// Waiting for "visible" keeps a tab opened in the background (or a prerender) from voting
// before anyone sees it. Without JavaScript the button is there to tap.
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosubmit]");
  if (!form) {
    return;
  }
  var sent = false;
  function submitOnceVisible() {
    if (sent || document.visibilityState !== "visible") {
      return;
    }
    sent = true;
    var status = document.getElementById("feedback-status");
    if (status) {
      status.textContent = "Saving…";
    }
    if (form.requestSubmit) {
      form.requestSubmit();
    } else {
      form.submit();
    }
  }
  document.addEventListener("visibilitychange", submitOnceVisible);
  submitOnceVisible();
})();

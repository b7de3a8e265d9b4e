// The case page's report card: a report being prepared turns into its download link without a reload.
"use strict";

(function () {
  function watchReport(item) {
    const name = item.querySelector("[data-report-name]");
    const badge = item.querySelector("[data-report-badge]");
    const note = item.querySelector("[data-report-note]");
    let delay = 800;
    const poll = async () => {
      try {
        const response = await fetch(item.dataset.reportStatus, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
        if (response.status === 401 || response.redirected) {
          // The session ended: go to the sign-in page, as the rest of the portal does.
          window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname));
          return;
        }
        if (!response.ok) throw new Error("status " + response.status);
        const status = await response.json();
        if (status.finished) {
          badge.className = "state state-" + (status.download_url ? "done" : "failed");
          badge.textContent = status.status_label;
          if (status.download_url) {
            const link = document.createElement("a");
            link.href = status.download_url;
            link.textContent = name.textContent.trim();
            name.replaceChildren(link);
          } else if (status.message) {
            note.append(" · " + status.message);
          }
          item.dataset.reportFinished = "true";
          return;
        }
      } catch (error) { /* a lost connection: try again below */ }
      delay = Math.min(delay * 1.4, 5000);
      window.setTimeout(poll, delay);
    };
    window.setTimeout(poll, delay);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-report-status]").forEach(watchReport);
  });
})();

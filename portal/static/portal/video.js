// Stills from a recorded video: follow the worker until the stills are ready, count the chosen stills.
// No inline scripts (strict CSP).
"use strict";

function watchVideo(card) {
  const label = card.querySelector("[data-status-label]");
  let delay = 800;
  const poll = async () => {
    try {
      const response = await fetch(card.dataset.videoStatus, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
      if (response.status === 401) {
        window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      if (response.redirected || !response.ok) throw new Error("status " + response.status);
      const status = await response.json();
      label.textContent = status.status_label;
      if (status.finished) {
        // The stills (or the reason there are none) are drawn by the server.
        window.location.reload();
        return;
      }
    } catch (error) {
      label.textContent = "Connection lost; retrying…";
    }
    delay = Math.min(delay * 1.3, 4000);
    window.setTimeout(poll, delay);
  };
  window.setTimeout(poll, delay);
}

function setupStillForm(form) {
  const boxes = Array.from(form.querySelectorAll("input[name=still]"));
  const count = form.querySelector("[data-chosen-count]");
  const button = form.querySelector("[data-search-button]");
  const closed = button.disabled;
  const update = () => {
    const chosen = boxes.filter((box) => box.checked).length;
    count.textContent = chosen === 0 ? "Choose at least one still." : chosen + " of " + boxes.length + " chosen";
    button.disabled = closed || chosen === 0;
  };
  boxes.forEach((box) => box.addEventListener("change", update));
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  const card = document.querySelector("[data-video-status]");
  if (card && card.dataset.finished !== "true") watchVideo(card);
  document.querySelectorAll("[data-still-form]").forEach(setupStillForm);
});

// Investigative face search: small progressive enhancements. No inline scripts (strict CSP).
"use strict";

function setupDropzone(form) {
  const zone = form.querySelector("[data-dropzone]");
  const input = zone.querySelector("input[type=file]");
  const previews = zone.querySelector("[data-previews]");
  const show = () => {
    previews.replaceChildren(...Array.from(input.files).map((file) => {
      const item = document.createElement("li");
      const img = document.createElement("img");
      img.alt = "Preview of " + file.name;
      img.src = URL.createObjectURL(file);
      item.append(img, file.name);
      return item;
    }));
  };
  input.addEventListener("change", show);
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      show();
    }
  });
  keepFilesOnError(form, input);
}

// A browser empties a file input when a page comes back with errors: post the form from here instead and,
// on an error, put the answer's form in place around the same file input, so the chosen photos stay chosen.
function keepFilesOnError(form, input) {
  form.addEventListener("submit", async (event) => {
    if (form.dataset.nativeSubmit === "true") return;
    event.preventDefault();
    const submitter = event.submitter;
    const body = new FormData(form, submitter);  // before the buttons are disabled: a disabled submitter is left out
    const buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach((button) => { button.disabled = true; });
    let response;
    try {
      response = await fetch(form.action, {method: "POST", body, credentials: "same-origin", headers: {"X-Upload-Script": "1"}});
    } catch (error) {
      form.dataset.nativeSubmit = "true";
      buttons.forEach((button) => { button.disabled = false; });
      form.requestSubmit(submitter);
      return;
    }
    if (response.ok && (response.headers.get("Content-Type") || "").startsWith("application/json")) {
      window.location.assign((await response.json()).next);  // the search's page, loaded once
      return;
    }
    if (response.redirected || response.ok) {
      window.location.assign(response.url);
      return;
    }
    const answer = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = answer.querySelector("[data-upload-form]");
    if (!fresh) {
      document.open(); document.write(answer.documentElement.outerHTML); document.close();
      return;
    }
    const kept = fresh.querySelector("[data-choose-again]");
    if (kept) kept.textContent = "Nothing was searched. Your chosen photos are still selected: correct the form and search again.";
    const previews = form.querySelector("[data-previews]");
    const adopted = document.importNode(fresh, true);
    adopted.querySelector("input[type=file]").replaceWith(input);
    adopted.querySelector("[data-previews]").replaceWith(previews);
    form.replaceWith(adopted);
    setupDropzone(adopted);
    const firstError = adopted.querySelector(".form-error");
    if (firstError) firstError.scrollIntoView({block: "center"});
  });
}

// The session ended (idle timeout, lifetime, signed out elsewhere): go to the sign-in page.
function signedOut() {
  window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname));
}

function renderStages(list, stages) {
  list.replaceChildren(...stages.map((stage) => {
    const item = document.createElement("li");
    item.className = "stage stage-" + stage.state;
    item.textContent = stage.label;
    return item;
  }));
}

function setupOnlyLikely(root) {
  const toggle = root.querySelector("[data-only-likely]");
  if (!toggle) return;
  toggle.addEventListener("change", () => {
    root.querySelectorAll(".face-results").forEach((section) => section.classList.toggle("only-likely", toggle.checked));
  });
}

function watchJob(card) {
  const label = card.querySelector("[data-status-label]");
  const stages = card.querySelector("[data-stages]");
  const results = document.querySelector("[data-results]");
  // A search takes a fraction of a second: ask every 100 ms for its first 1.5 s, then less and less often
  // (never less often than every 3 s). Status requests do not count as activity for the idle timeout.
  const started = Date.now();
  let delay = 100;
  const poll = async () => {
    try {
      const response = await fetch(card.dataset.jobStatus, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
      if (response.status === 401) return signedOut();
      if (response.redirected || !response.ok) throw new Error("status " + response.status);
      const status = await response.json();
      renderStages(stages, status.stages);
      label.textContent = status.status_label;
      if (status.finished) {
        const html = await fetch(status.results_url, {credentials: "same-origin"});
        results.innerHTML = await html.text();
        setupOnlyLikely(results);
        card.dataset.finished = "true";
        return;
      }
    } catch (error) {
      label.textContent = "Connection lost; retrying…";
    }
    if (Date.now() - started > 1500) delay = Math.min(delay * 1.5, 3000);
    window.setTimeout(poll, delay);
  };
  window.setTimeout(poll, delay);
}

// State badges of unfinished searches on the dashboard and case pages follow the job without a reload.
function watchBadge(badge) {
  const poll = async () => {
    try {
      const response = await fetch(badge.dataset.jobBadge, {credentials: "same-origin"});
      if (response.status === 401) return signedOut();
      if (!response.ok || response.redirected) return;
      const status = await response.json();
      badge.className = "state state-" + status.status;
      badge.textContent = status.finished ? status.status_label : status.stage_label;
      if (status.finished) return;
    } catch (error) { /* try again below */ }
    window.setTimeout(poll, 1500);
  };
  window.setTimeout(poll, 800);
}

// A batch sent one file at a time: its pace so far, and the time left at that pace (also used by nist-import.js).
function batchPace(done, total, startedAt, unit) {
  const seconds = (performance.now() - startedAt) / 1000;
  if (!done || seconds <= 0) return "";
  const rate = done / seconds;
  if (done >= total) return " · in " + Math.round(seconds) + " s (" + rate.toFixed(1) + " " + unit + "/s)";
  return " · " + rate.toFixed(1) + " " + unit + "/s, about " + Math.ceil((total - done) / rate) + " s left";
}

// Enrolment: one request per photo, so the page shows progress and each photo's outcome.
function setupEnrolment(form) {
  const box = document.querySelector("[data-enrol-progress]");
  const bar = box.querySelector("[data-enrol-bar]");
  const count = box.querySelector("[data-enrol-count]");
  const list = box.querySelector("[data-enrol-results]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("input[type=file]");
    const files = Array.from(input.files);
    if (!files.length) { count.textContent = "Choose at least one photo."; box.hidden = false; return; }
    box.hidden = false;
    list.replaceChildren();
    bar.max = files.length;
    bar.value = 0;
    count.textContent = "0 of " + files.length + " photos done";
    let enrolled = 0;
    const startedAt = performance.now();
    for (const file of files) {
      const data = new FormData(form);
      data.delete("photos");
      data.append("photos", file);
      const item = document.createElement("li");
      try {
        const response = await fetch(form.action, {method: "POST", body: data, credentials: "same-origin",
                                                   headers: {"Accept": "application/json"}});
        const result = await response.json();
        if (!result.ok) {
          item.className = "enrol-skipped";
          item.textContent = file.name + ": " + Object.values(result.errors).join(" ");
        } else {
          const outcome = result.results[0];
          enrolled += outcome.ok ? 1 : 0;
          item.className = outcome.ok ? "enrol-ok" : "enrol-skipped";
          item.textContent = file.name + (outcome.ok ? ": enrolled into " + result.gallery : ": skipped — " + outcome.reason);
        }
      } catch (error) {
        item.className = "enrol-skipped";
        item.textContent = file.name + ": not sent (" + error + ")";
      }
      list.append(item);
      bar.value += 1;
      count.textContent = bar.value + " of " + files.length + " photos done, " + enrolled + " enrolled"
        + batchPace(bar.value, files.length, startedAt, "photos");
    }
    if (enrolled) {
      const refresh = document.createElement("a");
      refresh.href = window.location.pathname;
      refresh.textContent = "Show the updated galleries";
      count.append(" · ", refresh);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-enrol-form]").forEach(setupEnrolment);
  document.querySelectorAll("[data-upload-form]").forEach(setupDropzone);
  const card = document.querySelector("[data-job-status]");
  if (card && card.dataset.finished !== "true") watchJob(card);
  const results = document.querySelector("[data-results]");
  if (results) setupOnlyLikely(results);
  document.querySelectorAll("[data-job-badge]").forEach(watchBadge);
});

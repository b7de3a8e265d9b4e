// Probe preparation: wait for the faces, draw a crop by dragging, preview brightness and contrast.
"use strict";

function prepareWaitForFaces(root) {
  if (root.dataset.ready === "true") return;
  const poll = async () => {
    try {
      const response = await fetch(root.dataset.statusUrl, {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (response.redirected || response.status === 401 || response.status === 403) {
        window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      const status = await response.json();
      if (status.searched && status.url) { window.location.assign(status.url); return; }
      if (status.ready) { window.location.reload(); return; }
    } catch (error) { /* a missed poll: try again */ }
    window.setTimeout(poll, 700);
  };
  window.setTimeout(poll, 400);
}

function prepareCrop(root) {
  const stage = root.querySelector("[data-stage]");
  const image = root.querySelector("[data-stage-image]");
  const box = root.querySelector("[data-crop-box]");
  const form = root.querySelector("[data-crop-form]");
  if (!stage || !image || !box || !form) return;
  const width = Number(stage.dataset.width), height = Number(stage.dataset.height);
  const field = (name) => form.querySelector(`[data-crop=${name}]`);
  const toImage = (event) => {
    const rect = image.getBoundingClientRect();
    const x = Math.min(Math.max(event.clientX - rect.left, 0), rect.width) * width / rect.width;
    const y = Math.min(Math.max(event.clientY - rect.top, 0), rect.height) * height / rect.height;
    return [Math.round(x), Math.round(y)];
  };
  const draw = () => {
    ["x", "y", "width", "height"].forEach((name) => box.setAttribute(name, field(name).value || 0));
  };
  let start = null;
  stage.addEventListener("pointerdown", (event) => {
    start = toImage(event);
    stage.setPointerCapture(event.pointerId);
  });
  stage.addEventListener("pointermove", (event) => {
    if (!start) return;
    const [x, y] = toImage(event);
    field("x").value = Math.min(start[0], x);
    field("y").value = Math.min(start[1], y);
    field("width").value = Math.abs(x - start[0]);
    field("height").value = Math.abs(y - start[1]);
    draw();
  });
  stage.addEventListener("pointerup", () => { start = null; });
  ["x", "y", "width", "height"].forEach((name) => field(name).addEventListener("input", draw));
}

function prepareAdjust(root) {
  const form = root.querySelector("[data-adjust-form]");
  const image = root.querySelector("[data-stage-image]");
  if (!form || !image) return;
  const update = () => {
    const brightness = form.querySelector("[data-adjust=brightness]").value;
    const contrast = form.querySelector("[data-adjust=contrast]").value;
    form.querySelector("[data-adjust-value=brightness]").textContent = Number(brightness).toFixed(2);
    form.querySelector("[data-adjust-value=contrast]").textContent = Number(contrast).toFixed(2);
    // A preview only: the recorded edit is made on the server from the original.
    image.style.filter = `brightness(${brightness}) contrast(${contrast})`;
  };
  form.querySelectorAll("[data-adjust]").forEach((input) => input.addEventListener("input", update));
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.querySelector("[data-prepare]");
  if (!root) return;
  prepareWaitForFaces(root);
  prepareCrop(root);
  prepareAdjust(root);
});

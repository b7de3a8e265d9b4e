// The examiner's comparison desk (templates/search/compare.html): two full-resolution viewports zoomed and
// panned together, the landmarks overlay, the profile's other photos, the aligned pair's wipe, flicker and
// fade, and the keyboard. No inline script or style attribute (strict CSP): styles are set through the CSSOM.
"use strict";

const ZOOM_MIN = 0.5;
const ZOOM_MAX = 16;
const ZOOM_STEP = 1.25;
const PAN_STEP = 40;  // px per arrow key in a focused viewport
const FACE_MARGIN = 1.8;  // "fit to the face" shows the face box and this much around it
const FLICKER_MS = 500;
const SVG = "http://www.w3.org/2000/svg";

function parseJSON(text, fallback) {
  try { return JSON.parse(text); } catch (error) { return fallback; }
}

// A field where keys belong to the user: text, radios, sliders, selects.
function isFormField(element) {
  return element instanceof HTMLInputElement || element instanceof HTMLTextAreaElement ||
    element instanceof HTMLSelectElement || (element instanceof HTMLElement && element.isContentEditable);
}

// One photo in its frame. The photo is laid out at its natural size inside [data-base], whose transform fits
// it (or its face) into the frame; the shared zoom and pan go on [data-layer] above it, the same in both.
class Viewport {
  constructor(figure) {
    this.frame = figure.querySelector("[data-frame]");
    this.layer = figure.querySelector("[data-layer]");
    this.base = figure.querySelector("[data-base]");
    this.img = figure.querySelector("[data-photo]");
    this.svg = figure.querySelector("[data-overlay]");
    this.box = parseJSON(figure.dataset.box, null);
    this.points = parseJSON(figure.dataset.points, []);
    this.mode = "photo";
    if (this.img) this.img.addEventListener("load", () => { this.fit(); this.drawOverlay(); });
  }

  get ready() {
    return Boolean(this.img && this.img.complete && this.img.naturalWidth > 0);
  }

  fit() {
    if (!this.ready) return;
    const width = this.img.naturalWidth;
    const height = this.img.naturalHeight;
    let [cx, cy, w, h] = [width / 2, height / 2, width, height];
    if (this.mode === "face" && Array.isArray(this.box) && this.box.length === 4) {
      const [x, y, bw, bh] = this.box;
      [cx, cy, w, h] = [x + bw / 2, y + bh / 2, bw * FACE_MARGIN, bh * FACE_MARGIN];
    }
    const frameWidth = this.frame.clientWidth;
    const frameHeight = this.frame.clientHeight;
    const scale = Math.min(frameWidth / w, frameHeight / h);
    this.base.style.width = width + "px";
    this.base.style.height = height + "px";
    this.base.style.transform =
      `translate(${frameWidth / 2 - cx * scale}px, ${frameHeight / 2 - cy * scale}px) scale(${scale})`;
    this.base.dataset.fitted = this.mode;
  }

  drawOverlay() {
    if (!this.ready || !this.svg) return;
    const width = this.img.naturalWidth;
    const height = this.img.naturalHeight;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const shapes = [];
    const size = Array.isArray(this.box) && this.box.length === 4 ? Math.max(this.box[2], this.box[3]) : width / 4;
    if (Array.isArray(this.box) && this.box.length === 4) {
      const rect = document.createElementNS(SVG, "rect");
      const [x, y, w, h] = this.box;
      Object.entries({x, y, width: w, height: h, class: "landmark-box"}).forEach(([k, v]) => rect.setAttribute(k, v));
      shapes.push(rect);
    }
    this.points.forEach((point) => {
      const circle = document.createElementNS(SVG, "circle");
      circle.setAttribute("cx", point.x);
      circle.setAttribute("cy", point.y);
      circle.setAttribute("r", Math.max(2, size * 0.025));
      circle.setAttribute("class", "landmark-point");
      const title = document.createElementNS(SVG, "title");
      title.textContent = point.label;
      circle.append(title);
      shapes.push(circle);
    });
    this.svg.replaceChildren(...shapes);
  }

  show(url, box, points) {
    this.box = box;
    this.points = points;
    this.img.src = url;  // the load listener fits it and draws its overlay
  }
}

function setupDesk(desk) {
  const viewports = Array.from(desk.querySelectorAll("[data-viewport]"), (figure) => new Viewport(figure))
    .filter((viewport) => viewport.layer);
  const level = desk.querySelector("[data-zoom-level]");
  const view = {zoom: 1, x: 0, y: 0};

  const apply = () => {
    const transform = `translate(${view.x}px, ${view.y}px) scale(${view.zoom})`;
    viewports.forEach((viewport) => { viewport.layer.style.transform = transform; });
    level.textContent = Math.round(view.zoom * 100) + "%";
  };
  const zoomAt = (factor, px, py) => {
    const zoom = Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, view.zoom * factor));
    const k = zoom / view.zoom;
    view.x = px - (px - view.x) * k;
    view.y = py - (py - view.y) * k;
    view.zoom = zoom;
    apply();
  };
  const zoomCentre = (factor) => {
    const frame = viewports[0].frame;
    zoomAt(factor, frame.clientWidth / 2, frame.clientHeight / 2);
  };
  const pan = (dx, dy) => { view.x += dx; view.y += dy; apply(); };
  const refit = (mode) => {
    Object.assign(view, {zoom: 1, x: 0, y: 0});
    viewports.forEach((viewport) => { viewport.mode = mode; viewport.fit(); });
    apply();
  };
  const fitFace = () => refit("face");
  const reset = () => refit("photo");

  desk.querySelector("[data-zoom-in]").addEventListener("click", () => zoomCentre(ZOOM_STEP));
  desk.querySelector("[data-zoom-out]").addEventListener("click", () => zoomCentre(1 / ZOOM_STEP));
  desk.querySelector("[data-fit-face]").addEventListener("click", fitFace);
  desk.querySelector("[data-reset]").addEventListener("click", reset);

  viewports.forEach((viewport) => {
    const frame = viewport.frame;
    frame.addEventListener("wheel", (event) => {
      event.preventDefault();
      const rect = frame.getBoundingClientRect();
      const unit = event.deltaMode === 1 ? 16 : 1;  // lines or pixels
      zoomAt(Math.exp(-event.deltaY * unit * 0.0015), event.clientX - rect.left, event.clientY - rect.top);
    }, {passive: false});
    let last = null;
    frame.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      frame.setPointerCapture(event.pointerId);
      frame.classList.add("dragging");
      last = {x: event.clientX, y: event.clientY, id: event.pointerId};
    });
    frame.addEventListener("pointermove", (event) => {
      if (!last || event.pointerId !== last.id) return;
      pan(event.clientX - last.x, event.clientY - last.y);
      last = {x: event.clientX, y: event.clientY, id: event.pointerId};
    });
    const end = (event) => {
      if (!last || event.pointerId !== last.id) return;
      last = null;
      frame.classList.remove("dragging");
    };
    frame.addEventListener("pointerup", end);
    frame.addEventListener("pointercancel", end);
    frame.addEventListener("keydown", (event) => {
      const moves = {ArrowLeft: [PAN_STEP, 0], ArrowRight: [-PAN_STEP, 0], ArrowUp: [0, PAN_STEP], ArrowDown: [0, -PAN_STEP]};
      if (moves[event.key]) pan(...moves[event.key]);
      else if (event.key === "f" || event.key === "F") fitFace();
      else if (event.key === "0") reset();
      else return;  // + and − are handled for the whole page below
      event.preventDefault();
      event.stopPropagation();  // arrow keys pan here; they do not change the candidate
    });
    if (window.ResizeObserver) new ResizeObserver(() => viewport.fit()).observe(frame);
  });

  const overlays = desk.querySelectorAll("[data-overlay]");
  const landmarks = desk.querySelector("[data-landmarks-toggle]");
  // An <svg> has no `hidden` property (it is no HTMLElement): the attribute is set itself.
  landmarks.addEventListener("change", () => overlays.forEach((svg) => svg.toggleAttribute("hidden", !landmarks.checked)));

  // The profile's other photos: each replaces the candidate's photo in its viewport and in the aligned pair.
  const candidate = viewports.find((viewport) => viewport.frame.closest("[data-viewport=candidate]"));
  const caption = desk.querySelector("[data-photo-caption]");
  const choices = desk.querySelectorAll("[data-photo-choice]");
  choices.forEach((choice) => choice.addEventListener("click", () => {
    choices.forEach((other) => other.setAttribute("aria-pressed", String(other === choice)));
    candidate.show(choice.dataset.url, parseJSON(choice.dataset.box, null), parseJSON(choice.dataset.points, []));
    document.querySelectorAll("[data-candidate-crop]").forEach((img) => { img.src = choice.dataset.cropUrl; });
    caption.textContent = choice.dataset.caption;
    Object.assign(view, {zoom: 1, x: 0, y: 0});
    apply();
  }));

  viewports.forEach((viewport) => { viewport.fit(); viewport.drawOverlay(); });
  apply();
  return {zoomIn: () => zoomCentre(ZOOM_STEP), zoomOut: () => zoomCentre(1 / ZOOM_STEP), fitFace, reset};
}

function setupAligned(section) {
  const fadeSlider = section.querySelector("[data-fade-slider]");
  const fadeTop = section.querySelector("[data-fade-top]");
  const fade = () => { fadeTop.style.opacity = String(fadeSlider.value / 100); };
  fadeSlider.addEventListener("input", fade);
  fade();

  // The wipe: the probe left of the line, the candidate right of it; the slider moves the line from the
  // right edge (all probe, 0) to the left edge (all candidate, 100), as the fade goes from probe to candidate.
  const wipeSlider = section.querySelector("[data-wipe-slider]");
  const wipeTop = section.querySelector("[data-wipe-top]");
  const wipeLine = section.querySelector("[data-wipe-line]");
  const wipe = () => {
    const edge = 100 - Number(wipeSlider.value);
    wipeTop.style.clipPath = `inset(0 0 0 ${edge}%)`;
    wipeLine.style.left = edge + "%";
  };
  wipeSlider.addEventListener("input", wipe);
  wipe();

  // The flicker: probe and candidate alternate every half second; paused from the start for those who ask
  // for reduced motion.
  const flickerTop = section.querySelector("[data-flicker-top]");
  const flickerLabel = section.querySelector("[data-flicker-label]");
  const toggle = section.querySelector("[data-flicker-toggle]");
  let timer = null;
  const swap = () => {
    flickerTop.classList.toggle("off");
    flickerLabel.textContent = flickerTop.classList.contains("off") ? "Probe" : "Candidate";
  };
  const play = (on) => {
    window.clearInterval(timer);
    timer = on ? window.setInterval(swap, FLICKER_MS) : null;
    toggle.setAttribute("aria-pressed", String(on));
    toggle.textContent = on ? "Pause" : "Flicker";
  };
  flickerTop.classList.add("off");
  toggle.addEventListener("click", () => play(timer === null));
  section.querySelector("[data-flicker-step]").addEventListener("click", () => { play(false); swap(); });
  play(!window.matchMedia("(prefers-reduced-motion: reduce)").matches);
}

function setupKeys(section, desk) {
  const form = document.querySelector("[data-record-form]");
  let editing = false;  // a record being filled in is not thrown away by a stray arrow key
  if (form) form.addEventListener("input", () => { editing = true; });
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || isFormField(event.target)) return;
    if (desk && (event.key === "+" || event.key === "=")) desk.zoomIn();
    else if (desk && (event.key === "-" || event.key === "−")) desk.zoomOut();
    else if (editing) return;
    else if (event.key === "ArrowRight" && section.dataset.next) window.location.assign(section.dataset.next);
    else if (event.key === "ArrowLeft" && section.dataset.previous) window.location.assign(section.dataset.previous);
    else if (event.key === "Escape") window.location.assign(section.dataset.backUrl);
    else return;
    event.preventDefault();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const section = document.querySelector("[data-compare]");
  if (!section) return;
  const deskElement = section.querySelector("[data-desk]");
  const desk = deskElement ? setupDesk(deskElement) : null;
  const aligned = section.querySelector("[data-aligned]");
  if (aligned) setupAligned(aligned);
  setupKeys(section, desk);
});

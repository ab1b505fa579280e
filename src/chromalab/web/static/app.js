// chromalab page: pick or drop a photo, upload it ONCE to /api/images, then recolour it with
// /api/images/{id}/colorize after every edit (colour points, vividness, model) and show
// gray | colorized | original. No build step, no dependencies.
// body[data-state] is idle | busy | done | error and body[data-renders] counts the results shown
// (tests and benchmarks wait on them).
"use strict";

const $ = (id) => document.getElementById(id);
const els = {
  drop: $("drop"), file: $("file"), model: $("model"), modelSummary: $("model-summary"),
  download: $("download"), status: $("status"), error: $("error"), limits: $("limits"),
  compareSection: $("compare-section"), compare: $("compare"), base: $("compare-base"), top: $("compare-top"),
  line: $("compare-line"), leftTag: $("compare-left-tag"), slider: $("slider"),
  panels: $("panels"), gray: $("gray"), result: $("result"), original: $("original"), resultInfo: $("result-info"),
  bwNote: $("bw-note"),
  editor: $("editor-section"), stage: $("stage"), editImg: $("edit-img"), points: $("points"),
  vividField: $("vivid-field"), vividness: $("vividness"), vividnessValue: $("vividness-value"),
  vividnessDefault: $("vividness-default"),
  hintsOff: $("hints-off"), hintList: $("hint-list"), hintCount: $("hint-count"),
  addHint: $("add-hint"), resetHints: $("reset-hints"), exportHints: $("export-hints"),
  importHints: $("import-hints"),
};

// Edits are debounced lightly: the first edit after a quiet spell goes out at once (in a microtask, so that
// the changes of one event go together); while a request is on its way, further edits are merged into the
// one request that follows it (a drag or the colour picker fire many events).
// On the server's own machine bytes are free: previews come as uncompressed PNGs (sooner on screen);
// Download then asks for the compressed PNG of the same settings.
const SAME_MACHINE = ["localhost", "127.0.0.1", "[::1]", "::1"].includes(location.hostname);
const DRAG_THRESHOLD_PX = 3;

const state = {
  limits: { max_upload_bytes: 20 * 1024 * 1024, max_pixels: 25000000, max_hints: 512 },
  summaries: {},
  models: {},          // name -> {controls, takes_hints, vividness} once known
  file: null,          // the File being shown
  image: null,         // the upload kept on the server: {id, width, height, label}
  model: { controls: false, takes_hints: false, vividness: null },  // the picked model's controls
  hints: [],           // colour points [{x, y, color}], image pixels, color "#rrggbb"
  selected: -1,        // index of the selected point
  drag: null,          // {i, pointerId, x0, y0, moved}
  urls: { original: null, gray: null, result: null },
  originalOk: false,   // the browser could decode the original itself
  bw: false,           // the server says the upload is already black and white
  seq: 0,              // photo counter: answers for an older photo are dropped
  abort: null,
  inflight: false,     // a recolour request is on its way (at most one at a time)
  pending: false,      // an edit not sent yet: goes out now, or when the request in flight answers
  renders: 0,
  shownOnce: false,    // the current photo has a result on show
  shownBody: null,     // the settings of the result on show (for Download)
};

const MB = 1024 * 1024;
const fmtMB = (n) => (n / MB).toFixed(1).replace(/\.0$/, "") + " MB";

function setState(s) { document.body.dataset.state = s; }
function setStatus(text) { els.status.textContent = text || ""; }

// title in bold, then the detail; keep=true leaves the results on show (an edit the server refused)
function showError(title, detail, keep = false) {
  els.error.replaceChildren();
  const t = document.createElement("strong");
  t.textContent = title;
  els.error.append(t);
  if (detail) els.error.append(document.createTextNode(detail));
  els.error.hidden = false;
  setStatus("");
  setState("error");
  if (!keep) hideResults();
}
function clearError() { els.error.hidden = true; els.error.replaceChildren(); }

function hideResults() {
  els.download.setAttribute("aria-disabled", "true");
  els.panels.hidden = true;
  els.compareSection.hidden = true;
  els.editor.hidden = true;
  state.shownOnce = false;
}

function setUrl(kind, url) {
  if (state.urls[kind]) URL.revokeObjectURL(state.urls[kind]);
  state.urls[kind] = url;
}

async function errorDetail(r) {
  try {
    const d = (await r.json()).detail;
    return typeof d === "string" ? d : JSON.stringify(d);
  } catch { return r.statusText; }
}

// ---- models -------------------------------------------------------------------------------
async function loadModels() {
  try {
    const r = await fetch("/api/models");
    if (!r.ok) throw new Error("HTTP " + r.status);
    const info = await r.json();
    state.limits = { max_upload_bytes: info.max_upload_bytes, max_pixels: info.max_pixels,
                     max_hints: info.max_hints || 512 };
    els.model.replaceChildren();
    for (const m of info.models) {
      const o = document.createElement("option");
      o.value = m.name;
      // each name once: "default" needs no "(default)" after it
      o.textContent = m.default && m.name !== "default" ? `${m.name} (default)` : m.name;
      o.selected = m.default;
      state.summaries[m.name] = m.summary;
      if (m.loaded) state.models[m.name] = controlsOf(m);
      els.model.append(o);
    }
    els.modelSummary.textContent = state.summaries[els.model.value] || "";
    const mp = (info.max_pixels / 1e6).toFixed(0);
    els.limits.textContent = `JPEG, PNG, WebP, BMP, GIF or TIFF · up to ${fmtMB(info.max_upload_bytes)} and ${mp} megapixels`;
  } catch (e) {
    showError("Could not reach the server.", " The model list did not load (" + e.message + "). Is `chromalab serve` still running?");
  }
}

function controlsOf(m) {
  return { controls: !!m.controls, takes_hints: !!m.takes_hints,
           vividness: typeof m.vividness === "number" ? m.vividness : null };
}

async function modelControls(name) {
  if (state.models[name]) return state.models[name];
  const r = await fetch("/api/models/" + encodeURIComponent(name));
  if (!r.ok) throw new Error(await errorDetail(r));
  return (state.models[name] = controlsOf(await r.json()));
}

// show the vividness slider (at the model's default) and the colour points for what this model takes
function applyControls(c) {
  state.model = c;
  els.vividField.hidden = !c.controls;
  if (c.controls) setVividness(c.vividness ?? 0.5);
  els.hintsOff.hidden = c.takes_hints;
  els.addHint.disabled = !c.takes_hints;
  els.stage.classList.toggle("no-hints", !c.takes_hints);
  els.editImg.alt = c.takes_hints ? "Colorized result. Click on it to add a colour point there."
    : "Colorized result";
}

function setVividness(v) {
  els.vividness.value = String(v);
  showVividness();
}
function showVividness() {
  const v = Number(els.vividness.value);
  const dflt = state.model.vividness;
  els.vividnessValue.textContent = v.toFixed(2) + (dflt !== null && Math.abs(v - dflt) < 1e-9 ? " (default)" : "");
  els.vividnessDefault.disabled = dflt === null || Math.abs(v - dflt) < 1e-9;
}

// ---- grayscale: the photo's CIELAB lightness with a = b = 0, i.e. sRGB of its relative luminance Y ----
const toLinear = new Float32Array(256);
for (let i = 0; i < 256; i++) {
  const c = i / 255;
  toLinear[i] = c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
}
const GRAY_LUT = 4096;
const toSrgb = new Uint8ClampedArray(GRAY_LUT + 1);
for (let i = 0; i <= GRAY_LUT; i++) {
  const y = i / GRAY_LUT;
  toSrgb[i] = Math.round(255 * (y <= 0.0031308 ? 12.92 * y : 1.055 * Math.pow(y, 1 / 2.4) - 0.055));
}

function grayFrom(img, maxSide = 2048) {
  const w0 = img.naturalWidth, h0 = img.naturalHeight;
  const s = Math.min(1, maxSide / Math.max(w0, h0));
  const w = Math.max(1, Math.round(w0 * s)), h = Math.max(1, Math.round(h0 * s));
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const ctx = c.getContext("2d");
  ctx.fillStyle = "#fff";  // transparent areas show as white, as in most viewers
  ctx.fillRect(0, 0, w, h);
  ctx.drawImage(img, 0, 0, w, h);
  const d = ctx.getImageData(0, 0, w, h);
  const p = d.data;
  for (let i = 0; i < p.length; i += 4) {
    const y = 0.2126729 * toLinear[p[i]] + 0.7151522 * toLinear[p[i + 1]] + 0.0721750 * toLinear[p[i + 2]];
    const v = toSrgb[Math.min(GRAY_LUT, Math.round(y * GRAY_LUT))];
    p[i] = p[i + 1] = p[i + 2] = v;
  }
  ctx.putImageData(d, 0, 0);
  return new Promise((resolve) => c.toBlob((b) => resolve(URL.createObjectURL(b)), "image/png"));
}

function loadImg(imgEl, url) {
  imgEl.src = url;
  return imgEl.decode().then(() => true, () => false);
}

// ---- layout of the compare view and the editor ---------------------------------------------------
function fitBox(img, container, maxFrac = 0.6, maxW = 900) {
  const w = Math.min(container.clientWidth || window.innerWidth, maxW);
  const h = Math.max(240, window.innerHeight * maxFrac);
  const s = Math.min(w / img.naturalWidth, h / img.naturalHeight);
  return [Math.round(img.naturalWidth * s), Math.round(img.naturalHeight * s)];
}

function layoutCompare() {
  const img = els.top;
  if (!img.naturalWidth) return;
  const [w, h] = fitBox(img, els.compareSection);
  els.compare.style.width = w + "px";
  els.compare.style.height = h + "px";
  els.slider.parentElement.style.maxWidth = Math.max(240, w) + "px";
}

function layoutEditor() {
  const img = els.editImg;
  if (!img.naturalWidth) return;
  const [w, h] = fitBox(img, els.stage.parentElement, 0.7, 820);
  els.stage.style.width = w + "px";
  els.stage.style.height = h + "px";
}
function layout() { layoutCompare(); layoutEditor(); }

function setSplit(pct) {
  pct = Math.max(0, Math.min(100, pct));
  els.top.style.clipPath = `inset(0 0 0 ${pct}%)`;
  els.line.style.left = pct + "%";
  if (String(els.slider.value) !== String(pct)) els.slider.value = pct;
}

function setAgainst(which) {
  const useOriginal = which === "original" && state.originalOk && !state.bw;
  els.base.src = useOriginal ? state.urls.original : state.urls.gray;
  els.base.alt = useOriginal ? "Original (left of the slider)" : "Grayscale input (left of the slider)";
  els.leftTag.textContent = useOriginal ? "original" : "gray";
}

// ---- upload once ---------------------------------------------------------------------------------
function messageFor(status, detail, retryAfter, edit = false) {
  switch (status) {
    case 413: return ["Too large.", " " + detail];
    case 415: return ["That file is not an image.", " " + detail];
    case 422: return edit ? ["These colour points or this vividness could not be used.", " " + detail]
      : ["This image could not be read; it may be damaged or cut short.", " " + detail];
    case 503: return ["The server is busy.", ` Try again in ${retryAfter || "a few"} seconds.`];
    case 400: return ["The request was not understood.", " " + detail];
    default: return [`Something went wrong on the server (HTTP ${status}).`, detail ? " " + detail : ""];
  }
}

// POST the photo to /api/images; returns the server's answer, or null after showing the error
async function sendPhoto(seq) {
  const file = state.file;
  const form = new FormData();
  form.append("file", file, file.name || "image");
  if (els.model.value) form.append("model", els.model.value);
  let r;
  try {
    r = await fetch("/api/images", { method: "POST", body: form, signal: state.abort.signal });
  } catch (e) {
    if (e.name === "AbortError" || seq !== state.seq) return null;
    showError("Could not reach the server.", " The upload did not get an answer. Is `chromalab serve` still running?");
    return null;
  }
  if (seq !== state.seq) return null;
  if (!r.ok) {
    const [title, more] = messageFor(r.status, await errorDetail(r), r.headers.get("Retry-After"));
    if (seq === state.seq) showError(title, more);
    return null;
  }
  const info = await r.json();
  if (seq !== state.seq) return null;
  state.image = { id: info.id, width: info.width, height: info.height, label: file.name || "image" };
  state.models[els.model.value] = controlsOf(info);
  return info;
}

function forgetOnServer(image) {
  if (image) fetch("/api/images/" + encodeURIComponent(image.id), { method: "DELETE" }).catch(() => {});
}

async function upload() {
  if (!state.file) return;
  const seq = state.seq;
  clearError();
  setState("busy");
  setStatus(`Sending ${state.file.name || "the image"}…`);
  const info = await sendPhoto(seq);
  if (!info) return;
  applyControls(controlsOf(info));
  showBlackAndWhite(info.grayscale);
  state.hints = [];
  state.selected = -1;
  renderPoints();
  requestRecolour();
}

// ---- recolour after every edit, without uploading again -----------------------------------------
// At most one request is on its way; edits made meanwhile are merged into the next one.
function requestRecolour() {
  setState("busy");  // "done" only once the result of the latest edit is on show
  if (state.pending) return;  // already on its way, or queued behind the request in flight
  state.pending = true;
  if (!state.inflight) queueMicrotask(pump);
}

async function pump() {
  if (state.inflight) return;  // the answer on its way sends the pending edit
  state.inflight = true;
  try {
    while (state.pending) {
      state.pending = false;
      if (!state.image) break;  // a new photo is on its way: its upload asks again
      await recolourOnce();
    }
  } finally {
    state.inflight = false;
  }
}

function requestBody() {
  const body = { model: els.model.value };
  if (state.model.controls) body.vividness = Number(els.vividness.value);
  if (state.model.takes_hints && state.hints.length) {
    body.hints = state.hints.map((h) => ({ x: h.x, y: h.y, color: h.color }));
  }
  return body;
}

function recolourUrl() { return `/api/images/${encodeURIComponent(state.image.id)}/colorize`; }

async function recolourOnce() {
  const seq = state.seq;
  setState("busy");
  setStatus(`Colorizing with ${els.model.value}…`);
  const t0 = performance.now();
  let r;
  const body = requestBody();
  const sent = SAME_MACHINE ? { ...body, png_level: 0 } : body;
  for (let attempt = 0; ; attempt++) {
    try {
      r = await fetch(recolourUrl(), {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(sent), signal: state.abort.signal,
      });
    } catch (e) {
      if (e.name === "AbortError" || seq !== state.seq) return;
      showError("Could not reach the server.", " Is `chromalab serve` still running?", state.shownOnce);
      return;
    }
    if (seq !== state.seq) return;
    if (r.status !== 404 || attempt > 0) break;
    // the server dropped the photo (unused for long, or to make room): send it once more
    setStatus("The server had let go of the photo; sending it again…");
    if (!(await sendPhoto(seq))) return;
  }
  if (!r.ok) {
    const [title, more] = messageFor(r.status, await errorDetail(r), r.headers.get("Retry-After"), true);
    showError(title, more, state.shownOnce);
    return;
  }
  const blob = await r.blob();
  if (seq !== state.seq) return;
  await showResult(blob, r, t0, body);
}

async function showResult(blob, r, t0, body) {
  const seq = state.seq;
  const url = URL.createObjectURL(blob);
  const ok = await loadImg(els.editImg, url);
  if (seq !== state.seq) { URL.revokeObjectURL(url); return; }
  if (!ok) { showError("The result could not be shown.", " The server answered with an image this browser cannot display."); return; }
  setUrl("result", url);
  els.result.src = url;
  els.top.src = url;
  const first = !state.shownOnce;
  if (first && !state.originalOk) {  // the browser cannot show this format: derive the gray view from the result's lightness
    setUrl("gray", await grayFrom(els.editImg));
    els.gray.src = state.urls.gray;
  }
  if (first) setAgainst(document.querySelector('input[name="against"]:checked').value);
  const secs = ((performance.now() - t0) / 1000).toFixed(2).replace(/0$/, "");
  els.resultInfo.textContent = `(${els.editImg.naturalWidth}×${els.editImg.naturalHeight}, ${r.headers.get("X-Chromalab-Model") || els.model.value}, ${secs} s)`;
  state.shownBody = body;
  els.download.href = url;
  els.download.download = downloadName(r, state.file);
  els.download.setAttribute("aria-disabled", "false");
  // tiny images (e.g. 64x64) are shown with square pixels rather than blurred when enlarged
  document.body.classList.toggle("small-image", Math.max(els.editImg.naturalWidth, els.editImg.naturalHeight) <= 256);
  els.panels.hidden = false;
  els.compareSection.hidden = false;
  els.editor.hidden = false;
  state.shownOnce = true;
  if (first) layout();
  clearError();
  const pts = state.model.takes_hints && state.hints.length ? `, ${state.hints.length} colour point${state.hints.length > 1 ? "s" : ""}` : "";
  setStatus(`Done in ${secs} s${pts}. ${state.model.takes_hints ? "Click the photo to add a colour point, or" : "Drag the slider to compare, or"} download the PNG.`);
  state.renders += 1;
  document.body.dataset.renders = String(state.renders);
  if (!state.pending) setState("done");
}

// an upload that is already black and white: its "original" is the gray input, so say so instead
function showBlackAndWhite(bw) {
  state.bw = bw;
  els.original.hidden = bw;
  els.bwNote.hidden = !bw;
  const radio = document.querySelector('input[name="against"][value="original"]');
  radio.disabled = bw || !state.originalOk;
  if (radio.disabled && radio.checked) document.querySelector('input[name="against"][value="gray"]').checked = true;
}

function downloadName(r, file) {
  const cd = r.headers.get("Content-Disposition") || "";
  const full = /filename\*=UTF-8''([^;]+)/i.exec(cd);
  if (full) { try { return decodeURIComponent(full[1]); } catch { /* fall back to the plain name */ } }
  const m = /filename="([^"]+)"/.exec(cd);
  if (m) return m[1];
  return stemOf(file) + "-colorized.png";
}
function stemOf(file) { return ((file && file.name) || "image").replace(/\.[^.]*$/, ""); }

async function useFile(file) {
  if (!file) return;
  state.file = file;
  state.seq++;  // an answer still on its way for the previous file is dropped
  if (state.abort) state.abort.abort();
  state.abort = new AbortController();
  state.pending = false;
  forgetOnServer(state.image);
  state.image = null;
  clearError();
  hideResults();
  showBlackAndWhite(false);
  if (file.size > state.limits.max_upload_bytes) {
    state.file = null;
    showError("Too large.", ` ${file.name} is ${fmtMB(file.size)}; the limit is ${fmtMB(state.limits.max_upload_bytes)}. Try a smaller or more compressed copy.`);
    return;
  }
  const seq = state.seq;
  setState("busy");
  setStatus(`Opening ${file.name || "the image"}…`);
  setUrl("original", URL.createObjectURL(file));
  state.originalOk = await loadImg(els.original, state.urls.original);
  if (seq !== state.seq) return;
  const radio = document.querySelector('input[name="against"][value="original"]');
  radio.disabled = !state.originalOk;
  if (state.originalOk) {
    setUrl("gray", await grayFrom(els.original));
    els.gray.src = state.urls.gray;
  } else {
    els.original.alt = "This browser cannot display the original's format";
    document.querySelector('input[name="against"][value="gray"]').checked = true;
  }
  if (seq !== state.seq) return;
  await upload();
}

// ---- colour points -------------------------------------------------------------------------------
const round1 = (v) => Math.round(v * 10) / 10;

// a pointer event -> image pixels (x right, y down; 0 <= x < width), from the shown size of the result
function imagePoint(e) {
  const box = els.editImg.getBoundingClientRect();
  const { width: W, height: H } = state.image;
  const x = round1(((e.clientX - box.left) / box.width) * W);
  const y = round1(((e.clientY - box.top) / box.height) * H);
  return { x: Math.min(Math.max(x, 0), W - 0.1), y: Math.min(Math.max(y, 0), H - 0.1) };
}

const hex2 = (n) => n.toString(16).padStart(2, "0");

// the colour of the current result at image pixel (x, y), as #rrggbb
function resultColourAt(x, y) {
  const c = document.createElement("canvas");
  c.width = 1; c.height = 1;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(els.editImg, Math.floor(x), Math.floor(y), 1, 1, 0, 0, 1, 1);
  const d = ctx.getImageData(0, 0, 1, 1).data;
  return "#" + hex2(d[0]) + hex2(d[1]) + hex2(d[2]);
}

// a colour as a hint file may give it (#rrggbb, #rgb, a CSS name, rgb(...), [r, g, b]) -> #rrggbb, or null
const colourCtx = document.createElement("canvas").getContext("2d");
function normaliseColour(c) {
  if (Array.isArray(c)) {
    if (c.length !== 3 || !c.every((v) => typeof v === "number" && v >= 0 && v <= 255)) return null;
    return "#" + c.map((v) => hex2(Math.round(v))).join("");
  }
  if (typeof c !== "string" || !c.trim()) return null;
  for (const probe of ["#000000", "#ffffff"]) {  // a string the canvas does not take leaves the probe
    colourCtx.fillStyle = probe;
    colourCtx.fillStyle = c.trim();
    if (colourCtx.fillStyle === probe && c.trim().toLowerCase() !== probe) return null;
  }
  const v = colourCtx.fillStyle;
  if (v.startsWith("#")) return v;
  const m = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(v);
  return m ? "#" + [m[1], m[2], m[3]].map((s) => hex2(Number(s))).join("") : null;
}

function pointLabel(i) {
  const h = state.hints[i];
  return `Point ${i + 1} at x ${Math.round(h.x)}, y ${Math.round(h.y)}, colour ${h.color}`;
}

function placeMarker(i) {
  const m = els.points.children[i];
  const h = state.hints[i];
  if (!m || !h) return;
  m.style.left = (h.x / state.image.width) * 100 + "%";
  m.style.top = (h.y / state.image.height) * 100 + "%";
  m.style.setProperty("--c", h.color);
  m.setAttribute("aria-label", pointLabel(i) + ". Arrow keys move it; Delete removes it.");
  const row = els.hintList.children[i];
  if (row) {
    row.querySelector(".xy").textContent = `x ${Math.round(h.x)}, y ${Math.round(h.y)}`;
    const input = row.querySelector("input");
    if (input.value !== h.color) input.value = h.color;
  }
}

// rebuild the markers over the photo and the list beside it
function renderPoints() {
  els.points.replaceChildren();
  els.hintList.replaceChildren();
  state.hints.forEach((h, i) => {
    const m = document.createElement("button");
    m.type = "button";
    m.className = "pt" + (i === state.selected ? " selected" : "");
    m.dataset.i = String(i);
    m.textContent = String(i + 1);
    els.points.append(m);

    const li = document.createElement("li");
    li.dataset.i = String(i);
    li.className = i === state.selected ? "selected" : "";
    const num = document.createElement("span");
    num.className = "num";
    num.textContent = String(i + 1);
    const input = document.createElement("input");
    input.type = "color";
    input.value = h.color;
    input.setAttribute("aria-label", `Colour of point ${i + 1}`);
    const xy = document.createElement("span");
    xy.className = "xy muted";
    const del = document.createElement("button");
    del.type = "button";
    del.className = "del small";
    del.textContent = "Delete";
    del.setAttribute("aria-label", `Delete point ${i + 1}`);
    li.append(num, input, xy, del);
    els.hintList.append(li);
    placeMarker(i);
  });
  const n = state.hints.length;
  els.hintCount.textContent = n ? `${n} point${n > 1 ? "s" : ""} (at most ${state.limits.max_hints})` : "No points yet.";
  els.resetHints.disabled = n === 0;
}

function select(i) {
  state.selected = i;
  [...els.points.children].forEach((m, j) => m.classList.toggle("selected", j === i));
  [...els.hintList.children].forEach((li, j) => li.classList.toggle("selected", j === i));
}

function addPoint(x, y) {
  if (state.hints.length >= state.limits.max_hints) {
    setStatus(`At most ${state.limits.max_hints} colour points; delete one first.`);
    return;
  }
  state.hints.push({ x, y, color: resultColourAt(x, y) });
  const i = state.hints.length - 1;
  state.selected = i;
  renderPoints();
  const input = els.hintList.children[i].querySelector("input");
  input.focus({ preventScroll: true });  // the photo stays where it was clicked
  // open the browser's colour picker at once (it starts from the result's colour there); Escape closes it
  try { input.showPicker(); } catch { /* no picker without a user gesture, or an old browser: focus is enough */ }
  setStatus(`Point ${i + 1} added at x ${Math.round(x)}, y ${Math.round(y)}. Pick its colour.`);
  requestRecolour();
}

function deletePoint(i) {
  if (i < 0 || i >= state.hints.length) return;
  state.hints.splice(i, 1);
  state.selected = Math.min(i, state.hints.length - 1);
  renderPoints();
  const next = els.points.children[state.selected];
  if (next) next.focus(); else els.stage.focus();
  setStatus(`Point ${i + 1} deleted.`);
  requestRecolour();
}

function movePoint(i, x, y) {
  const { width: W, height: H } = state.image;
  state.hints[i].x = Math.min(Math.max(round1(x), 0), W - 0.1);
  state.hints[i].y = Math.min(Math.max(round1(y), 0), H - 0.1);
  placeMarker(i);
  requestRecolour();
}

// a hints JSON file (a list of {"x", "y", "color"}, or {"hints": [...]}) -> points, or an Error saying why not
function parseHints(text) {
  let data;
  try { data = JSON.parse(text); } catch (e) { throw new Error("not valid JSON (" + e.message + ")"); }
  if (data && !Array.isArray(data) && Array.isArray(data.hints)) data = data.hints;
  if (!Array.isArray(data)) throw new Error('expected a JSON list of {"x", "y", "color"} points');
  if (data.length > state.limits.max_hints) throw new Error(`${data.length} points is more than the limit of ${state.limits.max_hints}`);
  const { width: W, height: H } = state.image;
  return data.map((h, i) => {
    const n = i + 1;
    if (!h || typeof h !== "object" || Array.isArray(h)) throw new Error(`point ${n}: expected {"x", "y", "color"}`);
    for (const k of ["x", "y", "color"]) if (!(k in h)) throw new Error(`point ${n}: missing ${k}`);
    if (typeof h.x !== "number" || typeof h.y !== "number" || !isFinite(h.x) || !isFinite(h.y)) {
      throw new Error(`point ${n}: x and y must be numbers`);
    }
    if (h.x < 0 || h.y < 0) throw new Error(`point ${n}: negative coordinates (${h.x}, ${h.y})`);
    if (h.x >= W || h.y >= H) throw new Error(`point ${n}: (${h.x}, ${h.y}) is outside the ${W}x${H} photo`);
    const color = normaliseColour(h.color);
    if (!color) throw new Error(`point ${n}: ${JSON.stringify(h.color)} is not a colour`);
    return { x: h.x, y: h.y, color };
  });
}

function exportHints() {
  const data = state.hints.map((h) => ({ x: h.x, y: h.y, color: h.color }));
  const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2) + "\n"], { type: "application/json" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = stemOf(state.file) + "-hints.json";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  setStatus(`Exported ${data.length} point${data.length === 1 ? "" : "s"} as ${a.download}.`);
}

async function importHints(file) {
  if (!file || !state.image) return;
  let hints;
  try {
    hints = parseHints(await file.text());
  } catch (e) {
    showError(`${file.name}: these colour points could not be used.`, " " + e.message, true);
    return;
  }
  clearError();
  state.hints = hints;
  state.selected = -1;
  renderPoints();
  setStatus(`Imported ${hints.length} point${hints.length === 1 ? "" : "s"} from ${file.name}.`);
  requestRecolour();
}

// ---- wiring -------------------------------------------------------------------------------------
els.file.addEventListener("change", () => { useFile(els.file.files[0]); els.file.value = ""; });
els.model.addEventListener("change", async () => {
  els.modelSummary.textContent = state.summaries[els.model.value] || "";
  if (!state.image) { if (state.file) useFile(state.file); return; }
  const seq = state.seq;
  setState("busy");
  setStatus(`Loading ${els.model.value}…`);
  let c;
  try { c = await modelControls(els.model.value); } catch (e) {
    showError("This model could not be loaded.", " " + e.message, true);
    return;
  }
  if (seq !== state.seq) return;
  applyControls(c);
  requestRecolour();
});
els.vividness.addEventListener("input", () => { showVividness(); requestRecolour(); });
els.vividnessDefault.addEventListener("click", () => {
  if (state.model.vividness !== null) { setVividness(state.model.vividness); requestRecolour(); }
});

els.editImg.addEventListener("click", (e) => {
  if (!state.image || !state.shownOnce) return;
  if (!state.model.takes_hints) { setStatus("This model takes no colour points; pick one that does."); return; }
  const { x, y } = imagePoint(e);
  addPoint(x, y);
});
els.points.addEventListener("pointerdown", (e) => {
  const m = e.target.closest(".pt");
  if (!m) return;
  e.preventDefault();
  const i = Number(m.dataset.i);
  select(i);
  m.focus();
  m.setPointerCapture(e.pointerId);
  state.drag = { i, pointerId: e.pointerId, x0: e.clientX, y0: e.clientY, moved: false };
});
els.points.addEventListener("pointermove", (e) => {
  const d = state.drag;
  if (!d || d.pointerId !== e.pointerId) return;
  if (!d.moved && Math.hypot(e.clientX - d.x0, e.clientY - d.y0) < DRAG_THRESHOLD_PX) return;
  d.moved = true;
  const p = imagePoint(e);
  movePoint(d.i, p.x, p.y);
});
function endDrag(e) {
  const d = state.drag;
  if (!d || d.pointerId !== e.pointerId) return;
  state.drag = null;
  if (d.moved && e.type === "pointerup") {  // where it was let go (moves can be merged per frame)
    const p = imagePoint(e);
    movePoint(d.i, p.x, p.y);
  }
  if (d.moved) setStatus(`Point ${d.i + 1} moved to x ${Math.round(state.hints[d.i].x)}, y ${Math.round(state.hints[d.i].y)}.`);
}
els.points.addEventListener("pointerup", endDrag);
els.points.addEventListener("pointercancel", endDrag);
els.points.addEventListener("focusin", (e) => {
  const m = e.target.closest(".pt");
  if (m) select(Number(m.dataset.i));
});
els.points.addEventListener("keydown", (e) => {
  const m = e.target.closest(".pt");
  if (!m) return;
  const i = Number(m.dataset.i);
  const step = e.shiftKey ? 10 : 1;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (e.key === "Delete" || e.key === "Backspace") {
    e.preventDefault();
    deletePoint(i);
  } else if (moves[e.key]) {
    e.preventDefault();
    const h = state.hints[i];
    movePoint(i, h.x + moves[e.key][0], h.y + moves[e.key][1]);
  } else if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    els.hintList.children[i].querySelector("input").focus();
  }
});
els.hintList.addEventListener("input", (e) => {
  const li = e.target.closest("li");
  if (!li || e.target.type !== "color") return;
  const i = Number(li.dataset.i);
  state.hints[i].color = e.target.value.toLowerCase();
  placeMarker(i);
  requestRecolour();
});
els.hintList.addEventListener("focusin", (e) => {
  const li = e.target.closest("li");
  if (li) select(Number(li.dataset.i));
});
els.hintList.addEventListener("click", (e) => {
  const del = e.target.closest(".del");
  if (del) deletePoint(Number(del.closest("li").dataset.i));
});
els.hintList.addEventListener("keydown", (e) => {
  if ((e.key === "Delete") && e.target.type === "color") {
    e.preventDefault();
    deletePoint(Number(e.target.closest("li").dataset.i));
  }
});
els.resetHints.addEventListener("click", () => {
  if (!state.hints.length) return;
  state.hints = [];
  state.selected = -1;
  renderPoints();
  setStatus("All colour points removed.");
  requestRecolour();
});
els.addHint.addEventListener("click", () => {  // for the keyboard: a point in the middle, then arrow keys
  if (!state.image || !state.shownOnce || !state.model.takes_hints) return;
  addPoint(round1(state.image.width / 2), round1(state.image.height / 2));
});
els.exportHints.addEventListener("click", exportHints);
els.download.addEventListener("click", async (e) => {
  if (!SAME_MACHINE || !state.image || !state.shownBody) return;  // the preview is already the compressed PNG
  e.preventDefault();
  if (els.download.getAttribute("aria-disabled") === "true") return;
  els.download.setAttribute("aria-disabled", "true");
  try {
    const r = await fetch(recolourUrl(), { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify(state.shownBody) });
    if (!r.ok) throw new Error(await errorDetail(r));
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = els.download.download;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    showError("The PNG could not be saved.", " " + err.message, true);
  } finally {
    els.download.setAttribute("aria-disabled", "false");
  }
});
els.importHints.addEventListener("change", () => { importHints(els.importHints.files[0]); els.importHints.value = ""; });

els.slider.addEventListener("input", () => setSplit(parseFloat(els.slider.value)));
for (const r of document.querySelectorAll('input[name="against"]')) {
  r.addEventListener("change", () => setAgainst(r.value));
}
function splitFromPointer(e) {
  const box = els.compare.getBoundingClientRect();
  setSplit(((e.clientX - box.left) / box.width) * 100);
}
els.compare.addEventListener("pointerdown", (e) => { els.compare.setPointerCapture(e.pointerId); splitFromPointer(e); });
els.compare.addEventListener("pointermove", (e) => { if (els.compare.hasPointerCapture(e.pointerId)) splitFromPointer(e); });

for (const ev of ["dragenter", "dragover"]) {
  document.addEventListener(ev, (e) => { e.preventDefault(); els.drop.classList.add("over"); });
}
for (const ev of ["dragleave", "drop"]) {
  document.addEventListener(ev, (e) => { e.preventDefault(); els.drop.classList.remove("over"); });
}
document.addEventListener("drop", (e) => {
  const f = e.dataTransfer && e.dataTransfer.files[0];
  if (f) useFile(f);
});
document.addEventListener("paste", (e) => {
  const f = [...(e.clipboardData ? e.clipboardData.files : [])][0];
  if (f) useFile(f);
});
window.addEventListener("resize", layout);

setSplit(50);
renderPoints();
loadModels();

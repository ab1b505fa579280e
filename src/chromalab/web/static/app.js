// chromalab page: pick or drop a photo, POST it to /api/colorize, show gray | colorized | original.
// No build step, no dependencies. body[data-state] is idle | busy | done | error (tests wait on it).
"use strict";

const $ = (id) => document.getElementById(id);
const els = {
  drop: $("drop"), file: $("file"), model: $("model"), modelSummary: $("model-summary"),
  download: $("download"), status: $("status"), error: $("error"), limits: $("limits"),
  compareSection: $("compare-section"), compare: $("compare"), base: $("compare-base"), top: $("compare-top"),
  line: $("compare-line"), leftTag: $("compare-left-tag"), slider: $("slider"),
  panels: $("panels"), gray: $("gray"), result: $("result"), original: $("original"), resultInfo: $("result-info"),
  bwNote: $("bw-note"),
};

const state = {
  limits: { max_upload_bytes: 20 * 1024 * 1024, max_pixels: 25000000 },
  summaries: {},
  file: null,          // the File being shown
  urls: { original: null, gray: null, result: null },
  originalOk: false,   // the browser could decode the original itself
  bw: false,           // the server says the upload is already black and white
  seq: 0,              // request counter: only the latest answer is shown
  abort: null,
};

const MB = 1024 * 1024;
const fmtMB = (n) => (n / MB).toFixed(1).replace(/\.0$/, "") + " MB";

function setState(s) { document.body.dataset.state = s; }
function setStatus(text) { els.status.textContent = text || ""; }

function showError(title, detail) {
  els.error.replaceChildren();
  const t = document.createElement("strong");
  t.textContent = title;
  els.error.append(t);
  if (detail) els.error.append(document.createTextNode(detail));
  els.error.hidden = false;
  setStatus("");
  setState("error");
}
function clearError() { els.error.hidden = true; els.error.replaceChildren(); }

function setUrl(kind, url) {
  if (state.urls[kind]) URL.revokeObjectURL(state.urls[kind]);
  state.urls[kind] = url;
}

// ---- models -------------------------------------------------------------------------------
async function loadModels() {
  try {
    const r = await fetch("/api/models");
    if (!r.ok) throw new Error("HTTP " + r.status);
    const info = await r.json();
    state.limits = { max_upload_bytes: info.max_upload_bytes, max_pixels: info.max_pixels };
    els.model.replaceChildren();
    for (const m of info.models) {
      const o = document.createElement("option");
      o.value = m.name;
      // each name once: "default" needs no "(default)" after it
      o.textContent = m.default && m.name !== "default" ? `${m.name} (default)` : m.name;
      o.selected = m.default;
      state.summaries[m.name] = m.summary;
      els.model.append(o);
    }
    els.modelSummary.textContent = state.summaries[els.model.value] || "";
    const mp = (info.max_pixels / 1e6).toFixed(0);
    els.limits.textContent = `JPEG, PNG, WebP, BMP, GIF or TIFF · up to ${fmtMB(info.max_upload_bytes)} and ${mp} megapixels`;
  } catch (e) {
    showError("Could not reach the server.", " The model list did not load (" + e.message + "). Is `chromalab serve` still running?");
  }
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

// ---- compare view ---------------------------------------------------------------------------
function layoutCompare() {
  const img = els.top;
  if (!img.naturalWidth) return;
  const maxW = Math.min(els.compareSection.clientWidth || window.innerWidth, 900);
  const maxH = Math.max(240, window.innerHeight * 0.6);
  const s = Math.min(maxW / img.naturalWidth, maxH / img.naturalHeight);
  els.compare.style.width = Math.round(img.naturalWidth * s) + "px";
  els.compare.style.height = Math.round(img.naturalHeight * s) + "px";
  els.slider.parentElement.style.maxWidth = Math.max(240, Math.round(img.naturalWidth * s)) + "px";
}

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

// ---- colorize -------------------------------------------------------------------------------------
function messageFor(status, detail, retryAfter) {
  switch (status) {
    case 413: return ["Too large.", " " + detail];
    case 415: return ["That file is not an image.", " " + detail];
    case 422: return ["This image could not be read; it may be damaged or cut short.", " " + detail];
    case 503: return ["The server is busy.", ` Try again in ${retryAfter || "a few"} seconds.`];
    case 400: return ["The request was not understood.", " " + detail];
    default: return [`Something went wrong on the server (HTTP ${status}).`, detail ? " " + detail : ""];
  }
}

async function colorize() {
  const file = state.file;
  if (!file) return;
  const seq = ++state.seq;
  if (state.abort) state.abort.abort();
  state.abort = new AbortController();
  clearError();
  els.download.setAttribute("aria-disabled", "true");
  setState("busy");
  setStatus(`Colorizing ${file.name || "the image"} with ${els.model.value}…`);
  const form = new FormData();
  form.append("file", file, file.name || "image");
  if (els.model.value) form.append("model", els.model.value);
  let r;
  const t0 = performance.now();
  try {
    r = await fetch("/api/colorize", { method: "POST", body: form, signal: state.abort.signal });
  } catch (e) {
    if (e.name === "AbortError" || seq !== state.seq) return;
    showError("Could not reach the server.", " The upload did not get an answer. Is `chromalab serve` still running?");
    return;
  }
  if (seq !== state.seq) return;
  if (!r.ok) {
    let detail = "";
    try { detail = (await r.json()).detail; } catch { detail = r.statusText; }
    const [title, more] = messageFor(r.status, typeof detail === "string" ? detail : JSON.stringify(detail),
      r.headers.get("Retry-After"));
    showError(title, more);
    return;
  }
  const blob = await r.blob();
  if (seq !== state.seq) return;
  setUrl("result", URL.createObjectURL(blob));
  const ok = await loadImg(els.result, state.urls.result);
  if (seq !== state.seq) return;
  if (!ok) { showError("The result could not be shown.", " The server answered with an image this browser cannot display."); return; }
  if (!state.originalOk) {  // the browser cannot show this format: derive the gray view from the result's lightness
    setUrl("gray", await grayFrom(els.result));
    els.gray.src = state.urls.gray;
  }
  showBlackAndWhite(r.headers.get("X-Input-Grayscale") === "true");
  els.top.src = state.urls.result;
  await els.top.decode().catch(() => {});
  setAgainst(document.querySelector('input[name="against"]:checked').value);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  els.resultInfo.textContent = `(${els.result.naturalWidth}×${els.result.naturalHeight}, ${r.headers.get("X-Chromalab-Model") || els.model.value}, ${secs} s)`;
  els.download.href = state.urls.result;
  els.download.download = downloadName(r, file);
  els.download.setAttribute("aria-disabled", "false");
  // tiny images (e.g. 64x64) are shown with square pixels rather than blurred when enlarged
  document.body.classList.toggle("small-image", Math.max(els.result.naturalWidth, els.result.naturalHeight) <= 256);
  els.panels.hidden = false;
  els.compareSection.hidden = false;
  layoutCompare();
  setStatus(`Done in ${secs} s. Drag the slider to compare, or download the PNG.`);
  setState("done");
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
  const stem = (file.name || "image").replace(/\.[^.]*$/, "");
  return stem + "-colorized.png";
}

async function useFile(file) {
  if (!file) return;
  state.file = file;
  state.seq++;  // an answer still on its way for the previous file is dropped
  if (state.abort) state.abort.abort();
  clearError();
  els.download.setAttribute("aria-disabled", "true");
  els.panels.hidden = true;
  els.compareSection.hidden = true;
  showBlackAndWhite(false);
  if (file.size > state.limits.max_upload_bytes) {
    state.file = null;
    showError("Too large.", ` ${file.name} is ${fmtMB(file.size)}; the limit is ${fmtMB(state.limits.max_upload_bytes)}. Try a smaller or more compressed copy.`);
    return;
  }
  setUrl("original", URL.createObjectURL(file));
  state.originalOk = await loadImg(els.original, state.urls.original);
  const radio = document.querySelector('input[name="against"][value="original"]');
  radio.disabled = !state.originalOk;
  if (state.originalOk) {
    setUrl("gray", await grayFrom(els.original));
    els.gray.src = state.urls.gray;
  } else {
    els.original.alt = "This browser cannot display the original's format";
    document.querySelector('input[name="against"][value="gray"]').checked = true;
  }
  await colorize();
}

// ---- wiring -------------------------------------------------------------------------------------
els.file.addEventListener("change", () => { useFile(els.file.files[0]); els.file.value = ""; });
els.model.addEventListener("change", () => {
  els.modelSummary.textContent = state.summaries[els.model.value] || "";
  if (state.file) colorize();
});
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
window.addEventListener("resize", layoutCompare);

setSplit(50);
loadModels();

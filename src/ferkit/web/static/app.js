// ferkit page: photo upload / drag-and-drop, live webcam, video upload. Plain JS, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { colors: {}, labels: [], modelLabels: {}, detectors: [], limits: { max_upload_mb: 20 }, tab: "photo" };

// ------------------------------------------------------------------------------------------ helpers

function showMessage(text, kind = "error") {
  const box = $("message");
  if (!text) { box.hidden = true; box.textContent = ""; return; }
  box.className = "message " + kind;
  box.textContent = text;
  box.hidden = false;
}

function colorFor(label) { return labelColor(label, state.colors); }

const NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
  "twelve"];

// The chosen model's labels, in its output order: from /api/v1/models, else from the last answer's probabilities.
function modelLabels(model = $("model").value) { return state.modelLabels[model] || state.labels; }

function showModelLabels(labels = modelLabels()) {
  const n = labels.length;
  $("model-labels").textContent = `${NUMBER_WORDS[n] || n} expression${n === 1 ? "" : "s"}: ${labels.join(", ")}`;
}

// The bars' order, the same for every face: the model's labels, then any other the answer carries.
function labelOrder(faces, model) {
  const seen = faces.length ? Object.keys(faces[0].probabilities) : [];
  const known = modelLabels(model).filter((label) => seen.includes(label));
  return known.concat(seen.filter((label) => !known.includes(label)));
}

function choiceQuery(extra = "") {
  const params = new URLSearchParams();
  if ($("model").value) params.set("model", $("model").value);
  if ($("detector").value) params.set("detector", $("detector").value);
  return "?" + params.toString() + extra;
}

// The server's JSON error ({error, detail}) or a plain description of what went wrong.
async function errorText(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (e) { /* not JSON */ }
  if (response.status === 413) return detail || `The file is too large (limit ${state.limits.max_upload_mb} MB).`;
  if (response.status === 415) return detail || "That file is not an image.";
  if (response.status === 422) return detail || "The file could not be read.";
  if (response.status === 503) return "The server is busy; try again in a moment.";
  if (response.status >= 500) return "Server error" + (detail ? ": " + detail : "") + ". Try again, or another file.";
  return detail || `Request failed (HTTP ${response.status}).`;
}

function tooLarge(file) {
  return file.size > state.limits.max_upload_mb * 1024 * 1024;
}

function pct(p) { return (100 * p).toFixed(1) + "%"; }

// One card per face: its number (the one on its box), its label and a bar per label in `order`, the largest
// highlighted. Hovering or focusing the card highlights its box.
function faceCard(face, index, order) {
  const number = face.face || index + 1;
  const card = document.createElement("div");
  card.className = "face-card";
  card.tabIndex = 0;
  card.dataset.face = number;
  card.dataset.emotion = face.emotion;
  const title = document.createElement("h3");
  const tag = document.createElement("span");
  tag.className = "face-num";
  tag.textContent = number;
  tag.style.borderColor = colorFor(face.emotion);
  title.append(tag, `Face ${number}: `);
  const name = document.createElement("span");
  name.className = "emotion";
  name.textContent = face.emotion;
  title.append(name, ` (${pct(face.score)})`);
  card.append(title);
  const labels = order || Object.keys(face.probabilities);
  for (const label of labels) {
    const p = face.probabilities[label] || 0;
    const row = document.createElement("div");
    row.className = "bar-row" + (label === face.emotion ? " top" : "");
    row.dataset.label = label;
    const text = document.createElement("span");
    text.textContent = label;
    text.title = label;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = pct(p);
    fill.style.background = colorFor(label);
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = pct(p);
    row.append(text, bar, value);
    card.append(row);
  }
  for (const [type, on] of [["mouseenter", true], ["mouseleave", false], ["focus", true], ["blur", false]]) {
    card.addEventListener(type, () => highlightFace(number, on));
  }
  return card;
}

// Marks face `number`'s box, label and card (or unmarks them).
function highlightFace(number, on) {
  const selector = `#photo-stage [data-face="${number}"], #photo-faces [data-face="${number}"]`;
  document.querySelectorAll(selector).forEach((el) => el.classList.toggle("highlight", on));
}

// Drag-and-drop onto a drop zone, plus its file input.
function dropZone(zone, input, onFile) {
  input.addEventListener("change", () => { if (input.files.length) onFile(input.files[0]); input.value = ""; });
  // a focusable button for the keyboard: Enter or Space opens the file chooser, as a click does
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.remove("over"); });
  }
  zone.addEventListener("drop", (e) => {
    const files = e.dataTransfer && e.dataTransfer.files;
    if (files && files.length) onFile(files[0]);
  });
}

// ------------------------------------------------------------------------------------------ photo

// file: the photo shown (recognised again when the model or detector changes); seq: answers to older requests
// are dropped; result: the answer shown, for laying its labels out again when the page's width changes; outdated:
// the model or detector changed while another tab was shown, so the photo is recognised again on coming back.
const photo = { file: null, url: null, seq: 0, result: null, outdated: false };

// body[data-photo] tells where the photo tab is: busy, then done (a result is shown) or error (a message is).
function photoState(value) { document.body.dataset.photo = value; }

async function recognisePhoto(file) {
  const seq = ++photo.seq;
  photo.outdated = false;
  const stale = () => seq !== photo.seq;
  showMessage("");
  photoState("busy");
  if (tooLarge(file)) {
    photo.file = null;
    $("photo-result").hidden = true;
    showMessage(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB, over the ${state.limits.max_upload_mb} MB limit.`);
    photoState("error");
    return;
  }
  $("photo-busy").hidden = false;
  const failed = (text) => {
    if (stale()) return;
    photo.file = null;
    $("photo-busy").hidden = true;
    $("photo-result").hidden = true;
    showMessage(text);
    photoState("error");
  };
  const form = new FormData();
  form.append("file", file, file.name);
  let response;
  try {
    response = await fetch("/api/v1/predict" + choiceQuery("&annotate=true"), { method: "POST", body: form });
  } catch (e) {
    failed("Could not reach the ferkit server. Is it still running?");
    return;
  }
  if (!response.ok) { failed(await errorText(response)); return; }
  const result = await response.json();
  if (stale()) return;
  photo.file = file;
  if (photo.url) URL.revokeObjectURL(photo.url);
  photo.url = URL.createObjectURL(file);
  await showPhoto(result, photo.url);
  if (stale()) return;
  $("photo-busy").hidden = true;
  photoState("done");
}

function loadImage(img, src) {
  return new Promise((resolve) => {
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
    img.src = src;
  });
}

async function showPhoto(result, url) {
  const stage = $("photo-stage");
  const img = $("photo-image");
  stage.querySelectorAll(".face-box, .face-label").forEach((el) => el.remove());
  photo.result = null;
  // The browser cannot show every format the server reads (TIFF, PGM, ...): then show the server's drawing.
  const shown = await loadImage(img, url);
  const drawnByServer = !shown || (img.naturalWidth !== result.width || img.naturalHeight !== result.height);
  if (drawnByServer && result.annotated) await loadImage(img, result.annotated);
  const labels = Object.keys((result.faces[0] || {}).probabilities || {});
  if (labels.length && !state.modelLabels[result.model]) {  // a model /api/v1/models could not name the labels of
    state.modelLabels[result.model] = labels;
    showModelLabels();
  }
  const order = labelOrder(result.faces, result.model);
  $("photo-faces").replaceChildren(...result.faces.map((face, i) => faceCard(face, i, order)));
  $("photo-meta").textContent = `${result.filename}: ${result.width}×${result.height}, ` +
    `${result.faces.length} face${result.faces.length === 1 ? "" : "s"}, ${(1000 * result.seconds).toFixed(0)} ms ` +
    `(${result.model}, ${result.detector})`;
  const link = $("photo-download");
  link.hidden = !(result.annotated && result.faces.length);  // with no face it is the photo itself
  if (!link.hidden) {
    link.href = result.annotated;
    link.download = (result.filename || "photo").replace(/\.[^.]*$/, "") + ".annotated.jpg";
  }
  $("photo-result").hidden = false;
  if (!drawnByServer) {
    result.faces.forEach((face, i) => stage.append(...faceBox(face, i, result.width, result.height)));
    photo.result = result;
    placePhotoLabels();
  }
  if (result.faces.length === 0) {
    const others = state.detectors.filter((d) => d !== result.detector);
    showMessage("No face found in this photo. Try one where the face is larger, more frontal or better lit" +
      (others.length ? `, or the ${others.join(" or the ")} detector (Detector menu above).` : "."), "warn");
  } else {
    showMessage("");
  }
}

function faceBox(face, index, width, height) {
  const [x, y, w, h] = face.box;
  const number = face.face || index + 1;
  const box = document.createElement("div");
  box.className = "face-box";
  box.dataset.face = number;
  box.dataset.emotion = face.emotion;
  box.style.left = (100 * x / width) + "%";
  box.style.top = (100 * y / height) + "%";
  box.style.width = (100 * w / width) + "%";
  box.style.height = (100 * h / height) + "%";
  box.style.borderColor = colorFor(face.emotion);
  const label = document.createElement("div");
  label.className = "face-label";
  label.dataset.face = number;
  label.style.background = colorFor(face.emotion);
  const tag = document.createElement("span");
  tag.className = "num";
  tag.textContent = number;
  const emotion = document.createElement("span");
  emotion.className = "emotion";
  emotion.textContent = face.emotion;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = face.score.toFixed(2);
  label.append(tag, emotion, score);
  for (const el of [box, label]) {
    el.addEventListener("mouseenter", () => highlightFace(number, true));
    el.addEventListener("mouseleave", () => highlightFace(number, false));
  }
  return [box, label];
}

// Places the photo's labels for the size the image is shown at, none overlapping. Where full labels do not fit
// near their faces (small screens, crowded photos), they drop the score, then the expression: the number always
// stays, and its card says the rest.
function placePhotoLabels() {
  const result = photo.result;
  const img = $("photo-image");
  if (!result || !img.clientWidth) return;
  const width = img.clientWidth, height = img.clientHeight;
  const sx = width / result.width, sy = height / result.height;
  const boxes = result.faces.map((f) => ({ x: f.box[0] * sx, y: f.box[1] * sy, w: f.box[2] * sx, h: f.box[3] * sy }));
  const labels = [...$("photo-stage").querySelectorAll(".face-label")];
  for (const detail of ["full", "short", "number"]) {
    labels.forEach((el) => { el.dataset.detail = detail; });
    const sizes = labels.map((el) => ({ w: el.offsetWidth, h: el.offsetHeight }));
    const spots = layoutLabels(boxes, sizes, width, height);
    if (detail === "number" || spots.every((spot) => spot.near)) {
      labels.forEach((el, i) => {
        el.style.left = spots[i].x + "px";
        el.style.top = spots[i].y + "px";
        el.classList.toggle("away", !spots[i].near);
      });
      return;
    }
  }
}

// ------------------------------------------------------------------------------------------ webcam

const cam = { stream: null, running: false, busy: false, last: 0, times: [], timer: null, canvas: null };

async function startCamera() {
  showMessage("");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showMessage("This browser gives no camera access here (a camera needs https or http://127.0.0.1).");
    return;
  }
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } },
                                                             audio: false });
  } catch (e) {
    showMessage(e && e.name === "NotAllowedError" ? "Camera access was refused." :
      "No camera could be opened" + (e && e.message ? ": " + e.message : "."));
    return;
  }
  const video = $("cam-video");
  video.srcObject = cam.stream;
  await video.play().catch(() => {});
  cam.running = true;
  cam.times = [];
  cam.canvas = cam.canvas || document.createElement("canvas");
  $("cam-toggle").textContent = "Stop camera";
  $("cam-toggle").classList.add("on");
  cam.timer = setInterval(camTick, 40);
}

function stopCamera() {
  cam.running = false;
  clearInterval(cam.timer);
  if (cam.stream) cam.stream.getTracks().forEach((t) => t.stop());
  cam.stream = null;
  $("cam-video").srcObject = null;
  const overlay = $("cam-overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  $("cam-toggle").textContent = "Start camera";
  $("cam-toggle").classList.remove("on");
  $("cam-fps").textContent = "0.0";
}

// Sends one frame when none is in flight and the rate allows; draws the answer on the overlay canvas.
async function camTick() {
  const video = $("cam-video");
  const interval = 1000 / Number($("cam-rate").value);
  const now = performance.now();
  if (!cam.running || cam.busy || now - cam.last < interval || !video.videoWidth) return;
  cam.busy = true;
  cam.last = now;
  const scale = Math.min(1, 480 / video.videoWidth);
  const canvas = cam.canvas;
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  try {
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
    const form = new FormData();
    form.append("file", blob, "webcam.jpg");
    const response = await fetch("/api/v1/predict" + choiceQuery(), { method: "POST", body: form });
    if (!response.ok) {
      showMessage(await errorText(response));
    } else {
      const result = await response.json();
      if (!cam.running) return;
      drawCamFaces(result, video);
      cam.times.push(performance.now());
      cam.times = cam.times.filter((t) => performance.now() - t < 2000);
      const span = cam.times.length > 1 ? (cam.times[cam.times.length - 1] - cam.times[0]) / 1000 : 0;
      $("cam-fps").textContent = span > 0 ? ((cam.times.length - 1) / span).toFixed(1) : "0.0";
      if ($("message").classList.contains("error")) showMessage("");
    }
  } catch (e) {
    showMessage("Could not reach the ferkit server. Is it still running?");
  } finally {
    cam.busy = false;
  }
}

function drawCamFaces(result, video) {
  const overlay = $("cam-overlay");
  overlay.width = video.clientWidth;
  overlay.height = video.clientHeight;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const sx = overlay.width / result.width;
  const sy = overlay.height / result.height;
  ctx.lineWidth = 3;
  ctx.font = "600 14px system-ui, sans-serif";
  const boxes = result.faces.map((f) => ({ x: f.box[0] * sx, y: f.box[1] * sy, w: f.box[2] * sx, h: f.box[3] * sy }));
  const texts = result.faces.map((f) => [String(f.face), `${f.emotion} ${f.score.toFixed(2)}`]);
  const sizes = texts.map(([n, t]) => ({ w: ctx.measureText(n).width + ctx.measureText(t).width + 20, h: 20 }));
  const spots = layoutLabels(boxes, sizes, overlay.width, overlay.height);
  result.faces.forEach((face, i) => {
    const color = colorFor(face.emotion);
    const box = boxes[i], spot = spots[i];
    const [number, text] = texts[i];
    ctx.strokeStyle = color;
    ctx.strokeRect(box.x, box.y, box.w, box.h);
    const tagWidth = ctx.measureText(number).width + 8;
    ctx.fillStyle = color;
    ctx.fillRect(spot.x, spot.y, spot.w, spot.h);
    ctx.fillStyle = "#1e1e1e";
    ctx.fillRect(spot.x, spot.y, tagWidth, spot.h);
    ctx.fillStyle = "#fff";
    ctx.fillText(number, spot.x + 4, spot.y + 15);
    ctx.fillStyle = "#000";
    ctx.fillText(text, spot.x + tagWidth + 4, spot.y + 15);
  });
  const order = labelOrder(result.faces, result.model);
  $("cam-faces").replaceChildren(...result.faces.map((face, i) => faceCard(face, i, order)));
}

// ------------------------------------------------------------------------------------------ video

async function recogniseVideo(file) {
  showMessage("");
  $("video-result").hidden = true;
  if (tooLarge(file)) {
    showMessage(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB, over the ${state.limits.max_upload_mb} MB limit.`);
    return;
  }
  const box = $("video-progress");
  const bar = $("video-bar");
  const text = $("video-stage-text");
  box.hidden = false;
  text.textContent = "Uploading… 0%";
  bar.value = 0;
  const form = new FormData();
  form.append("file", file, file.name);
  // XMLHttpRequest, for upload progress
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve) => {
    xhr.onload = () => resolve(true);
    xhr.onerror = () => resolve(false);
  });
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) {
      bar.value = e.loaded / e.total;
      text.textContent = `Uploading… ${Math.round(100 * e.loaded / e.total)}%`;
    }
  };
  xhr.open("POST", "/api/v1/video" + choiceQuery());
  xhr.send(form);
  if (!(await done)) {
    box.hidden = true;
    showMessage("Could not reach the ferkit server. Is it still running?");
    return;
  }
  const response = new Response(xhr.responseText, { status: xhr.status,
    headers: { "content-type": xhr.getResponseHeader("content-type") || "" } });
  if (xhr.status !== 202) {
    box.hidden = true;
    showMessage(await errorText(response));
    return;
  }
  let job = await response.json();
  while (job.status === "queued" || job.status === "running") {
    bar.value = job.progress || 0;
    text.textContent = job.status === "queued" ? "Waiting for the server…" :
      `Recognising… frame ${job.frames_done}${job.frame_count ? " of " + job.frame_count : ""}`;
    await new Promise((r) => setTimeout(r, 500));
    let poll;
    try {
      poll = await fetch(`/api/v1/video/${job.id}`);
    } catch (e) {
      box.hidden = true;
      showMessage("Lost the connection to the ferkit server.");
      return;
    }
    if (!poll.ok) { box.hidden = true; showMessage(await errorText(poll)); return; }
    job = await poll.json();
  }
  box.hidden = true;
  if (job.status === "error") {
    showMessage(job.error || "The video could not be processed.");
    return;
  }
  showVideo(job);
}

function showVideo(job) {
  const stamp = "?t=" + Date.now();
  $("video-player").src = job.video_url + stamp;
  const link = $("video-download");
  link.href = job.video_url;
  link.download = job.filename.replace(/\.[^.]*$/, "") + ".annotated.webm";
  $("video-timeline").src = job.timeline_url + stamp;
  const list = $("video-tracks");
  const r = job.result;
  const items = r.tracks.map((t) => {
    const li = document.createElement("li");
    li.textContent = `face #${t.track}: mostly ${t.emotion} (${pct(t.score)}), frames ${t.first_frame}–${t.last_frame}` +
      ` (${t.frames} seen)`;
    return li;
  });
  list.replaceChildren(...items);
  $("video-result").hidden = false;
  if (r.tracks.length === 0) {
    showMessage(`No face found in ${job.filename} (${r.frames} frames).`, "warn");
  } else {
    const notes = [];
    if (r.stopped_at_limit) notes.push(`stopped at the limit of ${state.limits.max_video_frames} frames`);
    if (r.truncated) notes.push("the file is truncated: results cover its readable part");
    showMessage(`${job.filename}: ${r.frames} frames, ${r.tracks.length} face track(s) in ${r.seconds.toFixed(1)} s` +
      (notes.length ? " — " + notes.join("; ") : "") + ".", notes.length ? "warn" : "info");
  }
}

// ------------------------------------------------------------------------------------------ set-up

function selectTab(name) {
  state.tab = name;
  for (const button of document.querySelectorAll(".tabs button")) {
    const on = button.dataset.tab === name;
    button.classList.toggle("active", on);
    button.setAttribute("aria-selected", String(on));
  }
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== "tab-" + name;
  if (name !== "webcam" && cam.running) stopCamera();
  showMessage("");
  if (name === "photo" && photo.outdated && photo.file) recognisePhoto(photo.file);
}

// The model or the detector changed: the footer follows the model, and the photo shown is recognised again.
function choiceChanged() {
  showModelLabels();
  if (state.tab === "photo" && photo.file) recognisePhoto(photo.file);
  else if (photo.file) photo.outdated = true;
}

async function init() {
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => selectTab(button.dataset.tab));
  }
  // the model menus never submit (no inline handler: the page's CSP allows its own script file only)
  $("choices").addEventListener("submit", (e) => e.preventDefault());
  $("model").addEventListener("change", choiceChanged);
  $("detector").addEventListener("change", choiceChanged);
  dropZone($("photo-drop"), $("photo-input"), recognisePhoto);
  dropZone($("video-drop"), $("video-input"), recogniseVideo);
  $("cam-toggle").addEventListener("click", () => (cam.running ? stopCamera() : startCamera()));
  // a photo dropped anywhere on the photo tab counts; elsewhere, keep the browser from opening the file
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  // the labels are laid out in the image's shown pixels: again when its size changes (window, phone turned)
  new ResizeObserver(() => placePhotoLabels()).observe($("photo-image"));
  try {
    const response = await fetch("/api/v1/models");
    if (!response.ok) throw new Error(await errorText(response));
    const info = await response.json();
    state.colors = info.colors || {};
    state.labels = info.labels || [];
    state.detectors = info.detectors || [];
    for (const m of info.models) if (m.labels) state.modelLabels[m.name] = m.labels;
    state.limits = info.limits || state.limits;
    $("model").replaceChildren(...info.models.map((m) => new Option(m.name, m.name, m.default, m.default)));
    $("detector").replaceChildren(...info.detectors.map((d) =>
      new Option(d, d, d === info.default_detector, d === info.default_detector)));
    showModelLabels();
    $("photo-hint").textContent = `JPEG, PNG, WebP, BMP or TIFF, up to ${state.limits.max_upload_mb} MB`;
    $("video-hint").textContent = `mp4, webm, avi, mov, … up to ${state.limits.max_upload_mb} MB, ` +
      `${state.limits.max_video_frames} frames`;
    document.body.dataset.ready = "true";
  } catch (e) {
    showMessage("Could not reach the ferkit server: " + e.message);
  }
}

init();

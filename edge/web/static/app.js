// keycam's page: the measurement live with its answer drawn over it, the events, the health and the recordings.
// Plain script, no build step, no library. It reads the MJPEG stream with fetch (each part's X-Keycam-Answer header
// is that frame's answer), draws both on one canvas, and polls the JSON panels. Every address is relative, so the
// page also works behind a proxy's subpath. Data goes into the page as text only (textContent), never as markup.
"use strict";

const state = {
  frames: 0, answer: null, drawn: [], followed: 0, following: null, view: "measurement",
  tokenRequired: false, plainView: false, stream: null, timers: [], events: [],
};
window.keycam = state; // what the page shows, for tests and the curious

const $ = (selector) => document.querySelector(selector);
const COLOURS = { box: "#00e676", follow: "#ff9100", zone: "#40c4ff", mask: "#bdbdbd" };
const DECODER = new TextDecoder("ascii");

function element(tag, text, attributes = {}) {
  const made = document.createElement(tag);
  if (text !== undefined && text !== null) made.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
  return made;
}

// A track's id is "<first seen>-<number>" (edge.events): the number is enough to tell objects apart on screen.
function shortId(id) {
  const tail = String(id).split("-").pop().replace(/^0+(?=.)/, "");
  return tail || String(id);
}

function when(ns) {
  return ns ? new Date(Number(ns) / 1e6).toLocaleString() : "";
}

async function api(path, options = {}) {
  const answer = await fetch(path, { credentials: "same-origin", cache: "no-store", ...options });
  if (answer.status === 401) {
    showLogin();
    throw new Error("the page needs its token");
  }
  if (!answer.ok) throw new Error(`${path}: ${answer.status}`);
  return answer.json();
}

// -- login ------------------------------------------------------------------------------------------------------

function showLogin(message) {
  stop();
  $("#page").hidden = true;
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#live").textContent = "token needed";
  $("#live").className = "pill";
  const error = $("#login-error");
  error.hidden = !message;
  error.textContent = message || "";
}

async function logIn(event) {
  event.preventDefault();
  const answer = await fetch("api/login", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: $("#token").value }),
  });
  $("#token").value = "";
  if (answer.ok) start();
  else showLogin("Wrong token.");
}

async function logOut() {
  await fetch("api/logout", { method: "POST", credentials: "same-origin" });
  showLogin();
}

// -- the stream: multipart/x-mixed-replace read part by part ------------------------------------------------------

function find(buffer, pattern, from) {
  outer: for (let i = from; i <= buffer.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (buffer[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

const END_OF_HEAD = [13, 10, 13, 10];

// The complete parts at the start of buffer: [[headers, jpeg], ...] and the bytes left over.
function parts(buffer) {
  const found = [];
  let start = 0;
  for (;;) {
    const head = find(buffer, END_OF_HEAD, start);
    if (head < 0) break;
    const headers = {};
    for (const line of DECODER.decode(buffer.subarray(start, head)).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers["content-length"]);
    const body = head + 4;
    if (!(length >= 0) || buffer.length < body + length + 2) break;
    found.push([headers, buffer.slice(body, body + length)]);
    start = body + length + 2; // the part's closing CRLF
  }
  return [found, buffer.slice(start)];
}

async function readStream(view, controller) {
  const answer = await fetch(view === "plain" ? "stream/plain.mjpeg" : "stream.mjpeg",
    { credentials: "same-origin", cache: "no-store", signal: controller.signal });
  if (answer.status === 401) { showLogin(); return; }
  if (!answer.ok) throw new Error(`stream: ${answer.status}`);
  const reader = answer.body.getReader();
  let buffer = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const joined = new Uint8Array(buffer.length + value.length);
    joined.set(buffer);
    joined.set(value, buffer.length);
    const [found, rest] = parts(joined);
    buffer = rest;
    if (found.length) { // only the newest part is drawn; the stream skips what the page was too slow for
      const [headers, jpeg] = found[found.length - 1];
      const bitmap = await createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
      draw(bitmap, JSON.parse(headers["x-keycam-answer"] || "{}"));
    }
  }
}

async function openStream() {
  const controller = new AbortController();
  state.stream = controller;
  while (state.stream === controller) {
    try {
      await readStream(state.view, controller);
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    $("#live").textContent = "reconnecting";
    $("#live").className = "pill stale";
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// -- drawing --------------------------------------------------------------------------------------------------------

function isFollowed(item) {
  const following = state.following;
  if (!following) return false;
  if (following.id !== null && following.id !== undefined) return item.track === following.id;
  return item.label === following.label;
}

function outline(context, points, scale, colour, name, fill) {
  if (!points || points.length < 2) return;
  context.beginPath();
  points.forEach(([x, y], i) => (i ? context.lineTo(x * scale, y * scale) : context.moveTo(x * scale, y * scale)));
  context.closePath();
  if (fill) {
    context.fillStyle = fill;
    context.fill();
  }
  context.strokeStyle = colour;
  context.setLineDash([6, 4]);
  context.lineWidth = 2;
  context.stroke();
  context.setLineDash([]);
  if (name) label(context, name, points[0][0] * scale, points[0][1] * scale, colour);
}

function label(context, text, x, y, colour) {
  context.font = "bold 14px system-ui, sans-serif";
  const width = context.measureText(text).width + 8;
  const top = Math.max(0, y - 18);
  x = Math.max(0, Math.min(x, context.canvas.width - width)); // inside the picture, whatever the box's place
  context.fillStyle = "rgba(0, 0, 0, 0.65)";
  context.fillRect(x, top, width, 18);
  context.fillStyle = colour;
  context.fillText(text, x + 4, top + 14);
}

function drawItem(context, item, scale) {
  const followed = isFollowed(item);
  const colour = followed ? COLOURS.follow : COLOURS.box;
  const [x0, y0, x1, y1] = item.box.map((v) => v * scale);
  context.strokeStyle = colour;
  context.lineWidth = followed ? 4 : 2;
  if (item.corners) outline(context, item.corners, scale, colour);
  else context.strokeRect(x0, y0, x1 - x0, y1 - y0);
  context.fillStyle = colour;
  for (const [x, y] of item.keypoints || []) context.fillRect(x * scale - 2, y * scale - 2, 4, 4);
  const score = typeof item.score === "number" ? ` ${item.score.toFixed(2)}` : "";
  const track = item.track !== null && item.track !== undefined ? ` #${shortId(item.track)}` : "";
  label(context, `${item.label}${score}${track}${followed ? " (following)" : ""}`, x0, y0, colour);
  return { ...item, followed, drawn: [x0, y0, x1, y1] };
}

function draw(bitmap, answer) {
  const canvas = $("#view");
  const scale = Math.max(1, Math.floor(512 / Math.max(bitmap.width, bitmap.height)));
  if (canvas.width !== bitmap.width * scale || canvas.height !== bitmap.height * scale) {
    canvas.width = bitmap.width * scale;
    canvas.height = bitmap.height * scale;
  }
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  // a privacy mask is never digitised (its positions read 0): shaded, so nobody reads the noise there as a scene
  for (const ring of answer.masks || []) outline(context, ring, scale, COLOURS.mask, "privacy mask", "rgba(0, 0, 0, 0.6)");
  for (const zone of answer.zones || []) outline(context, zone.points, scale, COLOURS.zone, zone.name);
  state.drawn = (answer.items || []).map((item) => drawItem(context, item, scale));
  state.followed = state.drawn.filter((item) => item.followed).length;
  if (answer.view === "plain") label(context, "PLAIN VIEW (key holders)", 4, 22, "#ff5252");
  state.answer = answer;
  state.scale = scale;
  state.frames += 1;
  document.body.dataset.frames = String(state.frames);
  $("#live").textContent = "live";
  $("#live").className = "pill live";
  const words = answer.caption || `${state.drawn.length} boxes`;
  $("#caption").textContent = `frame ${answer.sequence}, key epoch ${answer.epoch}: ${words}` +
    (answer.error ? ` (refused: ${answer.error})` : "");
}

// -- the panels -----------------------------------------------------------------------------------------------------

function fill(list, pairs) {
  list.replaceChildren();
  for (const [name, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    list.append(element("dt", name), element("dd", typeof value === "object" ? JSON.stringify(value) : value));
  }
}

async function refreshHealth() {
  const health = await api("api/health");
  $("#key").textContent = `key ${health.fingerprint}` + (health.epoch !== null ? `, epoch ${health.epoch}` : "");
  const sinks = health.sinks || [];
  const mqtt = sinks.find((sink) => "connected" in sink);
  const spool = sinks.find((sink) => "spool" in sink);
  const streams = Object.entries(health.streams).map(([name, s]) =>
    `${name}: ${s.viewers} watching, ${s.encoded} sent, ${s.encode_ms ?? "-"} ms to encode, ${s.kb_per_frame ?? "-"} KB`);
  fill($("#health-list"), [
    ["frames", health.frames], ["fps", health.fps], ["lost", health.lost],
    ["per stage, ms", Object.entries(health.stage_ms).map(([k, v]) => `${k} ${v}`).join(", ")],
    ["key", health.fingerprint], ["key epoch", health.epoch], ["frame", health.sequence], ["origin", health.origin],
    ["measurement", health.measurement && health.measurement.join(" x ")],
    ["camera frame", health.source_size && health.source_size.join(" x ")],
    ["sensor temperature", health.temperature_c !== null && health.temperature_c !== undefined
      ? `${health.temperature_c} °C` : ""],
    ["MQTT", mqtt ? (mqtt.connected ? "connected" : "not connected") : ""],
    ["spool", spool ? `${spool.spool} frames waiting` : ""],
    ["privacy masks", health.masks], ["streams", streams.join("; ")],
    ["source", health.source && Object.keys(health.source).length ? health.source : ""],
    ...sinks.map((sink) => [sink.kind, sink.summary]),
  ]);
  fill($("#counters"), Object.entries(health.counters || {}));
  if (health.idle_s !== null && health.idle_s > 5) {
    $("#live").textContent = `no frame for ${health.idle_s} s`;
    $("#live").className = "pill stale";
  }
}

function choose(select, values) {
  const chosen = select.value;
  const wanted = ["", ...values];
  const have = [...select.options].map((option) => option.value);
  if (wanted.join("\n") !== have.join("\n")) {
    select.replaceChildren(...wanted.map((value) => element("option", value || "all", { value })));
    select.value = wanted.includes(chosen) ? chosen : "";
  }
}

function describe(item) {
  const what = item.kind === "event" ? `[${item.type}] ${item.label}` : item.label;
  const id = item.id !== null && item.id !== undefined ? ` #${shortId(item.id)}` : "";
  const score = typeof item.score === "number" ? ` ${item.score.toFixed(2)}` : "";
  const zones = item.zones && item.zones.length ? `, in ${item.zones.join(", ")}` : "";
  return `${what}${id}${score}${zones} · frame ${item.sequence} · ${when(item.timestamp_ns)}`;
}

async function refreshEvents() {
  const query = new URLSearchParams({ label: $("#label-filter").value, zone: $("#zone-filter").value });
  const found = await api(`api/events?${query}`);
  $("#events-title").textContent = found.mode === "events" ? "Events" : "Detections (no tracking: each frame's)";
  choose($("#label-filter"), found.labels);
  choose($("#zone-filter"), found.zones);
  state.events = found.items;
  const list = $("#event-list");
  list.replaceChildren(...found.items.slice(0, 100).map((item, index) => {
    const entry = element("li", describe(item), { "data-index": String(index) });
    if (state.following && state.following.sequence === item.sequence && state.following.id === item.id) {
      entry.classList.add("followed");
    }
    return entry;
  }));
}

function follow(item) {
  state.following = item;
  $("#event-detail").hidden = false;
  fill($("#event-fields"), [["what", item.kind === "event" ? `${item.type} event` : "detection"],
    ["label", item.label], ["id", item.id], ["score", item.score], ["frame", item.sequence],
    ["time", when(item.timestamp_ns)], ["box (camera pixels)", item.box], ["zones", item.zones.join(", ")],
    ["entered zones", (item.entered_zones || []).join(", ")], ["stationary", item.stationary]]);
  $("#following").hidden = false;
  $("#following").textContent = item.id !== null && item.id !== undefined
    ? `Following ${item.label} #${shortId(item.id)}: its box is drawn in orange while it is in view.`
    : `Following the ${item.label} detections: drawn in orange.`;
  for (const entry of document.querySelectorAll("#event-list li")) {
    entry.classList.toggle("followed", state.events[Number(entry.dataset.index)] === item);
  }
}

function unfollow() {
  state.following = null;
  $("#event-detail").hidden = true;
  $("#following").hidden = true;
}

async function refreshRecordings() {
  const found = await api("api/recordings");
  $("#recordings-path").textContent = found.path ? `in ${found.path}` : "This run records nothing ([record] path).";
  $("#recording-rows").replaceChildren(...found.files.map((file) => {
    const row = element("tr");
    const link = element("a", file.name, { href: `recordings/${encodeURIComponent(file.name)}`, download: file.name });
    const cell = element("td");
    cell.append(link);
    row.append(cell, element("td", `${(file.bytes / 1048576).toFixed(1)} MB`),
      element("td", file.complete ? when(file.start_ns) : "being written"),
      element("td", file.complete ? when(file.end_ns) : when(file.modified_ns)),
      element("td", file.complete ? file.messages : ""));
    return row;
  }));
}

// -- the page ---------------------------------------------------------------------------------------------------------

function every(seconds, refresh) {
  const run = () => refresh().catch(() => {});
  run();
  state.timers.push(setInterval(run, seconds * 1000));
}

function stop() {
  if (state.stream) state.stream.abort();
  state.stream = null;
  state.timers.forEach(clearInterval);
  state.timers = [];
}

function switchView(view) {
  state.view = view;
  for (const button of document.querySelectorAll("#views button")) {
    button.classList.toggle("chosen", button.dataset.view === view);
  }
  if (state.stream) state.stream.abort();
  openStream();
}

function start() {
  stop();
  $("#login").hidden = true;
  $("#page").hidden = false;
  $("#logout").hidden = !state.tokenRequired;
  openStream();
  every(2, refreshHealth);
  every(1, refreshEvents);
  every(10, refreshRecordings);
}

async function boot() {
  $("#login-form").addEventListener("submit", logIn);
  $("#logout").addEventListener("click", logOut);
  $("#unfollow").addEventListener("click", unfollow);
  $("#event-list").addEventListener("click", (event) => {
    const entry = event.target.closest("li");
    if (entry) follow(state.events[Number(entry.dataset.index)]);
  });
  $("#label-filter").addEventListener("change", () => refreshEvents().catch(() => {}));
  $("#zone-filter").addEventListener("change", () => refreshEvents().catch(() => {}));
  for (const button of document.querySelectorAll("#views button")) {
    button.addEventListener("click", () => switchView(button.dataset.view));
  }
  const session = await (await fetch("api/session", { credentials: "same-origin", cache: "no-store" })).json();
  state.tokenRequired = session.token_required;
  state.plainView = session.plain_view;
  $("#plain-banner").hidden = !session.plain_view;
  $("#views").hidden = !session.plain_view;
  if (session.token_required && !session.authenticated) showLogin();
  else start();
}

boot();

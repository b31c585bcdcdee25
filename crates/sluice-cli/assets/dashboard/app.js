// The Sluice dashboard: reads /api/graph and /api/history once, then a
// snapshot every second from /api/events (Server-Sent Events). No
// libraries: the charts are drawn on canvases, the graph in SVG.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const query = token ? "?token=" + encodeURIComponent(token) : "";
const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const KEEP = 600;

let graph = { nodes: [], edges: [] };
let streams = [];
let points = [];
let updates = 0;

async function get(path) {
  const response = await fetch(path + query);
  if (!response.ok) throw new Error(path + ": " + response.status + " " + (await response.text()));
  return response.json();
}

function $(id) { return document.getElementById(id); }

function number(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  if (a === 0) return "0";
  return v.toPrecision(2);
}

function bytes(v) {
  if (v >= 1 << 30) return (v / (1 << 30)).toFixed(1) + " GiB";
  if (v >= 1 << 20) return (v / (1 << 20)).toFixed(1) + " MiB";
  if (v >= 1 << 10) return (v / (1 << 10)).toFixed(1) + " KiB";
  return v + " B";
}

function time(ms) {
  if (ms === null || ms === undefined) return "–";
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString().replace("T", " ").replace("Z", "");
}

function span(ms) {
  if (ms === null || ms === undefined) return "–";
  const a = Math.abs(ms);
  if (a >= 3600e3) return (ms / 3600e3).toFixed(1) + " h";
  if (a >= 60e3) return (ms / 60e3).toFixed(1) + " min";
  if (a >= 1e3) return (ms / 1e3).toFixed(1) + " s";
  return ms.toFixed(ms < 10 ? 2 : 0) + " ms";
}

// ---- the dataflow graph --------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const BOX = { w: 176, h: 50, dx: 290, dy: 66 };

function svg(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, v);
  if (parent) parent.appendChild(element);
  return element;
}

function layout() {
  const rows = {};
  const at = {};
  for (const node of graph.nodes) {
    const row = rows[node.depth] || 0;
    rows[node.depth] = row + 1;
    at[node.id] = { x: 12 + node.depth * BOX.dx, y: 12 + row * BOX.dy };
  }
  const height = 24 + Math.max(1, ...Object.values(rows)) * BOX.dy;
  const width = 24 + (Math.max(0, ...graph.nodes.map((n) => n.depth)) + 1) * BOX.dx;
  return { at, width, height };
}

function drawGraph() {
  const root = $("graph");
  root.replaceChildren();
  const { at, width, height } = layout();
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  root.style.height = Math.min(height, 480) + "px";
  graph.edges.forEach((edge, i) => {
    const a = at[edge.from], b = at[edge.to];
    if (!a || !b) return;
    const g = svg("g", { class: "edge", "data-stream": edge.stream }, root);
    const x1 = a.x + BOX.w, y1 = a.y + BOX.h / 2, x2 = b.x, y2 = b.y + BOX.h / 2;
    const mid = (x1 + x2) / 2;
    svg("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }, g);
    const label = svg("text", { x: mid, y: (y1 + y2) / 2 - 4, "text-anchor": "middle", id: "edge-" + i }, g);
    label.textContent = edge.stream;
  });
  for (const node of graph.nodes) {
    const p = at[node.id];
    const g = svg("g", { class: "node " + node.kind, id: "node-" + node.id, transform: `translate(${p.x},${p.y})` }, root);
    svg("rect", { width: BOX.w, height: BOX.h }, g);
    const title = svg("text", { x: 8, y: 19 }, g);
    title.textContent = node.kind === "sink" ? "sink" : node.id;
    const sub = svg("text", { x: 8, y: 37, class: "sub" }, g);
    sub.textContent = node.label.length > 28 ? node.label.slice(0, 27) + "…" : node.label;
  }
}

function updateGraph(snapshot) {
  const byName = Object.fromEntries(snapshot.streams.map((s) => [s.name, s]));
  graph.edges.forEach((edge, i) => {
    const label = $("edge-" + i);
    if (!label) return;
    const s = byName[edge.stream];
    if (s) label.textContent = `${edge.stream}: ${number(s.rate)}/s`;
    else if (edge.stream === "late") label.textContent = `late: ${snapshot.late.count}`;
    else if (edge.stream === "dead_letter") label.textContent = `dead_letter: ${snapshot.dead_letter.count}`;
  });
  for (const node of graph.nodes) {
    const element = $("node-" + node.id);
    const s = node.output && byName[node.output];
    if (!element || !s) continue;
    element.classList.toggle("backpressured", s.backpressured);
    const sub = element.querySelector("text.sub");
    const label = node.label.length > 18 ? node.label.slice(0, 17) + "…" : node.label;
    sub.textContent = `${label} · busy ${(100 * s.busy).toFixed(0)}%`;
  }
}

// ---- charts ----------------------------------------------------------------

function chart(canvas, series, options = {}) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 500, h = canvas.clientHeight || 220;
  canvas.width = w * ratio;
  canvas.height = h * ratio;
  const c = canvas.getContext("2d");
  c.scale(ratio, ratio);
  c.clearRect(0, 0, w, h);
  const left = 52, right = 8, top = 22, bottom = 22;
  const all = series.flatMap((s) => s.points);
  const drawn = all.length;
  canvas.dataset.points = drawn;
  c.font = "11px system-ui, sans-serif";
  c.fillStyle = "#667085";
  if (drawn === 0) {
    c.fillText("waiting for data…", left, top + 20);
    return;
  }
  let t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  if (t1 - t0 < 10) t0 = t1 - 10;
  let top_v = Math.max(...all.map((p) => p[1]), options.min || 0);
  top_v = top_v <= 0 ? 1 : top_v * 1.1;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (w - left - right);
  const y = (v) => top + (1 - v / top_v) * (h - top - bottom);
  c.strokeStyle = "#e5e7eb";
  c.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (top_v * i) / 4;
    c.beginPath();
    c.moveTo(left, y(v));
    c.lineTo(w - right, y(v));
    c.stroke();
    c.fillText(number(v), 4, y(v) + 4);
  }
  c.fillText(`${(t1 - t0).toFixed(0)} s`, w - right - 30, h - 6);
  c.fillText(`t = ${t1.toFixed(0)} s`, left, h - 6);
  let legend = left;
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    c.strokeStyle = color;
    c.lineWidth = 1.8;
    c.beginPath();
    s.points.forEach(([t, v], j) => (j === 0 ? c.moveTo(x(t), y(v)) : c.lineTo(x(t), y(v))));
    c.stroke();
    c.fillStyle = color;
    c.fillText(s.name, legend, 12);
    legend += c.measureText(s.name).width + 14;
  });
}

function perStream(field, filter) {
  return streams
    .map((name, i) => ({
      name,
      points: points
        .filter((p) => p.streams[i] && (!filter || filter(p.streams[i])))
        .map((p) => [p.t, p.streams[i][field] ?? 0]),
    }))
    .filter((s) => s.points.some(([, v]) => v > 0));
}

function drawCharts() {
  chart($("chart-rate"), perStream("rate"));
  chart($("chart-batch"), perStream("mean_batch", (s) => s.chunks > 0));
  chart($("chart-duration"), perStream("mean_batch_ms", (s) => s.chunks > 0));
  chart($("chart-lag"), perStream("lag_ms", (s) => s.lag_ms !== null));
  const measured = points.filter((p) => p.latency.rows > 0);
  chart($("chart-latency"), ["p50", "p90", "p99", "max"].map((q, i) => ({
    name: q,
    color: ["#16a34a", "#2563eb", "#dc2626", "#9ca3af"][i],
    points: measured.map((p) => [p.t, p.latency[q]]),
  })));
}

// ---- tables ----------------------------------------------------------------

function fill(id, rows) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      const [text, kind] = Array.isArray(cell) ? cell : [cell, ""];
      td.textContent = text;
      if (kind) td.className = kind;
      if (kind === "record") td.title = text;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function count(id, n) {
  const element = $(id);
  element.textContent = n < 1e4 ? String(n) : number(n);
  element.classList.toggle("some", n > 0);
}

function render(s) {
  $("pipeline").textContent = s.pipeline;
  document.title = `Sluice · ${s.pipeline}`;
  const state = $("state");
  state.textContent = s.run.state;
  state.className = "badge " + s.run.state;
  if (s.run.state === "failed") state.title = s.run.error;
  $("mode").textContent = `${s.mode}, ${s.workers} worker${s.workers === 1 ? "" : "s"}`;
  $("uptime").textContent = `up ${span(s.uptime_s * 1e3)}`;
  const total = s.source.total_bytes;
  $("read").textContent = `${number(s.source.read)} records read` +
    (total ? ` (${((100 * s.source.bytes) / Math.max(total, 1)).toFixed(0)}%)` : "");
  updateGraph(s);
  drawCharts();
  fill("watermarks", s.streams.map((st) => [
    st.name, time(st.watermark), time(st.newest_event), [span(st.watermark_lag_ms), "num"],
    [(100 * st.busy).toFixed(0) + "%", "num"],
  ]));
  count("late-count", s.late.count);
  fill("late", s.late.newest.map((e) => [
    span(e.at_s * 1e3), e.transform, [e.line, "num"], [span(e.behind_ms), "num"],
    `[${time(e.window[0])}, ${time(e.window[1])})`, [span(e.too_late_ms), "num"], [e.record, "record"],
  ]));
  count("dead-count", s.dead_letter.count);
  fill("dead", s.dead_letter.newest.map((d) => [
    span(d.at_s * 1e3), d.origin, [d.line, "num"], d.reason, [d.record, "record"],
  ]));
  count("firing-count", s.firings.count);
  fill("firings", s.firings.newest.map((f) => [
    span(f.at_s * 1e3), f.transform, f.watermark === null ? "end of input" : time(f.watermark),
    f.windows ? `[${time(f.windows[0])}, ${time(f.windows[1])})` : "–", [f.rows, "num"],
  ]));
  count("checkpoint-count", s.checkpoints.committed);
  $("checkpoints-off").hidden = s.checkpoints.enabled;
  $("checkpoints").hidden = !s.checkpoints.enabled;
  fill("checkpoints", s.checkpoints.newest.map((c) => [
    span(c.at_s * 1e3), [c.id, "num"], [span(c.duration_ms), "num"], [bytes(c.bytes), "num"],
  ]));
}

function connect() {
  const events = new EventSource("/api/events" + query);
  events.addEventListener("snapshot", (e) => {
    const s = JSON.parse(e.data);
    const last = points[points.length - 1];
    if (s.point && (!last || s.point.t > last.t)) {
      points.push(s.point);
      if (points.length > KEEP) points.shift();
    }
    render(s);
    updates += 1;
    document.body.dataset.updates = updates;
    $("connection").textContent = "live";
  });
  events.onerror = () => {
    $("connection").textContent = "disconnected: the run may have ended; retrying";
  };
}

async function start() {
  try {
    graph = await get("/api/graph");
    const history = await get("/api/history");
    streams = history.streams;
    points = history.points;
    drawGraph();
    render(await get("/api/snapshot"));
    connect();
  } catch (error) {
    $("state").textContent = "error";
    $("connection").textContent = String(error);
  }
}

window.addEventListener("resize", drawCharts);
start();

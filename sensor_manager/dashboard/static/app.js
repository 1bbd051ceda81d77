// The dashboard page: one EventSource tick per second (the monitor's snapshot), drawn with uPlot and canvas.
// Numbers shown carry their raw value in data-value, so tests compare them with `monitor --json`.
"use strict";

const STATE_COLORS = {o: "#2e9d4f", a: "#e8871e", s: "#9aa0a6"};
const METRICS = ["temperature", "humidity", "pressure", "vibration", "voltage"];
const METRIC_COLORS = ["#d9480f", "#1971c2", "#5f3dc4", "#2b8a3e", "#c2255c"];
const LAG_COLORS = ["#1971c2", "#d9480f", "#2b8a3e", "#5f3dc4", "#c2255c", "#0b7285", "#e67700", "#495057"];
const LAG_POINTS = 300;
const number = new Intl.NumberFormat("en");

let sensors = [];          // [{sensor_id, city, latitude, longitude}] in the order of tick.sensor_states
let states = "";
let land = null;           // [{ring: [[lon, lat]...], box: [minLon, minLat, maxLon, maxLat]}]
let selected = null;
let sensorPlot = null, lagPlot = null, lagCities = [];
let chartBusy = false;
const cards = new Map();   // city -> {el, map, spark, members: [index], view}
const lag = {t: [], rows: new Map()};

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 172800) return `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d`;
}

function show(el, value, text) {
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  el.textContent = text;
}

function shown(name, value) {
  if (typeof value !== "number") return value === null || value === undefined ? "-" : String(value);
  if (name.endsWith("seconds")) return name.startsWith("last_upload") ? `${duration(value)} ago` : duration(value);
  if (name.endsWith("per_second")) return value.toFixed(1);
  return number.format(value);
}

function pick(document, path) {
  return path.split(".").reduce((value, key) => (value === null || value === undefined ? undefined : value[key]), document);
}

// --- land outlines (TopoJSON, vendored from world-atlas) ------------------------------------------

function decodeLand(topology) {
  const [sx, sy] = topology.transform.scale, [tx, ty] = topology.transform.translate;
  const arcs = topology.arcs.map(arc => {
    let x = 0, y = 0;
    return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
  });
  const ring = indexes => indexes.flatMap((i, n) => {
    const points = i < 0 ? arcs[~i].slice().reverse() : arcs[i];
    return n ? points.slice(1) : points;
  });
  const rings = [];
  for (const geometry of topology.objects.land.geometries) {
    const polygons = geometry.type === "Polygon" ? [geometry.arcs] : geometry.arcs;
    for (const polygon of polygons) for (const indexes of polygon) rings.push(ring(indexes));
  }
  return rings.map(points => {
    const lons = points.map(p => p[0]), lats = points.map(p => p[1]);
    return {ring: points, box: [Math.min(...lons), Math.min(...lats), Math.max(...lons), Math.max(...lats)]};
  });
}

// --- city cards and maps --------------------------------------------------------------------------

function cityView(members, canvas) {
  const placed = members.map(i => sensors[i]).filter(s => s.latitude !== null);
  if (!placed.length) return null;
  const lats = placed.map(s => s.latitude), lons = placed.map(s => s.longitude);
  const midLat = (Math.min(...lats) + Math.max(...lats)) / 2, midLon = (Math.min(...lons) + Math.max(...lons)) / 2;
  const cos = Math.max(Math.cos(midLat * Math.PI / 180), 0.05);
  const halfLat = Math.max(0.05, (Math.max(...lats) - Math.min(...lats)) * 0.65);
  const halfLon = Math.max(halfLat * canvas.width / canvas.height / cos, (Math.max(...lons) - Math.min(...lons)) * 0.65);
  const scale = Math.min(canvas.width / (2 * halfLon * cos), canvas.height / (2 * halfLat));
  return {
    box: [midLon - halfLon * 1.5, midLat - halfLat * 1.5, midLon + halfLon * 1.5, midLat + halfLat * 1.5],
    x: lon => canvas.width / 2 + (lon - midLon) * cos * scale,
    y: lat => canvas.height / 2 - (lat - midLat) * scale,
  };
}

function drawBackground(card) {
  const canvas = document.createElement("canvas");
  canvas.width = card.map.width; canvas.height = card.map.height;
  const ctx = canvas.getContext("2d"), view = card.view;
  ctx.fillStyle = "#cfe3f3"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (view && land) {
    ctx.fillStyle = "#e4e8df"; ctx.strokeStyle = "#b9c2ae"; ctx.lineWidth = 1;
    for (const {ring, box} of land) {
      if (box[2] < view.box[0] || box[0] > view.box[2] || box[3] < view.box[1] || box[1] > view.box[3]) continue;
      ctx.beginPath();
      ring.forEach(([lon, lat], n) => (n ? ctx.lineTo : ctx.moveTo).call(ctx, view.x(lon), view.y(lat)));
      ctx.closePath(); ctx.fill(); ctx.stroke();
    }
  }
  card.background = canvas;
}

function drawMap(card) {
  const ctx = card.map.getContext("2d");
  if (card.background) ctx.drawImage(card.background, 0, 0);
  if (!card.view) return;
  for (const i of card.members) {
    const s = sensors[i];
    if (s.latitude === null) continue;
    const x = card.view.x(s.longitude), y = card.view.y(s.latitude);
    ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI);
    ctx.fillStyle = STATE_COLORS[states[i]] || STATE_COLORS.s; ctx.fill();
    if (s.sensor_id === selected) { ctx.lineWidth = 2.5; ctx.strokeStyle = "#1d2330"; ctx.stroke(); }
  }
}

function drawSpark(card, history) {
  const canvas = card.spark, ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (history.length < 2) return;
  const top = Math.max(...history, 1e-9), step = canvas.width / (history.length - 1);
  ctx.beginPath();
  history.forEach((v, n) => (n ? ctx.lineTo : ctx.moveTo).call(ctx, n * step, canvas.height - 2 - v / top * (canvas.height - 4)));
  ctx.strokeStyle = "#1971c2"; ctx.lineWidth = 1.5; ctx.stroke();
}

function card(city) {
  if (cards.has(city.city)) return cards.get(city.city);
  const el = document.getElementById("city-card").content.firstElementChild.cloneNode(true);
  el.dataset.cityId = city.city;
  document.getElementById("cities").append(el);
  const entry = {el, map: el.querySelector(".map"), spark: el.querySelector(".spark"), members: [], view: null};
  entry.map.addEventListener("click", event => {
    const rect = entry.map.getBoundingClientRect();
    const x = (event.clientX - rect.left) * entry.map.width / rect.width, y = (event.clientY - rect.top) * entry.map.height / rect.height;
    let best = null, bestDistance = 12 * 12;
    for (const i of entry.members) {
      const s = sensors[i];
      if (!entry.view || s.latitude === null) continue;
      const d = (entry.view.x(s.longitude) - x) ** 2 + (entry.view.y(s.latitude) - y) ** 2;
      if (d < bestDistance) { best = s.sensor_id; bestDistance = d; }
    }
    if (best) select(best);
  });
  cards.set(city.city, entry);
  placeSensors();
  return entry;
}

function placeSensors() {
  for (const [city, entry] of cards) {
    entry.members = sensors.flatMap((s, i) => (s.city === city ? [i] : []));
    entry.view = cityView(entry.members, entry.map);
    drawBackground(entry);
  }
}

function renderCity(city) {
  const entry = card(city);
  for (const el of entry.el.querySelectorAll("[data-city]")) {
    const name = el.dataset.city, value = city[name];
    show(el, value, shown(name, value));
    if (name === "uploader_state") el.className = `state ${value}`;
  }
  const body = entry.el.querySelector(".sinks tbody");
  body.replaceChildren(...Object.entries(city.sinks || {}).map(([name, sink]) => {
    const row = document.createElement("tr");
    row.dataset.sink = name;
    row.innerHTML = "<td></td><td></td><td></td>";
    row.cells[0].textContent = name;
    show(row.cells[1], sink.rows_shipped, shown("rows", sink.rows_shipped ?? 0));
    show(row.cells[2], sink.lag_rows, shown("rows", sink.lag_rows ?? 0));
    return row;
  }));
  drawSpark(entry, city.rate_history || []);
  drawMap(entry);
}

// --- charts ---------------------------------------------------------------------------------------

function shadeAnomalies(u) {
  const t = u.data[0], flags = u.data[6] || [];
  const ctx = u.ctx;
  ctx.save(); ctx.fillStyle = "rgba(232, 135, 30, 0.18)";
  let start = null;
  for (let n = 0; n <= t.length; n++) {
    const on = n < t.length && flags[n] !== null;
    if (on && start === null) start = n;
    if (!on && start !== null) {
      const x0 = u.valToPos(t[start], "x", true), x1 = u.valToPos(t[n - 1], "x", true);
      ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
      start = null;
    }
  }
  ctx.restore();
}

function sensorChart() {
  const el = document.getElementById("sensor-chart");
  const series = [{}, ...METRICS.map((name, n) => ({label: name, scale: name, stroke: METRIC_COLORS[n], width: 1.5, points: {show: false}})),
                  {label: "anomaly", show: false}];
  const scales = Object.fromEntries(METRICS.map(name => [name, {auto: true}]));
  const axes = [{}, {scale: "temperature", label: "temperature"}];
  return new uPlot({width: el.clientWidth || 600, height: 300, series, scales, axes, hooks: {drawAxes: [shadeAnomalies]}},
                   [[], ...METRICS.map(() => []), []], el);
}

async function refreshChart() {
  if (!selected || chartBusy) return;
  chartBusy = true;
  try {
    const response = await fetch(`/api/sensors/${encodeURIComponent(selected)}/readings`);
    if (!response.ok) return;
    const {sensor_id, columns} = await response.json();
    if (sensor_id !== selected) return;
    sensorPlot = sensorPlot || sensorChart();
    sensorPlot.setData([columns.t, ...METRICS.map(m => columns[m]), columns.anomaly]);
    document.getElementById("sensor-chart").dataset.points = columns.t.length;
  } finally {
    chartBusy = false;
  }
}

function renderLag(tick) {
  const cities = tick.cities.map(c => c.city);
  if (cities.join() !== lagCities.join()) {
    lagCities = cities;
    if (lagPlot) lagPlot.destroy();
    const el = document.getElementById("lag-chart");
    const series = [{}, ...tick.cities.map((c, n) => ({label: c.display_name, stroke: LAG_COLORS[n % LAG_COLORS.length], width: 1.5, points: {show: false}}))];
    lagPlot = new uPlot({width: el.clientWidth || 600, height: 220, series}, [[], ...cities.map(() => [])], el);
  }
  lag.t.push(tick.taken_at);
  for (const c of tick.cities) {
    if (!lag.rows.has(c.city)) lag.rows.set(c.city, new Array(lag.t.length - 1).fill(null));
    lag.rows.get(c.city).push(c.lag_rows);
  }
  if (lag.t.length > LAG_POINTS) { lag.t.shift(); for (const rows of lag.rows.values()) rows.shift(); }
  lagPlot.setData([lag.t, ...cities.map(c => lag.rows.get(c))]);
}

// --- selection and ticks --------------------------------------------------------------------------

function select(sensorId) {
  selected = sensorId;
  document.getElementById("sensor-select").value = sensorId;
  for (const entry of cards.values()) drawMap(entry);
  if (sensorPlot) sensorPlot.setData([[], ...METRICS.map(() => []), []]);
  refreshChart();
}

async function loadSensors() {
  const response = await fetch("/api/sensors");
  sensors = (await response.json()).sensors;
  const picker = document.getElementById("sensor-select");
  picker.replaceChildren(...sensors.map(s => new Option(s.sensor_id, s.sensor_id)));
  placeSensors();
  if (!sensors.some(s => s.sensor_id === selected) && sensors.length) select(sensors[0].sensor_id);
}

function renderHeader(tick) {
  for (const el of document.querySelectorAll("#header [data-field]")) {
    const name = el.dataset.field;
    if (name === "fleet_state") continue;
    const value = pick(tick, name);
    if (name === "taken_at") show(el, value, new Date(value * 1000).toLocaleTimeString());
    else show(el, value, shown(name.split(".").pop(), value));
  }
  const running = tick.totals.sensors_running > 0;
  const badge = document.getElementById("fleet-state");
  show(badge, running ? "running" : "stopped", running ? "running" : "stopped");
  badge.className = running ? "running" : "";
}

async function onTick(tick) {
  if (tick.sensor_states.length !== sensors.length) await loadSensors();
  states = tick.sensor_states;
  renderHeader(tick);
  tick.cities.forEach(renderCity);
  renderLag(tick);
  document.getElementById("sensor-anomaly").textContent = selected && tick.anomalies[selected] ? `anomaly: ${tick.anomalies[selected]}` : "";
  refreshChart();
  document.body.dataset.ticks = String(Number(document.body.dataset.ticks || 0) + 1);
}

async function main() {
  document.getElementById("sensor-select").addEventListener("change", event => select(event.target.value));
  land = decodeLand(await (await fetch("/static/vendor/land-50m.json")).json());
  let queue = Promise.resolve();
  const events = new EventSource("/events");
  events.addEventListener("tick", event => { queue = queue.then(() => onTick(JSON.parse(event.data))); });
}

main();

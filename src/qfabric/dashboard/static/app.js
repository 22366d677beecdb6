// qfabric live dashboard: reads /api/stream (server-sent events) and draws the run.
// Messages: "topology" (nodes, links, requests...), "frames" ({from, frames}: from 0 means start again),
// "state" (status, pause, speed). One frame = the network at one simulated time (qfabric.observe.live).
"use strict";

const COLOURS = { up: "#36b37e", degraded: "#f2a93b", cut: "#e5484d", down: "#e5484d", idle: "#56606c" };
const PALETTE = ["#4c9aff", "#36b37e", "#f2a93b", "#e5484d", "#b37feb", "#2ec4c4", "#ff7eb6", "#c9d36a",
                 "#8d99ae", "#ff9f43"];
const MAX_SERIES = 8;     // lines per chart; more requests are grouped by tenant
const MAX_EVENTS = 400;   // rows kept in the event log

let topo = null;          // the topology message
let frames = [];          // every frame received, in time order
let events = [];          // every event received, in time order
let state = {};           // the latest state message
let cy = null;            // the cytoscape graph
const charts = {};        // uPlot charts by element id

const $ = (id) => document.getElementById(id);
function fmt(x, digits = 3) {
  if (x === null || x === undefined) return "–";
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en");
  return x === 0 ? "0" : String(Number(Number(x).toPrecision(digits)));
}
const fmtInt = (x) => x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en");
const fmtTime = (s) => s === 0 ? "0 s" : s >= 100 ? `${s.toFixed(0)} s` : s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(1)} ms`;
function fmtRate(bps) {
  if (bps === null || bps === undefined) return "–";
  const units = [[1e9, "Gbit/s"], [1e6, "Mbit/s"], [1e3, "kbit/s"]];
  for (const [scale, unit] of units) if (bps >= scale) return `${(bps / scale).toPrecision(3)} ${unit}`;
  return `${bps.toPrecision(3)} bit/s`;
}
// Axis numbers: 4M rather than 4,000,000.
function si(x) {
  const a = Math.abs(x);
  for (const [scale, unit] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) if (a >= scale) return `${Number((x / scale).toPrecision(3))}${unit}`;
  return String(Number(x.toPrecision(3)));
}
function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

// ---- topology --------------------------------------------------------------------------------------------

function setTopology(message) {
  topo = message;
  $("scenario-name").textContent = topo.name;
  $("sim-duration").textContent = fmtTime(topo.duration_s);
  $("qkd-panel").hidden = !(topo.qkd && topo.qkd.length);
  $("kpi-qkd-box").hidden = $("qkd-panel").hidden;
  $("fed-panel").hidden = !topo.federation;
  if (!topo.nodes.length) return;   // a live run: the network is not built yet
  const placed = topo.nodes.every((n) => n.position_km);
  const elements = [
    ...topo.nodes.map((n) => ({ group: "nodes", data: { id: n.name, label: n.name },
      position: placed ? { x: n.position_km[0] * 12, y: -n.position_km[1] * 12 } : undefined })),
    ...topo.links.map((l) => ({ group: "edges", data: { id: l.name, source: l.between[0], target: l.between[1],
      length_km: l.length_km, profile: l.profile, scheme: l.scheme } })),
  ];
  if (cy) cy.destroy();
  cy = cytoscape({
    container: $("graph"), elements, maxZoom: 1.4, minZoom: 0.1,
    layout: placed ? { name: "preset", fit: true, padding: 30 }
                   : { name: "cose", animate: false, randomize: false, padding: 30, nodeRepulsion: () => 9000 },
    style: [
      { selector: "node", style: { "background-color": COLOURS.up, label: "data(label)", color: "#dfe6ee",
          "font-size": 11, "text-valign": "bottom", "text-margin-y": 4, width: 18, height: 18,
          "border-width": 2, "border-color": "#0f141a", "text-outline-color": "#121920", "text-outline-width": 2 } },
      { selector: "edge", style: { "line-color": COLOURS.up, width: 3, "curve-style": "bezier", opacity: 0.9 } },
      { selector: "edge.cut", style: { "line-style": "dashed" } },
      { selector: ":selected", style: { "border-color": "#4c9aff", "line-color": "#4c9aff" } },
    ],
  });
  const tip = $("tooltip");
  cy.on("mouseover", "node, edge", (e) => {
    tip.innerHTML = e.target.isNode() ? nodeTip(e.target.id()) : linkTip(e.target.id());
    tip.hidden = false;
  });
  cy.on("mousemove", (e) => {
    tip.style.left = `${e.renderedPosition.x + 18}px`;
    tip.style.top = `${e.renderedPosition.y + 40}px`;
  });
  cy.on("mouseout", "node, edge", () => { tip.hidden = true; });
  paintGraph();
}

function linkTip(name) {
  const l = topo.links.find((x) => x.name === name) || {};
  const f = latest(), row = f && f.links[name];
  const qkd = f && Object.entries(f.qkd).find(([, q]) => q.link === name);
  let html = `<b>${escapeHtml(name)}</b> ${fmt(l.length_km)} km, ${escapeHtml(l.profile || "")} ${escapeHtml(l.scheme || "")}`;
  if (row) {
    html += `<br>state: ${row.state}<br>pairs/s: ${fmt(row.pairs_per_s)}` +
            `<br>success per attempt: ${fmt(row.success_ratio)}`;
    if (row.successes !== null) html += `<br>pairs heralded so far: ${fmtInt(row.successes)}`;
  }
  if (qkd) html += `<br>QKD ${escapeHtml(qkd[0])}: ${fmtRate(qkd[1].key_rate_bps)}, QBER ${qkd[1].qber === null ? "–" : (100 * qkd[1].qber).toFixed(2) + " %"}`;
  return html;
}

function nodeTip(name) {
  const f = latest(), row = f && f.nodes[name];
  const mine = f ? Object.entries(f.requests).filter(([n]) => endpoints(n).includes(name)) : [];
  let html = `<b>${escapeHtml(name)}</b> ${row ? row.state : ""}`;
  for (const [n, r] of mine.slice(0, 6)) html += `<br>${escapeHtml(n)}: ${fmt(r.rate_hz)} pairs/s, F ${fmt(r.fidelity)}`;
  if (mine.length > 6) html += `<br>… ${mine.length - 6} more requests`;
  return html;
}

function endpoints(request) {
  const r = topo.requests.find((x) => x.name === request);
  return r ? r.between : [];
}

// A colour from red (0) through amber to green (1).
function ramp(x) {
  const t = Math.max(0, Math.min(1, x));
  const hue = 2 + 140 * t;
  return `hsl(${hue}, 62%, 50%)`;
}

function paintGraph() {
  const f = latest();
  if (!cy || !f) return;
  const by = $("colour-by").value;
  const maxKey = Math.max(1, ...Object.values(f.qkd).map((q) => q.key_rate_bps || 0));
  const linkFidelity = {}, nodeFidelity = {};
  for (const [name, r] of Object.entries(f.requests)) {
    if (r.fidelity === null) continue;
    for (const route of r.routes) {
      for (let i = 0; i + 1 < route.length; i++) {
        const key = [route[i], route[i + 1]].sort().join("|");
        linkFidelity[key] = Math.min(linkFidelity[key] ?? 1, r.fidelity);
      }
    }
    for (const node of endpoints(name)) nodeFidelity[node] = Math.min(nodeFidelity[node] ?? 1, r.fidelity);
  }
  cy.batch(() => {
    cy.edges().forEach((edge) => {
      const row = f.links[edge.id()];
      if (!row) return;
      let colour = COLOURS[row.state];
      if (by === "fidelity") {
        const x = linkFidelity[[edge.data("source"), edge.data("target")].sort().join("|")];
        colour = row.state === "cut" ? COLOURS.cut : x === undefined ? COLOURS.idle : ramp((x - 0.5) / 0.5);
      } else if (by === "key") {
        const q = Object.values(f.qkd).find((v) => v.link === edge.id());
        colour = row.state === "cut" ? COLOURS.cut : !q ? COLOURS.idle : ramp((q.key_rate_bps || 0) / maxKey);
      }
      const width = row.pairs_per_s ? 2 + Math.min(8, Math.log10(1 + row.pairs_per_s) * 2) : 2;
      edge.style({ "line-color": colour, width });
      edge.toggleClass("cut", row.state === "cut");
    });
    cy.nodes().forEach((node) => {
      const row = f.nodes[node.id()];
      let colour = COLOURS[row ? row.state : "up"];
      if (by === "fidelity" && (!row || row.state === "up")) {
        const x = nodeFidelity[node.id()];
        colour = x === undefined ? COLOURS.idle : ramp((x - 0.5) / 0.5);
      }
      node.style("background-color", colour);
    });
  });
  const legend = by === "state"
    ? [["up", COLOURS.up], ["degraded (extra loss, weaker detector or memory)", COLOURS.degraded], ["cut / down", COLOURS.cut]]
    : by === "fidelity"
      ? [["F 1.0", ramp(1)], ["F 0.75", ramp(0.5)], ["F ≤ 0.5", ramp(0)], ["no pairs", COLOURS.idle], ["cut", COLOURS.cut]]
      : [[`${fmtRate(maxKey)} (highest now)`, ramp(1)], ["half of it", ramp(0.5)], ["no key", ramp(0)], ["no QKD", COLOURS.idle]];
  $("legend").innerHTML = legend.map(([t, c]) => `<span><i style="background:${c}"></i>${escapeHtml(t)}</span>`).join("") +
    "<span>line width: elementary pairs/s (log)</span>";
}

// ---- frames ----------------------------------------------------------------------------------------------

function latest() { return frames.length ? frames[frames.length - 1] : null; }

function addFrames(message) {
  if (message.from === 0) { frames = []; events = []; }
  for (const f of message.frames) {
    frames.push(f);
    for (const e of f.events) events.push(e);
  }
  if (message.frames.length || message.from === 0) render();
}

// Chart series: per request when there are few, per tenant when there are many requests and several tenants
// (fidelity weighted by rate), else the requests that delivered most.
function groups() {
  const names = new Set(), tenants = new Set();
  for (const f of frames) {
    for (const n of Object.keys(f.requests)) names.add(n);
    for (const t of Object.keys(f.tenants)) tenants.add(t);
  }
  if (names.size > MAX_SERIES && tenants.size > 1) return { byRequest: false, names: [...tenants], label: "tenant" };
  const last = latest().requests, pairs = (n) => (last[n] ? last[n].pairs_delivered : 0);
  const top = [...names].sort((a, b) => pairs(b) - pairs(a)).slice(0, MAX_SERIES);
  const label = names.size > MAX_SERIES ? `request (the ${MAX_SERIES} with most pairs)` : "request";
  return { byRequest: true, names: [...names].filter((n) => top.includes(n)), label };
}

function groupValues(f, g, byRequest) {
  if (byRequest) { const r = f.requests[g]; return r ? [r.rate_hz, r.fidelity] : [null, null]; }
  let rate = 0, weighted = 0, weight = 0, any = false;
  for (const r of Object.values(f.requests)) {
    if ((r.tenant || "default") !== g || r.rate_hz === null) continue;
    any = true;
    rate += r.rate_hz;
    if (r.fidelity !== null) { weighted += r.fidelity * r.rate_hz; weight += r.rate_hz; }
  }
  return [any ? rate : null, weight > 0 ? weighted / weight : null];
}

function lineChart(id, names, data, { yLabel, percent = false } = {}) {
  const el = $(id);
  const key = names.join("\u0000");
  const width = Math.max(300, el.clientWidth || 400);
  if (!charts[id] || charts[id].key !== key) {
    if (charts[id]) charts[id].plot.destroy();
    const opts = {
      width, height: 170, legend: { live: true },
      scales: { x: { time: false } },
      axes: [
        { stroke: "#8b98a7", grid: { stroke: "#24303b" }, ticks: { stroke: "#24303b" }, label: "simulated time, s", labelSize: 16 },
        { stroke: "#8b98a7", grid: { stroke: "#24303b" }, ticks: { stroke: "#24303b" }, label: yLabel, labelSize: 16, size: 56,
          values: (u, ticks) => ticks.map(si) },
      ],
      series: [{ label: "t, s" }, ...names.map((n, i) => ({
        label: n, stroke: PALETTE[i % PALETTE.length], width: 1.6, spanGaps: false,
        value: (u, v) => v === null || v === undefined ? "–" : percent ? `${v.toFixed(2)} %` : v.toPrecision(4),
      }))],
    };
    charts[id] = { key, plot: new uPlot(opts, data, el) };
  } else {
    charts[id].plot.setData(data);
    if (Math.abs(charts[id].plot.width - width) > 20) charts[id].plot.setSize({ width, height: 170 });
  }
}

function drawCharts() {
  const t = frames.map((f) => f.t_s);
  const { byRequest, names, label: what } = groups();
  $("rate-title").textContent = `Delivered pairs per second, by ${what}`;
  $("fidelity-title").textContent = `Mean delivered fidelity, by ${what}`;
  const values = names.map((g) => frames.map((f) => groupValues(f, g, byRequest)));
  lineChart("chart-rate", names, [t, ...values.map((v) => v.map((x) => x[0]))], { yLabel: "pairs/s" });
  lineChart("chart-fidelity", names, [t, ...values.map((v) => v.map((x) => x[1]))], { yLabel: "fidelity" });
  if (topo && topo.qkd && topo.qkd.length) {
    const links = topo.qkd.map((q) => q.name);
    lineChart("chart-key", links, [t, ...links.map((n) => frames.map((f) => f.qkd[n] ? f.qkd[n].key_rate_bps : null))],
              { yLabel: "bit/s" });
    lineChart("chart-qber", links, [t, ...links.map((n) => frames.map((f) => f.qkd[n] && f.qkd[n].qber !== null ? 100 * f.qkd[n].qber : null))],
              { yLabel: "QBER, %", percent: true });
  }
}

function drawSloStrips() {
  const canvas = $("slo-strips");
  const names = [...new Set(frames.flatMap((f) => Object.entries(f.requests)
    .filter(([, r]) => r.slo === "met" || r.slo === "violated").map(([n]) => n)))];
  const rowH = 14, labelW = 150, width = canvas.clientWidth || 800;
  const height = Math.max(30, names.length * rowH + 18);
  canvas.width = width * devicePixelRatio; canvas.height = height * devicePixelRatio;
  canvas.style.height = `${height}px`;
  const g = canvas.getContext("2d");
  g.scale(devicePixelRatio, devicePixelRatio);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#8b98a7";
  if (!names.length) { g.fillText("no request has service-level objectives", 4, 18); return; }
  const duration = topo ? topo.duration_s : 1, plotW = width - labelW - 10;
  const x = (t) => labelW + (t / duration) * plotW;
  names.forEach((n, row) => {
    const y = row * rowH;
    g.fillStyle = "#8b98a7";
    g.fillText(n.length > 22 ? n.slice(0, 21) + "…" : n, 4, y + 10);
    let prev = 0;
    for (const f of frames) {
      const r = f.requests[n];
      g.fillStyle = !r || r.slo === "none" ? "#26303b" : r.slo === "violated" ? COLOURS.cut : COLOURS.up;
      g.fillRect(x(prev), y + 2, Math.max(1, x(f.t_s) - x(prev)), rowH - 4);
      prev = f.t_s;
    }
  });
  g.fillStyle = "#8b98a7";
  const y = names.length * rowH + 12;
  for (let k = 0; k <= 4; k++) g.fillText(fmtTime(duration * k / 4), Math.min(x(duration * k / 4), width - 50), y);
}

function drawTables(f) {
  const reqRows = Object.entries(f.requests).sort(([, a], [, b]) => (b.slo === "violated") - (a.slo === "violated"));
  $("requests").tBodies[0].innerHTML = reqRows.map(([n, r]) => `<tr>
    <td>${escapeHtml(n)}</td><td>${escapeHtml(r.tenant || "default")}</td>
    <td class="route">${r.routes.map((p) => escapeHtml(p.join(" → "))).join("<br>") || "–"}</td>
    <td class="num">${fmtInt(r.pairs_delivered)}</td><td class="num">${fmt(r.rate_hz)}</td>
    <td class="num">${fmt(r.fidelity, 4)}</td><td><span class="slo ${r.slo}">${r.slo === "none" ? "no SLO" : r.slo}</span></td>
    <td class="num">${r.violations}</td></tr>`).join("");
  $("tenants").tBodies[0].innerHTML = Object.entries(f.tenants).map(([n, t]) => `<tr><td>${escapeHtml(n)}</td>
    <td class="num">${t.requests}</td><td class="num">${t.refused}</td><td class="num">${fmtInt(t.pairs_delivered)}</td>
    <td class="num">${fmt(t.rate_hz)}</td><td class="num">${t.slo_violated}</td></tr>`).join("");
  $("rounds").tBodies[0].innerHTML = f.rounds.slice().reverse().map((r) => `<tr><td class="num">${r.round}</td>
    <td class="num">${fmt(r.t_s, 4)}</td><td class="num">${r.participants}</td>
    <td>${Object.entries(r.sessions_by_mode).map(([m, k]) => `${escapeHtml(m)} ${k}`).join(", ") || (r.failed ? escapeHtml(r.failed) : "–")}</td>
    <td class="num">${r.fallbacks}</td><td class="num">${r.accuracy === null || r.accuracy === undefined ? "–" : (100 * r.accuracy).toFixed(1) + " %"}</td></tr>`).join("");
  $("pools").tBodies[0].innerHTML = Object.entries(f.pools).map(([p, k]) => `<tr><td>${escapeHtml(p.replace("|", " ↔ "))}</td>
    <td class="num">${fmtInt(k)}</td></tr>`).join("");
  $("fed-hint").textContent = topo && topo.federation && !f.rounds.length
    ? (state.done ? "no round in the time shown" : "rounds appear when the training has run") : `${f.rounds.length} round(s)`;
  $("qkd-hint").textContent = Object.keys(f.qkd).length ? "" : "the QKD links are simulated after the network; their rates appear when they have run";
}

function describe(e) {
  const skip = new Set(["t_s", "event", "kind", "tenant", "source", "target", "request"]);
  const parts = [];
  if (e.request) parts.push(`<b>${escapeHtml(e.request)}</b>`);
  if (e.target && !e.request) parts.push(`<b>${escapeHtml(e.target)}</b>`);
  if (e.kind && e.event !== e.kind) parts.push(escapeHtml(e.kind));
  for (const [k, v] of Object.entries(e)) {
    if (skip.has(k) || v === null || v === "" || (Array.isArray(v) && !v.length)) continue;
    const text = Array.isArray(v) ? v.map((p) => Array.isArray(p) ? p.join("→") : p).join(", ") : v;
    parts.push(`${escapeHtml(k)}: ${escapeHtml(typeof text === "object" ? JSON.stringify(text) : text)}`);
  }
  return parts.join(" · ");
}

function drawEvents() {
  const shown = events.slice(-MAX_EVENTS).reverse();
  $("events").innerHTML = shown.map((e) => `<li class="ev-${escapeHtml(e.event)}"><span class="t">${fmtTime(e.t_s)}</span>
    <span class="kind">${escapeHtml(e.event)}</span><span>${describe(e)}</span></li>`).join("");
  $("event-count").textContent = `${events.length} so far, newest first`;
}

function drawKpis(f) {
  const reqs = Object.values(f.requests);
  $("kpi-pairs").textContent = fmtInt(reqs.reduce((s, r) => s + r.pairs_delivered, 0));
  $("kpi-rate").textContent = `${fmt(reqs.reduce((s, r) => s + (r.rate_hz || 0), 0))} pairs/s`;
  $("kpi-requests").textContent = `${reqs.filter((r) => r.slo !== "refused").length} / ${reqs.filter((r) => r.slo === "refused").length}`;
  const violated = reqs.filter((r) => r.slo === "violated").length;
  $("kpi-slo").textContent = `${violated} of ${reqs.filter((r) => r.slo === "met" || r.slo === "violated").length}`;
  $("kpi-slo").style.color = violated ? COLOURS.cut : "";
  const links = Object.values(f.links);
  $("kpi-links").textContent = `${links.filter((l) => l.state === "cut").length} / ${links.filter((l) => l.state === "degraded").length}`;
  const qkd = Object.values(f.qkd);
  $("kpi-qkd").textContent = qkd.length ? fmtRate(qkd.reduce((s, q) => s + (q.key_rate_bps || 0), 0)) : "–";
}

function render() {
  const f = latest();
  $("sim-time").textContent = fmtTime(f ? f.t_s : 0);
  if (topo) $("progress-bar").style.width = `${Math.min(100, 100 * (f ? f.t_s : 0) / topo.duration_s)}%`;
  if (!f) return;
  drawKpis(f);
  paintGraph();
  drawCharts();
  drawSloStrips();
  drawTables(f);
  drawEvents();
}

// ---- state and controls ----------------------------------------------------------------------------------

function setState(s) {
  state = s;
  $("mode").textContent = s.mode === "replay" ? "replay" : "live";
  $("status").textContent = s.paused && !s.done ? "paused" : s.error ? `failed: ${s.error}` : s.status;
  $("status").className = s.error ? "status failed" : "status";
  $("pause").textContent = s.paused ? "Resume" : "Pause";
  if (document.activeElement !== $("speed")) $("speed").value = Number(s.speed.toPrecision(4));
}

async function control(body) {
  const response = await fetch("/api/control", { method: "POST", headers: { "Content-Type": "application/json" },
                                                 body: JSON.stringify(body) });
  if (response.ok) setState(await response.json());
}

$("pause").addEventListener("click", () => control({ paused: !state.paused }));
$("slower").addEventListener("click", () => control({ speed: state.speed / 2 }));
$("faster").addEventListener("click", () => control({ speed: state.speed * 2 }));
$("speed").addEventListener("change", (e) => { const v = Number(e.target.value); if (v > 0) control({ speed: v }); });
$("colour-by").addEventListener("change", paintGraph);
window.addEventListener("resize", () => { if (frames.length) { drawCharts(); drawSloStrips(); } });

const stream = new EventSource("/api/stream");
stream.addEventListener("topology", (e) => setTopology(JSON.parse(e.data)));
stream.addEventListener("frames", (e) => addFrames(JSON.parse(e.data)));
stream.addEventListener("state", (e) => setState(JSON.parse(e.data)));

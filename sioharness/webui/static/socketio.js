// The Socket.IO page: polls api/live every 2 s and draws what the recorder wrote.
// No libraries (the page works offline); charts are plain canvas line plots.
"use strict";

const POLL_MS = 2000;
const COLORS = ["#15803d", "#2563eb", "#dc2626", "#9333ea", "#ea580c"];
const $ = (id) => document.getElementById(id);

function fmt(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

// A line chart: series = [{label, values, x?, color, dashed}]; x (seconds) is shared unless a series has its own.
function drawChart(canvas, x, series, { unit = "", yMin = 0 } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const left = 52, right = 10, top = 18, bottom = 22;
  const plotW = width - left - right, plotH = height - top - bottom;
  const values = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const allX = [...x, ...series.flatMap((s) => s.x || [])];
  ctx.font = "11px Roboto, Helvetica, Arial, sans-serif";
  ctx.fillStyle = "#6b7280";
  if (!allX.length || !values.length) {
    ctx.fillText("no data yet", left + plotW / 2 - 25, top + plotH / 2);
    return;
  }
  const xMin = Math.min(...allX), xMax = Math.max(...allX, xMin + 1);
  const yMax = Math.max(...values, yMin + 1e-9) * 1.08;
  const px = (v) => left + ((v - xMin) / (xMax - xMin)) * plotW;
  const py = (v) => top + plotH - ((v - yMin) / (yMax - yMin)) * plotH;
  ctx.strokeStyle = "#e5e7eb"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4, y = py(v);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + plotW, y); ctx.stroke();
    ctx.fillText(fmt(v, v < 10 ? 1 : 0) + unit, 2, y + 4);
  }
  ctx.fillText(`${fmt(xMin, 0)} s`, left, height - 6);
  ctx.fillText(`${fmt(xMax, 0)} s`, left + plotW - 30, height - 6);
  let legendX = left;
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    ctx.strokeStyle = color; ctx.lineWidth = 1.6;
    ctx.setLineDash(s.dashed ? [5, 4] : []);
    ctx.beginPath();
    let drawing = false;
    const xs = s.x || x;
    s.values.forEach((v, j) => {
      if (v === null || v === undefined) { drawing = false; return; }
      const X = px(xs[j]), Y = py(v);
      if (drawing) ctx.lineTo(X, Y); else ctx.moveTo(X, Y);
      drawing = true;
    });
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = color;
    ctx.fillRect(legendX, 5, 10, 3);
    ctx.fillStyle = "#374151";
    ctx.fillText(s.label, legendX + 14, 11);
    legendX += 24 + ctx.measureText(s.label).width;
  });
}

function renderEvents(events) {
  const body = $("sio-events").tBodies[0];
  if (!events || !events.length) {
    body.innerHTML = '<tr><td colspan="11" class="muted">no samples yet</td></tr>';
    return;
  }
  body.replaceChildren(...events.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.key = e.key;
    const cells = [e.kind, e.name, fmt(e.count, 0), fmt(e.failed, 0), fmt(e.per_s),
      fmt(e.mean_us), fmt(e.p50_us), fmt(e.p90_us), fmt(e.p99_us), fmt(e.p999_us), fmt(e.max_us)];
    cells.forEach((text) => { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); });
    return tr;
  }));
}

function renderCells(cells, current) {
  const list = $("sio-cells");
  if (!cells || !cells.length) { list.innerHTML = '<li class="muted">none yet</li>'; return; }
  list.replaceChildren(...cells.slice().reverse().map((c) => {
    const li = document.createElement("li");
    const name = document.createElement("code");
    name.textContent = c.name;
    li.appendChild(name);
    li.appendChild(document.createTextNode(` ${c.status || "?"}${c.name === current ? " (current)" : ""} `));
    if (c.report) {
      const a = document.createElement("a");
      a.href = c.report; a.target = "_blank"; a.rel = "noopener"; a.textContent = "report";
      li.appendChild(a);
    }
    return li;
  }));
}

function renderReport(report) {
  const box = $("sio-report"), link = $("sio-report-link"), status = $("sio-report-status");
  const button = $("sio-report-button");
  button.disabled = report.state === "writing";
  if (!report || report.state === "idle") { box.hidden = true; return; }
  box.hidden = false;
  box.classList.toggle("failed", report.state === "failed");
  if (report.state === "writing") {
    status.textContent = `Writing the report of ${report.cell}…`;
    link.hidden = true;
  } else if (report.state === "failed") {
    status.textContent = `Report failed: ${report.error}`;
    link.hidden = true;
  } else {
    const when = report.while_running ? " (as of now: the test is still running)" : "";
    status.textContent = `Report written to ${report.path} in ${fmt(report.seconds)} s${when}.`;
    link.href = report.url;
    link.hidden = false;
  }
}

function render(data) {
  const f = data.figures || {};
  const state = $("sio-state");
  state.textContent = data.state;
  state.className = `badge ${data.state}`;
  setText("sio-cell", data.cell ? data.cell : "");
  setText("sio-root", data.results_dir || "(not recording)");
  const notice = $("sio-notice");
  if (!data.recording) {
    notice.hidden = false;
    notice.textContent = "Not recording: start Locust with --results-dir (python -m sioharness.bench.ui does), or the figures stay empty.";
  } else if (!data.cell) {
    notice.hidden = false;
    notice.textContent = "No test started yet: choose a scenario and start one from Locust's page.";
  } else notice.hidden = true;

  setText("sio-elapsed", f.elapsed_s !== undefined ? `${fmt(f.elapsed_s, 0)} s` : "-");
  setText("sio-users", fmt(data.user_count, 0));
  setText("sio-samples", f.samples !== undefined ? `${fmt(f.samples, 0)} (${f.recorders})` : "-");
  const c = f.connections || {};
  setText("sio-concurrent", c.concurrent !== undefined ? `${fmt(c.concurrent, 0)} (${fmt(c.peak, 0)})` : "-");
  setText("sio-conn-rates", c.connects !== undefined ? `${fmt(c.connects_per_s)} · ${fmt(c.disconnects_per_s)}` : "-");
  const fo = f.fanout;
  setText("sio-fanout", fo ? `${fmt(fo.settled_expected, 0)} · ${fmt(fo.settled_received, 0)} · ${fmt(fo.lost, 0)}` +
    (fo.loss_ratio !== null ? ` (${fmt(fo.loss_ratio * 100, 3)} %)` : "") : "-");
  const sv = f.server;
  setText("sio-server", sv ? `${fmt(sv.cpu_pct_now)} · ${fmt(sv.rss_mib_now)}`
    : (data.target && !data.target.sampled ? "not sampled" : "-"));
  renderEvents(f.events);
  renderCells(data.cells, data.cell);
  renderReport(data.report || { state: "idle" });

  const s = f.series || { t: [] };
  drawChart($("chart-conn"), s.t, [
    { label: "connects/s", values: s.connects || [] },
    { label: "disconnects/s", values: s.disconnects || [] },
    { label: "connect failures/s", values: s.connect_failures || [], color: "#dc2626" },
  ]);
  const concurrent = [{ label: "from samples", values: s.concurrent || [], x: s.t }];
  if (sv) concurrent.push({ label: "target /stats", values: sv.connected, x: sv.t, dashed: true, color: "#2563eb" });
  drawChart($("chart-concurrent"), [], concurrent);
  drawChart($("chart-throughput"), s.t, [
    { label: "acks/s", values: s.acks || [] },
    { label: "pushes/s", values: s.pushes || [] },
    { label: "failures/s", values: s.failures || [], color: "#dc2626" },
  ]);
  drawChart($("chart-fanout"), s.t, fo ? [
    { label: "expected", values: fo.series_expected },
    { label: "received", values: fo.series_received, dashed: true },
  ] : []);
  drawChart($("chart-cpu"), sv ? sv.t : [], sv ? [{ label: "CPU %", values: sv.cpu_pct }] : [], { unit: "" });
  drawChart($("chart-rss"), sv ? sv.t : [], sv ? [{ label: "RSS MiB", values: sv.rss_mib }] : [], { yMin: 0 });
}

async function poll() {
  try {
    const response = await fetch("api/live", { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) throw new Error("login required: open Locust's page and log in");
    if (!response.ok) throw new Error(`api/live answered ${response.status}`);
    render(await response.json());
  } catch (err) {
    const notice = $("sio-notice");
    notice.hidden = false;
    notice.textContent = `Cannot read live figures: ${err.message}`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

$("sio-report-button").addEventListener("click", async () => {
  const button = $("sio-report-button");
  button.disabled = true;
  renderReport({ state: "writing", cell: $("sio-cell").textContent || "the current test" });
  try {
    const response = await fetch("api/report", { method: "POST", credentials: "same-origin" });
    const body = await response.json();
    renderReport(response.ok ? body : { state: "failed", error: body.error || `HTTP ${response.status}` });
  } catch (err) {
    renderReport({ state: "failed", error: err.message });
  } finally {
    button.disabled = false;
  }
});

poll();

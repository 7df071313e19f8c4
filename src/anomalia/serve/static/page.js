// The threshold page of `anomalia serve`: choose a model's operating threshold on a
// labelled dev set. Plain browser JavaScript, nothing loaded from elsewhere.
//
// Decision rule (as anomalia.thresholds / anomalia.metrics): a row is an anomaly iff its
// score > threshold. Shown numbers: counts as integers; precision, recall, F1 and the
// false-alarm rate (FP / normal rows) with 4 decimals; total cost
// (cost_miss * FN + cost_false_alarm * FP) with 6 significant digits; the #threshold field
// holds the exact threshold (a JavaScript number, as the server sent it or as typed).
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "anomalia-token";
const SVG = "http://www.w3.org/2000/svg";
const COLORS = { normal: "#4c78a8", anomaly: "#e4572e", line: "#1f2933", saved: "#8a94a6" };

const state = {
  models: [],
  model: null, // the chosen model card
  file: null, // the dev CSV (a File)
  dev: null, // {scores, labels, pos, neg, lo, hi, roc, auc, ap} once scored
  column: "", // the label column those labels came from
  threshold: NaN,
  mode: { strategy: "manual" }, // what the download asks for
  draw: null, // redraws the moving parts of the charts
};

// -- talking to the service ---------------------------------------------------------------
async function api(path, { method = "GET", body, type, blob = false } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  if (type) headers["Content-Type"] = type;
  let res;
  try {
    res = await fetch(path, { method, headers, body });
  } catch (e) {
    throw new Error("Cannot reach the service: " + e.message);
  }
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const doc = await res.json();
      detail = typeof doc.detail === "string" ? doc.detail : JSON.stringify(doc.detail);
    } catch (e) { /* not JSON: keep the status text */ }
    if (res.status === 401) {
      throw new Error(`This service needs an API token: enter it in the "API token" field ` +
        `at the top right (the service said: ${detail}).`);
    }
    throw new Error(`${detail} (HTTP ${res.status})`);
  }
  return blob ? res : res.json();
}

function showError(err) {
  const box = $("message");
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

function clearError() {
  $("message").hidden = true;
  $("message").textContent = "";
}

async function guarded(fn) {
  try {
    await fn();
    clearError();
  } catch (err) {
    showError(err);
  }
}

const modelPath = (suffix) => `/v1/models/${encodeURIComponent(state.model.name)}/${suffix}`;

// -- formatting -----------------------------------------------------------------------------
const rate = (x) => (Number.isFinite(x) ? x.toFixed(4) : "–");
const sig = (x, digits = 6) => (Number.isFinite(x) ? String(Number(x.toPrecision(digits))) : "–");

function describeCalibration(c) {
  if (!c || !c.strategy) return "–";
  const rows = c.dev_rows ? ` on ${c.dev_rows} dev rows` : "";
  switch (c.strategy) {
    case "default":
    case "contamination":
      return `top ${sig(100 * c.rate, 4)}% of the training scores (${c.strategy})`;
    case "f1": return "max F1" + rows;
    case "fpr": return `false-alarm rate ≤ ${c.target}` + rows;
    case "recall": return `recall ≥ ${c.target}` + rows;
    case "cost": return `min cost (miss ${c.cost_miss}, false alarm ${c.cost_false_alarm})` + rows;
    case "manual": return "set by hand" + rows;
    default: return JSON.stringify(c);
  }
}

function describeMode(m) {
  const names = {
    manual: `manual threshold ${sig(state.threshold)}`,
    f1: "max F1",
    fpr: `false-alarm rate ≤ ${m.target}`,
    recall: `recall ≥ ${m.target}`,
    cost: `min cost (miss ${m.cost_miss}, false alarm ${m.cost_false_alarm})`,
  };
  return `Threshold by ${names[m.strategy]} on this dev set. The download is this model ` +
    "with that threshold, as anomalia calibrate writes it.";
}

// -- models -----------------------------------------------------------------------------------
async function loadModels() {
  const select = $("model");
  select.replaceChildren();
  state.models = [];
  state.model = null;
  showCard();
  state.models = await api("/v1/models");
  for (const m of state.models) select.append(new Option(m.name, m.name));
  state.model = state.models[0] || null;
  showCard();
}

function showCard() {
  const m = state.model;
  const set = (id, text) => { $(id).textContent = text; };
  if (!m) {
    for (const id of ["detector", "features", "threshold", "calibration", "train-rows", "sha256"]) {
      set("card-" + id, "–");
    }
    return;
  }
  set("card-detector", m.detector);
  $("card-detector").title = JSON.stringify(m.parameters);
  const names = m.feature_names || [];
  set("card-features", `${m.n_features}` + (names.length ? ": " + names.join(", ") : ""));
  set("card-threshold", sig(m.threshold));
  set("card-calibration", describeCalibration(m.calibration));
  set("card-train-rows", m.train_rows == null ? "–" : String(m.train_rows));
  set("card-sha256", m.sha256);
}

// -- the dev set ------------------------------------------------------------------------------
function parseHeader(text) {
  const line = text.replace(/^\uFEFF/, "").split(/\r?\n/)[0];
  const out = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c !== '"') cur += c;
      else if (line[i + 1] === '"') { cur += '"'; i++; } else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ",") { out.push(cur); cur = ""; } else cur += c;
  }
  out.push(cur);
  return out;
}

async function chooseFile(file) {
  if (!file) return;
  state.file = file;
  const header = parseHeader(await file.slice(0, 1 << 16).text());
  const select = $("label-column");
  select.replaceChildren(new Option("— choose the label column —", ""));
  for (const name of header) select.append(new Option(name, name));
  select.disabled = false;
  $("dev-summary").textContent = `${file.name}: ${header.length} columns.`;
  if (!state.model) await loadModels(); // e.g. the token was missing: says why again
  const saved = state.model && state.model.label_column;
  if (header.includes(saved)) select.value = saved;
  if (select.value) await scoreDev();
}

async function scoreDev() {
  const column = $("label-column").value;
  if (!state.file || !column) return;
  if (!state.model) throw new Error("No model to score with: the model list did not load.");
  const q = new URLSearchParams({ label_column: column });
  const out = await api(modelPath("dev?" + q), { method: "POST", body: state.file, type: "text/csv" });
  state.dev = analyse(out.anomaly_score, out.label);
  state.column = column;
  const d = state.dev;
  $("dev-summary").textContent = `${state.file.name}: ${d.scores.length} rows, ` +
    `${d.pos.length} anomalies (label column ${column}).`;
  $("results").hidden = false;
  $("download-panel").hidden = false;
  const slider = $("slider");
  slider.min = d.lo;
  slider.max = d.hi;
  state.draw = drawCharts(d);
  setThreshold(state.model.threshold, { strategy: "manual" });
}

// Sorted scores per class, ROC/PR points at every distinct cut, AUC and average precision.
function analyse(scores, labels) {
  const pos = [];
  const neg = [];
  scores.forEach((s, i) => (labels[i] === 1 ? pos : neg).push(s));
  const num = (a, b) => a - b;
  pos.sort(num);
  neg.sort(num);
  const order = scores.map((s, i) => i).sort((a, b) => scores[b] - scores[a]);
  const roc = [{ fpr: 0, recall: 0, precision: NaN }];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < order.length;) {
    const s = scores[order[k]];
    for (; k < order.length && scores[order[k]] === s; k++) {
      if (labels[order[k]] === 1) tp++; else fp++;
    }
    roc.push({ fpr: fp / neg.length, recall: tp / pos.length, precision: tp / (tp + fp) });
  }
  let auc = 0;
  let ap = 0;
  for (let i = 1; i < roc.length; i++) {
    const a = roc[i - 1];
    const b = roc[i];
    auc += ((b.fpr - a.fpr) * (a.recall + b.recall)) / 2;
    ap += (b.recall - a.recall) * b.precision;
  }
  const lo = Math.min(pos[0], neg[0]);
  const hi = Math.max(pos[pos.length - 1], neg[neg.length - 1]);
  const pad = (hi - lo) * 0.01 || 1;
  return { scores, labels, pos, neg, roc, auc, ap, lo: lo - pad, hi: hi + pad };
}

// How many of the sorted values are > t.
function above(sorted, t) {
  let a = 0;
  let b = sorted.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (sorted[m] > t) b = m; else a = m + 1;
  }
  return sorted.length - a;
}

function costs() {
  return { miss: Number($("cost-miss").value), fa: Number($("cost-false-alarm").value) };
}

function metricsAt(t) {
  const d = state.dev;
  const tp = above(d.pos, t);
  const fp = above(d.neg, t);
  const fn = d.pos.length - tp;
  const tn = d.neg.length - fp;
  const c = costs();
  return {
    tp, fp, tn, fn,
    precision: tp + fp ? tp / (tp + fp) : 0,
    recall: tp / d.pos.length,
    f1: 2 * tp + fp + fn ? (2 * tp) / (2 * tp + fp + fn) : 0,
    far: fp / d.neg.length,
    cost: c.miss * fn + c.fa * fp,
  };
}

// -- the threshold ----------------------------------------------------------------------------
function setThreshold(t, mode, { fromSlider = false, fromField = false } = {}) {
  state.threshold = t;
  state.mode = mode;
  if (!fromSlider) $("slider").value = String(t);
  if (!fromField) $("threshold").value = String(t);
  update();
}

function update() {
  if (!state.dev) return;
  const m = metricsAt(state.threshold);
  for (const k of ["tp", "fp", "tn", "fn"]) $(k).textContent = String(m[k]);
  for (const k of ["precision", "recall", "f1", "far"]) $(k).textContent = rate(m[k]);
  $("cost").textContent = sig(m.cost);
  const n = state.dev.scores.length;
  $("flagged").textContent = `${m.tp + m.fp} of ${n} rows flagged`;
  $("download-strategy").textContent = describeMode(state.mode);
  for (const s of ["f1", "fpr", "recall", "cost"]) {
    $("strategy-" + s).setAttribute("aria-pressed", String(state.mode.strategy === s));
  }
  state.draw(state.threshold, m);
}

async function askStrategy(strategy) {
  if (!state.dev) return;
  const mode = { strategy };
  const number = (id, what) => {
    const v = $(id).value.trim();
    if (v === "" || !Number.isFinite(Number(v))) throw new Error(`${what} must be a number.`);
    return Number(v);
  };
  if (strategy === "fpr") mode.target = number("fpr-target", "The false-alarm rate target");
  if (strategy === "recall") mode.target = number("recall-target", "The recall target");
  if (strategy === "cost") {
    mode.cost_miss = number("cost-miss", "The cost of a miss");
    mode.cost_false_alarm = number("cost-false-alarm", "The cost of a false alarm");
  }
  const q = new URLSearchParams({ label_column: state.column, ...mode });
  const out = await api(modelPath("dev?" + q), { method: "POST", body: state.file, type: "text/csv" });
  setThreshold(out.chosen, mode);
}

async function download() {
  if (!state.dev) return;
  const mode = state.mode.strategy === "manual"
    ? { strategy: "manual", threshold: String(state.threshold) } : state.mode;
  const q = new URLSearchParams({ label_column: state.column, ...mode });
  const res = await api(modelPath("calibrated?" + q), {
    method: "POST", body: state.file, type: "text/csv", blob: true,
  });
  const found = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "");
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await res.blob());
  a.download = found ? found[1] : `${state.model.name}-calibrated.anomalia`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// -- charts (inline SVG) ----------------------------------------------------------------------
function el(tag, attrs, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.append(node);
  return node;
}

function ticks(lo, hi, n) {
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const r = raw / mag;
  const step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

// Axes, ticks, labels and a legend; returns the scales and a layer for the data.
function axes(svg, { width, height, x, y, xlabel, ylabel, title, legend }) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const m = { left: 56, right: 16, top: 30, bottom: 44 };
  const sx = (v) => m.left + ((v - x[0]) / (x[1] - x[0])) * (width - m.left - m.right);
  const sy = (v) => height - m.bottom - ((v - y[0]) / (y[1] - y[0])) * (height - m.top - m.bottom);
  el("text", { x: m.left, y: 18, class: "title" }, svg).textContent = title;
  const grid = el("g", { class: "grid" }, svg);
  for (const v of ticks(x[0], x[1], width > 500 ? 10 : 5)) {
    el("line", { x1: sx(v), x2: sx(v), y1: sy(y[0]), y2: sy(y[1]) }, grid);
    el("text", { x: sx(v), y: sy(y[0]) + 16, class: "tick", "text-anchor": "middle" }, svg)
      .textContent = String(v);
  }
  for (const v of ticks(y[0], y[1], 5)) {
    el("line", { x1: sx(x[0]), x2: sx(x[1]), y1: sy(v), y2: sy(v) }, grid);
    el("text", { x: sx(x[0]) - 6, y: sy(v) + 4, class: "tick", "text-anchor": "end" }, svg)
      .textContent = String(v);
  }
  el("rect", { x: sx(x[0]), y: sy(y[1]), width: sx(x[1]) - sx(x[0]), height: sy(y[0]) - sy(y[1]), class: "frame" }, svg);
  el("text", { x: (sx(x[0]) + sx(x[1])) / 2, y: height - 8, class: "label", "text-anchor": "middle" }, svg)
    .textContent = xlabel;
  const ly = (sy(y[0]) + sy(y[1])) / 2;
  el("text", { x: 14, y: ly, class: "label", "text-anchor": "middle", transform: `rotate(-90 14 ${ly})` }, svg)
    .textContent = ylabel;
  const data = el("g", {}, svg);
  // legend, right-aligned in the title row
  const keys = el("g", { class: "legend" }, svg);
  let lx = width - m.right;
  for (const [label, style] of [...legend].reverse()) {
    const t = el("text", { x: lx, y: 18, "text-anchor": "end" }, keys);
    t.textContent = label;
    lx -= t.getComputedTextLength() + 6;
    if (style.dash !== undefined) {
      el("line", { x1: lx - 16, x2: lx, y1: 14, y2: 14, stroke: style.color, "stroke-width": 2, "stroke-dasharray": style.dash }, keys);
    } else if (style.dot) {
      el("circle", { cx: lx - 6, cy: 14, r: 5, fill: style.color }, keys);
    } else {
      el("rect", { x: lx - 14, y: 8, width: 14, height: 12, fill: style.color, "fill-opacity": 0.6 }, keys);
    }
    lx -= 30;
  }
  return { sx, sy, data, x, y };
}

function drawCharts(d) {
  // histograms: the share of each class's rows in each of 40 score bins
  const nBins = 40;
  const width = (d.hi - d.lo) / nBins;
  const shares = (sorted) => {
    const counts = new Array(nBins).fill(0);
    for (const s of sorted) counts[Math.min(nBins - 1, Math.floor((s - d.lo) / width))]++;
    return counts.map((c) => c / sorted.length);
  };
  const hn = shares(d.neg);
  const ha = shares(d.pos);
  const top = Math.max(...hn, ...ha) * 1.08;
  const saved = state.model.threshold;
  const h = axes($("hist"), {
    width: 960, height: 215, x: [d.lo, d.hi], y: [0, top],
    xlabel: "anomaly score", ylabel: "share of class", title: "Scores by class",
    legend: [
      [`normal (${d.neg.length})`, { color: COLORS.normal }],
      [`anomaly (${d.pos.length})`, { color: COLORS.anomaly }],
      ["threshold", { color: COLORS.line, dash: "" }],
      ["saved threshold", { color: COLORS.saved, dash: "5 4" }],
    ],
  });
  const flaggedArea = el("rect", { class: "flagged" }, h.data);
  for (const [bins, color] of [[hn, COLORS.normal], [ha, COLORS.anomaly]]) {
    bins.forEach((v, i) => {
      if (!v) return;
      const x0 = h.sx(d.lo + i * width);
      el("rect", {
        x: x0 + 0.5, y: h.sy(v), width: Math.max(1, h.sx(d.lo + (i + 1) * width) - x0 - 1),
        height: h.sy(0) - h.sy(v), fill: color, "fill-opacity": 0.6,
      }, h.data);
    });
  }
  if (saved > d.lo && saved < d.hi) {
    el("line", { x1: h.sx(saved), x2: h.sx(saved), y1: h.sy(0), y2: h.sy(top), stroke: COLORS.saved, "stroke-width": 2, "stroke-dasharray": "5 4" }, h.data);
  }
  const hLine = el("line", { stroke: COLORS.line, "stroke-width": 2 }, h.data);
  const hText = el("text", { class: "tick", y: h.sy(top) + 14 }, h.data);
  hText.textContent = "flagged →";

  const curve = (id, title, xlabel, ylabel, points, area, chance) => {
    const c = axes($(id), {
      width: 470, height: 265, x: [0, 1], y: [0, 1.02], xlabel, ylabel, title,
      legend: [[area, { color: COLORS.normal, dash: "" }], ["threshold", { color: COLORS.anomaly, dot: true }]],
    });
    if (chance !== undefined) {
      el("line", { x1: c.sx(0), y1: c.sy(chance[0]), x2: c.sx(1), y2: c.sy(chance[1]), class: "chance" }, c.data);
    }
    const path = points.map((p) => `${c.sx(p[0]).toFixed(1)},${c.sy(p[1]).toFixed(1)}`).join(" ");
    el("polyline", { points: path, fill: "none", stroke: COLORS.normal, "stroke-width": 2 }, c.data);
    const dot = el("circle", { r: 6, fill: COLORS.anomaly, stroke: "white", "stroke-width": 2 }, c.data);
    return (px, py) => { dot.setAttribute("cx", c.sx(px)); dot.setAttribute("cy", c.sy(py)); };
  };
  const rocDot = curve("roc", "ROC", "false-alarm rate", "recall",
    d.roc.map((p) => [p.fpr, p.recall]), `AUC ${d.auc.toFixed(4)}`, [0, 1]);
  const prev = d.pos.length / d.scores.length;
  const prDot = curve("pr", "Precision–recall", "recall", "precision",
    d.roc.slice(1).map((p) => [p.recall, p.precision]), `AP ${d.ap.toFixed(4)}`, [prev, prev]);

  return (t, m) => {
    const x = h.sx(Math.min(Math.max(t, d.lo), d.hi));
    for (const [k, v] of [["x1", x], ["x2", x], ["y1", h.sy(0)], ["y2", h.sy(top)]]) hLine.setAttribute(k, v);
    hText.setAttribute("x", x + 6);
    hText.setAttribute("visibility", h.sx(d.hi) - x > 70 ? "visible" : "hidden");
    flaggedArea.setAttribute("x", x);
    flaggedArea.setAttribute("y", h.sy(top));
    flaggedArea.setAttribute("width", Math.max(0, h.sx(d.hi) - x));
    flaggedArea.setAttribute("height", h.sy(0) - h.sy(top));
    rocDot(m.far, m.recall);
    prDot(m.recall, m.precision);
  };
}

// -- wiring -----------------------------------------------------------------------------------
function init() {
  const token = $("token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  token.addEventListener("change", () => {
    if (token.value.trim()) sessionStorage.setItem(TOKEN_KEY, token.value.trim());
    else sessionStorage.removeItem(TOKEN_KEY);
    guarded(async () => {
      await loadModels();
      if (state.file) await chooseFile(state.file);
    });
  });
  $("model").addEventListener("change", (e) => guarded(async () => {
    state.model = state.models.find((m) => m.name === e.target.value) || null;
    showCard();
    await scoreDev();
  }));
  $("file").addEventListener("change", (e) => guarded(() => chooseFile(e.target.files[0])));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    guarded(() => chooseFile(e.dataTransfer.files[0]));
  });
  $("label-column").addEventListener("change", () => guarded(scoreDev));
  $("slider").addEventListener("input", (e) => {
    setThreshold(Number(e.target.value), { strategy: "manual" }, { fromSlider: true });
  });
  $("threshold").addEventListener("input", (e) => {
    const v = e.target.value.trim();
    if (v !== "" && Number.isFinite(Number(v))) {
      setThreshold(Number(v), { strategy: "manual" }, { fromField: true });
    }
  });
  for (const s of ["f1", "fpr", "recall", "cost"]) {
    $("strategy-" + s).addEventListener("click", () => guarded(() => askStrategy(s)));
  }
  for (const id of ["cost-miss", "cost-false-alarm"]) $(id).addEventListener("input", update);
  $("download").addEventListener("click", () => guarded(download));
  guarded(loadModels);
}

init();

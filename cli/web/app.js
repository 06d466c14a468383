/* The OmniQ dashboard: reads the JSON API of `omniq serve` and acts
 * through it. No library, no inline code (the server's CSP forbids it), and
 * every value from the store reaches the page as text (textContent), never
 * as markup.
 *
 * The action token comes from the URL's fragment (#token=..., which
 * `omniq serve` prints and which never reaches a server) or from the form;
 * it is kept in sessionStorage for this tab only and sent in the
 * X-OmniQ-Token header of POST requests.
 *
 * Every REFRESH_MS the page asks for the overview, the chart's samples, the
 * task page it shows and the open task: four small requests, each served
 * without counting the store (docs/monitoring.md). */
"use strict";

const REFRESH_MS = 5000;
const PAGE_SIZE = 50;
const TOKEN_KEY = "omniq.token";
const STATUSES = ["PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"];

const state = {
  token: null,
  readOnly: false,
  cursor: null,      // the cursor of the page shown (null = first page)
  nextCursor: null,
  detailId: null,
  busy: false,
  again: false,      // a refresh was asked for while one ran
};

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function notice(text, isError) {
  const n = $("notice");
  n.textContent = text || "";
  n.hidden = !text;
  n.className = isError ? "error" : "";
}

/* ---- talking to the server ------------------------------------------------- */

async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

async function act(path, what) {
  if (!state.token) {
    notice("Actions need the token `omniq serve` printed at start.", true);
    return false;
  }
  const r = await fetch(path, { method: "POST", headers: { "X-OmniQ-Token": state.token } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    notice(what + ": " + (body.error || r.status), true);
    return false;
  }
  notice(what + ": done.");
  return true;
}

/* ---- the token ------------------------------------------------------------------- */

function loadToken() {
  const m = /^#token=([A-Za-z0-9._~+\/=-]+)$/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
  state.token = sessionStorage.getItem(TOKEN_KEY);
}

function showMode() {
  const canAct = !state.readOnly && !!state.token;
  $("mode").textContent = state.readOnly ? "read-only server" : canAct ? "actions on" : "read-only: no token";
  $("mode").className = "badge " + (canAct ? "on" : "off");
  $("token-form").hidden = state.readOnly || !!state.token;
  $("forget-token").hidden = state.readOnly || !state.token;
  for (const b of document.querySelectorAll("button.action")) b.disabled = !canAct;
  for (const id of ["act-retry", "act-cancel", "act-delete"]) $(id).disabled = !canAct || $(id).dataset.off === "1";
}

/* ---- formatting ---------------------------------------------------------------------- */

function ago(ms) {
  if (!ms) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60 ? (s % 60) + "s" : "");
  return Math.floor(s / 3600) + "h" + (Math.floor(s / 60) % 60 ? (Math.floor(s / 60) % 60) + "m" : "");
}

function when(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "–";
}

function firstLine(s) {
  return s ? s.split("\n")[0] : "";
}

/* ---- queues ------------------------------------------------------------------------- */

function renderQueues(ov) {
  const body = $("queues").tBodies[0];
  body.replaceChildren();
  const queueFilter = $("filter-queue");
  const chosen = queueFilter.value;
  queueFilter.replaceChildren(el("option", "Any"));
  queueFilter.options[0].value = "";
  for (const q of ov.queues) {
    const tr = el("tr");
    tr.dataset.queue = q.name;
    tr.append(el("th", q.name));
    for (const s of STATUSES) {
      const td = el("td", q.counts[s], "num" + (s === "FAILED" && q.counts[s] > 0 ? " bad" : ""));
      td.dataset.status = s;
      tr.append(td);
    }
    tr.append(el("td", ago(q.oldest_due_ms), "num"));
    tr.append(el("td", q.rate.limit ? q.rate.limit + " / " + ago(q.rate.period_ms) : "none"));
    tr.append(el("td", q.paused ? "paused" : "running", q.paused ? "bad" : ""));
    const cell = el("td");
    const b = el("button", q.paused ? "Resume" : "Pause", "action");
    b.type = "button";
    b.dataset.queue = q.name;
    b.addEventListener("click", async () => {
      const verb = q.paused ? "resume" : "pause";
      if (await act("/api/queues/" + encodeURIComponent(q.name) + "/" + verb, verb + " " + q.name)) refresh();
    });
    cell.append(b);
    tr.append(cell);
    body.append(tr);
    const opt = el("option", q.name);
    opt.value = q.name;
    queueFilter.append(opt);
  }
  queueFilter.value = chosen;
  const foot = $("queues").tFoot;
  foot.replaceChildren();
  const tr = el("tr");
  tr.append(el("th", "all queues"));
  for (const s of STATUSES) {
    const td = el("td", ov.totals.counts[s], "num");
    td.dataset.status = s;
    tr.append(td);
  }
  tr.append(el("td"), el("td"), el("td"), el("td"));
  foot.append(tr);
  $("sampled").textContent = ov.sampled_at
    ? "counts as of " + when(ov.sampled_at) + " (taken every " + ago(ov.sample_interval_ms) + ")"
    : "no counts yet";
  if (ov.sample_error) notice("Counting the store failed: " + ov.sample_error, true);
}

/* ---- the chart -------------------------------------------------------------------------- */

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

/* Runs per minute between consecutive samples of the running totals. */
function rates(tp) {
  const out = [];
  for (let i = 1; i < tp.samples.length; i++) {
    const a = tp.samples[i - 1], b = tp.samples[i];
    const minutes = (b[0] - a[0]) / 60000;
    if (minutes <= 0) continue;
    out.push({
      t: b[0],
      succeeded: Math.max(0, b[1] - a[1]) / minutes,
      failed: Math.max(0, b[2] - a[2] + b[4] - a[4]) / minutes,
      retried: Math.max(0, b[3] - a[3]) / minutes,
    });
  }
  return out;
}

function renderChart(tp) {
  const chart = $("chart");
  chart.replaceChildren();
  const W = 800, H = 220, L = 48, R = 10, T = 10, B = 24;
  const now = Date.now(), from = now - tp.window_ms;
  const pts = rates(tp);
  let max = 1;
  for (const p of pts) max = Math.max(max, p.succeeded, p.failed, p.retried);
  const x = (t) => L + ((t - from) / tp.window_ms) * (W - L - R);
  const y = (v) => H - B - (v / max) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    chart.append(svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" },
      v >= 10 ? Math.round(v) : v.toFixed(1)));
  }
  for (let m = 0; m <= 60; m += 15) {
    chart.append(svg("text", { x: x(from + m * 60000), y: H - 6, class: "axis", "text-anchor": "middle" },
      m === 60 ? "now" : "-" + (60 - m) + "m"));
  }
  const shown = pts.filter((p) => p.t >= from);
  for (const series of ["succeeded", "retried", "failed"]) {
    const d = shown.map((p) => x(p.t).toFixed(1) + "," + y(p[series]).toFixed(1));
    if (d.length > 0) chart.append(svg("polyline", { points: d.join(" "), class: "line " + series }));
    // Dots too: a line of one sample would not show.
    for (const p of shown) {
      if (p[series] > 0) chart.append(svg("circle", { cx: x(p.t), cy: y(p[series]), r: 2.5, class: "dot " + series }));
    }
  }
  if (pts.length === 0) {
    chart.append(svg("text", { x: W / 2, y: H / 2, class: "axis", "text-anchor": "middle" },
      "collecting samples…"));
  }
}

/* ---- the task list ----------------------------------------------------------------------- */

function listQuery() {
  const p = new URLSearchParams();
  const status = $("filter-status").value, queue = $("filter-queue").value;
  const func = $("filter-func").value.trim();
  if (status) p.set("status", status);
  if (queue) p.set("queue", queue);
  if (func) p.set("func", func);
  p.set("order", $("filter-order").value);
  p.set("limit", String(PAGE_SIZE));
  if (state.cursor) p.set("cursor", state.cursor);
  return "/api/tasks?" + p.toString();
}

function renderTasks(page) {
  const body = $("tasks").tBodies[0];
  body.replaceChildren();
  for (const t of page.tasks) {
    const tr = el("tr");
    tr.dataset.id = t.id;
    tr.className = "clickable" + (t.id === state.detailId ? " selected" : "");
    const idCell = el("td");
    idCell.append(el("code", t.id));
    const func = el("td", t.func);
    func.title = t.func;
    tr.append(idCell, func, el("td", t.queue), el("td", t.status, "status " + t.status),
      el("td", t.attempts + " / " + t.max_retries, "num"));
    const err = el("td");
    if (t.last_error) {
      err.append(el("strong", t.last_error.error_type), document.createTextNode(": " + firstLine(t.last_error.message)));
    }
    tr.append(err);
    tr.addEventListener("click", () => openTask(t.id));
    body.append(tr);
  }
  if (page.tasks.length === 0) {
    const tr = el("tr");
    const td = el("td", "no tasks match", "muted");
    td.colSpan = 6;
    tr.append(td);
    body.append(tr);
  }
  state.nextCursor = page.next_cursor;
  $("next-page").disabled = !page.next_cursor;
  $("first-page").disabled = !state.cursor;
}

/* ---- one task ------------------------------------------------------------------------------ */

function field(dl, name, value) {
  dl.append(el("dt", name), el("dd", value === null || value === undefined ? "–" : value));
}

function renderDetail(d) {
  const t = d.task;
  $("detail").hidden = false;
  $("detail-id").textContent = t.id;
  const dl = $("detail-fields");
  dl.replaceChildren();
  field(dl, "status", t.status);
  dl.lastChild.id = "detail-status";
  field(dl, "func", t.func);
  field(dl, "queue", t.queue);
  field(dl, "attempts", t.attempts + " of " + t.max_retries);
  field(dl, "priority", t.priority);
  field(dl, "created", when(t.created_at));
  field(dl, "eta", t.status === "PENDING" ? when(t.eta) : null);
  field(dl, "started", when(t.started_at));
  field(dl, "finished", when(t.finished_at));
  if (t.interval_ms) field(dl, "interval", ago(t.interval_ms));
  if (t.cron) field(dl, "cron", t.cron);
  if (t.unique_key) field(dl, "unique key", t.unique_key);
  if (d.args_shown) {
    field(dl, "args", JSON.stringify(t.args));
    field(dl, "kwargs", JSON.stringify(t.kwargs));
  } else {
    field(dl, "args", "hidden (start omniq serve with --show-args to see them)");
  }
  const e = t.last_error;
  $("detail-error").textContent = e ? e.error_type + ": " + e.message : "none";
  $("detail-error").className = e ? "bad" : "muted";
  $("detail-traceback").textContent = e && e.traceback ? e.traceback : "";
  $("detail-traceback").hidden = !(e && e.traceback);
  const rl = $("detail-result");
  rl.replaceChildren();
  if (d.result) {
    field(rl, "status", d.result.status);
    field(rl, "attempts", d.result.attempts);
    field(rl, "finished", when(d.result.finished_at));
    if (d.args_shown) field(rl, "value", JSON.stringify(d.result.value));
  } else {
    field(rl, "result", "none yet");
  }
  const terminal = ["SUCCESS", "FAILED", "CANCELLED"].includes(t.status);
  $("act-retry").dataset.off = t.status === "FAILED" || t.status === "CANCELLED" ? "0" : "1";
  $("act-cancel").dataset.off = t.status === "PENDING" || t.status === "RUNNING" ? "0" : "1";
  $("act-delete").dataset.off = terminal ? "0" : "1";
  showMode();
}

async function openTask(id) {
  state.detailId = id;
  for (const tr of $("tasks").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.id === id);
  try {
    renderDetail(await api("/api/tasks/" + encodeURIComponent(id)));
  } catch (err) {
    notice("Task " + id + ": " + err.message, true);
    closeTask();
  }
}

function closeTask() {
  state.detailId = null;
  $("detail").hidden = true;
}

async function taskAction(verb) {
  const id = state.detailId;
  if (!id) return;
  if (verb === "delete" && !confirm("Delete task " + id + " and its result?")) return;
  if (await act("/api/tasks/" + encodeURIComponent(id) + "/" + verb, verb + " " + id)) {
    if (verb === "delete") closeTask();
    refresh();
  }
}

/* ---- the refresh loop --------------------------------------------------------------------- */

async function refresh() {
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  try {
    const [ov, tp, page] = await Promise.all([api("/api/overview"), api("/api/throughput"), api(listQuery())]);
    state.readOnly = ov.read_only;
    renderQueues(ov);
    renderChart(tp);
    renderTasks(page);
    if (state.detailId) renderDetail(await api("/api/tasks/" + encodeURIComponent(state.detailId)));
    showMode();
    document.body.dataset.loaded = "1";
  } catch (err) {
    notice(err.message, true);
  } finally {
    state.busy = false;
  }
  if (state.again) refresh();
}

function start() {
  loadToken();
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token-input").value.trim();
    if (v) {
      sessionStorage.setItem(TOKEN_KEY, v);
      state.token = v;
      $("token-input").value = "";
      showMode();
    }
  });
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    showMode();
  });
  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.cursor = null;
    refresh();
  });
  $("next-page").addEventListener("click", () => {
    state.cursor = state.nextCursor;
    refresh();
  });
  $("first-page").addEventListener("click", () => {
    state.cursor = null;
    refresh();
  });
  $("act-retry").addEventListener("click", () => taskAction("retry"));
  $("act-cancel").addEventListener("click", () => taskAction("cancel"));
  $("act-delete").addEventListener("click", () => taskAction("delete"));
  $("detail-close").addEventListener("click", closeTask);
  refresh();
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);

// The ops board: logs in with the admin token, reads /api/v1/stats/* and redraws every
// REFRESH_MS. Every value from the API goes into the page as text (textContent), never HTML:
// app names, error messages and provider names come from clients and upstreams.
"use strict";
(function () {
  const REFRESH_MS = Number(new URLSearchParams(location.search).get("refresh_ms")) || 5000;
  const TOKEN_KEY = "gateway-admin-token";
  const PERIODS = { "24h": [1, "hour"], "7d": [7, "hour"], "30d": [30, "day"] };
  const $ = (sel) => document.querySelector(sel);
  const state = { model: null, tab: "providers", timer: null, busy: false, history: null,
    usage: null };

  // -- login

  function takeTokenFromHash() {
    const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (!match) return;
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);  // off the URL bar
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function showLogin(message) {
    stopRefresh();
    $("#board").hidden = true;
    document.querySelector("[data-testid=controls]").hidden = true;
    $("#login").hidden = false;
    $("#login-error").textContent = message || "";
    $("#token").focus();
  }

  function showBoard() {
    $("#login").hidden = true;
    $("#board").hidden = false;
    document.querySelector("[data-testid=controls]").hidden = false;
  }

  class AuthError extends Error {}

  async function api(path, params) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined) url.searchParams.set(k, v);
    const response = await fetch(url, { headers: { Authorization: `Bearer ${token()}` },
      cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      const body = await response.json().catch(() => ({}));
      throw new AuthError((body.error && body.error.message) || `HTTP ${response.status}`);
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  // -- small DOM helpers (text only)

  function cell(tr, field, text, opts) {
    const td = document.createElement("td");
    if (field) td.dataset.field = field;
    if (opts && opts.value !== undefined) td.dataset.value = JSON.stringify(opts.value);
    if (opts && opts.className) td.className = opts.className;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function pill(text, level) {
    const span = document.createElement("span");
    span.className = `pill ${level}`;
    span.textContent = text;
    return span;
  }

  function dash(v) { return v === null || v === undefined ? "–" : String(v); }
  function perMillion(perToken) {
    if (perToken === null || perToken === undefined) return "–";
    const v = Number(perToken) * 1e6;
    return "$" + (v >= 1 ? v.toFixed(2) : v.toPrecision(3));
  }
  function uptimeLevel(v) { return v === null ? "none" : v >= 99 ? "ok" : v >= 90 ? "warn" : "bad"; }
  function percent(v) { return v === null || v === undefined ? "–" : `${v}%`; }
  function usd(text) { return text === null || text === undefined ? "–" : `$${text}`; }

  function periodParams() {
    const [days, bucket] = PERIODS[$("#period").value] || PERIODS["24h"];
    const to = new Date();
    const from = new Date(to.getTime() - days * 86400e3);
    return { from: from.toISOString(), to: to.toISOString(), bucket };
  }

  // -- panels

  function renderProviders(body) {
    const table = document.querySelector("[data-testid=providers-table]");
    const tbody = table.querySelector("tbody");
    const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
    const rows = [];
    for (const row of body.data) {
      const tr = document.createElement("tr");
      tr.dataset.provider = row.provider;
      tr.dataset.endpointId = row.endpoint_id;
      cell(tr, "provider", row.provider, { value: row.provider });
      const status = row.status || {};
      const level = status.state === "enabled" ? "ok" : status.state === "unavailable" ? "warn" : "bad";
      const statusCell = cell(tr, "status", pill(status.state || "?", level), { value: row.status });
      if (status.reason) statusCell.title = status.reason;
      const up = document.createElement("div");
      up.className = "uptime";
      for (const label of ["5m", "30m", "1d", "30d"]) {
        const v = row.uptime ? row.uptime[label] : null;
        const span = document.createElement("span");
        span.dataset.window = label;
        span.className = uptimeLevel(v);
        span.textContent = percent(v);
        span.title = `uptime, last ${label}`;
        up.appendChild(span);
      }
      cell(tr, "uptime", up, { value: row.uptime });
      const breaker = row.breaker || "closed";
      cell(tr, "breaker", pill(breaker, breaker === "closed" ? "ok" : breaker === "open" ? "bad" : "warn"),
        { value: breaker });
      cell(tr, "price", `${perMillion(row.price.prompt)} · ${perMillion(row.price.completion)}`,
        { value: row.price });
      const paid = row.effective_price || {};
      cell(tr, "effective_price", `${perMillion(paid.prompt)} · ${perMillion(paid.completion)}`,
        { value: row.effective_price });
      const p50 = (f) => (row[f] ? dash(row[f].p50) : "–");
      cell(tr, "throughput", p50("throughput"), { value: row.throughput, className: "num" });
      cell(tr, "ttft_ms", p50("ttft_ms"), { value: row.ttft_ms, className: "num" });
      cell(tr, "latency_ms", p50("latency_ms"), { value: row.latency_ms, className: "num" });
      cell(tr, "requests", String(row.requests), { value: row.requests, className: "num" });
      const share = row.request_share === null ? "–" : `${(row.request_share * 100).toFixed(1)}%`;
      cell(tr, "request_share", share, { value: row.request_share, className: "num" });
      const entries = Object.entries(row.errors || {});
      const errors = entries.map(([k, n]) => `${k.replace(/^Upstream/, "")} ${n}`).join(", ");
      const errorCell = cell(tr, "errors", errors || "–", { value: row.errors });
      if (entries.length) errorCell.title = entries.map(([k, n]) => `${k}: ${n}`).join("\n");
      [...tr.children].forEach((td, i) => { td.dataset.label = headers[i] || ""; });  // phone cards
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
    $("#providers-note").textContent =
      `${body.model} · requests over the last ${body.window} · paid price over ${body.effective_price_window}`;
  }

  function seriesBy(rows, key, valueOf) {
    const by = new Map();
    for (const row of rows) {
      const name = row[key] || "(none)";
      if (!by.has(name)) by.set(name, []);
      by.get(name).push([Date.parse(row.bucket), valueOf(row)]);
    }
    return [...by.entries()].map(([name, points]) => ({ name, points }));
  }

  function span(body) { return { from: Date.parse(body.period.from), to: Date.parse(body.period.to) }; }

  function renderHistory(body) {
    const rows = body.data;
    const range = span(body);
    Charts.line($("#throughput-chart"), seriesBy(rows, "provider", (r) => r.throughput),
      { ...range, label: "throughput per provider" });
    Charts.line($("#latency-chart"), seriesBy(rows, "provider", (r) => r.latency_ms),
      { ...range, unit: " ms", label: "latency per provider" });
    Charts.line($("#uptime-chart"), seriesBy(rows, "provider", (r) => r.uptime),
      { ...range, yMax: 100, unit: "%", label: "uptime per provider" });
  }

  function renderUsage(body) {
    const rows = body.data;
    const range = span(body);
    Charts.line($("#requests-chart"), seriesBy(rows, "provider", (r) => r.requests),
      { ...range, label: "requests per provider" });
    Charts.line($("#tokens-chart"),
      seriesBy(rows, "provider", (r) => r.prompt_tokens + r.completion_tokens),
      { ...range, label: "tokens per provider" });
  }

  function renderApps(body) {
    const tbody = document.querySelector("[data-testid=apps-table] tbody");
    tbody.replaceChildren(...body.data.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.app = row.app;
      cell(tr, "app", row.app || "(none)");
      cell(tr, "requests", String(row.requests), { className: "num" });
      cell(tr, "prompt_tokens", String(row.prompt_tokens), { className: "num" });
      cell(tr, "completion_tokens", String(row.completion_tokens), { className: "num" });
      cell(tr, "cached_tokens", String(row.cached_tokens), { className: "num" });
      cell(tr, "cost", usd(row.cost), { value: row.cost, className: "num" });
      return tr;
    }));
  }

  function genLink(id) {
    const a = document.createElement("a");
    a.className = "gen";
    a.textContent = id;
    a.href = "#";
    a.addEventListener("click", (event) => { event.preventDefault(); lookup(id); });
    return a;
  }

  function renderFailures(body) {
    const tbody = document.querySelector("[data-testid=failures-table] tbody");
    tbody.replaceChildren(...body.data.map((row) => {
      const tr = document.createElement("tr");
      cell(tr, "at", new Date(row.at).toISOString().replace("T", " ").slice(0, 19));
      cell(tr, "provider", row.provider);
      cell(tr, "error_class", row.error_class);
      cell(tr, "http_status", dash(row.http_status));
      cell(tr, "generation_id", genLink(row.generation_id));
      cell(tr, "message", dash(row.message), { className: "message" });
      return tr;
    }));
  }

  async function lookup(id) {
    selectTab("failures");
    $("#generation-id").value = id;
    const out = $("#generation-result");
    out.replaceChildren();
    let body;
    try {
      body = await api("/api/v1/stats/generation", { id: id.trim() });
    } catch (error) {
      if (error instanceof AuthError) return showLogin(error.message);
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = error.message;
      return out.appendChild(p);
    }
    const g = body.data;
    const dl = document.createElement("dl");
    dl.className = "summary";
    dl.dataset.testid = "generation-summary";
    for (const [label, value] of [["id", g.id], ["created", g.created_at], ["model", g.model],
      ["mode", g.mode], ["provider", g.provider_name], ["status", g.status],
      ["tokens (prompt · completion · cached)",
        `${g.tokens_prompt} · ${g.tokens_completion} · ${g.native_tokens_cached}`],
      ["cost USD", String(g.total_cost)], ["latency ms", dash(g.latency)]]) {
      const dt = document.createElement("dt"); dt.textContent = label;
      const dd = document.createElement("dd"); dd.textContent = dash(value);
      dl.append(dt, dd);
    }
    const table = document.createElement("table");
    table.dataset.testid = "generation-attempts";
    const head = document.createElement("tr");
    for (const h of ["#", "Provider", "Outcome", "Error class", "Status", "Latency ms", "TTFT ms"]) {
      const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
    }
    const thead = document.createElement("thead"); thead.appendChild(head);
    const tbody = document.createElement("tbody");
    g.provider_responses.forEach((a, i) => {
      const tr = document.createElement("tr");
      tr.dataset.attempt = String(i);
      cell(tr, "seq", String(i));
      cell(tr, "provider", a.provider);
      cell(tr, "outcome", a.outcome);
      cell(tr, "error_class", dash(a.error_class));
      cell(tr, "status", dash(a.status));
      cell(tr, "latency", dash(a.latency), { className: "num" });
      cell(tr, "ttft", dash(a.ttft), { className: "num" });
      tbody.appendChild(tr);
    });
    table.append(thead, tbody);
    const scroll = document.createElement("div"); scroll.className = "scroll"; scroll.appendChild(table);
    const h3 = document.createElement("h3"); h3.textContent = "Routing explanation";
    const pre = document.createElement("pre");
    pre.dataset.testid = "generation-routing";
    pre.textContent = g.routing ? JSON.stringify(g.routing, null, 2)
      : "(not recorded: the request did not ask for X-Route-Explain)";
    out.append(dl, scroll, h3, pre);
  }

  // -- billing: the billing report for a period of UTC days, grouped as picked; figures are
  // the API's own text (exact decimal strings), never summed or rounded here.

  const BILLING_MEASURES = ["requests", "prompt_tokens", "completion_tokens", "cached_tokens",
    "cache_write_tokens", "reasoning_tokens", "gross_cost", "cache_discount", "cost"];
  const BILLING_LABELS = { day: "Day", month: "Month", key: "Key", key_name: "Key name",
    app: "App", model: "Model", provider: "Provider", price_version: "Price version",
    requests: "Requests", prompt_tokens: "Prompt tokens", completion_tokens: "Completion tokens",
    cached_tokens: "Cached tokens", cache_write_tokens: "Cache write tokens",
    reasoning_tokens: "Reasoning tokens", gross_cost: "Gross USD",
    cache_discount: "Cache discount USD", cost: "Cost USD" };
  const BILLING_MAX_ROWS = 2000;  // lines drawn; the totals and the CSV always cover them all
  const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

  function utcDay(date) { return date.toISOString().slice(0, 10); }
  function addDays(day, n) {
    return utcDay(new Date(Date.parse(`${day}T00:00:00Z`) + n * 86400e3));
  }

  function setBillingPeriod(preset) {
    const today = utcDay(new Date());
    const monthStart = `${today.slice(0, 8)}01`;
    let from = monthStart;
    let to = today;  // shown inclusive; the API's exclusive `to` is the day after
    if (preset === "last-month") {
      to = addDays(monthStart, -1);
      from = `${to.slice(0, 8)}01`;
    } else if (preset === "30d") {
      from = addDays(today, -29);
    }
    $("#billing-from").value = from;
    $("#billing-to").value = to;
  }

  function billingGroupBy() {
    return [...document.querySelectorAll("[data-testid=billing-group-by] input:checked")]
      .map((box) => box.value);
  }

  // The API's parameters for what the form shows, or an Error saying what to fix.
  function billingParams() {
    const from = $("#billing-from").value;
    const through = $("#billing-to").value;
    if (!DAY_RE.test(from) || !DAY_RE.test(through)) {
      throw new Error("Pick a From and a To date.");
    }
    if (through < from) throw new Error(`To (${through}) is before From (${from}).`);
    const groupBy = billingGroupBy();
    if (!groupBy.length) throw new Error("Pick at least one field to group by.");
    return { from, to: addDays(through, 1), group_by: groupBy.join(",") };
  }

  function billingColumns(groupBy) {
    const columns = [];
    for (const name of groupBy) {
      columns.push(name);
      if (name === "key") columns.push("key_name");
    }
    return columns;
  }

  function clearBilling() {
    const table = document.querySelector("[data-testid=billing-table]");
    for (const part of ["thead tr", "tbody", "tfoot"]) table.querySelector(part).replaceChildren();
    for (const dd of document.querySelectorAll("[data-testid=billing-totals] [data-field]")) {
      dd.textContent = "–";
      delete dd.dataset.value;
    }
  }

  function renderBilling(body, through, params) {
    const panel = document.querySelector("[data-testid=billing-panel]");
    const table = document.querySelector("[data-testid=billing-table]");
    const groups = billingColumns(body.group_by || []);
    const columns = [...groups, ...BILLING_MEASURES];
    table.querySelector("thead tr").replaceChildren(...columns.map((field) => {
      const th = document.createElement("th");
      th.dataset.field = field;
      th.textContent = BILLING_LABELS[field] || field;
      if (BILLING_MEASURES.includes(field)) th.className = "num";
      return th;
    }));
    const lines = body.data || [];
    const rows = lines.slice(0, BILLING_MAX_ROWS).map((line) => {
      const tr = document.createElement("tr");
      for (const field of groups) {
        const value = line[field];
        cell(tr, field, value === null || value === undefined ? "(none)" : String(value),
          { value: value === undefined ? null : value });
      }
      for (const field of BILLING_MEASURES) {
        cell(tr, field, dash(line[field]), { value: line[field], className: "num" });
      }
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell(tr, null, "No usage in this period.", { className: "empty" });
      td.colSpan = columns.length;
      rows.push(tr);
    }
    table.querySelector("tbody").replaceChildren(...rows);
    const totals = body.totals || {};
    const foot = document.createElement("tr");
    const label = cell(foot, null, "Total");
    label.colSpan = Math.max(groups.length, 1);
    for (const field of BILLING_MEASURES) {
      cell(foot, field, dash(totals[field]), { value: totals[field], className: "num" });
    }
    table.querySelector("tfoot").replaceChildren(foot);
    for (const dd of document.querySelectorAll("[data-testid=billing-totals] [data-field]")) {
      const value = totals[dd.dataset.field];
      dd.textContent = dash(value);  // the API's text as is: exact decimal strings for money
      dd.dataset.value = value === undefined ? "null" : JSON.stringify(value);
    }
    const shown = lines.length > BILLING_MAX_ROWS
      ? ` · showing the first ${BILLING_MAX_ROWS} of ${lines.length} lines (the CSV has all)`
      : ` · ${lines.length} line${lines.length === 1 ? "" : "s"}`;
    $("#billing-message").textContent =
      `${body.from} to ${through} inclusive (UTC days)${shown}`;
    panel.dataset.report = new URLSearchParams(params).toString();  // what is on screen
  }

  async function loadBilling() {
    const panel = document.querySelector("[data-testid=billing-panel]");
    const seq = (state.billingSeq = (state.billingSeq || 0) + 1);
    if (!$("#billing-from").value && !$("#billing-to").value) setBillingPeriod("month");
    $("#billing-error").textContent = "";
    let params;
    try {
      params = billingParams();
    } catch (error) {
      panel.removeAttribute("aria-busy");  // whatever was in flight is dropped (stale)
      clearBilling();
      delete panel.dataset.report;
      $("#billing-message").textContent = "";
      $("#billing-error").textContent = error.message;
      return;
    }
    const through = $("#billing-to").value;
    panel.setAttribute("aria-busy", "true");
    let body;
    try {
      body = await api("/api/v1/reports/billing", { ...params, format: "json" });
    } catch (error) {
      if (seq !== state.billingSeq) return;
      panel.removeAttribute("aria-busy");
      if (error instanceof AuthError) return showLogin(error.message);
      clearBilling();  // no figures from another period stay on screen
      delete panel.dataset.report;
      $("#billing-message").textContent = "";
      $("#billing-error").textContent = error.status === 404
        ? "Billing reports are not available on this gateway: GET /api/v1/reports/billing answered 404."
        : `Billing report failed: ${error.message}`;
      return;
    }
    if (seq !== state.billingSeq) return;  // a newer request owns the panel
    panel.removeAttribute("aria-busy");
    renderBilling(body, through, params);
  }

  function csvFileName(disposition, params) {
    const match = /filename="([^"]+)"/.exec(disposition || "");
    const name = match ? match[1].replace(/[^A-Za-z0-9._-]/g, "_") : "";
    return name || `billing-${params.from}-${params.to}.csv`;
  }

  // The same report as CSV, fetched with the admin token (a plain link can't send it) and
  // handed to the browser as a file.
  async function downloadBillingCsv() {
    const button = $("#billing-csv");
    $("#billing-error").textContent = "";
    let params;
    try {
      params = billingParams();
    } catch (error) {
      $("#billing-error").textContent = `CSV download: ${error.message}`;
      return;
    }
    const url = new URL("/api/v1/reports/billing", location.origin);
    for (const [k, v] of Object.entries({ ...params, format: "csv" })) url.searchParams.set(k, v);
    button.disabled = true;
    try {
      const response = await fetch(url, { headers: { Authorization: `Bearer ${token()}` },
        cache: "no-store" });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
        if (response.status === 401 || response.status === 403) throw new AuthError(message);
        throw new Error(message);
      }
      const blob = await response.blob();
      const name = csvFileName(response.headers.get("content-disposition"), params);
      const href = URL.createObjectURL(blob);
      const link = document.createElement("a");
      link.href = href;
      link.download = name;
      link.hidden = true;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60e3);
      $("#billing-message").textContent = `Downloaded ${name} (${blob.size} bytes).`;
    } catch (error) {
      if (error instanceof AuthError) return showLogin(error.message);
      $("#billing-error").textContent = `CSV download failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  }

  function initBilling() {
    setBillingPeriod("month");
    $("#billing-form").addEventListener("submit", (event) => {
      event.preventDefault();
      loadBilling();
    });
    for (const id of ["#billing-from", "#billing-to"]) {
      $(id).addEventListener("change", loadBilling);
    }
    for (const b of document.querySelectorAll("[data-preset]")) {
      b.addEventListener("click", () => { setBillingPeriod(b.dataset.preset); loadBilling(); });
    }
    for (const box of document.querySelectorAll("[data-testid=billing-group-by] input")) {
      box.addEventListener("change", () => {
        const other = { day: "month", month: "day" }[box.value];  // the API takes one of them
        if (box.checked && other) {
          document.querySelector(`[data-testid=billing-group-by] input[value=${other}]`)
            .checked = false;
        }
        loadBilling();
      });
    }
    $("#billing-csv").addEventListener("click", downloadBillingCsv);
  }

  // -- refresh loop

  async function refresh() {
    if (state.busy || !token()) return;
    state.busy = true;
    const period = periodParams();
    try {
      const endpoints = await api("/api/v1/stats/endpoints", { model: state.model });
      state.model = endpoints.model;
      fillModels(endpoints.models || [endpoints.model], endpoints.model);
      renderProviders(endpoints);
      const [history, usage, apps, failures] = await Promise.all([
        api("/api/v1/stats/history", period),
        api("/api/v1/stats/usage", { ...period, group_by: "provider" }),
        api("/api/v1/stats/apps", { from: period.from, to: period.to }),
        api("/api/v1/stats/failures", { limit: 50 }),
      ]);
      state.history = history;
      state.usage = usage;
      renderHistory(history);
      renderUsage(usage);
      renderApps(apps);
      renderFailures(failures);
      $("#board-error").textContent = "";
      const updated = document.querySelector("[data-testid=last-updated]");
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      updated.dataset.refreshes = String(Number(updated.dataset.refreshes || 0) + 1);
      showBoard();
    } catch (error) {
      if (error instanceof AuthError) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin(error.message);
      } else {
        $("#board-error").textContent = `Could not refresh: ${error.message}`;
      }
    } finally {
      state.busy = false;
    }
  }

  function fillModels(models, current) {
    const select = $("#model");
    const have = [...select.options].map((o) => o.value).join("\n");
    if (have === models.join("\n")) { select.value = current; return; }
    select.replaceChildren(...models.map((m) => {
      const option = document.createElement("option");
      option.value = m; option.textContent = m;
      return option;
    }));
    select.value = current;
  }

  function startRefresh() {
    stopRefresh();
    refresh();
    state.timer = setInterval(refresh, REFRESH_MS);
  }
  function stopRefresh() { if (state.timer) clearInterval(state.timer); state.timer = null; }

  function redrawCharts() {
    if (state.history) renderHistory(state.history);
    if (state.usage) renderUsage(state.usage);
  }

  function selectTab(name) {
    state.tab = name;
    document.body.dataset.tab = name;
    for (const b of document.querySelectorAll(".tabs button")) {
      b.setAttribute("aria-selected", String(b.dataset.tab === name));
    }
    for (const panel of document.querySelectorAll(".tab")) panel.hidden = panel.dataset.panel !== name;
    redrawCharts();  // a chart drawn while its tab was hidden had no width to fit
    if (name === "billing") loadBilling();
  }

  function init() {
    takeTokenFromHash();
    initBilling();
    $("#login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("#token").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("#token").value = "";
      startRefresh();
    });
    $("#logout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("");
    });
    $("#generation-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("#generation-id").value.trim();
      if (id) lookup(id);
    });
    $("#period").addEventListener("change", refresh);
    $("#model").addEventListener("change", () => { state.model = $("#model").value; refresh(); });
    for (const b of document.querySelectorAll(".tabs button")) {
      b.addEventListener("click", () => selectTab(b.dataset.tab));
    }
    let resizing = null;  // charts are drawn at their container's size: redraw on resize
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(redrawCharts, 100);
    });
    window.addEventListener("hashchange", () => { takeTokenFromHash(); if (token()) startRefresh(); });
    if (token()) startRefresh(); else showLogin("");
  }

  document.addEventListener("DOMContentLoaded", init);
})();

// Small SVG line charts for the ops board: time on x, one line per series, a legend.
// Built with DOM calls only (no innerHTML), so names from the API are always text.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f5bd3", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285",
    "#5c940d", "#e67700", "#364fc7", "#a61e4d"];
  const PAD = { left: 50, right: 12, top: 10, bottom: 24 };

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function colorOf(names) {
    const sorted = [...names].sort();
    const map = new Map();
    sorted.forEach((n, i) => map.set(n, PALETTE[i % PALETTE.length]));
    return map;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= value) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }

  function timeLabel(t, spanMs) {
    const d = new Date(t);
    const pad = (n) => String(n).padStart(2, "0");
    if (spanMs > 3 * 86400e3) return `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  }

  // series: [{name, points: [[timeMs, value|null], ...]}]; opts: {from, to, yMax, unit, label}.
  // Drawn at the container's own pixel size, so text is never stretched.
  function line(container, series, opts) {
    opts = opts || {};
    const W = Math.max(260, container.clientWidth || 600);
    const H = W < 500 ? 180 : 220;
    container.replaceChildren();
    const points = series.flatMap((s) => s.points.filter((p) => p[1] !== null));
    if (points.length === 0) {
      const empty = document.createElement("div");
      empty.className = "empty";
      empty.textContent = "no data in this period";
      container.appendChild(empty);
      return;
    }
    const times = points.map((p) => p[0]);
    let t0 = opts.from || Math.min(...times), t1 = opts.to || Math.max(...times);
    if (t0 === t1) { t0 -= 1800e3; t1 += 1800e3; }
    const yMax = opts.yMax || niceMax(Math.max(...points.map((p) => p[1])));
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
    const y = (v) => H - PAD.bottom - (v / yMax) * (H - PAD.top - PAD.bottom);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H,
      role: "img", "aria-label": opts.label || "chart" }, container);
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "axis" }, svg);
      el("text", { x: PAD.left - 4, y: y(v) + 3, "text-anchor": "end" }, svg).textContent =
        fmt(v) + (opts.unit || "");
    }
    for (let i = 0; i <= 4; i++) {
      const t = t0 + ((t1 - t0) * i) / 4;
      el("text", { x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
        svg).textContent = timeLabel(t, t1 - t0);
    }
    const colors = colorOf(series.map((s) => s.name));
    const legend = document.createElement("div");
    legend.className = "legend";
    const zone = document.createElement("span");
    zone.className = "zone";
    zone.textContent = "times in UTC";
    legend.appendChild(zone);
    for (const s of series) {
      const color = colors.get(s.name);
      const pts = s.points.filter((p) => p[1] !== null).sort((a, b) => a[0] - b[0]);
      if (pts.length === 0) continue;
      if (pts.length > 1) {
        el("polyline", { fill: "none", stroke: color, "stroke-width": 2,
          points: pts.map((p) => `${x(p[0])},${y(p[1])}`).join(" ") }, svg);
      }
      for (const p of pts) {
        const dot = el("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, fill: color }, svg);
        el("title", {}, dot).textContent = `${s.name}: ${fmt(p[1])}${opts.unit || ""}`;
      }
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = color;
      item.append(swatch, document.createTextNode(s.name));
      legend.appendChild(item);
    }
    container.appendChild(legend);
  }

  window.Charts = { line };
})();

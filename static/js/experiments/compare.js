// Compare page: overlaid charts per metric (step/time axis, EMA smoothing), a metric-vs-metric scatter with the
// Pareto front (same rule as experiments.analysis.pareto_front), and the "only differences" toggle of the diff table.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("compare-data").textContent);
  const C = window.LabbookCharts;
  const holder = document.getElementById("compare-charts");
  const seriesByRun = new Map(); // run id -> {key -> {steps, values, wall_times}}
  let plots = [];

  async function loadSeries() {
    await Promise.all(data.runs.map(async (r) => {
      const resp = await window.Labbook.api("GET", "/api/runs/" + r.id + "/series/?max_points=1000&keys=" + encodeURIComponent(data.keys.join(",")));
      const byKey = {};
      resp.series.forEach((s) => { byKey[s.key] = s; });
      seriesByRun.set(r.id, byKey);
    }));
  }
  function xAxis() { return document.querySelector("input[name=xaxis]:checked").value; }
  function drawCharts() {
    plots.forEach((p) => p.destroy()); plots = [];
    holder.textContent = "";
    const weight = Number(document.getElementById("smoothing").value);
    const time = xAxis() === "time";
    data.keys.forEach((key) => {
      const list = []; const labels = [];
      data.runs.forEach((r) => {
        const s = (seriesByRun.get(r.id) || {})[key];
        if (!s || !s.steps.length) return;
        list.push({ x: time ? s.wall_times : s.steps, y: C.ema(s.values, weight) });
        labels.push("#" + r.id + " " + r.name);
      });
      if (!list.length) return;
      const card = document.createElement("div"); card.className = "chart-card";
      const h = document.createElement("h3"); h.textContent = key;
      const box = document.createElement("div"); box.className = "chart"; box.dataset.key = key;
      card.append(h, box); holder.append(card);
      plots.push(C.makeChart(box, key, labels, C.align(list), { time: time, xLabel: time ? "time" : "step", legend: true }));
    });
  }

  // --- Pareto front: sort by x from best to worst, keep points that improve the best y so far ---
  function paretoFront(points, maximizeX, maximizeY) {
    const sx = maximizeX ? 1 : -1, sy = maximizeY ? 1 : -1;
    const items = points.map((p, i) => [sx * p[0], sy * p[1], i]).filter((t) => Number.isFinite(t[0]) && Number.isFinite(t[1]));
    items.sort((a, b) => (b[0] - a[0]) || (b[1] - a[1]));
    const front = []; let bestY = -Infinity; let bestAt = null;
    items.forEach(([gx, gy, i]) => {
      if (gy > bestY) { front.push(i); bestY = gy; bestAt = [gx, gy]; }
      else if (bestAt && gx === bestAt[0] && gy === bestAt[1]) front.push(i);
    });
    return front.sort((a, b) => (points[a][0] - points[b][0]) || (points[a][1] - points[b][1]));
  }
  let scatterPlot = null;
  function drawScatter() {
    const xKey = document.getElementById("scatter-x").value, yKey = document.getElementById("scatter-y").value;
    const agg = document.getElementById("scatter-agg").value;
    const maxX = document.getElementById("scatter-x-dir").value === "max";
    const maxY = document.getElementById("scatter-y-dir").value === "max";
    const pts = []; const names = [];
    data.runs.forEach((r) => {
      const s = data.summary[r.id] || {};
      const x = s[xKey] && s[xKey][agg], y = s[yKey] && s[yKey][agg];
      if (x == null || y == null) return;
      pts.push([x, y]); names.push("#" + r.id + " " + r.name);
    });
    const front = paretoFront(pts, maxX, maxY);
    const target = document.getElementById("scatter");
    if (scatterPlot) { scatterPlot.destroy(); scatterPlot = null; }
    target.textContent = "";
    target.dataset.front = JSON.stringify(front.map((i) => names[i]));
    document.getElementById("pareto-list").textContent = pts.length
      ? "Pareto front: " + front.map((i) => names[i]).join(" → ")
      : "No run has both metrics.";
    if (!pts.length) return;
    const order = pts.map((p, i) => i).sort((a, b) => pts[a][0] - pts[b][0]);
    const xs = order.map((i) => pts[i][0]);
    const all = order.map((i) => pts[i][1]);
    const frontSet = new Set(front);
    const frontY = order.map((i) => (frontSet.has(i) ? pts[i][1] : null));
    scatterPlot = new uPlot({
      width: Math.max(300, target.clientWidth || 600), height: 300,
      scales: { x: { time: false } },
      series: [
        { label: xKey },
        { label: "runs (" + yKey + ")", stroke: "#2d6cdf", paths: () => null, points: { show: true, size: 8, fill: "#2d6cdf" } },
        { label: "Pareto front", stroke: "#e4572e", width: 2, spanGaps: true, points: { show: true, size: 10, fill: "#e4572e" } },
      ],
      axes: [{ label: xKey, values: C.ticks }, { label: yKey, size: 60, values: C.ticks }],
    }, [xs, all, frontY], target);
  }

  // defaults: accuracy against a cost metric when present
  if (data.default_x) document.getElementById("scatter-x").value = data.default_x;
  if (data.default_y) document.getElementById("scatter-y").value = data.default_y;
  ["scatter-x", "scatter-y", "scatter-x-dir", "scatter-y-dir", "scatter-agg"].forEach((id) => document.getElementById(id).addEventListener("change", drawScatter));
  document.querySelectorAll("input[name=xaxis]").forEach((el) => el.addEventListener("change", drawCharts));
  const smoothing = document.getElementById("smoothing");
  smoothing.addEventListener("input", () => { document.getElementById("smoothing-value").textContent = smoothing.value; drawCharts(); });
  document.getElementById("only-diff").addEventListener("change", (e) => {
    document.getElementById("diff-table").classList.toggle("only-diff", e.target.checked);
  });
  drawScatter();
  loadSeries().then(drawCharts).catch((err) => { holder.textContent = "Could not load metrics: " + err.message; });
})();

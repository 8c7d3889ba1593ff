// Shared chart helpers (uPlot) for the run and compare pages.
(function () {
  "use strict";
  const PALETTE = ["#2d6cdf", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#29335c", "#a8c686", "#db2763", "#669bbc", "#6c757d"];
  function ema(values, weight) {
    if (!weight) return values.slice();
    const out = []; let last = 0; let n = 0;
    for (const v of values) {
      if (v == null) { out.push(null); continue; }
      n += 1; last = last * weight + (1 - weight) * v;
      out.push(last / (1 - Math.pow(weight, n)));
    }
    return out;
  }
  // Merge several (x, y) series onto one sorted x axis (uPlot's aligned-data format), null where a series has no point.
  function align(seriesList) {
    const xs = Array.from(new Set(seriesList.flatMap((s) => s.x))).sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const ys = seriesList.map((s) => {
      const col = new Array(xs.length).fill(null);
      s.x.forEach((x, i) => { col[index.get(x)] = s.y[i]; });
      return col;
    });
    return [xs, ...ys];
  }
  // Compact tick labels: 2e+8 rather than 200,000,000 (which does not fit the axis), 0.001 rather than 1e-3.
  function fmt(v) {
    if (v == null || !isFinite(v)) return "";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1).replace("e+", "e");
    return String(Number(v.toPrecision(4)));
  }
  function ticks(u, vals) { return vals.map(fmt); }
  function makeChart(el, title, labels, data, opts) {
    opts = opts || {};
    const width = Math.max(280, el.clientWidth || 400);
    const series = [{ label: opts.xLabel || "step", value: opts.time ? (u, v) => v == null ? "" : new Date(v * 1000).toLocaleTimeString() : undefined }];
    // Short series (a final accuracy, a cost figure) are drawn as dots so that a single point is visible.
    const few = data[0].length < 40;
    labels.forEach((label, i) => series.push({ label: label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true,
      points: { show: few, size: 7, fill: PALETTE[i % PALETTE.length] }, value: (u, v) => fmt(v) }));
    return new uPlot({
      width: width, height: 220, series: series,
      scales: { x: { time: !!opts.time } },
      axes: [opts.time ? {} : { values: ticks }, { size: 60, values: ticks }],
      legend: { show: labels.length > 1 || !!opts.legend },
    }, data, el);
  }
  window.LabbookCharts = { ema, align, makeChart, fmt, ticks, PALETTE };
})();

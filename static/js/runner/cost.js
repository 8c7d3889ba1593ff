// Hardware-cost charts (no framework): totals, a log-log roofline, per-layer bars of MACs/BOPs/latency, the layer
// table, measured-vs-estimated latency and the pruning-sensitivity heatmap. Used by the run page panel
// (cost_panel.js) and the /cost/ page (cost_page.js) through window.LabbookCost.render(root, report, options).
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function si(v, unit) {
    unit = unit || "";
    if (!v) return "0" + unit;
    const a = Math.abs(v);
    for (const [f, p] of [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
      if (a >= f) return (v / f).toPrecision(3) + p + unit;
    }
    return (+v).toPrecision(3) + unit;
  }
  function secs(v) {
    for (const [f, u] of [[1, "s"], [1e-3, "ms"], [1e-6, "µs"]]) if (v >= f) return (v / f).toPrecision(3) + u;
    return (v * 1e9).toPrecision(3) + "ns";
  }
  function joules(v) {
    for (const [f, u] of [[1, "J"], [1e-3, "mJ"], [1e-6, "µJ"], [1e-9, "nJ"]]) if (v >= f) return (v / f).toPrecision(3) + u;
    return (v * 1e12).toPrecision(3) + "pJ";
  }

  // Re-time a report for another profile, exactly as runner.engine.cost.apply_profile does (energy is kept).
  function retime(report, profile) {
    const peaks = profile.peak_ops || {};
    const bw = profile.bandwidth;
    let total = 0, compute = 0;
    for (const layer of report.layers) {
      let dtype = (layer.dtypes || []).find((d) => peaks[d] > 0);
      if (!dtype) dtype = Object.keys(peaks).sort((a, b) => peaks[a] - peaks[b])[0];
      const peak = peaks[dtype];
      const tc = layer.flops / peak, tm = layer.bytes / bw;
      layer.dtype = dtype; layer.peak_ops = peak; layer.ridge = peak / bw;
      layer.compute_time_s = tc; layer.memory_time_s = tm; layer.time_s = Math.max(tc, tm);
      layer.bound = layer.flops > 0 && tc >= tm ? "compute" : "memory";
      total += layer.time_s; compute += layer.bound === "compute" ? 1 : 0;
    }
    report.totals.latency_s = total;
    report.totals.compute_bound_layers = compute;
    report.totals.memory_bound_layers = report.layers.length - compute;
    const ridges = {};
    for (const [k, v] of Object.entries(peaks)) ridges[k] = v / bw;
    report.profile = Object.assign({}, profile, { ridge_points: ridges });
    return report;
  }

  function totals(report) {
    const t = report.totals;
    const box = el("div", { class: "cost-totals" });
    const items = [["MACs", si(t.macs)], ["BOPs", si(t.bops)], ["Params", si(t.params)], ["Traffic", si(t.bytes, "B")],
      ["Latency", secs(t.latency_s)], ["Energy", joules(t.energy_j)], ["Sparsity", (100 * (t.sparsity || 0)).toFixed(1) + "%"],
      ["Bound", `${t.compute_bound_layers} compute / ${t.memory_bound_layers} memory`]];
    if (t.effective_macs !== undefined && t.effective_macs < t.macs) items.splice(1, 0, ["Effective MACs", si(t.effective_macs)]);
    for (const [k, v] of items) {
      const cell = el("div", { class: "cost-total", "data-total": k.toLowerCase() });
      cell.append(el("span", { class: "muted" }, k), el("strong", {}, v));
      box.append(cell);
    }
    return box;
  }

  function roofline(report, width) {
    const W = Math.max(320, Math.min(width || 720, 1100)), H = 300, m = { l: 62, r: 70, t: 12, b: 40 };
    const prof = report.profile, bw = prof.bandwidth;
    const pts = report.layers.filter((l) => l.flops > 0 && l.time_s > 0 && l.intensity > 0);
    const dtypes = [...new Set(report.layers.map((l) => l.dtype).filter(Boolean))];
    const ridges = dtypes.map((d) => prof.peak_ops[d] / bw);
    const xs = pts.map((l) => l.intensity).concat(ridges);
    const peaks = dtypes.map((d) => prof.peak_ops[d]);
    let x0 = Math.log10(Math.min(...xs, 1)) - 0.5, x1 = Math.log10(Math.max(...xs, 10)) + 0.5;
    const perf = pts.map((l) => l.flops / l.time_s);
    let y1 = Math.log10(Math.max(...peaks, ...perf, 1)) + 0.3;
    let y0 = Math.min(Math.log10(Math.pow(10, x0) * bw), ...perf.map((p) => Math.log10(p))) - 0.3;
    if (!isFinite(y0)) y0 = y1 - 6;
    const X = (v) => m.l + (Math.log10(v) - x0) / (x1 - x0) * (W - m.l - m.r);
    const Y = (v) => H - m.b - (Math.log10(v) - y0) / (y1 - y0) * (H - m.t - m.b);
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "cost-roofline-svg", role: "img",
      "aria-label": "Roofline: attainable FLOP/s against arithmetic intensity, log-log" });
    for (let k = Math.ceil(x0); k <= Math.floor(x1); k++) {
      svg.append(svgEl("line", { x1: X(10 ** k), x2: X(10 ** k), y1: m.t, y2: H - m.b, class: "grid" }));
      svg.append(svgEl("text", { x: X(10 ** k), y: H - m.b + 14, "text-anchor": "middle", class: "tick" }, si(10 ** k)));
    }
    for (let k = Math.ceil(y0); k <= Math.floor(y1); k++) {
      svg.append(svgEl("line", { x1: m.l, x2: W - m.r, y1: Y(10 ** k), y2: Y(10 ** k), class: "grid" }));
      svg.append(svgEl("text", { x: m.l - 4, y: Y(10 ** k) + 4, "text-anchor": "end", class: "tick" }, si(10 ** k)));
    }
    svg.append(svgEl("text", { x: (W + m.l - m.r) / 2, y: H - 6, "text-anchor": "middle", class: "axis" }, "arithmetic intensity (FLOP/byte)"));
    svg.append(svgEl("text", { x: 12, y: H / 2, transform: `rotate(-90 12 ${H / 2})`, "text-anchor": "middle", class: "axis" }, "FLOP/s"));
    dtypes.forEach((d, i) => {
      const peak = prof.peak_ops[d], ridge = peak / bw, xl = 10 ** x0, xr = 10 ** x1;
      svg.append(svgEl("polyline", { points: `${X(xl)},${Y(xl * bw)} ${X(ridge)},${Y(peak)} ${X(xr)},${Y(peak)}`, class: `roof roof-${i % 4}` }));
      svg.append(svgEl("text", { x: W - m.r + 4, y: Y(peak) + 4, class: "tick" }, `${d} ${si(peak)}`));
      const ridgeDot = svgEl("circle", { cx: X(ridge), cy: Y(peak), r: 4, class: "ridge", "data-ridge": d });
      ridgeDot.append(svgEl("title", {}, `ridge point ${d}: ${ridge.toPrecision(3)} FLOP/B`));
      svg.append(svgEl("line", { x1: X(ridge), x2: X(ridge), y1: Y(peak), y2: H - m.b, class: "ridge-line" }), ridgeDot);
    });
    const total = report.totals.latency_s || 1;
    pts.forEach((l) => {
      const r = 3 + 9 * Math.sqrt(l.time_s / total);
      const dot = svgEl("circle", { cx: X(l.intensity), cy: Y(l.flops / l.time_s), r: r.toFixed(1),
        class: `layer-dot ${l.bound}`, "data-layer": l.name, tabindex: "0" });
      dot.append(svgEl("title", {}, describe(l)));
      svg.append(dot);
    });
    const hidden = report.layers.length - pts.length;
    const wrap = el("div", { class: "cost-roofline" });
    const tip = el("div", { class: "cost-tip", hidden: "" });
    wrap.append(svg, tip);
    svg.addEventListener("mousemove", (ev) => {
      const t = ev.target;
      if (!(t instanceof SVGCircleElement) || !t.dataset.layer) { tip.hidden = true; return; }
      tip.textContent = t.querySelector("title").textContent;
      tip.hidden = false;
      const box = wrap.getBoundingClientRect();
      tip.style.left = Math.min(ev.clientX - box.left + 12, box.width - 260) + "px";
      tip.style.top = (ev.clientY - box.top + 12) + "px";
    });
    svg.addEventListener("mouseleave", () => { tip.hidden = true; });
    const caption = el("p", { class: "muted small" }, `Each dot is a layer (size ∝ its share of latency; ` +
      `blue compute-bound, orange memory-bound); lines are the ${prof.name} roofs, circles the ridge points.` +
      (hidden ? ` ${hidden} layers without MACs are not plotted.` : ""));
    wrap.append(caption);
    return wrap;
  }

  function describe(l) {
    return `${l.name} (${l.type})\n${si(l.macs)} MACs · ${si(l.bops)} BOPs · w${l.w_bits}a${l.a_bits} (${l.dtype})\n` +
      `${si(l.bytes, "B")} traffic · ${(+l.intensity).toPrecision(3)} FLOP/B\n${secs(l.time_s)} · ${l.bound}-bound · ${joules(l.energy_j)}`;
  }

  function bars(report) {
    const layers = report.layers;
    const max = { macs: 0, bops: 0, time_s: 0 };
    for (const l of layers) for (const k of Object.keys(max)) max[k] = Math.max(max[k], l[k]);
    const table = el("table", { class: "table cost-bars" });
    const head = el("tr");
    for (const h of ["layer", "MACs", "BOPs", "latency"]) head.append(el("th", {}, h));
    table.appendChild(el("thead")).append(head);
    const body = el("tbody");
    for (const l of layers) {
      const tr = el("tr", { "data-layer": l.name, title: describe(l) });
      tr.append(el("td", { class: "name" }, l.name));
      for (const [k, fmt] of [["macs", si], ["bops", si], ["time_s", secs]]) {
        const td = el("td", { class: "bar-cell" });
        const bar = el("span", { class: `bar bar-${k}${k === "time_s" ? " " + l.bound : ""}` });
        bar.style.width = (max[k] ? (100 * l[k] / max[k]) : 0).toFixed(1) + "%";
        td.append(bar, el("span", { class: "bar-label" }, fmt(l[k])));
        tr.append(td);
      }
      body.append(tr);
    }
    table.append(body);
    const wrap = el("div", { class: "cost-bars-wrap" });
    wrap.append(table);
    return wrap;
  }

  function layerTable(report) {
    const det = el("details", { class: "cost-table" });
    det.append(el("summary", {}, `Per-layer table (${report.layers.length} rows)`));
    const table = el("table", { class: "table" });
    const cols = ["layer", "type", "in", "out", "params", "MACs", "w/a", "sparsity", "BOPs", "weights", "activations",
      "traffic", "FLOP/B", "time", "bound", "energy"];
    const head = el("tr");
    cols.forEach((c) => head.append(el("th", {}, c)));
    table.appendChild(el("thead")).append(head);
    const body = el("tbody");
    for (const l of report.layers) {
      const tr = el("tr");
      [l.name, l.type, (l.input_shape || []).join("×"), (l.output_shape || []).join("×"), si(l.params), si(l.macs),
        `${l.w_bits}/${l.a_bits}`, (100 * l.sparsity).toFixed(0) + "%", si(l.bops), si(l.weight_bytes, "B"),
        si(l.act_in_bytes + l.act_out_bytes, "B"), si(l.bytes, "B"), (+l.intensity).toPrecision(3), secs(l.time_s),
        l.bound, joules(l.energy_j)].forEach((v) => tr.append(el("td", {}, v)));
      body.append(tr);
    }
    table.append(body);
    const scroll = el("div", { class: "cost-scroll" });
    scroll.append(table);
    det.append(scroll);
    return det;
  }

  function measured(report) {
    const m = report.measured;
    const box = el("div", { class: "cost-measured" });
    box.append(el("h4", {}, `Measured on ${m.device_name || m.device}`));
    const table = el("table", { class: "table" });
    const head = el("tr");
    ["batch", "measured (median)", "p10–p90", "roofline estimate", "measured / estimate"].forEach((h) => head.append(el("th", {}, h)));
    table.appendChild(el("thead")).append(head);
    const body = el("tbody");
    for (const r of m.rows) {
      const tr = el("tr", { "data-batch": r.batch_size });
      [String(r.batch_size), secs(r.median_s), `${secs(r.p10_s)}–${secs(r.p90_s)}`, secs(r.estimate_s),
        r.ratio ? r.ratio.toPrecision(3) + "×" : "—"].forEach((v) => tr.append(el("td", {}, v)));
      body.append(tr);
    }
    table.append(body);
    box.append(table);
    return box;
  }

  function heatmap(sens) {
    const box = el("div", { class: "cost-heatmap" });
    const base = typeof sens.baseline === "number" ? `; unpruned ${sens.baseline.toFixed(3)}` : "";
    box.append(el("h4", {}, `Pruning sensitivity (accuracy after pruning each layer alone${base})`));
    const flat = sens.acc.flat().filter((v) => typeof v === "number");
    const lo = Math.min(...flat), hi = Math.max(...flat);
    const table = el("table", { class: "table heat" });
    const head = el("tr");
    head.append(el("th", {}, "layer \\ ratio"));
    sens.ratios.forEach((r) => head.append(el("th", {}, String(r))));
    table.appendChild(el("thead")).append(head);
    const body = el("tbody");
    sens.layers.forEach((name, i) => {
      const tr = el("tr");
      tr.append(el("td", { class: "name" }, String(name)));
      sens.acc[i].forEach((v) => {
        const f = hi > lo ? (v - lo) / (hi - lo) : 1;
        const td = el("td", { class: "heat-cell", title: `${name} @ ${v}` }, typeof v === "number" ? v.toFixed(3) : "—");
        // a cell a cancelled scan never reached (null) stays uncoloured
        if (typeof v === "number") td.style.background = `hsl(${Math.round(120 * f)}, 65%, ${Math.round(82 - 12 * f)}%)`;
        tr.append(td);
      });
      body.append(tr);
    });
    table.append(body);
    const scroll = el("div", { class: "cost-scroll" });
    scroll.append(table);
    box.append(scroll);
    return box;
  }

  // Cost reports of a run in order (dense, then each pruning/quantization step): MACs and BOPs left vs the first.
  function history(rows) {
    const box = el("div", { class: "cost-history" });
    box.append(el("h4", {}, "Reports of this run"));
    const table = el("table", { class: "table" });
    const head = el("tr");
    ["report", "step", "MACs", "BOPs", "MACs left", "BOPs left"].forEach((h) => head.append(el("th", {}, h)));
    table.appendChild(el("thead")).append(head);
    const body = el("tbody");
    const first = rows[0];
    for (const r of rows) {
      const tr = el("tr", { "data-label": r.label });
      const left = (k) => (first[k] && r[k] !== null && r[k] !== undefined) ? (100 * r[k] / first[k]).toFixed(1) + "%" : "—";
      [r.label, r.step === null || r.step === undefined ? "—" : String(r.step),
        r.macs === null || r.macs === undefined ? "—" : si(r.macs), r.bops === null || r.bops === undefined ? "—" : si(r.bops),
        left("macs"), left("bops")].forEach((v) => tr.append(el("td", {}, v)));
      body.append(tr);
    }
    table.append(body);
    const scroll = el("div", { class: "cost-scroll" });
    scroll.append(table);
    box.append(scroll);
    return box;
  }

  // Render everything into root. options: {profiles: [...], table: bool, sensitivity: {...}, heading: str}
  function render(root, report, options) {
    options = options || {};
    root.replaceChildren();
    if (!report || !report.layers) {
      if (options.sensitivity) root.append(heatmap(options.sensitivity));
      if (!options.sensitivity) root.append(el("p", { class: "muted" }, options.empty || "No cost report yet."));
      return;
    }
    const head = el("div", { class: "row cost-head" });
    head.append(el("span", { class: "muted" }, `${report.label || report.model || "model"} · batch ${report.batch_size} · ` +
      `w${report.bits ? report.bits.default.join("a") : "?"} default`));
    if (options.profiles && options.profiles.length) {
      const sel = el("select", { class: "cost-profile", "aria-label": "Device profile" });
      for (const p of options.profiles) {
        const opt = el("option", { value: p.name }, p.label ? `${p.name} — ${p.label}` : p.name);
        if (p.name === report.profile.name) opt.selected = true;
        sel.append(opt);
      }
      sel.addEventListener("change", () => {
        const prof = options.profiles.find((p) => p.name === sel.value);
        if (prof) render(root, retime(report, prof), options);
      });
      head.append(el("label", { class: "inline-label" }, "Profile "), sel);
    }
    root.append(head, totals(report));
    root.append(roofline(report, root.clientWidth));
    root.append(el("h4", {}, "Per layer: MACs, BOPs, roofline latency"), bars(report));
    if (report.measured && report.measured.rows && report.measured.rows.length) root.append(measured(report));
    if (options.table) root.append(layerTable(report));
    if (options.history && options.history.length > 1) root.append(history(options.history));
    if (options.sensitivity) root.append(heatmap(options.sensitivity));
    if (report.notes && report.notes.length) {
      const ul = el("ul", { class: "muted small" });
      report.notes.forEach((n) => ul.append(el("li", {}, n)));
      root.append(ul);
    }
    root.append(el("p", { class: "muted small" }, report.counted_ops || ""));
    root.dataset.macs = String(report.totals.macs);
    root.dataset.profile = report.profile.name;
    root.dataset.latency = String(report.totals.latency_s);
  }

  window.LabbookCost = { render, retime, si, secs, joules };
})();

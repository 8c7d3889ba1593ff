// Run page: one uPlot chart per metric (downsampled from the series API), live points from `labbook:metrics`
// events, and the lineage graph drawn as SVG.
(function () {
  "use strict";
  const holder = document.getElementById("charts");
  if (!holder) return;
  const runId = Number(holder.dataset.run);
  const keys = JSON.parse(document.getElementById("metric-keys").textContent || "[]");
  const charts = new Map(); // key -> {plot, xs, ys}

  function cardFor(key) {
    const card = document.createElement("div");
    card.className = "chart-card";
    const h = document.createElement("h3");
    h.textContent = key;
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.key = key;
    card.append(h, box);
    holder.append(card);
    return box;
  }
  // data-points on each chart box says how many points it draws (for people reading the DOM, and for tests).
  function draw(key, xs, ys) {
    const existing = charts.get(key);
    if (existing) {
      existing.xs = xs; existing.ys = ys; existing.plot.setData([xs, ys]);
      existing.box.dataset.points = xs.length;
      return;
    }
    const box = cardFor(key);
    const plot = window.LabbookCharts.makeChart(box, key, [key], [xs, ys]);
    box.dataset.points = xs.length;
    charts.set(key, { plot, xs, ys, box });
  }
  async function load() {
    if (!keys.length) return;
    const width = Math.max(300, holder.clientWidth / 2);
    const url = "/api/runs/" + runId + "/series/?max_points=" + Math.round(Math.min(4000, width * 2)) + "&keys=" + encodeURIComponent(keys.join(","));
    const data = await window.Labbook.api("GET", url);
    data.series.forEach((s) => {
      // Live points that arrived while the history loaded (newer than its last step) are kept, not dropped.
      const xs = s.steps.slice(); const ys = s.values.slice();
      const live = charts.get(s.key);
      if (live) {
        const last = xs.length ? xs[xs.length - 1] : -Infinity;
        live.xs.forEach((x, i) => { if (x > last) { xs.push(x); ys.push(live.ys[i]); } });
      }
      draw(s.key, xs, ys);
    });
  }

  // The run's status badge follows its job (labbook:status comes from the live stream, runner/live.js).
  document.addEventListener("labbook:status", (event) => {
    const detail = event.detail || {};
    if (Number(detail.run) !== runId || !detail.status) return;
    holder.dataset.status = detail.status;
    const badge = document.getElementById("run-status");
    if (badge) { badge.textContent = detail.status; badge.className = "status-" + detail.status + " badge"; }
  });

  // Live points: appended in step order (a resent point with a known step is ignored).
  document.addEventListener("labbook:metrics", (event) => {
    const detail = event.detail || {};
    if (Number(detail.run) !== runId) return;
    const byKey = {};
    (detail.points || []).forEach((p) => { (byKey[p.key] = byKey[p.key] || []).push(p); });
    Object.entries(byKey).forEach(([key, points]) => {
      const c = charts.get(key) || { xs: [], ys: [] };
      const xs = c.xs.slice(); const ys = c.ys.slice();
      points.sort((a, b) => a.step - b.step).forEach((p) => {
        const last = xs.length ? xs[xs.length - 1] : -Infinity;
        if (p.step > last) { xs.push(p.step); ys.push(p.value); }
      });
      draw(key, xs, ys);
    });
  });

  // Runs logged by the Python client have no live stream: refresh while the run is running.
  if (holder.dataset.status === "running") {
    setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 10000);
  }
  load().catch((err) => { holder.textContent = "Could not load metrics: " + err.message; });

  // --- lineage graph: columns by depth (ancestors left, descendants right), SVG built with DOM calls ---
  const lineage = JSON.parse(document.getElementById("lineage-data").textContent || "{}");
  const target = document.getElementById("lineage");
  if (target && lineage.nodes && lineage.nodes.length > 1) {
    const NS = "http://www.w3.org/2000/svg";
    const parents = new Map(lineage.edges.map((e) => [e.to, e.from]));
    const depth = new Map();
    const depthOf = (id, seen) => {
      if (depth.has(id)) return depth.get(id);
      seen = seen || new Set(); if (seen.has(id)) return 0; seen.add(id);
      const p = parents.get(id); const d = p === undefined ? 0 : depthOf(p, seen) + 1;
      depth.set(id, d); return d;
    };
    lineage.nodes.forEach((n) => depthOf(n.id));
    const rows = new Map();
    const pos = new Map();
    const W = 150, H = 44, GX = 40, GY = 16;
    lineage.nodes.forEach((n) => {
      const d = depth.get(n.id); const r = rows.get(d) || 0; rows.set(d, r + 1);
      pos.set(n.id, { x: d * (W + GX) + 4, y: r * (H + GY) + 4 });
    });
    const width = (Math.max(...depth.values()) + 1) * (W + GX);
    const height = Math.max(...rows.values()) * (H + GY) + 8;
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", width); svg.setAttribute("height", height);
    svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "Lineage of this run");
    const defs = document.createElementNS(NS, "defs");
    const marker = document.createElementNS(NS, "marker");
    Object.entries({ id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto" }).forEach(([k, v]) => marker.setAttribute(k, v));
    const tip = document.createElementNS(NS, "path"); tip.setAttribute("d", "M0,0 L10,5 L0,10 z"); tip.setAttribute("fill", "#667085");
    marker.append(tip); defs.append(marker); svg.append(defs);
    lineage.edges.forEach((e) => {
      const a = pos.get(e.from), b = pos.get(e.to); if (!a || !b) return;
      const path = document.createElementNS(NS, "path");
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      path.setAttribute("d", "M" + x1 + "," + y1 + " C" + (x1 + GX / 2) + "," + y1 + " " + (x2 - GX / 2) + "," + y2 + " " + x2 + "," + y2);
      path.setAttribute("class", "edge");
      svg.append(path);
    });
    lineage.nodes.forEach((n) => {
      const p = pos.get(n.id);
      const a = document.createElementNS(NS, "a"); a.setAttribute("href", "/runs/" + n.id + "/");
      const g = document.createElementNS(NS, "g"); g.setAttribute("class", "node" + (n.current ? " current" : ""));
      const rect = document.createElementNS(NS, "rect");
      Object.entries({ x: p.x, y: p.y, width: W, height: H, rx: 6 }).forEach(([k, v]) => rect.setAttribute(k, v));
      const t1 = document.createElementNS(NS, "text"); t1.setAttribute("x", p.x + 8); t1.setAttribute("y", p.y + 18);
      t1.textContent = n.name.length > 20 ? n.name.slice(0, 19) + "…" : n.name;
      const t2 = document.createElementNS(NS, "text"); t2.setAttribute("x", p.x + 8); t2.setAttribute("y", p.y + 35);
      t2.setAttribute("font-size", "11"); t2.setAttribute("fill", "#667085"); t2.textContent = n.kind + " · " + n.status;
      g.append(rect, t1, t2); a.append(g); svg.append(a);
    });
    target.append(svg);
  }

  // --- notes and tags editing (PATCH through the API, then reload to show the rendered Markdown) ---
  const form = document.getElementById("notes-form");
  if (form) {
    const view = document.getElementById("notes-view");
    const toggle = (editing) => { form.hidden = !editing; view.hidden = editing; };
    document.getElementById("edit-notes").addEventListener("click", () => toggle(form.hidden));
    document.getElementById("cancel-notes").addEventListener("click", () => toggle(false));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const tags = document.getElementById("tags-text").value.split(",").map((t) => t.trim()).filter(Boolean);
      try {
        await window.Labbook.api("PATCH", "/api/runs/" + form.dataset.run + "/", { notes: document.getElementById("notes-text").value, tags: tags });
        window.location.reload();
      } catch (err) {
        document.getElementById("notes-error").textContent = err.message + (err.data && err.data.errors ? " " + JSON.stringify(err.data.errors) : "");
      }
    });
  }
})();

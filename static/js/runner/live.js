// Live events of a run over Server-Sent Events (/stream/runs/<id>/), resumed by event id after any reconnect.
// Re-dispatched on document as CustomEvents for other panels (the run page charts listen to labbook:metrics):
//   labbook:metrics  {run, points: [{key, step, value, wall_time}]}   labbook:progress {run, job, step, total, epoch, eta_s}
//   labbook:log      {run, job, lines: [{seq, stream, text}]}          labbook:cost {run, label, step, report}
//   labbook:status   {run, job, status, error, ...}                    labbook:artifact, labbook:gap (history trimmed)
// Every detail also carries `id`, the stream id of the event. A page that renders history first and then connects
// with ?last_id=<id read before the history> can see a point twice but never miss one: listeners drop (key, step)
// duplicates. The panel in templates/runner/_live_panel.html is updated here too.
(function () {
  "use strict";
  const TYPES = ["metrics", "progress", "log", "cost", "status", "artifact", "gap"];
  const FINAL = new Set(["succeeded", "failed", "cancelled", "lost"]);
  const LOG_KEEP = 500;
  const connections = new Map();

  function fmtDuration(s) {
    if (s === null || s === undefined || s === "" || isNaN(s)) return "—";
    s = Math.max(0, Math.round(Number(s)));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    if (m) return m + "m " + String(sec).padStart(2, "0") + "s";
    return sec + "s";
  }

  function connect(runId, streamUrl, lastId, initialStatus) {
    if (connections.has(runId)) return connections.get(runId);
    if (initialStatus && FINAL.has(initialStatus)) return null;  // nothing more will happen
    let url = streamUrl;
    if (lastId) url += (url.indexOf("?") < 0 ? "?" : "&") + "last_id=" + encodeURIComponent(lastId);
    // On a reconnect the browser sends Last-Event-ID itself, and the server prefers it to ?last_id=.
    const source = new EventSource(url, { withCredentials: true });
    const conn = { source, runId, lastId, seen: new Set() };
    connections.set(runId, conn);
    TYPES.forEach(function (type) {
      source.addEventListener(type, function (ev) {
        // Guard against replays: ids only grow within a stream.
        if (ev.lastEventId && conn.seen.has(ev.lastEventId)) return;
        if (ev.lastEventId) { conn.seen.add(ev.lastEventId); conn.lastId = ev.lastEventId; }
        let detail;
        try { detail = JSON.parse(ev.data); } catch (e) { return; }
        detail.run = detail.run !== undefined ? detail.run : runId;
        detail.id = ev.lastEventId || null;
        document.dispatchEvent(new CustomEvent("labbook:" + type, { detail }));
        if (type === "status" && FINAL.has(detail.status)) {
          // The job is over: stop listening (the browser would otherwise reconnect forever).
          setTimeout(function () { source.close(); setConn(runId, "closed"); }, 500);
        }
      });
    });
    source.addEventListener("open", function () { setConn(runId, "live"); });
    source.addEventListener("error", function () { if (source.readyState !== 2) setConn(runId, "reconnecting"); });
    return conn;
  }

  function setConn(runId, state) {
    document.querySelectorAll('[data-live-run="' + runId + '"] [data-live="connection"]').forEach(function (el) {
      el.dataset.state = state;
    });
  }

  function panelsFor(runId) {
    return document.querySelectorAll('[data-live-run="' + runId + '"]');
  }

  function q(panel, name) { return panel.querySelector('[data-live="' + name + '"]'); }

  document.addEventListener("labbook:progress", function (e) {
    const d = e.detail;
    panelsFor(d.run).forEach(function (panel) {
      const bar = q(panel, "bar"), step = q(panel, "step"), epoch = q(panel, "epoch"), eta = q(panel, "eta");
      if (bar) {
        if (d.total) { bar.max = d.total; bar.value = d.step; } else { bar.removeAttribute("value"); }
      }
      if (step) step.textContent = d.total ? "step " + d.step + " / " + d.total : "step " + d.step;
      if (epoch) epoch.textContent = d.epoch !== null && d.epoch !== undefined ? " · epoch " + d.epoch : "";
      if (eta) { eta.dataset.eta = d.eta_s === null || d.eta_s === undefined ? "" : d.eta_s; eta.dataset.at = Date.now(); eta.textContent = fmtDuration(d.eta_s); }
    });
  });

  document.addEventListener("labbook:log", function (e) {
    const d = e.detail;
    panelsFor(d.run).forEach(function (panel) {
      const pre = q(panel, "log"), count = q(panel, "log-count");
      if (!pre) return;
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 30;
      const frag = document.createDocumentFragment();
      let shown = Number(pre.dataset.seq || -1);
      (d.lines || []).forEach(function (line) {
        if (line.seq <= shown) return;  // already on the page (rendered, or replayed after a reload)
        shown = line.seq;
        const span = document.createElement("span");
        span.className = "log-" + line.stream;
        span.textContent = line.text;
        frag.appendChild(span);
        frag.appendChild(document.createTextNode("\n"));
      });
      pre.dataset.seq = shown;
      pre.appendChild(frag);
      while (pre.childNodes.length > LOG_KEEP * 2) pre.removeChild(pre.firstChild);
      if (count && d.lines && d.lines.length) count.textContent = d.lines[d.lines.length - 1].seq + 1;
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    });
  });

  document.addEventListener("labbook:status", function (e) {
    const d = e.detail;
    panelsFor(d.run).forEach(function (panel) {
      panel.dataset.status = d.status;
      const badge = q(panel, "status"), cancel = q(panel, "cancel"), err = q(panel, "error"), worker = q(panel, "worker");
      if (badge) { badge.textContent = d.cancel_requested && d.status === "running" ? "cancelling" : d.status; badge.className = "badge live-status status-" + d.status; }
      if (cancel) cancel.hidden = FINAL.has(d.status) || d.cancel_requested;
      if (err) { err.hidden = !d.error; err.textContent = d.error || ""; }
      if (worker && d.worker) worker.textContent = d.worker;
      if (FINAL.has(d.status)) { const eta = q(panel, "eta"); if (eta) { eta.dataset.eta = ""; eta.textContent = "—"; } }
    });
  });

  // ETA counts down between progress reports.
  setInterval(function () {
    document.querySelectorAll('[data-live="eta"]').forEach(function (el) {
      if (el.dataset.eta === "" || el.dataset.eta === undefined) return;
      const at = Number(el.dataset.at || Date.now());
      if (!el.dataset.at) el.dataset.at = at;
      el.textContent = fmtDuration(Number(el.dataset.eta) - (Date.now() - at) / 1000);
    });
  }, 1000);

  function setupPanel(panel) {
    const runId = Number(panel.dataset.liveRun);
    const cancel = q(panel, "cancel");
    if (cancel && panel.dataset.cancelUrl) {
      cancel.addEventListener("click", async function () {
        cancel.disabled = true;
        try {
          await window.Labbook.api("POST", panel.dataset.cancelUrl);
          const badge = q(panel, "status");
          if (badge) badge.textContent = "cancelling";
          cancel.hidden = true;
        } catch (err) {
          alert("Could not cancel: " + err.message);
          cancel.disabled = false;
        }
      });
    }
    connect(runId, panel.dataset.streamUrl, panel.dataset.lastId, panel.dataset.status);
  }

  function init() { document.querySelectorAll("[data-live-run]").forEach(setupPanel); }
  window.LabbookLive = { connect, connections, fmtDuration };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();

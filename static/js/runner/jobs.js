// The jobs page: polls /api/jobs/ every 2 s and re-renders the table; cancel buttons call the API.
(function () {
  "use strict";
  const table = document.getElementById("jobs-table");
  if (!table) return;
  const tbody = table.querySelector("tbody");
  const POLL_MS = 2000;
  const fmt = function (s) { return window.LabbookLive ? window.LabbookLive.fmtDuration(s) : fmtDuration(s); };
  function fmtDuration(s) {
    if (s === null || s === undefined) return "—";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    if (m) return m + "m " + String(sec).padStart(2, "0") + "s";
    return sec + "s";
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([k, v]) { if (v !== null && v !== undefined) e.setAttribute(k, v); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function row(job) {
    const tr = el("tr", { "data-job": job.id });
    const id = el("td"); id.appendChild(el("a", { href: job.url }, "#" + job.id)); tr.appendChild(id);
    const run = el("td"); run.appendChild(el("a", { href: job.run_url }, job.run_name)); tr.appendChild(run);
    tr.appendChild(el("td", {}, job.kind));
    const st = el("td");
    const label = job.cancel_requested && job.status === "running" ? "cancelling" : job.status;
    st.appendChild(el("span", { class: "badge status-" + job.status, "data-col": "status" }, label));
    if (job.status === "queued" && !job.dispatched) st.appendChild(el("span", { class: "muted", title: "the broker was unreachable; it will be sent when it is back" }, " (waiting for broker)"));
    tr.appendChild(st);
    const pr = el("td", { "data-col": "progress" });
    const p = job.progress;
    if (p.total) {
      pr.appendChild(el("progress", { max: p.total, value: p.step }));
      pr.appendChild(document.createTextNode(" " + Math.round(p.percent || 0) + "%"));
    } else { pr.textContent = p.step ? "step " + p.step : "—"; }
    tr.appendChild(pr);
    const dev = el("td", {}, job.device + (job.processes > 1 ? " ×" + job.processes : "") + " ");
    dev.appendChild(el("span", { class: "muted" }, "(" + job.queue + ")"));
    tr.appendChild(dev);
    tr.appendChild(el("td", { "data-col": "worker" }, job.worker_hostname || "—"));
    tr.appendChild(el("td", { class: "num", "data-col": "elapsed" }, fmt(job.elapsed_s)));
    tr.appendChild(el("td", { class: "num", "data-col": "eta" }, fmt(job.eta_s)));
    const act = el("td");
    if ((job.status === "queued" || job.status === "running") && !job.cancel_requested) {
      act.appendChild(el("button", { type: "button", class: "danger", "data-cancel": job.id }, "Cancel"));
    }
    tr.appendChild(act);
    return tr;
  }
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const data = await window.Labbook.api("GET", table.dataset.api);
      const jobs = data.results || [];
      tbody.replaceChildren.apply(tbody, jobs.map(row));
      if (!jobs.length) {
        const tr = el("tr", { class: "empty" });
        tr.appendChild(el("td", { colspan: 10, class: "muted" }, "No jobs yet."));
        tbody.appendChild(tr);
      }
      const stamp = document.getElementById("jobs-updated");
      if (stamp) stamp.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    } catch (err) {
      const stamp = document.getElementById("jobs-updated");
      if (stamp) stamp.textContent = "Could not refresh (" + err.message + "); retrying.";
    } finally { busy = false; }
  }
  tbody.addEventListener("click", async function (ev) {
    const btn = ev.target.closest("[data-cancel]");
    if (!btn) return;
    btn.disabled = true;
    try { await window.Labbook.api("POST", "/api/jobs/" + btn.dataset.cancel + "/cancel/"); }
    catch (err) { alert("Could not cancel: " + err.message); }
    refresh();
  });
  setInterval(refresh, POLL_MS);
  document.addEventListener("visibilitychange", refresh);
})();

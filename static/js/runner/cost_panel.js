// Run page cost panel: loads the run's latest cost report, re-renders on each live `labbook:cost` event
// (dispatched by runner/live.js with detail {run, report}), and lets the user re-time it for another profile.
function labbookCostPanel() {
  "use strict";
  const panel = document.querySelector("[data-cost-panel]");
  if (!panel || !window.LabbookCost) return;
  const runId = Number(panel.dataset.runId);
  const body = panel.querySelector("[data-cost-body]");
  const state = { report: null, profiles: [], sensitivity: null, history: [] };

  function draw() {
    window.LabbookCost.render(body, state.report, { profiles: state.profiles, table: true, history: state.history,
      sensitivity: state.sensitivity, empty: "No cost report yet: estimate, prune or quantize jobs attach one." });
    panel.dataset.state = state.report ? "report" : "empty";
  }

  const form = panel.querySelector("[data-cost-estimate]");
  function fillProfiles() {
    if (!form || !state.profiles.length) return;
    const sel = form.elements.profile, current = sel.value;
    sel.replaceChildren(...state.profiles.map((p) => new Option(p.name, p.name, false, p.name === current)));
  }
  if (form) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const err = form.querySelector("[data-cost-error]");
      err.textContent = "";
      const bits = [Number(form.elements.w_bits.value), Number(form.elements.a_bits.value)];
      try {
        await window.Labbook.api("POST", panel.dataset.apiUrl, { profile: form.elements.profile.value, bits: { default: bits } });
      } catch (e) {
        const errors = (e.data && e.data.errors) || {};
        err.textContent = Object.values(errors).flat().join(" ") || e.message;
        return;
      }
      load();
    });
  }

  async function load() {
    try {
      const data = await window.Labbook.api("GET", panel.dataset.apiUrl);
      state.report = data.report;
      state.profiles = data.profiles || [];
      state.sensitivity = data.sensitivity;
      state.history = data.history || [];
      fillProfiles();
    } catch (err) {
      body.textContent = "Could not load the cost report: " + err.message;
      return;
    }
    draw();
  }

  document.addEventListener("labbook:cost", (ev) => {
    const detail = ev.detail || {};
    if (Number(detail.run) !== runId) return;
    // A live event may carry the whole report or only its totals; fetch the stored one when layers are missing.
    if (detail.report && Array.isArray(detail.report.layers)) {
      state.report = detail.report;
      const t = detail.report.totals || {};
      const label = detail.label || detail.report.label || "model";
      state.history = state.history.filter((h) => h.label !== label);
      state.history.push({ label: label, step: detail.step, macs: t.macs, bops: t.bops });
      draw();
    } else {
      load();
    }
  });
  load();
}
// The panel is included mid-page, before base.html loads labbook.js (window.Labbook): start once the page is parsed.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", labbookCostPanel);
else labbookCostPanel();

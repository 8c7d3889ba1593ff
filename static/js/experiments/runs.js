// Runs table: sortable headers (server-side sort), column chooser kept in localStorage, selection, bulk actions.
(function () {
  "use strict";
  const table = document.getElementById("runs-table");
  if (!table) return;
  const STORE = "labbook.runs.columns";
  const defaults = JSON.parse(document.getElementById("default-columns").textContent || "[]");

  // --- columns ---
  function visibleColumns() {
    try { const saved = JSON.parse(localStorage.getItem(STORE)); if (Array.isArray(saved)) return saved; } catch (e) { /* ignore */ }
    return defaults;
  }
  function applyColumns(cols) {
    const set = new Set(cols);
    table.querySelectorAll("[data-col]").forEach((el) => { el.hidden = !set.has(el.dataset.col); });
    document.querySelectorAll("#column-chooser input[data-col]").forEach((box) => { box.checked = set.has(box.dataset.col); });
  }
  document.querySelectorAll("#column-chooser input[data-col]").forEach((box) => {
    box.addEventListener("change", () => {
      const cols = Array.from(document.querySelectorAll("#column-chooser input[data-col]:checked")).map((b) => b.dataset.col);
      localStorage.setItem(STORE, JSON.stringify(cols));
      applyColumns(cols);
    });
  });
  applyColumns(visibleColumns());

  // --- sorting (server-side, so it covers every run, not just the page) ---
  const current = table.dataset.sort || "";
  table.querySelectorAll("th[data-sort-key]").forEach((th) => {
    const key = th.dataset.sortKey;
    if (current === key) th.classList.add("sorted-asc");
    if (current === "-" + key) th.classList.add("sorted-desc");
    th.tabIndex = 0;
    const go = () => {
      const params = new URLSearchParams(window.location.search);
      params.set("sort", current === key ? "-" + key : key);
      window.location.search = params.toString();
    };
    th.addEventListener("click", go);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  });

  // --- selection and bulk actions ---
  const boxes = () => Array.from(table.querySelectorAll(".run-select"));
  const selected = () => boxes().filter((b) => b.checked).map((b) => Number(b.value));
  const buttons = ["compare-selected", "bulk-tag-add", "bulk-tag-remove", "bulk-delete"].map((id) => document.getElementById(id));
  function refresh() {
    const n = selected().length;
    document.getElementById("selected-count").textContent = n + " selected";
    buttons.forEach((b) => { b.disabled = n === 0; });
    document.getElementById("compare-selected").disabled = n < 2;
  }
  table.addEventListener("change", (e) => { if (e.target.classList.contains("run-select")) refresh(); });
  document.getElementById("select-all").addEventListener("change", (e) => {
    boxes().forEach((b) => { b.checked = e.target.checked; });
    refresh();
  });
  document.getElementById("compare-selected").addEventListener("click", () => {
    window.location.href = "/runs/compare/?ids=" + selected().join(",");
  });
  async function bulk(action, tags) {
    try {
      await window.Labbook.api("POST", "/api/runs/bulk/", { ids: selected(), action: action, tags: tags || [] });
      window.location.reload();
    } catch (err) {
      window.alert("Failed: " + err.message);
    }
  }
  function tagValue() {
    const tag = document.getElementById("bulk-tag").value.trim();
    if (!tag) { document.getElementById("bulk-tag").focus(); return null; }
    return tag;
  }
  document.getElementById("bulk-tag-add").addEventListener("click", () => { const t = tagValue(); if (t) bulk("tag", [t]); });
  document.getElementById("bulk-tag-remove").addEventListener("click", () => { const t = tagValue(); if (t) bulk("untag", [t]); });
  document.getElementById("bulk-delete").addEventListener("click", () => {
    const n = selected().length;
    if (window.confirm("Delete " + n + " run(s) with their metrics and artifact files? This cannot be undone.")) bulk("delete");
  });
  refresh();
})();

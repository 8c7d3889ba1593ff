// Markdown editor: live preview (server-rendered, sanitised) and autosave that never drops text.
// Every keystroke is copied to localStorage first; the server save is debounced; a failed save keeps the text in the
// textarea and in localStorage, shows "Unsaved" and retries with backoff until it succeeds.
(function () {
  "use strict";
  const SAVE_DEBOUNCE_MS = 800;
  const PREVIEW_DEBOUNCE_MS = 250;
  const MAX_RETRY_MS = 30000;

  function setup(root) {
    const textarea = root.querySelector(".notes-textarea");
    const preview = root.querySelector(".notes-preview");
    const state = root.querySelector(".notes-save-state");
    const saveUrl = root.dataset.saveUrl;
    const method = root.dataset.method || "PUT";
    const previewUrl = root.dataset.previewUrl;
    const storageKey = "labbook:draft:" + root.dataset.storageKey;
    const sharedBox = root.querySelector(".notes-shared");
    const tagsInput = root.querySelector(".notes-tags");
    const titleInput = root.querySelector(".notes-title");
    let savedBody = textarea.value;  // what the server has
    let metaDirty = false;  // sharing or tags changed since the last save
    let version = root.dataset.version || null;  // updated_at of the server text this editor is based on
    const usesVersion = method === "PUT";  // by-date logs and digests check versions; notes save as PATCH
    let saveTimer = null, previewTimer = null, retryDelay = 1000, inFlight = false, again = false;

    function setState(name, text) {
      state.dataset.state = name;
      state.textContent = text;
      root.classList.toggle("is-unsaved", name === "unsaved" || name === "error");
    }
    function keepDraft() {
      try { localStorage.setItem(storageKey, JSON.stringify({ body: textarea.value, at: Date.now() })); } catch (e) { /* quota: the textarea still has it */ }
    }
    function dropDraftIf(body) {
      try {
        const d = JSON.parse(localStorage.getItem(storageKey) || "null");
        if (d && d.body === body) localStorage.removeItem(storageKey);
      } catch (e) { /* ignore */ }
    }
    async function save() {
      clearTimeout(saveTimer);
      if (inFlight) { again = true; return; }
      const body = textarea.value;
      if (body === savedBody && !metaDirty) { setState("saved", "Saved"); dropDraftIf(body); return; }
      inFlight = true;
      setState("saving", "Saving…");
      const payload = { body: body };
      if (usesVersion) payload.base_version = version;
      if (sharedBox) payload.shared = sharedBox.checked;
      if (titleInput && titleInput.value.trim()) payload.title = titleInput.value.trim();
      if (tagsInput) payload.tags = tagsInput.value.split(",").map(function (t) { return t.trim(); }).filter(Boolean);
      const sentMeta = metaDirty;
      metaDirty = false;
      try {
        const saved = await window.Labbook.api(method, saveUrl, payload);
        if (saved && saved.updated_at) version = saved.updated_at;
        savedBody = body;
        retryDelay = 1000;
        dropDraftIf(body);
        setState(textarea.value === savedBody ? "saved" : "unsaved", textarea.value === savedBody ? "Saved " + new Date().toLocaleTimeString() : "Unsaved changes");
      } catch (err) {
        metaDirty = metaDirty || sentMeta;
        if (err.status === 409 && err.data) { showConflict(err.data); return; }
        const secs = Math.round(retryDelay / 1000);
        setState("error", "Unsaved — " + (err.status ? "server said " + err.status : "offline") + "; retrying in " + secs + " s (your text is kept in this browser)");
        saveTimer = setTimeout(save, retryDelay);
        retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
      } finally {
        inFlight = false;
        if (again) { again = false; scheduleSave(0); }
      }
    }
    function scheduleSave(delay) {
      clearTimeout(saveTimer);
      saveTimer = setTimeout(save, delay === undefined ? SAVE_DEBOUNCE_MS : delay);
    }
    function showConflict(data) {
      // Someone (another tab, "add to today" on a run page) saved a newer text. Ours is in History and here.
      setState("error", "Changed elsewhere — your text is kept here and in History.");
      let bar = root.querySelector(".notes-conflict");
      if (!bar) {
        bar = document.createElement("div");
        bar.className = "notes-conflict row";
        bar.innerHTML = '<button type="button" class="secondary" data-act="theirs">Load the newer text</button>' +
          '<button type="button" data-act="mine">Keep mine</button>';
        root.insertBefore(bar, root.querySelector(".notes-editor-panes"));
      }
      bar.onclick = function (e) {
        const act = e.target.dataset.act;
        if (!act) return;
        version = data.version;
        if (act === "theirs") { textarea.value = data.body; savedBody = data.body; try { localStorage.removeItem(storageKey); } catch (x) { /* ignore */ } setState("saved", "Loaded the newer text"); renderPreview(); }
        else { save(); }
        bar.remove();
      };
    }
    async function renderPreview() {
      if (!preview || preview.hidden) return;
      try {
        const data = await window.Labbook.api("POST", previewUrl, { body: textarea.value });
        preview.innerHTML = data.html;  // sanitised server-side by nh3 (allow-list)
      } catch (e) { /* preview is best effort; the text is safe */ }
    }
    textarea.addEventListener("input", function () {
      keepDraft();
      setState("unsaved", "Unsaved changes");
      scheduleSave();
      clearTimeout(previewTimer);
      previewTimer = setTimeout(renderPreview, PREVIEW_DEBOUNCE_MS);
    });
    textarea.addEventListener("keydown", function (e) {
      if ((e.ctrlKey || e.metaKey) && e.key === "s") { e.preventDefault(); save(); }
    });
    root.querySelector(".notes-save-now").addEventListener("click", save);
    [sharedBox, tagsInput, titleInput].forEach(function (el) {
      if (el) el.addEventListener("change", function () { metaDirty = true; setState("unsaved", "Unsaved changes"); scheduleSave(0); });
    });
    const toggle = root.querySelector(".notes-toggle-preview");
    toggle.addEventListener("click", function () {
      preview.hidden = !preview.hidden;
      toggle.setAttribute("aria-pressed", String(!preview.hidden));
      root.classList.toggle("no-preview", preview.hidden);
      if (!preview.hidden) renderPreview();
    });
    window.addEventListener("beforeunload", function (e) {
      if (textarea.value !== savedBody) { keepDraft(); e.preventDefault(); e.returnValue = ""; }
    });
    window.addEventListener("online", function () { if (textarea.value !== savedBody) save(); });
    document.querySelectorAll(".notes-insert-ref").forEach(function (btn) {
      btn.addEventListener("click", function () {
        const ref = btn.dataset.ref, pos = textarea.selectionEnd || textarea.value.length;
        textarea.value = textarea.value.slice(0, pos) + ref + textarea.value.slice(pos);
        textarea.dispatchEvent(new Event("input"));
        textarea.focus();
      });
    });
    // A draft left by a failed save or a closed tab comes back, and is saved.
    try {
      const draft = JSON.parse(localStorage.getItem(storageKey) || "null");
      if (draft && typeof draft.body === "string" && draft.body !== textarea.value) {
        textarea.value = draft.body;
        setState("unsaved", "Restored unsaved text from this browser");
        scheduleSave(0);
        renderPreview();
      } else if (draft) {
        localStorage.removeItem(storageKey);
      }
    } catch (e) { /* ignore */ }
  }
  document.querySelectorAll(".notes-editor").forEach(setup);
})();

// Reading list order: drag and drop with the mouse, Alt+ArrowUp/Down or the arrow buttons with the keyboard.
// Every change is saved at once through the reorder API; on failure the previous order comes back.
(function () {
  "use strict";
  const list = document.querySelector(".notes-rl[data-editable]");
  if (!list) return;
  const status = document.querySelector(".notes-rl-status");
  let dragged = null;

  function items() { return Array.from(list.querySelectorAll(".notes-rl-item")); }
  function ids() { return items().map(function (li) { return Number(li.dataset.id); }); }
  function say(text) { if (status) status.textContent = text; }

  async function persist(previous, message) {
    try {
      await window.Labbook.api("POST", list.dataset.reorderUrl, { item_ids: ids() });
      say(message || "Order saved.");
    } catch (err) {
      const byId = {};
      items().forEach(function (li) { byId[li.dataset.id] = li; });
      previous.forEach(function (id) { list.appendChild(byId[id]); });
      say("Could not save the order (" + (err.status || "offline") + "); it was put back.");
    }
  }
  function move(li, dir) {
    const before = ids();
    const sibling = dir < 0 ? li.previousElementSibling : li.nextElementSibling;
    if (!sibling) return;
    if (dir < 0) list.insertBefore(li, sibling); else list.insertBefore(sibling, li);
    li.focus();
    const pos = items().indexOf(li) + 1;
    persist(before, "Moved " + li.getAttribute("aria-label") + " to position " + pos + " of " + items().length + ".");
  }
  list.addEventListener("click", function (e) {
    const btn = e.target.closest(".notes-move");
    if (btn) { move(btn.closest(".notes-rl-item"), Number(btn.dataset.dir)); return; }
    const rm = e.target.closest(".notes-remove");
    if (rm) {
      const li = rm.closest(".notes-rl-item");
      window.Labbook.api("DELETE", list.dataset.itemsUrl + li.dataset.id + "/")
        .then(function () { li.remove(); say("Removed."); })
        .catch(function (err) { say("Could not remove (" + (err.status || "offline") + ")."); });
    }
  });
  list.addEventListener("keydown", function (e) {
    const li = e.target.closest(".notes-rl-item");
    if (!li || !e.altKey || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) return;
    e.preventDefault();
    move(li, e.key === "ArrowUp" ? -1 : 1);
  });
  list.addEventListener("change", function (e) {
    if (!e.target.classList.contains("notes-item-note")) return;
    const li = e.target.closest(".notes-rl-item");
    window.Labbook.api("PATCH", list.dataset.itemsUrl + li.dataset.id + "/", { note: e.target.value })
      .then(function () { say("Note saved."); })
      .catch(function (err) { say("Could not save the note (" + (err.status || "offline") + ")."); });
  });
  let before = null;
  list.addEventListener("dragstart", function (e) {
    dragged = e.target.closest(".notes-rl-item");
    if (!dragged) return;
    before = ids();
    dragged.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", dragged.dataset.id);
  });
  list.addEventListener("dragover", function (e) {
    if (!dragged) return;
    e.preventDefault();
    const over = e.target.closest(".notes-rl-item");
    if (!over || over === dragged) return;
    const rect = over.getBoundingClientRect();
    const after = e.clientY > rect.top + rect.height / 2;
    list.insertBefore(dragged, after ? over.nextElementSibling : over);
  });
  list.addEventListener("drop", function (e) { e.preventDefault(); });
  list.addEventListener("dragend", function () {
    if (!dragged) return;
    dragged.classList.remove("dragging");
    const changed = JSON.stringify(before) !== JSON.stringify(ids());
    const li = dragged;
    dragged = null;
    if (changed) persist(before, "Moved " + li.getAttribute("aria-label") + ".");
  });
})();

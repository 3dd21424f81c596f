// The batch page's entries: drag a row, or press its up/down buttons, to reorder; the Rank
// inputs are renumbered to the rows' new places, and Save stores them. Without this script
// the buttons submit the form and the server moves the row (see digests/admin.py).
(function () {
  "use strict";
  const holder = document.querySelector(".pb-entries-order");
  if (!holder) return;
  const tbody = holder.querySelector("tbody");
  const status = document.getElementById("entries-order-status");
  const firstRank = parseInt(holder.dataset.firstRank, 10) || 1;
  const rows = () => Array.from(tbody.querySelectorAll("tr.form-row.has_original"));
  const rankInput = (row) => row.querySelector("input[name$='-rank']");
  if (!rows().length || !rankInput(rows()[0])) return; // read-only batch

  function renumber(moved) {
    rows().forEach((row, index) => {
      const input = rankInput(row);
      const rank = String(firstRank + index);
      if (input.value !== rank) input.value = rank;
    });
    if (moved) {
      rows().forEach((row) => row.classList.remove("pb-moved"));
      moved.classList.add("pb-moved");
      status.textContent =
        "Moved to position " + rankInput(moved).value + ". Save to keep the new order.";
    }
  }

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button[name='_move']");
    if (!button) return;
    event.preventDefault();
    const row = button.closest("tr");
    if (button.value.endsWith(":up") && row.previousElementSibling?.matches("tr.has_original")) {
      tbody.insertBefore(row, row.previousElementSibling);
    } else if (button.value.endsWith(":down") && row.nextElementSibling?.matches("tr.has_original")) {
      tbody.insertBefore(row.nextElementSibling, row);
    }
    renumber(row);
    button.focus();
  });

  let dragged = null;
  rows().forEach((row) => {
    row.draggable = true;
    row.addEventListener("dragstart", (event) => {
      dragged = row;
      row.classList.add("pb-dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", rankInput(row).value);
    });
    row.addEventListener("dragend", () => {
      row.classList.remove("pb-dragging");
      if (dragged) renumber(dragged);
      dragged = null;
    });
    row.addEventListener("dragover", (event) => {
      if (!dragged || dragged === row) return;
      event.preventDefault();
      const box = row.getBoundingClientRect();
      const after = event.clientY > box.top + box.height / 2;
      tbody.insertBefore(dragged, after ? row.nextSibling : row);
    });
    row.addEventListener("drop", (event) => {
      event.preventDefault();
    });
  });
})();

// Thin bootstrap: load the wasm, and turn dropped folders into file lists
// (the entries API is callback-shaped and far simpler to walk from JS).
import init, { open_checkpoint, open_side, copy_opened_checkpoint, merge_checkpoints, run_logits, run_greedy, niah_prompt_json } from "./pkg/qklab.js";

async function filesOf(entry) {
  if (entry.isFile) return [await new Promise((ok, fail) => entry.file(ok, fail))];
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const files = [];
  // readEntries returns at most ~100 entries per call: read until empty.
  for (;;) {
    const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
    if (batch.length === 0) return files;
    // A checkpoint folder is flat: take its files, not nested folders.
    for (const e of batch) if (e.isFile) files.push(await new Promise((ok, fail) => e.file(ok, fail)));
  }
}

function wireDrop(zone, open) {
  // From the keyboard, Enter or Space on a focused zone opens its file picker.
  zone.addEventListener("keydown", (ev) => {
    if (ev.target !== zone || (ev.key !== "Enter" && ev.key !== " ")) return;
    ev.preventDefault();
    zone.querySelector("input[type=file]")?.click();
  });
  zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    const entries = [...ev.dataTransfer.items].map((i) => i.webkitGetAsEntry()).filter(Boolean);
    // Without entries (files dropped by a script, older browsers) take the plain file list.
    const files = entries.length ? (await Promise.all(entries.map(filesOf))).flat() : [...ev.dataTransfer.files];
    await open(files);
  });
}

// Offline after the first load (see sw.js); without service workers the page works online only.
if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js').catch(() => {});
await init();
// For tests and the console: the browser writer, the merge and the engine.
window.qklab = {
  copyOpenedCheckpoint: copy_opened_checkpoint,
  merge: merge_checkpoints,
  runLogits: run_logits,
  runGreedy: run_greedy,
  niahPrompt: niah_prompt_json,
};
wireDrop(document.getElementById("drop"), open_checkpoint);
for (const side of ["pre", "sft"]) wireDrop(document.getElementById(`${side}-zone`), (files) => open_side(side, files));
// Every control is wired (the wasm's start() wired the rest during init()).
document.body.dataset.ready = "1";

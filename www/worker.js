// The engine's worker: loads the wasm and runs one request of the page's
// (src/web/worker.rs); the page starts a fresh worker per run and ends it
// to cancel.
import init, { worker_run } from "./pkg/qklab.js";

const ready = init();
self.onmessage = async (e) => {
  const post = (json) => self.postMessage(json);
  try {
    await ready;
    await worker_run(e.data.request, e.data.models, e.data.webgpu, e.data.engine ?? "auto", e.data.fault ?? "", post);
  } catch (err) {
    // A panic or a trap in the engine: say so rather than fall silent.
    post(JSON.stringify({ type: "failed", message: `the engine stopped: ${err?.message ?? err}` }));
  }
};

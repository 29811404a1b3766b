// Headless-Chromium smoke test of the qklab web UI (run by `cargo xtask test`).
//
//   node tests/browser/smoke.mjs <base-url> <fixture-dir> <pre-fixture-dir>
//
// <base-url> serves www/ (with www/pkg built); <fixture-dir> holds a
// `qklab synth` checkpoint (config.json, sharded *.safetensors, index),
// <pre-fixture-dir> a second one with other weights (the merge's "pre").
// Uses the system Chromium ($CHROMIUM, default /usr/bin/chromium) through
// playwright-core; WebGPU runs on SwiftShader. Screenshots of every step go
// to target/browser-screens/NN-name.png. Prints `browser: N passed, M failed`
// and exits non-zero on any failure.
//
// QKLAB_BROWSER_CHECKS=a,b runs only those checks and the ones they need;
// benchmarks (checks/benches.mjs) run only when named there.
//
// The harness (launch, helpers, runner, report) is harness.mjs; the checks
// live in checks/<page step>.mjs. ORDER below is the order they run in and
// the NN of their labels: a check that depends on another (`needs`) comes
// after it, and the main page's state carries from one check to the next.

import { launch, runChecks } from './harness.mjs';
import { checks as accessibility } from './checks/accessibility.mjs';
import { checks as benches } from './checks/benches.mjs';
import { checks as engine } from './checks/engine.mjs';
import { checks as evaluate } from './checks/evaluate.mjs';
import { checks as hf } from './checks/hf.mjs';
import { checks as hostile } from './checks/hostile.mjs';
import { checks as layers } from './checks/layers.mjs';
import { checks as merge } from './checks/merge.mjs';
import { checks as open } from './checks/open.mjs';
import { checks as pageErrors } from './checks/page-errors.mjs';
import { checks as pool } from './checks/pool.mjs';
import { checks as jet } from './checks/jet.mjs';
import { checks as qwen35 } from './checks/qwen35.mjs';
import { checks as report } from './checks/report.mjs';
import { checks as routing } from './checks/routing.mjs';
import { checks as tune } from './checks/tune.mjs';

const ORDER = [
  'page-loads',                       // open
  'keyboard-and-labels',              // accessibility
  'summary',                          // open
  'browser-writer',                   // open
  'browser-merge',                    // merge
  'gpu-selftest',                     // engine
  'engine-golden',                    // engine
  'niah-wasm',                        // engine
  'demo-merge',                       // merge
  'demo-evaluate',                    // evaluate
  'demo-routing',                     // routing
  'export-report',                    // report
  'shared-link-reproduces',           // report
  'folder-pair-drop',                 // merge
  'sweep-in-worker-responsive',       // evaluate
  'gpu-lost-mid-sweep',               // evaluate
  'engine-panic-recovers',            // evaluate
  'big-pair-refused-before-loading',  // evaluate
  'live-sweep-bench',                 // benches
  'no-webgpu-cpu-fallback',           // evaluate
  'pair-hostile-and-mismatched',      // hostile
  'rejects-png',                      // hostile
  'hostile-config-and-nan',           // hostile
  'offline-after-first-load',         // open
  'demo-story',                       // accessibility
  'tune-demo',                        // tune
  'hf-golden',                        // hf
  'hf-pair-layers',                   // hf
  'qwen35-golden',                    // qwen35
  'qwen35-pair',                      // qwen35
  'jet-golden',                        // jet
  'jet-pair',                          // jet
  'demo-layers',                      // layers
  'pool-run-it-here',                 // pool
  'pool-worker-killed',               // pool
  'no-page-errors',                   // page-errors: last, over the whole run
];

// Every check in a file is in ORDER once, and ORDER names no other: a
// check added to a file and forgotten here is an error, not a silent skip.
const byName = new Map();
for (const c of [...accessibility, ...benches, ...engine, ...evaluate, ...hf, ...hostile, ...jet, ...layers, ...merge,
  ...open, ...pageErrors, ...pool, ...qwen35, ...report, ...routing, ...tune]) {
  if (byName.has(c.name)) throw new Error(`browser check ${c.name} is defined twice`);
  byName.set(c.name, c);
}
const unlisted = [...byName.keys()].filter((n) => !ORDER.includes(n));
const unknown = ORDER.filter((n, i) => !byName.has(n) || ORDER.indexOf(n) !== i);
if (unlisted.length || unknown.length) {
  throw new Error(`tests/browser/smoke.mjs ORDER: not listed ${JSON.stringify(unlisted)}, unknown or repeated ${JSON.stringify(unknown)}`);
}
const checks = ORDER.map((n) => byName.get(n));
for (const [i, c] of checks.entries()) {
  if (c.needs && ORDER.indexOf(c.needs) >= i) throw new Error(`browser check ${c.name} needs ${c.needs}, which must run before it`);
}

await launch();
await runChecks(checks);

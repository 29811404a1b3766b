// Headless-Chromium smoke test of the qklab web UI (run by `cargo xtask test`).
//
//   node tests/browser/smoke.mjs <base-url> <fixture-dir>
//
// <base-url> serves www/ (with www/pkg built); <fixture-dir> holds a
// `qklab synth` checkpoint (config.json, sharded *.safetensors, index).
// Uses the system Chromium ($CHROMIUM, default /usr/bin/chromium) through
// playwright-core; WebGPU runs on SwiftShader. Screenshots of every step go
// to target/browser-screens/NN-name.png. Prints `browser: N passed, M failed`
// and exits non-zero on any failure.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const STEP_TIMEOUT_MS = 60_000; // SwiftShader is slow
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu', // the flag that actually exposes navigator.gpu here
  '--use-webgpu-adapter=swiftshader',
  '--enable-features=Vulkan',
  '--disable-gpu-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const [baseArg, fixtureArg, preFixtureArg] = process.argv.slice(2);
if (!baseArg || !fixtureArg || !preFixtureArg) {
  console.error('usage: node smoke.mjs <base-url> <fixture-dir> <pre-fixture-dir>');
  process.exit(2);
}
const baseUrl = new URL(baseArg).href;
const fixtureDir = path.resolve(fixtureArg);
const preFixtureDir = path.resolve(preFixtureArg);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const screensDir = path.join(repoRoot, 'target', 'browser-screens');
fs.rmSync(screensDir, { recursive: true, force: true });
fs.mkdirSync(screensDir, { recursive: true });

// ---------------------------------------------------------------- fixture facts

/** Parse a safetensors header: 8-byte LE length + JSON. */
function safetensorsHeader(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const lenBuf = Buffer.alloc(8);
    if (fs.readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new Error(`${file}: shorter than 8 bytes`);
    const len = lenBuf.readBigUInt64LE(0);
    if (len > 100n * 1024n * 1024n) throw new Error(`${file}: header length ${len} is implausible`);
    const json = Buffer.alloc(Number(len));
    if (fs.readSync(fd, json, 0, json.length, 8) !== json.length) throw new Error(`${file}: truncated header`);
    return JSON.parse(json.toString('utf8'));
  } finally {
    fs.closeSync(fd);
  }
}

/** Every tensor of a safetensors file's bytes, by name, as Buffer views. */
function tensorBytes(buf) {
  const start = 8 + Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, start).toString('utf8'));
  return Object.fromEntries(Object.entries(header).filter(([k]) => k !== '__metadata__')
    .map(([k, v]) => [k, buf.subarray(start + v.data_offsets[0], start + v.data_offsets[1])]));
}

/** Find the first value of `key` anywhere in a JSON tree (config may nest it). */
function findKey(obj, key) {
  if (obj === null || typeof obj !== 'object') return undefined;
  if (Object.prototype.hasOwnProperty.call(obj, key)) return obj[key];
  for (const v of Object.values(obj)) {
    const found = findKey(v, key);
    if (found !== undefined) return found;
  }
  return undefined;
}

const fixtureFiles = fs.readdirSync(fixtureDir).sort().map((f) => path.join(fixtureDir, f))
  .filter((f) => fs.statSync(f).isFile());
const shardFiles = fixtureFiles.filter((f) => f.endsWith('.safetensors'));
let totalNumel = 0n;
for (const shard of shardFiles) {
  for (const [name, info] of Object.entries(safetensorsHeader(shard))) {
    if (name === '__metadata__') continue;
    totalNumel += info.shape.reduce((acc, d) => acc * BigInt(d), 1n);
  }
}
const config = JSON.parse(fs.readFileSync(path.join(fixtureDir, 'config.json'), 'utf8'));
const mixerTypes = findKey(config, 'mixer_types');
if (!Array.isArray(mixerTypes)) {
  console.error(`browser: fixture config.json has no mixer_types array (${fixtureDir})`);
  process.exit(1);
}
const expectedAttn = mixerTypes.filter((m) => m === 'attn').length;
console.log(`browser: fixture ${fixtureDir}: ${fixtureFiles.length} files, ${shardFiles.length} shards, ` +
  `${totalNumel} parameters, ${expectedAttn}/${mixerTypes.length} attn layers`);

// ---------------------------------------------------------------- browser

const consoleLines = [];
const pageErrors = [];
const failedRequests = [];

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
console.log(`browser: launching ${executablePath} (headless) ${CHROMIUM_ARGS.join(' ')}`);
let browser;
try {
  browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
} catch (e) {
  console.log(`browser: cannot launch ${executablePath}: ${String(e.message).split('\n')[0]}`);
  console.log(`browser: 0 passed, 1 failed`);
  process.exit(1);
}
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
// Output Files come back to node as base64, one helper for every check.
await page.addInitScript(() => {
  window.__filesToBase64 = async (files) => {
    const result = {};
    for (const f of files) {
      const bytes = new Uint8Array(await f.arrayBuffer());
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      result[f.name] = btoa(bin);
    }
    return result;
  };
});
page.setDefaultTimeout(STEP_TIMEOUT_MS);
page.on('console', (msg) => {
  const loc = msg.location();
  const where = loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : '';
  consoleLines.push(`[${msg.type()}] ${msg.text()}${where}`);
});
page.on('pageerror', (err) => pageErrors.push(String(err && err.stack ? err.stack : err)));
page.on('crash', () => pageErrors.push('page crashed'));
page.on('requestfailed', (req) => failedRequests.push(`${req.url()}: ${req.failure()?.errorText}`));
page.on('response', (res) => {
  if (res.status() >= 400) failedRequests.push(`${res.url()}: HTTP ${res.status()}`);
});

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qklab-smoke-'));

const textOf = (sel) => page.locator(sel).first().textContent({ timeout: 5_000 }).then((t) => (t ?? '').trim());

// ---------------------------------------------------------------- checks

const checks = [
  {
    name: 'page-loads',
    async run() {
      // Cold: a fresh browser context, nothing cached. Measured, not asserted.
      const t0 = Date.now();
      const res = await page.goto(baseUrl, { waitUntil: 'load' });
      assert.ok(res && res.ok(), `GET ${baseUrl} -> ${res && res.status()}`);
      await page.waitForFunction(() => document.body && document.body.dataset.ready === '1', null,
        { timeout: STEP_TIMEOUT_MS });
      console.log(`browser: first screen usable (wasm loaded, controls wired) ${Date.now() - t0} ms after navigation, cold`);
    },
  },
  {
    name: 'summary',
    needs: 'page-loads',
    async run() {
      await page.locator('#pick-files').setInputFiles(fixtureFiles);
      const rows = page.locator('#summary [data-layer]');
      await rows.first().waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });
      const params = page.locator('#summary [data-field="parameters"]');
      await params.first().waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });
      const attnRows = await page.locator('#summary [data-layer][data-mixer="attn"]').count();
      assert.equal(attnRows, expectedAttn,
        `rows with data-mixer="attn" (of ${await rows.count()} layer rows) vs attn entries in config mixer_types`);
      const shown = await textOf('#summary [data-field="parameters"]');
      assert.equal(shown, totalNumel.toString(), 'parameters field vs sum of tensor numel in the shards');
    },
  },
  {
    // The browser writer: the checkpoint shown is rewritten into Blobs made
    // of File.slice()s plus a new header; parsed here by our own reader,
    // every tensor's bytes must equal the input's and provenance be recorded.
    name: 'browser-writer',
    needs: 'summary',
    async run() {
      const out = await page.evaluate(async () => {
        return window.__filesToBase64(await window.qklab.copyOpenedCheckpoint());
      });
      const names = Object.keys(out).sort();
      assert.deepEqual(names, fixtureFiles.map((f) => path.basename(f)).sort(), 'output files mirror the input folder');
      for (const shard of shardFiles) {
        const name = path.basename(shard);
        const written = Buffer.from(out[name], 'base64');
        const tmp = path.join(tmpDir, name);
        fs.writeFileSync(tmp, written);
        const header = safetensorsHeader(tmp);
        const inHeader = safetensorsHeader(shard);
        const input = fs.readFileSync(shard);
        const inStart = 8 + Number(input.readBigUInt64LE(0));
        const outStart = 8 + Number(written.readBigUInt64LE(0));
        const prov = JSON.parse(header.__metadata__['qklab.provenance']);
        assert.equal(prov.method, 'copy', `${name}: provenance method`);
        assert.equal(header.__metadata__.format, inHeader.__metadata__.format, `${name}: source metadata kept`);
        for (const [t, info] of Object.entries(inHeader)) {
          if (t === '__metadata__') continue;
          const o = header[t];
          assert.ok(o, `${name}: tensor ${t} missing from the output`);
          assert.deepEqual([o.dtype, o.shape], [info.dtype, info.shape], `${name}: ${t} dtype/shape`);
          const a = input.subarray(inStart + info.data_offsets[0], inStart + info.data_offsets[1]);
          const b = written.subarray(outStart + o.data_offsets[0], outStart + o.data_offsets[1]);
          assert.ok(a.equals(b), `${name}: ${t} bytes differ`);
        }
      }
    },
  },
  {
    // The merge from the page's code path: QK-Restore of the pre fixture
    // into the sft one. Checked here with our own header parser: q/k of
    // every softmax layer must be pre's bytes, every other tensor sft's.
    name: 'browser-merge',
    needs: 'page-loads',
    async run() {
      const pack = (dir) => fs.readdirSync(dir).sort().map((n) => ({ name: n, b64: fs.readFileSync(path.join(dir, n)).toString('base64') }));
      const out = await page.evaluate(async ([pre, sft]) => {
        const files = (list) => list.map(({ name, b64 }) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name));
        const merged = await window.qklab.merge(files(pre), files(sft), JSON.stringify({ method: 'qk-restore' }));
        return window.__filesToBase64(merged);
      }, [pack(preFixtureDir), pack(fixtureDir)]);
      const softmax = mixerTypes.flatMap((m, i) => (m === 'attn' ? [i] : []));
      const restored = new Set(softmax.flatMap((l) => ['q', 'k'].map((p) => `model.layers.${l}.self_attn.${p}_proj.weight`)));
      assert.ok(out['qklab-recipe.json'], 'the recipe is offered with the shards');
      let seen = 0;
      for (const shard of shardFiles.map((f) => path.basename(f))) {
        const merged = tensorBytes(Buffer.from(out[shard], 'base64'));
        const sft = tensorBytes(fs.readFileSync(path.join(fixtureDir, shard)));
        const pre = tensorBytes(fs.readFileSync(path.join(preFixtureDir, shard)));
        for (const [name, bytes] of Object.entries(sft)) {
          const want = restored.has(name) ? pre[name] : bytes;
          assert.ok(merged[name] && merged[name].equals(want), `${shard}: ${name} should equal ${restored.has(name) ? 'pre' : 'sft'}`);
          if (restored.has(name)) seen += 1;
        }
      }
      assert.equal(seen, restored.size, 'every restored tensor was checked');
    },
  },
  {
    name: 'gpu-selftest',
    needs: 'page-loads',
    async run() {
      await page.locator('#gpu-selftest').click();
      await page.waitForFunction(() => {
        const t = (document.querySelector('#gpu-status')?.textContent ?? '').trim();
        return t.startsWith('GPU self-test passed') || t.startsWith('GPU self-test failed') || t.includes('no WebGPU');
      }, null, { timeout: STEP_TIMEOUT_MS });
      const status = await textOf('#gpu-status');
      assert.ok(status.startsWith('GPU self-test passed'), `#gpu-status: ${JSON.stringify(status)}`);
    },
  },
  {
    // The demo model run by the wasm engine on WebGPU (SwiftShader) against
    // the PyTorch reference's golden logits and greedy ids.
    name: 'engine-golden',
    needs: 'gpu-selftest',
    async run() {
      const fx = path.join(repoRoot, 'tests', 'fixtures', 'demo', 'sft.safetensors');
      const all = tensorBytes(fs.readFileSync(fx));
      const tensor = (name, Kind) => new Kind(all[name].buffer.slice(all[name].byteOffset, all[name].byteOffset + all[name].length));
      const ids = [...tensor('ids_c', Int32Array)];
      const want = tensor('logits_c', Float32Array);
      const out = await page.evaluate(async (ids) => {
        const files = await Promise.all(['config.json', 'model.safetensors'].map(async (n) =>
          new File([await (await fetch(`demo/sft/${n}`)).blob()], n)));
        const prompt = Uint32Array.from(ids);
        const logits = await window.qklab.runLogits(files, prompt);
        const greedy = await window.qklab.runGreedy(files, prompt, 16);
        const bytes = new Uint8Array(logits.buffer);
        let bin = '';
        for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return { logits: btoa(bin), greedy: Array.from(greedy) };
      }, ids);
      const buf = Buffer.from(out.logits, 'base64');
      const got = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
      assert.equal(got.length, want.length, 'logits [T, V]');
      let scale = 0, diff = 0;
      for (let i = 0; i < want.length; i++) {
        scale = Math.max(scale, Math.abs(want[i]));
        diff = Math.max(diff, Math.abs(got[i] - want[i]));
      }
      console.log(`browser: engine-golden: T=${ids.length} max|diff|/max|logit| = ${(diff / scale).toExponential(2)}`);
      assert.ok(diff / scale < 1e-4, `logits differ: ${diff / scale}`);
      assert.deepEqual(out.greedy, [...tensor('greedy_c', Int32Array)], 'greedy continuation');
    },
  },
  {
    // NIAH prompts made by the wasm build equal the native ones, field for
    // field (tests/fixtures/niah-prompts.json is checked by tests/niah_gen.rs).
    name: 'niah-wasm',
    needs: 'page-loads',
    async run() {
      const cases = JSON.parse(fs.readFileSync(path.join(repoRoot, 'tests', 'fixtures', 'niah-prompts.json'), 'utf8'));
      const got = await page.evaluate((args) => args.map(([task, length, depth, seed, distractors]) =>
        JSON.parse(window.qklab.niahPrompt(task, length, depth, BigInt(seed), distractors ?? undefined))), cases.map((c) => c.args));
      cases.forEach((c, i) => assert.deepEqual(got[i], c.prompt, `prompt ${JSON.stringify(c.args)}`));
    },
  },
  {
    // A small NIAH sweep in the browser gives what `qklab niah` gave natively
    // on the H100 for the same seeds (docs/demo-results/qklab-niah), sample
    // for sample: the same generated text and score.
    name: 'niah-sweep-wasm',
    needs: 'engine-golden',
    async run() {
      const native = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs', 'demo-results', 'qklab-niah', 'sweep-s1.json'), 'utf8'));
      const t0 = Date.now();
      const out = await page.evaluate(async () => {
        const names = ['config.json', 'model.safetensors', 'tokenizer.json'];
        const files = await Promise.all(names.map(async (n) => new File([await (await fetch(`demo/sft/${n}`)).blob()], n)));
        const settings = { model: 'www/demo/sft', task: 's1', lengths: [512], depths: [0, 0.25], samples: 2, seed: 12345 };
        return JSON.parse(await window.qklab.niahSweep(files, JSON.stringify(settings)));
      });
      console.log(`browser: niah-sweep-wasm: ${out.samples.length} samples (s1 @512) in ${((Date.now() - t0) / 1000).toFixed(1)} s on SwiftShader`);
      assert.equal(out.samples.length, 4);
      for (const s of out.samples) {
        const n = native.samples.find((x) => x.model === s.model && x.length === s.length && x.depth === s.depth && x.seed === s.seed);
        assert.ok(n, `no native sample for seed ${s.seed}`);
        assert.equal(s.generated, n.generated, `seed ${s.seed}: generated text`);
        assert.equal(s.score, n.score, `seed ${s.seed}: score`);
      }
    },
  },
  {
    // The product's main path: "Open the demo", QK-Restore, downloads. The
    // merged tensors are pre's q/k of the softmax layers and sft's otherwise.
    name: 'demo-merge',
    needs: 'page-loads',
    async run() {
      await page.locator('#open-demo').click();
      await page.waitForFunction(() => (document.querySelector('#pair-status')?.textContent ?? '').startsWith('Compatible'));
      await page.waitForSelector('#drift table');
      const driftRows = await page.locator('#drift tr').allTextContents();
      assert.equal(driftRows.length, 9, 'a header and 8 layers');
      assert.deepEqual(driftRows.filter((r) => r.includes('softmax')).map((r) => r.split(' ')[0]), ['3', '6']);
      await page.screenshot({ path: path.join(screensDir, 'demo-pair.png') });
      assert.equal(await page.locator('#method').inputValue(), 'qk-restore', 'QK-Restore is the default');
      await page.locator('#merge').click();
      await page.waitForFunction(() => (document.querySelector('#merge-status')?.textContent ?? '').startsWith('Done'));
      await page.screenshot({ path: path.join(screensDir, 'demo-merged.png') });
      // Download every offered file the way a user does (the page's CSP
      // rightly keeps even blob: URLs out of fetch).
      const out = {};
      const links = page.locator('#downloads a');
      for (let i = 0; i < await links.count(); i++) {
        const [download] = await Promise.all([page.waitForEvent('download'), links.nth(i).click()]);
        out[download.suggestedFilename()] = fs.readFileSync(await download.path()).toString('base64');
      }
      assert.deepEqual(Object.keys(out).sort(), ['config.json', 'model.safetensors', 'qklab-recipe.json', 'tokenizer.json']);
      const demo = (side) => tensorBytes(fs.readFileSync(path.join(repoRoot, 'www', 'demo', side, 'model.safetensors')));
      const [pre, sft] = [demo('pre'), demo('sft')];
      const merged = tensorBytes(Buffer.from(out['model.safetensors'], 'base64'));
      let restored = 0;
      for (const [name, bytes] of Object.entries(sft)) {
        const fromPre = /^model\.layers\.(3|6)\.self_attn\.(q|k)_proj\.weight$/.test(name);
        assert.ok(merged[name].equals(fromPre ? pre[name] : bytes), `${name} should come from ${fromPre ? 'pre' : 'sft'}`);
        restored += fromPre;
      }
      assert.equal(restored, 4);
      // The settings are in the URL, and a new browser context opened on
      // that link (or another) fills the form from it.
      assert.equal(new URL(page.url()).hash, '#method=qk-restore&alpha=1&beta=1&layers=');
      const other = await browser.newContext();
      const shared = await other.newPage();
      await shared.goto(`${baseUrl}#method=qk-pro&alpha=1&beta=0.5&layers=3`);
      await shared.waitForFunction(() => document.body.dataset.ready === '1');
      assert.deepEqual(
        [await shared.locator('#method').inputValue(), await shared.locator('#beta').inputValue(), await shared.locator('#layers').inputValue()],
        ['qk-pro', '0.5', '3']);
      await other.close();
    },
  },
  {
    // Bad input beside the zone that got it: a tensor named like markup
    // stays text and runs nothing; a mismatched pair names its differences.
    name: 'pair-hostile-and-mismatched',
    needs: 'demo-merge',
    async run() {
      let dialogs = 0;
      page.on('dialog', (d) => { dialogs += 1; d.dismiss(); });
      // The demo's pre checkpoint with one more tensor, named like markup.
      const evil = '<img src=x onerror=alert(1)>';
      const demoPre = fs.readFileSync(path.join(repoRoot, 'www', 'demo', 'pre', 'model.safetensors'));
      const n = Number(demoPre.readBigUInt64LE(0));
      const header = JSON.parse(demoPre.subarray(8, 8 + n).toString('utf8'));
      const data = demoPre.subarray(8 + n);
      header[evil] = { dtype: 'F32', shape: [1], data_offsets: [data.length, data.length + 4] };
      let json = Buffer.from(JSON.stringify(header));
      json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      const evilDir = fs.mkdtempSync(path.join(tmpDir, 'evil-'));
      fs.writeFileSync(path.join(evilDir, 'model.safetensors'), Buffer.concat([len, json, data, Buffer.alloc(4)]));
      fs.copyFileSync(path.join(repoRoot, 'www', 'demo', 'pre', 'config.json'), path.join(evilDir, 'config.json'));
      await page.locator('#pre-files').setInputFiles(fs.readdirSync(evilDir).map((f) => path.join(evilDir, f)));
      await page.waitForFunction((evil) => (document.querySelector('#pre-status')?.textContent ?? '').includes(evil), evil);
      const status = await textOf('#pre-status');
      assert.ok(status.includes(`tensors the architecture does not use: ${evil}`), `#pre-status: ${status}`);
      assert.equal(await page.locator('main img').count(), 0, 'no <img> element was created');
      assert.equal(dialogs, 0, 'no script ran');
      await page.screenshot({ path: path.join(screensDir, 'pair-hostile.png') });

      // The tiny synthetic model against the demo: shapes differ everywhere.
      await page.locator('#pre-files').setInputFiles(fixtureFiles);
      await page.waitForFunction(() => (document.querySelector('#pair-status')?.textContent ?? '').includes('embed_tokens'));
      assert.ok((await page.locator('#pair-status').getAttribute('class')).includes('error'), 'shown as an error');
      const pair = await textOf('#pair-status');
      assert.match(pair, /model\.embed_tokens\.weight: shape \[259, 40\] in pre, \[259, 192\] in sft/);
      assert.ok(await page.locator('#merge').isDisabled(), 'an incompatible pair cannot be merged');
      await page.screenshot({ path: path.join(screensDir, 'pair-mismatched.png') });
    },
  },
  {
    name: 'rejects-png',
    needs: 'page-loads',
    async run() {
      const fake = path.join(tmpDir, 'fake.safetensors');
      fs.writeFileSync(fake, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(8)]));
      await page.locator('#pick-files').setInputFiles([fake]);
      await page.waitForFunction(() => (document.querySelector('#status')?.textContent ?? '').includes('PNG'), null,
        { timeout: STEP_TIMEOUT_MS }).catch(() => {});
      const status = await textOf('#status');
      assert.ok(status.includes('PNG'), `#status should mention PNG, got ${JSON.stringify(status)}`);
      assert.equal(await page.locator('#status').getAttribute('role'), 'alert', '#status role');
    },
  },
  {
    name: 'no-page-errors',
    async run() {
      const csp = consoleLines.filter((l) => /Content Security Policy/i.test(l));
      assert.deepEqual(pageErrors, [], 'uncaught exceptions / crashes in the page');
      assert.deepEqual(csp, [], 'Content-Security-Policy violations');
    },
  },
];

let passed = 0;
let failed = 0;
const ok = new Set();
for (const [i, check] of checks.entries()) {
  const label = `${String(i + 1).padStart(2, '0')}-${check.name}`;
  const started = Date.now();
  let error = null;
  let skipped = false;
  if (check.needs && !ok.has(check.needs)) {
    skipped = true;
    error = new Error(`not run: needs ${check.needs} (counted as failed)`);
  } else {
    try {
      await check.run();
    } catch (e) {
      error = e;
    }
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const shot = path.join(screensDir, `${label}.png`);
  await page.screenshot({ path: shot, fullPage: true, timeout: STEP_TIMEOUT_MS }).catch((e) => {
    console.log(`browser: (screenshot ${shot} failed: ${e.message.split('\n')[0]})`);
  });
  if (error) {
    failed += 1;
    console.log(`browser: ${skipped ? 'SKIP' : 'FAIL'} ${label} (${secs}s)`);
    console.log(String(error && error.message ? error.message : error).replace(/^/gm, '    '));
  } else {
    passed += 1;
    ok.add(check.name);
    console.log(`browser: ok   ${label} (${secs}s)`);
  }
}

if (failed > 0) {
  const dump = (title, lines) => {
    console.log(`browser: ${title}: ${lines.length ? '' : '(none)'}`);
    for (const l of lines) console.log(`    ${l}`);
  };
  dump('page errors', pageErrors);
  dump('console messages', consoleLines.filter((l) => l.startsWith('[error]') || l.startsWith('[warning]')));
  dump('failed requests', failedRequests);
  try {
    console.log(`browser: #status: ${JSON.stringify(await textOf('#status'))}`);
    console.log(`browser: #gpu-status: ${JSON.stringify(await textOf('#gpu-status'))}`);
  } catch { /* page may be gone */ }
  console.log(`browser: screenshots in ${screensDir}`);
}

await browser.close().catch(() => {});
fs.rmSync(tmpDir, { recursive: true, force: true });
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);

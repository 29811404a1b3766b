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
import { execFileSync } from 'node:child_process';

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
// The native CLI (built by `cargo xtask test` for the fixtures): the oracle for merges and routing.
const qklabBin = path.join(repoRoot, 'target', 'release', 'qklab');
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

/** Waits until the text of `selector` in `pg` matches `pattern`. */
const waitForText = (pg, selector, pattern, timeout = STEP_TIMEOUT_MS) => pg.waitForFunction(
  ([sel, source, flags]) => new RegExp(source, flags).test(document.querySelector(sel)?.textContent ?? ''),
  [selector, pattern.source, pattern.flags], { timeout });

/** Opens `url` in `pg` and waits until the page has wired its controls. */
async function gotoReady(pg, url = baseUrl) {
  await pg.goto(url);
  await pg.waitForFunction(() => document.body.dataset.ready === '1');
}

/**
 * A copy of the checkpoint folder `from` (config.json and an all-F32
 * model.safetensors) in `to`, every value nudged: a script-made "SFT" of it.
 */
function nudgedCopy(from, to) {
  fs.mkdirSync(to, { recursive: true });
  fs.copyFileSync(path.join(from, 'config.json'), path.join(to, 'config.json'));
  const buf = Buffer.from(fs.readFileSync(path.join(from, 'model.safetensors')));
  const header = safetensorsHeader(path.join(from, 'model.safetensors'));
  assert.ok(Object.entries(header).every(([k, v]) => k === '__metadata__' || v.dtype === 'F32'), `${from}: F32 only`);
  for (let o = 8 + Number(buf.readBigUInt64LE(0)); o + 4 <= buf.length; o += 4) buf.writeFloatLE(buf.readFloatLE(o) * 1.01 + 1e-3, o);
  fs.writeFileSync(path.join(to, 'model.safetensors'), buf);
}

/** A fresh page with the demo pair open. */
async function openDemo(pg) {
  await gotoReady(pg);
  await pg.locator('#open-demo').click();
  await waitForText(pg, '#pair-status', /^Compatible/);
}

/** Sets a form: `task` picked in `taskId`, then each field of `fields` filled. */
async function fillForm(pg, taskId, task, fields) {
  await pg.locator(`#${taskId}`).selectOption(task);
  for (const [id, v] of Object.entries(fields)) await pg.locator(`#${id}`).fill(v);
}

/** Scrolls `selector` to just below the sticky guide, as a visitor sees it. */
async function scrollBelowGuide(pg, selector) {
  await pg.evaluate((sel) => {
    const guide = document.querySelector('#guide');
    const below = guide && !guide.hidden ? guide.getBoundingClientRect().height + 8 : 0;
    window.scrollTo(0, document.querySelector(sel).getBoundingClientRect().top + window.scrollY - below);
  }, selector);
}

/**
 * Screenshots `name-WIDTH-part.png` of each `#prefix-part`, scrolled to
 * just below the sticky guide as a visitor sees it, at laptop and phone widths.
 */
async function screenshotsAtWidths(pg, name, prefix, parts) {
  for (const [w, h] of [[1366, 768], [390, 844]]) {
    await pg.setViewportSize({ width: w, height: h });
    for (const part of parts) {
      await scrollBelowGuide(pg, `#${prefix}-${part}`);
      await pg.screenshot({ path: path.join(screensDir, `${name}-${w}-${part}.png`) });
    }
  }
  await pg.setViewportSize({ width: 1280, height: 900 });
}

/** A fresh page on the demo pair, its sweep form set to S1 at `lengths` x `depths` x `samples`. */
async function demoSweepForm(pg, lengths, depths, samples) {
  await openDemo(pg);
  await pg.locator('#task').selectOption('s1');
  await pg.locator('#lengths').fill(lengths);
  await pg.locator('#depths').fill(depths);
  await pg.locator('#samples').fill(samples);
}

/**
 * Runs `body(page, context)` in a fresh browser context that shares nothing
 * with the main page, and closes it afterwards. `prepare(context)` runs
 * before the page opens.
 */
async function inNewContext(body, prepare = async () => {}, options = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  try {
    await prepare(ctx);
    const pg = await ctx.newPage();
    pg.setDefaultTimeout(STEP_TIMEOUT_MS);
    return await body(pg, ctx);
  } finally {
    await ctx.close();
  }
}

/** Clicks every link in `selector` as a user would and returns each download's bytes by file name. */
async function downloadAll(pg, selector) {
  const out = {};
  const links = pg.locator(selector);
  for (let i = 0; i < await links.count(); i++) {
    const label = await links.nth(i).textContent();
    const [download] = await Promise.all([pg.waitForEvent('download', { timeout: 20_000 }), links.nth(i).click()])
      .catch((e) => { throw new Error(`downloading link ${i} (${label}): ${e.message.split('\n')[0]}`); });
    out[download.suggestedFilename()] = fs.readFileSync(await download.path());
  }
  return out;
}

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
    // Every control has a name a screen reader can say, and the drop zones
    // open their file pickers from the keyboard.
    name: 'keyboard-and-labels',
    needs: 'page-loads',
    async run() {
      const unnamed = await page.evaluate(() => [...document.querySelectorAll('main input, main select, main button, main progress')]
        .filter((e) => !(e.closest('label') || e.getAttribute('aria-label') || (e.tagName === 'BUTTON' && e.textContent.trim())))
        .map((e) => e.id || e.outerHTML));
      assert.deepEqual(unnamed, [], 'controls without a label');
      // Enter on a focused zone clicks its first file input (the click is
      // recorded and its chooser suppressed, so no dialog is left open).
      await page.evaluate(() => {
        window.__picked = [];
        for (const input of document.querySelectorAll('input[type=file]')) {
          input.addEventListener('click', (ev) => { window.__picked.push(ev.target.id); ev.preventDefault(); });
        }
      });
      for (const zone of ['#pre-zone', '#sft-zone', '#drop']) {
        await page.locator(zone).focus();
        await page.keyboard.press('Enter');
      }
      assert.deepEqual(await page.evaluate(() => window.__picked), ['pre-files', 'sft-files', 'pick-files']);
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
    // The product's main path: "Open the demo", QK-Restore, downloads. The
    // merged tensors are pre's q/k of the softmax layers and sft's otherwise.
    name: 'demo-merge',
    needs: 'page-loads',
    async run() {
      await page.locator('#open-demo').click();
      await waitForText(page, '#pair-status', /^Compatible/);
      await page.waitForSelector('#drift table');
      const driftRows = await page.locator('#drift tr').allTextContents();
      assert.equal(driftRows.length, 9, 'a header and 8 layers');
      assert.deepEqual(driftRows.filter((r) => r.includes('softmax')).map((r) => r.split(' ')[0]), ['3', '6']);
      for (const side of ['pre', 'sft']) {
        assert.equal(await page.locator(`#${side}-layers li`).allTextContents().then((t) => t.join('')), 'LLLSLLSL', `${side}: the layer map`);
      }
      await page.screenshot({ path: path.join(screensDir, 'demo-pair.png') });
      assert.equal(await page.locator('#method').inputValue(), 'qk-restore', 'QK-Restore is the default');
      await page.locator('#merge').click();
      await waitForText(page, '#merge-status', /^Done/);
      assert.equal(await page.locator('#merge-progress').evaluate((p) => p.value === p.max), true, 'the progress bar is full');
      await page.screenshot({ path: path.join(screensDir, 'demo-merged.png') });
      // Download every offered file the way a user does (the page's CSP
      // rightly keeps even blob: URLs out of fetch).
      const out = await downloadAll(page, '#downloads a');
      assert.deepEqual(Object.keys(out).sort(), ['config.json', 'model.safetensors', 'qklab-recipe.json', 'tokenizer.json']);
      const demo = (side) => tensorBytes(fs.readFileSync(path.join(repoRoot, 'www', 'demo', side, 'model.safetensors')));
      const [pre, sft] = [demo('pre'), demo('sft')];
      const merged = tensorBytes(out['model.safetensors']);
      let restored = 0;
      for (const [name, bytes] of Object.entries(sft)) {
        const fromPre = /^model\.layers\.(3|6)\.self_attn\.(q|k)_proj\.weight$/.test(name);
        assert.ok(merged[name].equals(fromPre ? pre[name] : bytes), `${name} should come from ${fromPre ? 'pre' : 'sft'}`);
        restored += fromPre;
      }
      assert.equal(restored, 4);
      // The settings are in the URL, and a new browser context opened on
      // that link (or another) fills the form from it.
      const hash = new URLSearchParams(new URL(page.url()).hash.slice(1));
      assert.deepEqual(['method', 'alpha', 'beta', 'layers', 'demo'].map((k) => hash.get(k)), ['qk-restore', '1', '1', '', '1']);
      assert.match(hash.get('pre'), /^[0-9a-f]{12}$/, 'pre fingerprint');
      assert.match(hash.get('sft'), /^[0-9a-f]{12}$/, 'sft fingerprint');
      assert.notEqual(hash.get('pre'), hash.get('sft'));
      await inNewContext(async (shared) => {
        await gotoReady(shared, `${baseUrl}#method=qk-pro&alpha=1&beta=0.5&layers=3`);
        assert.deepEqual(
          [await shared.locator('#method').inputValue(), await shared.locator('#beta').inputValue(), await shared.locator('#layers').inputValue()],
          ['qk-pro', '0.5', '3']);
      });
    },
  },
  {
    // The sweep through the page: pre, sft and the merge side by side, with
    // progress and Cancel; the heat maps' cells and Table 1 equal what
    // `qklab niah` gave natively for the same seeds (docs/demo-results).
    name: 'demo-evaluate',
    needs: 'demo-merge',
    async run() {
      const native = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs', 'demo-results', 'qklab-niah', 'sweep-s1.json'), 'utf8'));
      const nativeName = { pre: 'www/demo/pre', sft: 'www/demo/sft', merged: '/tmp/qk-restore' };
      await page.locator('#task').selectOption('s1');
      await page.locator('#lengths').fill('512');
      await page.locator('#depths').fill('0,0.25');
      await page.locator('#samples').fill('1');
      await page.locator('#seed').fill('12345');
      const t0 = Date.now();
      await page.locator('#run-sweep').click();
      // Cancel once the first prompt is done, then continue.
      await page.waitForFunction(() => document.querySelector('#eval-progress').value >= 1, null, { timeout: 300_000 });
      await page.locator('#cancel-sweep').click();
      await waitForText(page, '#eval-status', /^Cancelled/, 300_000);
      const cancelled = await textOf('#eval-status');
      assert.match(cancelled, /^Cancelled after [1-5] of 6 prompts/);
      await page.screenshot({ path: path.join(screensDir, 'demo-evaluate-cancelled.png'), fullPage: true });
      await page.locator('#run-sweep').click();
      await waitForText(page, '#eval-status', /^(Done|.*error|no )/i, 600_000);
      assert.match(await textOf('#eval-status'), /^Done: 6 prompts \(2 per model\) on /);
      console.log(`browser: demo-evaluate: 6 prompts (s1 @512, 3 models) in ${((Date.now() - t0) / 1000).toFixed(1)} s on SwiftShader`);
      await page.screenshot({ path: path.join(screensDir, 'demo-evaluate.png'), fullPage: true });
      const maps = await page.locator('#heatmaps figure').evaluateAll((figs) => figs.map((f) => ({
        id: f.dataset.figure,
        cells: [...f.querySelectorAll('g.cell')].map((g) => [Number(g.dataset.length), Number(g.dataset.depth), Number(g.dataset.accuracy), g.querySelector('title').textContent]),
      })));
      assert.deepEqual(maps.map((m) => m.id), ['heatmap-pre', 'heatmap-sft', 'heatmap-merged']);
      const want = (model, depthIndex, depth) => native.samples.find((x) => x.model === nativeName[model] && x.length === 512 && x.depth === depth && x.seed === 12345 + 17 * depthIndex + 512);
      for (const m of maps) {
        const model = m.id.replace('heatmap-', '');
        assert.equal(m.cells.length, 2, `${model}: two cells`);
        for (const [length, depth, accuracy, title] of m.cells) {
          const n = want(model, [0, 0.25].indexOf(depth), depth);
          assert.ok(n, `no native sample for ${model} @${length}/${depth}`);
          assert.equal(accuracy, n.score, `${model} @${length} depth ${depth}: the page's cell vs qklab niah`);
          assert.match(title, new RegExp(`^${model}, s1 at 512 tokens, depth ${depth}: \\d+% of 1 sample`));
        }
      }
      const rows = await page.locator('#table1 tr[data-model]').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
      const mean = (model) => (100 * [0, 0.25].map((d, i) => want(model, i, d).score).reduce((a, b) => a + b) / 2).toFixed(1);
      assert.deepEqual(rows, ['pre', 'sft', 'merged'].map((m) => [m, mean(m)]), 'Table 1 row per model');
      assert.deepEqual(await page.locator('#table1 tr:not([data-model]) th').allTextContents(), ['model', 'S1@512']);
      const hash = new URLSearchParams(new URL(page.url()).hash.slice(1));
      assert.deepEqual(['task', 'lengths', 'depths', 'samples', 'seed'].map((k) => hash.get(k)), ['s1', '512', '0,0.25', '1', '12345']);
    },
  },
  {
    // Figure 4's panels for the most affected layer; the page's distances
    // (wasm on SwiftShader) equal native `qklab routing`'s on one prompt.
    name: 'demo-routing',
    needs: 'demo-evaluate',
    async run() {
      await page.locator('#run-routing').click();
      await waitForText(page, '#routing-status', /^(Prompt|.*error)/i, 300_000);
      assert.match(await textOf('#routing-status'), /^Prompt: \d+ tokens, needle at tokens \d+–\d+/);
      await page.screenshot({ path: path.join(screensDir, 'demo-routing.png'), fullPage: true });
      const figs = await page.locator('#routing-view figure').evaluateAll((f) => f.map((x) => x.dataset.figure));
      assert.deepEqual(figs, ['routing-question', 'routing-map-pre', 'routing-map-sft', 'routing-map-merged', 'routing-map-log-ratio', 'routing-distance', 'routing-mass']);
      assert.equal(await page.locator('#routing-maps rect.needle').count(), 4, 'the needle is marked on every map');
      const layer = await page.locator('#routing-layer').inputValue();
      const head = await page.locator('#routing-head').inputValue();
      // Native: the same prompt (s1, 512, depth 0.5, seed 12345) on the same three models.
      const qk = path.join(tmpDir, 'qk-restore');
      const json = path.join(tmpDir, 'routing.json');
      execFileSync(qklabBin, ['merge', '--pre', 'www/demo/pre', '--sft', 'www/demo/sft', '--method', 'qk-restore', '--out', qk], { cwd: repoRoot });
      execFileSync(qklabBin, ['routing', 'www/demo/pre', 'www/demo/sft', qk, '--task', 's1', '--length', '512', '--depth', '0.5', '--prompt-seed', '12345',
        '--layer', layer, '--head', head, '--block', '16', '--json', json], { cwd: repoRoot });
      const native = JSON.parse(fs.readFileSync(json, 'utf8'));
      assert.equal(String(native.most_affected[0].layer), layer, 'the default layer is the most affected one');
      const bars = await page.locator('[data-figure="routing-distance"] rect.bar title').allTextContents();
      const models = ['pre', 'sft', 'merged'];
      native.models.forEach((m, i) => {
        const d = m.layers.find((l) => String(l.layer) === layer).mean_distance;
        d.forEach((x, h) => {
          const shown = bars.find((t) => t.startsWith(`${models[i]}, head ${h}:`));
          assert.ok(shown, `a bar for ${models[i]} head ${h}`);
          const v = Number(shown.split(': ')[1].split(' ')[0]);
          assert.ok(Math.abs(v - x) <= 1e-3 * Math.max(1, x), `${models[i]} head ${h}: page ${v} vs native ${x}`);
        });
      });
      // Another head only redraws.
      const other = head === '0' ? '1' : '0';
      await page.locator('#routing-head').selectOption(other);
      await page.waitForFunction((h) => (document.querySelector('[data-figure="routing-map-pre"] title')?.textContent ?? '').endsWith(`head ${h}`), other);
      assert.equal(new URLSearchParams(new URL(page.url()).hash.slice(1)).get('head'), other);
    },
  },
  {
    // "Export report": the JSON of every result plus each figure as SVG and PNG.
    name: 'export-report',
    needs: 'demo-routing',
    async run() {
      await page.locator('#export-report').click();
      await waitForText(page, '#report-status', /^(Report ready|.*error)/i);
      assert.match(await textOf('#report-status'), /^Report ready: the JSON and 10 figure\(s\)/);
      const files = await downloadAll(page, '#report-downloads a');
      assert.deepEqual(Object.keys(files).sort(), ['qklab-report.json', 'qklab-report.zip']);
      // Python's zipfile, not our writer, opens the archive.
      const zipPath = path.join(tmpDir, 'qklab-report.zip');
      fs.writeFileSync(zipPath, files['qklab-report.zip']);
      const unpacked = path.join(tmpDir, 'report');
      execFileSync('python3', ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2])', zipPath, unpacked]);
      const out = {};
      for (const rel of fs.readdirSync(unpacked, { recursive: true })) {
        const p = path.join(unpacked, rel);
        if (fs.statSync(p).isFile()) out[path.basename(rel)] = fs.readFileSync(p);
      }
      const names = Object.keys(out);
      assert.equal(names.filter((n) => n.endsWith('.svg')).length, 10);
      assert.equal(names.filter((n) => n.endsWith('.png')).length, 10);
      for (const n of names.filter((n) => n.endsWith('.png'))) assert.ok(out[n].subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), `${n} is a PNG`);
      for (const n of names.filter((n) => n.endsWith('.svg'))) assert.ok(out[n].toString().startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), `${n} is an SVG`);
      assert.ok(out['qklab-report.json'].equals(files['qklab-report.json']), 'the JSON in the archive is the one offered alone');
      const report = JSON.parse(out['qklab-report.json'].toString());
      assert.equal(report.merge.method, 'qk-restore');
      assert.equal(report.niah.results.length, 6);
      assert.equal(report.niah.samples.length, 6);
      assert.equal(report.routing.models.length, 3);
      // Sample for sample, the text the page generated is what `qklab niah` generated natively.
      const native = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs', 'demo-results', 'qklab-niah', 'sweep-s1.json'), 'utf8'));
      const nativeName = { pre: 'www/demo/pre', sft: 'www/demo/sft', merged: '/tmp/qk-restore' };
      for (const s of report.niah.samples) {
        const n = native.samples.find((x) => x.model === nativeName[s.model] && x.length === s.length && x.depth === s.depth && x.seed === s.seed);
        assert.ok(n, `no native sample for ${s.model} seed ${s.seed}`);
        assert.equal(s.generated, n.generated, `${s.model} seed ${s.seed}: generated text`);
      }
      assert.ok(out['qklab-report.json'].length < 200_000, 'no weights in the report');
      fs.writeFileSync(path.join(screensDir, 'qklab-report.json'), out['qklab-report.json']);
    },
  },
  {
    // The link alone, in a new browser context: the demo reopens, the merge
    // repeats, the sweep form refills, and Run gives the same table.
    name: 'shared-link-reproduces',
    needs: 'demo-evaluate',
    async run() {
      const table = await page.locator('#table1').textContent();
      await inNewContext(async (shared) => {
        await shared.goto(page.url());
        await waitForText(shared, '#merge-status', /^Done/);
        assert.deepEqual(await Promise.all(['#task', '#lengths', '#depths', '#samples', '#seed'].map((s) => shared.locator(s).inputValue())),
          ['s1', '512', '0,0.25', '1', '12345']);
        await shared.locator('#run-sweep').click();
        await waitForText(shared, '#eval-status', /^(Done|.*error)/i, 600_000);
        assert.equal(await shared.locator('#table1').textContent(), table);
        await shared.screenshot({ path: path.join(screensDir, 'shared-link.png'), fullPage: true });
      });
    },
  },
  {
    // A generated two-shard folder pair, dropped onto the zones: the files
    // the page offers are byte for byte the CLI's merge of the same inputs.
    name: 'folder-pair-drop',
    needs: 'page-loads',
    async run() {
      const cli = path.join(tmpDir, 'cli-merge');
      execFileSync(qklabBin, ['merge', '--pre', preFixtureDir, '--sft', fixtureDir, '--method', 'qk-restore', '--out', cli]);
      const pack = (dir) => fs.readdirSync(dir).sort().map((n) => ({ name: n, b64: fs.readFileSync(path.join(dir, n)).toString('base64') }));
      const fresh = await context.newPage();
      try {
        await gotoReady(fresh);
        // "before SFT" as a picked folder (webkitdirectory), "after SFT" dropped.
        await fresh.locator('#pre-folder').setInputFiles(preFixtureDir);
        await waitForText(fresh, '#pre-status', /parameters/);
        for (const [zone, dir] of [['#sft-zone', fixtureDir]]) {
          await fresh.evaluate(([zone, files]) => {
            const dt = new DataTransfer();
            for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name));
            const el = document.querySelector(zone);
            el.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
            el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
          }, [zone, pack(dir)]);
        }
        await waitForText(fresh, '#pair-status', /^Compatible/);
        await fresh.locator('#merge').click();
        await waitForText(fresh, '#merge-status', /^Done/);
        const got = await downloadAll(fresh, '#downloads a');
        assert.deepEqual(Object.keys(got).sort(), fs.readdirSync(cli).sort());
        for (const [name, bytes] of Object.entries(got)) assert.ok(bytes.equals(fs.readFileSync(path.join(cli, name))), `${name}: the page's bytes equal the CLI's`);
        await fresh.screenshot({ path: path.join(screensDir, 'folder-pair-drop.png'), fullPage: true });
      } finally {
        await fresh.close();
      }
    },
  },
  {
    // The engine runs in a Web Worker: while a sweep runs the page answers
    // a click at once, and Cancel ends the sweep within a second.
    name: 'sweep-in-worker-responsive',
    needs: 'demo-evaluate',
    async run() {
      await inNewContext(async (p) => {
        await demoSweepForm(p, '2048', '0,0.5,1', '2');
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /prompt \d+ of/, 120_000);
        // A real click (mouse down and up on a form field), timed from the
        // browser's receipt of the input to its handler on the page's thread.
        await p.evaluate(() => document.querySelector('#seed').addEventListener('click', (e) => { window.__clickLatency = performance.now() - e.timeStamp; }, { once: true }));
        await p.locator('#seed').scrollIntoViewIfNeeded();
        const box = await p.locator('#seed').boundingBox();
        await p.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
        await p.waitForFunction(() => window.__clickLatency !== undefined);
        const latency = await p.evaluate(() => window.__clickLatency);
        console.log(`browser: a click during the sweep was handled ${latency.toFixed(1)} ms after the browser received it`);
        assert.ok(latency < 100, `click handled after ${latency} ms`);
        const cancelAt = Date.now();
        await p.locator('#cancel-sweep').click();
        await waitForText(p, '#eval-status', /^Cancelled/, 5_000);
        const took = Date.now() - cancelAt;
        console.log(`browser: Cancel took effect after ${took} ms`);
        assert.ok(took < 1000, `Cancel took ${took} ms`);
        assert.equal(await p.locator('#run-sweep').isEnabled(), true, 'Run works again');
      });
    },
  },
  {
    // The GPU device is lost in the middle of a sweep (GPUDevice.destroy()
    // through the test hook): the page says why, keeps the finished cells,
    // and a second Run completes on a new device.
    name: 'gpu-lost-mid-sweep',
    needs: 'demo-evaluate',
    async run() {
      await inNewContext(async (p) => {
        const errors = [];
        p.on('pageerror', (e) => errors.push(String(e)));
        await demoSweepForm(p, '400', '0', '1');
        await p.locator('#engine').selectOption('gpu');
        await p.evaluate(() => { window.__qklabFault = 'device-lost'; });
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /device was lost|error|Done/i, 300_000);
        const failed = await p.locator('#eval-status').textContent();
        assert.match(failed, /the GPU device was lost.*The 1 prompts finished before are kept/s);
        assert.equal(await p.locator('#table1 tr[data-model]').count(), 1, 'the finished cells stay');
        await p.evaluate(() => { delete window.__qklabFault; });
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^(Done|.*error)/i, 300_000);
        assert.match(await p.locator('#eval-status').textContent(), /^Done: 2 prompts \(1 per model\) on /);
        assert.deepEqual(errors, []);
      });
    },
  },
  {
    // A panic inside the engine (a test-only trigger) is a message beside
    // the panel; the next Run works without a reload.
    name: 'engine-panic-recovers',
    needs: 'demo-evaluate',
    async run() {
      await inNewContext(async (p) => {
        await demoSweepForm(p, '400', '0', '1');
        await p.evaluate(() => { window.__qklabFault = 'panic'; });
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /stopped|Done/i, 60_000);
        assert.match(await p.locator('#eval-status').textContent(), /the engine stopped: .*a test asked the engine to panic/);
        assert.equal(await p.locator('#eval-status').getAttribute('class'), 'status error');
        await p.evaluate(() => { delete window.__qklabFault; });
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^(Done|.*error)/i, 120_000);
        assert.match(await p.locator('#eval-status').textContent(), /^Done: 2 prompts/);
      });
    },
  },
  {
    // A HypeNet-2B-shaped pair (2 x 3.59 GiB, headers and sparse data) on
    // SwiftShader: the page refuses before loading, with the CPU engine's
    // memory and the emulated GPU's estimate; nothing crashes.
    name: 'big-pair-refused-before-loading',
    needs: 'demo-evaluate',
    async run() {
      const dirs = ['pre', 'sft'].map((side, i) => {
        const dir = path.join(tmpDir, `2b-${side}`);
        execFileSync(qklabBin, ['synth', '--preset', '2b', '--shards', '2', '--sparse', '--seed', String(i + 1), '--out', dir]);
        return dir;
      });
      await inNewContext(async (p) => {
        const errors = [];
        p.on('pageerror', (e) => errors.push(String(e)));
        p.on('console', (m) => { if (/RuntimeError|unreachable/.test(m.text())) errors.push(m.text()); });
        await gotoReady(p);
        await p.locator('#pre-folder').setInputFiles(dirs[0]);
        await p.locator('#sft-folder').setInputFiles(dirs[1]);
        await waitForText(p, '#pair-status', /^Compatible/, 120_000);
        await p.locator('#task').selectOption('ids');
        await p.locator('#lengths').fill('512');
        await p.locator('#depths').fill('0.5');
        await p.locator('#samples').fill('1');
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /WebAssembly|Done|error/i, 300_000);
        const status = await p.locator('#eval-status').textContent();
        console.log(`browser: 2B-shaped pair: ${status}`);
        assert.match(status, /the CPU engine needs .* over the .* WebAssembly gives a page.*would take about/);
        // The drift of the pair streams: it completes in bounded memory.
        await p.waitForSelector('#drift table', { timeout: 600_000 });
        assert.deepEqual(errors, []);
      });
    },
  },
  {
    // A benchmark, not a test (QKLAB_BROWSER_CHECKS=live-sweep-bench): the
    // live run that shows the demo's effect, S1 at 2048 tokens x 5 depths x
    // 2 samples for pre, sft and QK-Restore (30 prompts), timed from Run to Done.
    name: 'live-sweep-bench',
    needs: 'page-loads',
    benchmark: true,
    async run() {
      await inNewContext(async (p) => {
        await demoSweepForm(p, '2048', '0,0.25,0.5,0.75,1', '2');
        await p.locator('#merge').click();
        await waitForText(p, '#merge-status', /^Done/);
        const t0 = Date.now();
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^(Done|.*error)/i, 1_200_000);
        const secs = (Date.now() - t0) / 1000;
        const table = await p.locator('#table1 tr[data-model]').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent).join(' ')));
        console.log(`browser: live sweep, 30 prompts (S1 @2048, 5 depths x 2 samples, 3 models): ${secs.toFixed(1)} s; ${await p.locator('#eval-status').textContent()}`);
        console.log(`browser: live sweep table: ${table.join(' | ')}`);
      });
    },
  },
  {
    // Without WebGPU the page says so and runs the demo on the CPU engine.
    name: 'no-webgpu-cpu-fallback',
    needs: 'demo-evaluate',
    async run() {
      const hideWebGpu = (ctx) => ctx.addInitScript(() => { Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }); });
      await inNewContext(async (p) => {
        const errors = [];
        p.on('pageerror', (e) => errors.push(String(e)));
        await gotoReady(p);
        await p.locator('#open-demo').click();
        await waitForText(p, '#pair-status', /^Compatible/);
        // The demo's experiment is in the form: ask for one prompt a model.
        await p.locator('#lengths').fill('512');
        await p.locator('#depths').fill('0');
        await p.locator('#samples').fill('1');
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^(Done|.*error)/i, 600_000);
        assert.match(await p.locator('#eval-status').textContent(), /^Done: 2 prompts \(1 per model\) on CPU engine \(1 thread, SIMD128\) \(no WebGPU in this browser\)\.$/);
        const cpu = await p.locator('#table1 tr[data-model]').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
        const gpu = await page.locator('#table1 tr[data-model]').evaluateAll((trs) => trs.map((tr) => tr.children[0].textContent));
        assert.deepEqual(cpu.map((r) => r[0]), ['pre', 'sft']);
        assert.ok(gpu.includes('pre'));
        assert.deepEqual(errors, []);
        await p.screenshot({ path: path.join(screensDir, 'no-webgpu.png'), fullPage: true });
      }, hideWebGpu);
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
      await waitForText(page, '#pair-status', /embed_tokens/);
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
    // After one visit the page and the demo work with the network gone.
    name: 'offline-after-first-load',
    needs: 'page-loads',
    async run() {
      await inNewContext(async (p, ctx) => {
        await gotoReady(p);
        await p.evaluate(() => navigator.serviceWorker.ready);
        await p.waitForFunction(() => navigator.serviceWorker.controller !== null);
        await p.locator('#open-demo').click();
        await waitForText(p, '#pair-status', /^Compatible/);
        await ctx.setOffline(true);
        await p.reload();
        await p.waitForFunction(() => document.body.dataset.ready === '1');
        await p.locator('#open-demo').click();
        await waitForText(p, '#pair-status', /^Compatible/);
        await p.screenshot({ path: path.join(screensDir, 'offline.png') });
      });
    },
  },
  {
    // A newcomer: "Open the demo" and nothing else shows the effect within
    // 10 s (the recorded Table 1); Next walks the four steps, each
    // screenshotted at a laptop's and a phone's size, light and dark, and
    // checked by axe-core; "Run it here" re-runs recorded prompts and gets
    // the recorded answers sample for sample.
    name: 'demo-story',
    needs: 'page-loads',
    async run() {
      const recorded = JSON.parse(fs.readFileSync(path.join(repoRoot, 'www', 'demo', 'results.json'), 'utf8'));
      const axeSource = fs.readFileSync(path.join(repoRoot, 'tests', 'browser', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
      const percent = (task, model, keep = () => true) => {
        const xs = recorded.niah[task].samples.filter((x) => x.model === model && keep(x));
        return 100 * xs.reduce((a, x) => a + x.score, 0) / xs.length;
      };
      await inNewContext(async (pg) => {
        const errors = [];
        pg.on('pageerror', (e) => errors.push(String(e)));
        await pg.setViewportSize({ width: 1366, height: 768 });
        await gotoReady(pg);
        const t0 = Date.now();
        await pg.locator('#open-demo').click();
        await pg.waitForSelector('#recorded-table1 tr[data-model="qk-restore"] td', { timeout: 10_000 });
        console.log(`browser: demo-story: the recorded Table 1 is on screen ${Date.now() - t0} ms after "Open the demo"`);
        const table = async (id) => Object.fromEntries(await pg.locator(`#${id} tr[data-model]`).evaluateAll((trs) =>
          trs.map((tr) => [tr.dataset.model, [...tr.querySelectorAll('td')].map((td) => parseFloat(td.textContent))])));
        const t1 = await table('recorded-table1');
        const tasks = ['s1', 'mk'];
        // The page's cells are the recording's samples, averaged here.
        for (const m of ['pre', 'sft', 'qk-restore']) {
          tasks.forEach((task, c) => assert.equal(t1[m][c], Math.round(percent(task, m)), `Table 1 ${m} ${task}`));
        }
        assert.ok(tasks.some((_, c) => t1.pre[c] - t1.sft[c] >= 10 && t1['qk-restore'][c] > t1.sft[c]),
          `Table 1 shows no amnesia and repair: ${JSON.stringify(t1)}`);
        const ablation = await table('recorded-ablation');
        assert.deepEqual(Object.keys(ablation), ['qk-restore', 'q-restore', 'k-restore', 'v-restore', 'qk-pro']);
        // Each step: what to look at is on screen, and nothing axe calls serious.
        const look = async (step) => {
          for (const [w, h] of [[1366, 768], [390, 844]]) {
            for (const scheme of ['light', 'dark']) {
              await pg.setViewportSize({ width: w, height: h });
              await pg.emulateMedia({ colorScheme: scheme });
              // The page scrolls the step's panel below the guide: ask it
              // again at this size, as a visitor's step button would.
              await pg.locator(`#step-${step - 1}`).click();
              await pg.screenshot({ path: path.join(screensDir, `story-${step}-${w}x${h}${scheme === 'dark' ? '-dark' : ''}.png`) });
              if (!(await pg.evaluate(() => typeof window.axe === 'object'))) await pg.addScriptTag({ content: axeSource });
              const bad = await pg.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
                .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`));
              assert.deepEqual(bad, [], `axe-core, step ${step} at ${w}x${h} ${scheme}`);
            }
          }
          await pg.setViewportSize({ width: 1366, height: 768 });
          await pg.emulateMedia({ colorScheme: 'light' });
        };
        const panels = ['drift', 'merge-form', 'recorded', 'routing-view'];
        for (let i = 0; i < 4; i++) {
          if (i > 0) await pg.locator('#step-next').click();
          await waitForText(pg, '#step-title', new RegExp(`^Step ${i + 1} of 4`));
          assert.equal(await pg.locator('.current').getAttribute('id'), panels[i], `step ${i + 1} highlights its panel`);
          if (i === 0) await pg.waitForSelector('#drift table');
          if (i === 2) {
            const t2 = Date.now();
            await pg.locator('#step-run-here').click();
            await waitForText(pg, '#guide-status', /recorded prompts run here|error|fail/i, 600_000);
            console.log(`browser: demo-story: "Run it here" (12 prompts at 2048 tokens) took ${((Date.now() - t2) / 1000).toFixed(1)} s`);
            assert.match(await pg.locator('#guide-status').textContent(), /^12 recorded prompts run here/);
            const marks = await pg.locator('#recorded-table1 td[data-matches]').evaluateAll((tds) => tds.map((td) => td.dataset.matches));
            assert.deepEqual(marks, ['yes', 'yes', 'yes'], 'each model\'s S1 cell matches the recording');
            // Independently of the page's marks: its heat-map cells are the
            // recorded samples of those seeds (the first two of each depth).
            const cells = await pg.locator('#heatmaps g.cell').evaluateAll((gs) => gs.map((g) =>
              [g.closest('figure').dataset.figure.replace('heatmap-', ''), Number(g.dataset.depth), Number(g.dataset.accuracy)]));
            assert.equal(cells.length, 6);
            for (const [model, depth, accuracy] of cells) {
              const name = model === 'merged' ? 'qk-restore' : model;
              const seeds = recorded.niah.s1.samples.filter((x) => x.model === name && x.depth === depth).map((x) => x.seed).sort((a, b) => a - b).slice(0, 2);
              assert.equal(accuracy, percent('s1', name, (x) => x.depth === depth && seeds.includes(x.seed)) / 100, `${model} depth ${depth}`);
            }
          }
          if (i === 3) {
            await waitForText(pg, '#routing-status', /^(Prompt|.*error)/i, 300_000);
            const tokens = Number((await pg.locator('#routing-status').textContent()).match(/^Prompt: (\d+) tokens/)?.[1]);
            assert.ok(tokens > 1900 && tokens <= 2048, `the routing prompt is the recording's length, not ${tokens} tokens`);
            const numbers = await pg.locator('#routing-numbers tr[data-model]').evaluateAll((trs) => trs.map((tr) => tr.dataset.model));
            assert.deepEqual(numbers, ['pre', 'sft', 'merged']);
            assert.equal(await pg.locator('#step-next').isHidden(), true, 'the last step has no Next');
          }
          await look(i + 1);
        }
        assert.deepEqual(errors, [], 'uncaught exceptions in the page');
      }, async () => {}, { bypassCSP: true });
    },
  },
  {
    // The Tune step on the demo with a small grid, run in the page's worker,
    // gives the table `qklab tune` gives natively with the same settings;
    // "Download this merge" offers exactly what `qklab merge` writes.
    name: 'tune-demo',
    needs: 'page-loads',
    async run() {
      await inNewContext(async (p) => {
        await openDemo(p);
        await waitForText(p, '#tune-answers-name', /arithmetic \(300 problems\)/);
        await fillForm(p, 'tune-task', 's1', { 'tune-lengths': '512', 'tune-depths': '0,1', 'tune-samples': '1', 'tune-seed': '12345',
          'tune-methods': 'qk-restore,qk-pro', 'tune-betas': '1', 'tune-layer-sets': 'all', 'tune-tolerance': '1' });
        const t0 = Date.now();
        await p.locator('#run-tune').click();
        await waitForText(p, '#tune-status', /^(Done|.*error|Cancelled)/i, 600_000);
        const done = await p.locator('#tune-status').textContent();
        assert.match(done, /^Done: 3 candidates/);
        console.log(`browser: tune-demo: 3 candidates (s1 @512 x 2 prompts, 300 answers) in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${done}`);
        const page = JSON.parse((await downloadAll(p, '#tune-report a'))['tune.json'].toString('utf8'));
        const json = path.join(tmpDir, 'tune-native.json');
        execFileSync(qklabBin, ['tune', '--pre', 'www/demo/pre', '--sft', 'www/demo/sft', '--task', 's1', '--lengths', '512', '--depths', '0,1',
          '--samples', '1', '--seed', '12345', '--methods', 'qk-restore,qk-pro', '--betas', '1', '--layer-sets', 'all',
          '--answers', 'www/demo/arithmetic.jsonl', '--backend', 'cpu', '--json', json], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
        const native = JSON.parse(fs.readFileSync(json, 'utf8'));
        assert.deepEqual(page.candidates.map((c) => c.label), native.candidates.map((c) => c.label));
        for (const [i, c] of page.candidates.entries()) {
          const n = native.candidates[i];
          // Means of the same 0/1 scores; the last bit may differ between wasm's and native's float printing.
          for (const k of ['recall', 'retention', 'exact', 'agreement']) assert.ok(Math.abs(c[k] - n[k]) < 1e-9, `${c.label}: ${k} ${c[k]} vs ${n[k]}`);
          assert.deepEqual(c.answers, n.answers, `${c.label}: per-answer matches`);
          assert.deepEqual(c.samples.map((x) => x.generated), n.samples.map((x) => x.generated), `${c.label}: NIAH answers`);
          assert.ok(Math.abs(c.kl - n.kl) < 1e-4, `${c.label}: KL ${c.kl} vs ${n.kl}`);
        }
        assert.deepEqual(page.front, native.front);
        assert.equal(page.recommended, native.recommended);
        // The scatter: one point per candidate, the front filled.
        assert.equal(await p.locator('#tune-scatter circle.candidate').count(), 3);
        assert.equal(await p.locator('#tune-scatter circle.on-front').count(), native.front.length);
        await screenshotsAtWidths(p, 'tune', 'tune', ['scatter', 'table']);
        // Download the QK-Pro merge from its row: the bytes `qklab merge` writes.
        const row = p.locator('#tune-table tr', { hasText: 'qk-pro 1 @3+6' });
        await row.locator('button.tune-merge').click();
        await waitForText(p, '#tune-merge-status', /its files|error/i);
        assert.match(await p.locator('#tune-merge-status').textContent(), /^qk-pro 1 @3\+6: its files/);
        const files = await downloadAll(p, '#tune-downloads a');
        const cli = path.join(tmpDir, 'tune-qkpro');
        execFileSync(qklabBin, ['merge', '--pre', 'www/demo/pre', '--sft', 'www/demo/sft', '--method', 'qk-pro', '--beta', '1', '--layers', '3,6', '--out', cli], { cwd: repoRoot });
        assert.ok(files['model.safetensors'], `offered: ${Object.keys(files)}`);
        assert.ok(files['model.safetensors'].equals(fs.readFileSync(path.join(cli, 'model.safetensors'))), 'the page\'s merge equals qklab merge\'s');
      });
    },
  },
  {
    // The pure softmax families (issue 19) in the wasm engine on WebGPU
    // against transformers' own logits (tests/fixtures/hf, made by
    // reference/hf_fixtures.py); the summary names the family.
    name: 'hf-golden',
    needs: 'gpu-selftest',
    async run() {
      const hf = path.join(repoRoot, 'tests', 'fixtures', 'hf');
      const golden = tensorBytes(fs.readFileSync(path.join(hf, 'golden.safetensors')));
      const view = (b, Kind) => new Kind(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
      const ids = [...view(golden.ids, Int32Array)];
      const worst = {};
      for (const name of ['qwen2-f32', 'qwen2-bf16', 'qwen3-f32', 'qwen3-bf16', 'llama-f32', 'llama-bf16', 'mistral-f32', 'mistral-bf16']) {
        const files = ['config.json', 'model.safetensors'].map((n) => [n, fs.readFileSync(path.join(hf, name, n)).toString('base64')]);
        const b64 = await page.evaluate(async ([files, ids]) => {
          const list = files.map(([n, data]) => new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], n));
          const bytes = new Uint8Array((await window.qklab.runLogits(list, Uint32Array.from(ids))).buffer);
          let bin = '';
          for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
          return btoa(bin);
        }, [files, ids]);
        const buf = Buffer.from(b64, 'base64');
        const got = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
        const want = view(golden[`logits_${name.replace('-', '_')}`], Float32Array);
        assert.equal(got.length, want.length, `${name}: logits [T, V]`);
        let scale = 0, diff = 0;
        for (let i = 0; i < want.length; i++) {
          scale = Math.max(scale, Math.abs(want[i]));
          diff = Math.max(diff, Math.abs(got[i] - want[i]));
        }
        worst[name] = (diff / scale).toExponential(1);
        assert.ok(diff / scale < 1e-4, `${name}: logits differ from transformers' by ${diff / scale}`);
      }
      console.log(`browser: hf-golden: max|diff|/max|logit| ${JSON.stringify(worst)}`);
      await page.locator('#pick-files').setInputFiles(['config.json', 'model.safetensors'].map((n) => path.join(hf, 'llama-bf16', n)));
      await waitForText(page, '#summary', /Llama/);
      assert.match(await textOf('#summary'), /Family\s*Llama/);
    },
  },
  {
    // A Llama pair in the page: the pair check says it is pure softmax, a
    // merge without layers is refused with the reason, the Retrieval
    // layers step ranks its layers as `qklab layers` does natively and
    // hands the top one to the merge form, and the merge, a sweep and the
    // routing then run on it as on HypeNet.
    name: 'hf-pair-layers',
    needs: 'page-loads',
    async run() {
      await inNewContext(async (p) => {
        await gotoReady(p);
        const preDir = path.join(repoRoot, 'tests', 'fixtures', 'hf', 'llama-f32');
        const sftDir = path.join(tmpDir, 'llama-sft');
        const files = (dir) => ['config.json', 'model.safetensors'].map((n) => path.join(dir, n));
        nudgedCopy(preDir, sftDir);
        await p.locator('#pre-files').setInputFiles(files(preDir));
        await p.locator('#sft-files').setInputFiles(files(sftDir));
        await waitForText(p, '#pair-status', /pure softmax model/);
        assert.match(await p.locator('#pre-status').textContent(), /^Llama: .* parameters, .*; every layer softmax \(3\)/);
        await p.locator('#merge').click();
        await waitForText(p, '#merge-status', /pure softmax-attention model/);
        await fillForm(p, 'layers-task', 'ids', { 'layers-lengths': '64', 'layers-depths': '0.5', 'layers-samples': '1', 'layers-seed': '12345', 'layers-top': '1' });
        await p.locator('#run-layers').click();
        await waitForText(p, '#layers-status', /^(Done|.*error|Cancelled)/i, 300_000);
        assert.match(await p.locator('#layers-status').textContent(), /^Done: 3 layers/);
        const page = JSON.parse((await downloadAll(p, '#layers-report a'))['layers.json'].toString('utf8'));
        const json = path.join(tmpDir, 'layers-llama.json');
        execFileSync(qklabBin, ['layers', '--pre', preDir, '--sft', sftDir, '--task', 'ids',
          '--lengths', '64', '--depths', '0.5', '--samples', '1', '--seed', '12345', '--top', '1', '--backend', 'cpu', '--json', json], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
        const native = JSON.parse(fs.readFileSync(json, 'utf8'));
        // A random model finds no needle, so every drop is 0 and the ranking is layer order; the numbers must still agree.
        assert.deepEqual(page.ranking, native.ranking);
        assert.deepEqual(page.top, native.top);
        assert.deepEqual(page.layers.map((l) => [l.recall, l.drop]), native.layers.map((l) => [l.recall, l.drop]));
        assert.deepEqual([page.repair.sft, page.repair.merged], [native.repair.sft, native.repair.merged]);
        assert.equal(await p.locator('#layers-chart rect.bar').count(), 3, 'a bar per layer');
        const top = native.top.join(',');
        assert.equal(await p.locator('#layers').inputValue(), top, 'the top layer is in the merge form');
        await p.locator('#merge').click();
        await waitForText(p, '#merge-status', /^Done|error/i);
        assert.match(await p.locator('#merge-status').textContent(), /^Done/);
        // The merge restores exactly the top layer's q and k.
        const merged = tensorBytes((await downloadAll(p, '#downloads a'))['model.safetensors']);
        const [pre, sft] = [preDir, sftDir].map((d) => tensorBytes(fs.readFileSync(path.join(d, 'model.safetensors'))));
        assert.deepEqual(Object.keys(merged).sort(), Object.keys(sft).sort(), 'every tensor kept');
        for (const [name, bytes] of Object.entries(sft)) {
          const fromPre = new RegExp(`^model\\.layers\\.(${native.top.join('|')})\\.self_attn\\.(q|k)_proj\\.weight$`).test(name);
          assert.ok(merged[name].equals(fromPre ? pre[name] : bytes), `${name} should come from ${fromPre ? 'pre' : 'sft'}`);
        }
        // Evaluate and routing take it as they take HypeNet (token-id prompts: no tokenizer).
        await fillForm(p, 'task', 'ids', { lengths: '64', depths: '0.5', samples: '1' });
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^(Done|.*error|no )/i, 300_000);
        assert.match(await p.locator('#eval-status').textContent(), /^Done: 3 prompts \(1 per model\)/);
        await p.locator('#run-routing').click();
        await waitForText(p, '#routing-status', /^(Prompt|.*error)/i, 300_000);
        assert.match(await p.locator('#routing-status').textContent(), /^Prompt: \d+ tokens/);
        assert.deepEqual(await p.locator('#routing-layer option').allTextContents(), ['0', '1', '2'], 'every layer is a softmax layer to inspect');
      });
    },
  },
  {
    // The "Find the retrieval layers" step on the demo: layer 6 carries retrieval
    // (ablating it loses every needle), as `qklab layers` finds natively;
    // its bar is the one filled and the merge form gets it.
    name: 'demo-layers',
    needs: 'page-loads',
    async run() {
      await inNewContext(async (p) => {
        await openDemo(p);
        await fillForm(p, 'layers-task', 's1', { 'layers-lengths': '512', 'layers-depths': '0.5', 'layers-samples': '1', 'layers-seed': '12345', 'layers-top': '1' });
        const t0 = Date.now();
        await p.locator('#run-layers').click();
        await waitForText(p, '#layers-status', /^(Done|.*error|Cancelled)/i, 600_000);
        const done = await p.locator('#layers-status').textContent();
        console.log(`browser: demo-layers: 5 sweeps of 1 prompt in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${done}`);
        assert.match(done, /^Done: 2 layers.*Layer 6 matters most/);
        const page = JSON.parse((await downloadAll(p, '#layers-report a'))['layers.json'].toString('utf8'));
        const json = path.join(tmpDir, 'layers-demo.json');
        execFileSync(qklabBin, ['layers', '--pre', 'www/demo/pre', '--sft', 'www/demo/sft', '--task', 's1', '--lengths', '512', '--depths', '0.5',
          '--samples', '1', '--seed', '12345', '--top', '1', '--backend', 'cpu', '--json', json], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
        const native = JSON.parse(fs.readFileSync(json, 'utf8'));
        assert.deepEqual(page.ranking, native.ranking);
        assert.deepEqual(page.layers.map((l) => [l.layer, l.recall]), native.layers.map((l) => [l.layer, l.recall]));
        assert.deepEqual(page.top, [6]);
        assert.equal(await p.locator('#layers').inputValue(), '6');
        assert.equal(await p.locator('#layers-chart rect.bar[data-layer="6"]').getAttribute('fill'), '#009E73', 'the restored layer is filled');
        await screenshotsAtWidths(p, 'demo-layers', 'layers', ['title', 'chart']);
        // The exported report carries the ranking and its chart.
        await p.locator('#export-report').click();
        await p.waitForSelector('#report-downloads a');
        const exported = await downloadAll(p, '#report-downloads a');
        assert.deepEqual(JSON.parse(exported['qklab-report.json'].toString()).layers, page);
        const unpacked = path.join(tmpDir, 'report-layers');
        fs.writeFileSync(`${unpacked}.zip`, exported['qklab-report.zip']);
        execFileSync('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])', `${unpacked}.zip`, unpacked]);
        assert.ok(fs.readdirSync(unpacked, { recursive: true }).some((f) => f.endsWith('layers-drops.svg')), 'the bar chart is in the archive');
      });
    },
  },
  {
    name: 'no-page-errors',
    async run() {
      const csp = consoleLines.filter((l) => /Content Security Policy/i.test(l));
      assert.deepEqual(pageErrors, [], 'uncaught exceptions / crashes in the page');
      assert.deepEqual(csp, [], 'Content-Security-Policy violations');
      assert.deepEqual(consoleLines.filter((l) => l.startsWith('[error]')), [], 'console errors');
    },
  },
];

let passed = 0;
let failed = 0;
const ok = new Set();
// QKLAB_BROWSER_CHECKS=a,b runs those checks and the ones they need (for work on one check).
const only = process.env.QKLAB_BROWSER_CHECKS ? new Set(process.env.QKLAB_BROWSER_CHECKS.split(',')) : null;
for (let grew = true; only && grew;) {
  grew = false;
  for (const c of checks) if (only.has(c.name) && c.needs && !only.has(c.needs)) { only.add(c.needs); grew = true; }
}
for (const [i, check] of checks.entries()) {
  const label = `${String(i + 1).padStart(2, '0')}-${check.name}`;
  const started = Date.now();
  let error = null;
  let skipped = false;
  if (only && !only.has(check.name)) continue;
  // Benchmarks print numbers and run only when named.
  if (check.benchmark && !(only && only.has(check.name))) continue;
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

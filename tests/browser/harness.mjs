// The harness of the browser checks (tests/browser/smoke.mjs runs it): the
// command line, the fixture's facts, headless Chromium, the helpers the
// checks share, and the runner that selects, runs and reports them.
//
// Importing it reads the command line and the fixture (exiting with the
// usage or the reason when they are wrong); `launch()` starts the browser
// and sets `browser`, `context` and `page` (live bindings: a check reads
// them when it runs); `runChecks(checks)` runs them in order, prints
// `browser: ok|FAIL|SKIP NN-name` per check and `browser: N passed, M failed`,
// and exits with 1 on any failure.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const STEP_TIMEOUT_MS = 60_000; // SwiftShader is slow
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
export const baseUrl = new URL(baseArg).href;
export const fixtureDir = path.resolve(fixtureArg);
export const preFixtureDir = path.resolve(preFixtureArg);
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const screensDir = path.join(repoRoot, 'target', 'browser-screens');
// The native CLI (built by `cargo xtask test` for the fixtures): the oracle for merges and routing.
export const qklabBin = path.join(repoRoot, 'target', 'release', 'qklab');
fs.rmSync(screensDir, { recursive: true, force: true });
fs.mkdirSync(screensDir, { recursive: true });

// ---------------------------------------------------------------- fixture facts

/** Parse a safetensors header: 8-byte LE length + JSON. */
export function safetensorsHeader(file) {
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
export function tensorBytes(buf) {
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

export const fixtureFiles = fs.readdirSync(fixtureDir).sort().map((f) => path.join(fixtureDir, f))
  .filter((f) => fs.statSync(f).isFile());
export const shardFiles = fixtureFiles.filter((f) => f.endsWith('.safetensors'));
let numel = 0n;
for (const shard of shardFiles) {
  for (const [name, info] of Object.entries(safetensorsHeader(shard))) {
    if (name === '__metadata__') continue;
    numel += info.shape.reduce((acc, d) => acc * BigInt(d), 1n);
  }
}
export const totalNumel = numel;
const config = JSON.parse(fs.readFileSync(path.join(fixtureDir, 'config.json'), 'utf8'));
export const mixerTypes = findKey(config, 'mixer_types');
if (!Array.isArray(mixerTypes)) {
  console.error(`browser: fixture config.json has no mixer_types array (${fixtureDir})`);
  process.exit(1);
}
export const expectedAttn = mixerTypes.filter((m) => m === 'attn').length;
console.log(`browser: fixture ${fixtureDir}: ${fixtureFiles.length} files, ${shardFiles.length} shards, ` +
  `${totalNumel} parameters, ${expectedAttn}/${mixerTypes.length} attn layers`);

// ---------------------------------------------------------------- browser

/** What the main page said and failed to load, for `no-page-errors` and the failure dump. */
export const consoleLines = [];
export const pageErrors = [];
const failedRequests = [];

/** Set by `launch()`. */
export let browser;
export let context;
export let page;
/** Scratch space for the checks, removed at the end of the run. */
export let tmpDir;

/** Starts headless Chromium and opens the main page the checks share; exits when it cannot. */
export async function launch() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  console.log(`browser: launching ${executablePath} (headless) ${CHROMIUM_ARGS.join(' ')}`);
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
  } catch (e) {
    console.log(`browser: cannot launch ${executablePath}: ${String(e.message).split('\n')[0]}`);
    console.log(`browser: 0 passed, 1 failed`);
    process.exit(1);
  }
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
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

  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qklab-smoke-'));
}

// ---------------------------------------------------------------- helpers

/** The trimmed text of the first `sel` in the main page. */
export const textOf = (sel) => page.locator(sel).first().textContent({ timeout: 5_000 }).then((t) => (t ?? '').trim());

/** Waits until the text of `selector` in `pg` matches `pattern`. */
export const waitForText = (pg, selector, pattern, timeout = STEP_TIMEOUT_MS) => pg.waitForFunction(
  ([sel, source, flags]) => new RegExp(source, flags).test(document.querySelector(sel)?.textContent ?? ''),
  [selector, pattern.source, pattern.flags], { timeout });

/** Opens `url` in `pg` and waits until the page has wired its controls. */
export async function gotoReady(pg, url = baseUrl) {
  await pg.goto(url);
  await pg.waitForFunction(() => document.body.dataset.ready === '1');
}

/**
 * A copy of the checkpoint folder `from` (config.json and an all-F32
 * model.safetensors) in `to`, every value nudged: a script-made "SFT" of it.
 */
export function nudgedCopy(from, to) {
  fs.mkdirSync(to, { recursive: true });
  fs.copyFileSync(path.join(from, 'config.json'), path.join(to, 'config.json'));
  const buf = Buffer.from(fs.readFileSync(path.join(from, 'model.safetensors')));
  const header = safetensorsHeader(path.join(from, 'model.safetensors'));
  assert.ok(Object.entries(header).every(([k, v]) => k === '__metadata__' || v.dtype === 'F32'), `${from}: F32 only`);
  for (let o = 8 + Number(buf.readBigUInt64LE(0)); o + 4 <= buf.length; o += 4) buf.writeFloatLE(buf.readFloatLE(o) * 1.01 + 1e-3, o);
  fs.writeFileSync(path.join(to, 'model.safetensors'), buf);
}

/**
 * The wasm engine's logits (WebGPU) for each checkpoint folder `names` of
 * fixture folder `dir` against `dir/golden.safetensors` (ids and
 * `logits_<name>`, as reference/hf_fixtures.py and qwen35_fixtures.py write
 * them): each within 1e-4 of the largest logit. Returns the worst relative
 * difference of each, for the log.
 */
export async function goldenLogits(dir, names) {
  const golden = tensorBytes(fs.readFileSync(path.join(dir, 'golden.safetensors')));
  const view = (b, Kind) => new Kind(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  const ids = [...view(golden.ids, Int32Array)];
  const worst = {};
  for (const name of names) {
    const files = ['config.json', 'model.safetensors'].map((n) => [n, fs.readFileSync(path.join(dir, name, n)).toString('base64')]);
    const b64 = await page.evaluate(async ([files, ids]) => {
      const list = files.map(([n, data]) => new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], n));
      const bytes = new Uint8Array((await window.qklab.runLogits(list, Uint32Array.from(ids))).buffer);
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(bin);
    }, [files, ids]);
    const buf = Buffer.from(b64, 'base64');
    const got = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    const want = view(golden[`logits_${name.replaceAll('-', '_')}`], Float32Array);
    assert.equal(got.length, want.length, `${name}: logits [T, V]`);
    let scale = 0, diff = 0;
    for (let i = 0; i < want.length; i++) {
      scale = Math.max(scale, Math.abs(want[i]));
      diff = Math.max(diff, Math.abs(got[i] - want[i]));
    }
    worst[name] = (diff / scale).toExponential(1);
    assert.ok(diff / scale < 1e-4, `${name}: logits differ from transformers' by ${diff / scale}`);
  }
  return worst;
}

/** A fresh page with the demo pair open. */
export async function openDemo(pg) {
  await gotoReady(pg);
  await pg.locator('#open-demo').click();
  await waitForText(pg, '#pair-status', /^Compatible/);
}

/** Sets a form: `task` picked in `taskId`, then each field of `fields` filled. */
export async function fillForm(pg, taskId, task, fields) {
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
export async function screenshotsAtWidths(pg, name, prefix, parts) {
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
export async function demoSweepForm(pg, lengths, depths, samples) {
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
export async function inNewContext(body, prepare = async () => {}, options = {}) {
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
export async function downloadAll(pg, selector) {
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

// ---------------------------------------------------------------- runner

/**
 * Runs `checks` ({ name, needs?, benchmark?, run }) in order, each labelled
 * by its place in the whole list, screenshots the main page after each,
 * reports, closes the browser and exits: 1 on any failure.
 *
 * QKLAB_BROWSER_CHECKS=a,b runs those checks and the ones they need;
 * a check whose `needs` did not pass is counted as failed without running;
 * a benchmark runs only when named.
 */
export async function runChecks(checks) {
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
}

// The Evaluate step: the NIAH sweep equals `qklab niah`'s, stays responsive
// and cancellable, survives a lost GPU and a panic, refuses a model too big
// before loading it, and falls back to the CPU engine without WebGPU.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  demoSweepForm, gotoReady, inNewContext, page, qklabBin, repoRoot, screensDir, textOf, tmpDir, waitForText,
} from '../harness.mjs';

export const checks = [
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
];

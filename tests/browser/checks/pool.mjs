// The CPU engine's worker pool: a sweep's prompts shared out among several
// workers give the answers one worker gives, faster on a machine with
// more than one core; a worker that dies costs only its own prompts.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { demoSweepForm, inNewContext, openDemo, repoRoot, screensDir, waitForText } from '../harness.mjs';

/** The heat maps' cells: [figure, length, depth, accuracy]. */
async function cells(pg) {
  return pg.locator('#heatmaps g.cell').evaluateAll((gs) => gs.map((g) =>
    [g.closest('figure').dataset.figure, Number(g.dataset.length), Number(g.dataset.depth), Number(g.dataset.accuracy)]));
}

/** "Run it here" of the demo's guide on the CPU engine with `workers`; its seconds, status and cells. */
async function runItHere(workers) {
  return inNewContext(async (pg) => {
    await openDemo(pg);
    await pg.locator('#engine').selectOption('cpu');
    await pg.locator('#workers').fill(String(workers));
    while (!/^Step 3 of/.test(await pg.locator('#step-title').textContent())) await pg.locator('#step-next').click();
    const t0 = Date.now();
    await pg.locator('#step-run-here').click();
    await waitForText(pg, '#guide-status', /recorded prompts run here|error|fail/i, 600_000);
    const seconds = (Date.now() - t0) / 1000;
    assert.match(await pg.locator('#guide-status').textContent(), /^12 recorded prompts run here/);
    const marks = await pg.locator('#recorded-table1 td[data-matches]').evaluateAll((tds) => tds.map((td) => td.dataset.matches));
    assert.deepEqual(marks, ['yes', 'yes', 'yes'], `${workers} workers: each model's S1 cell matches the recording sample for sample`);
    await pg.screenshot({ path: path.join(screensDir, `pool-run-it-here-${workers}.png`), fullPage: true });
    return { seconds, status: await pg.locator('#eval-status').textContent(), cells: await cells(pg) };
  });
}

export const checks = [
  {
    // "Run it here" (12 prompts at 2048 tokens) with one worker, then two:
    // the same cells, each matching the recording, and the speed-up.
    name: 'pool-run-it-here',
    needs: 'page-loads',
    async run() {
      const one = await runItHere(1);
      const two = await runItHere(2);
      assert.doesNotMatch(one.status, /workers/, `one worker: ${one.status}`);
      assert.match(two.status, /^Done: 12 prompts \(4 per model\) on CPU engine.*, 2 workers\./, two.status);
      assert.deepEqual(two.cells, one.cells);
      console.log(`browser: pool-run-it-here: 1 worker ${one.seconds.toFixed(1)} s, 2 workers ${two.seconds.toFixed(1)} s: ` +
        `${(one.seconds / two.seconds).toFixed(2)}x (goal 1.7x on 2 cores)`);
    },
  },
  {
    // A worker ended mid-sweep (the kill-worker hook, after its first
    // batch): a new one runs the rest of its share, and the cells are what
    // `qklab niah` gave natively for the same seeds.
    name: 'pool-worker-killed',
    needs: 'page-loads',
    async run() {
      const native = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs', 'demo-results', 'qklab-niah', 'sweep-s1.json'), 'utf8'));
      const nativeName = { pre: 'www/demo/pre', sft: 'www/demo/sft' };
      const depths = [0, 0.25, 0.5];
      await inNewContext(async (pg) => {
        await demoSweepForm(pg, '512', depths.join(','), '2');
        await pg.locator('#seed').fill('12345');
        await pg.locator('#engine').selectOption('cpu');
        await pg.locator('#workers').fill('2');
        await pg.evaluate(() => { window.__qklabFault = 'kill-worker'; });
        await pg.locator('#run-sweep').click();
        await waitForText(pg, '#eval-status', /^(Done|.*error)/i, 600_000);
        const status = await pg.locator('#eval-status').textContent();
        assert.match(status, /^Done: 12 prompts \(6 per model\) on CPU engine.*, 2 workers\. A worker stopped and a new one ran the rest of its prompts\.$/, status);
        for (const [figure, length, depth, accuracy] of await cells(pg)) {
          const model = figure.replace('heatmap-', '');
          const d = depths.indexOf(depth);
          const seeds = [0, 1].map((s) => 12345 + 1000 * s + 17 * d + length);
          const want = native.samples.filter((x) => x.model === nativeName[model] && x.length === length && x.depth === depth && seeds.includes(x.seed));
          assert.equal(want.length, 2, `${model} @${length}/${depth}: two native samples`);
          assert.equal(accuracy, (want[0].score + want[1].score) / 2, `${model} @${length} depth ${depth}: the page's cell vs qklab niah`);
        }
      });
    },
  },
];

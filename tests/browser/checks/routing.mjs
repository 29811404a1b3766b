// The Routing step: Figure 4's panels, with distances equal to `qklab routing`'s.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  page, qklabBin, repoRoot, screensDir, textOf, tmpDir, waitForText,
} from '../harness.mjs';

export const checks = [
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
];

// The Tune step: the candidates' table equals `qklab tune`'s, and a row's
// merge equals `qklab merge`'s.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  downloadAll, fillForm, inNewContext, openDemo, qklabBin, repoRoot, screenshotsAtWidths, tmpDir, waitForText,
} from '../harness.mjs';

export const checks = [
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
];

// The Retrieval layers step on the demo: the ranking `qklab layers` gives,
// handed to the merge form and the report.
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
];

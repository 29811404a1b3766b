// Report and share: the exported archive, and a shared link that reproduces
// the merge and the sweep in a new browser.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  downloadAll, inNewContext, page, repoRoot, screensDir, textOf, tmpDir, waitForText,
} from '../harness.mjs';

export const checks = [
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
];

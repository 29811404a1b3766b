// The Merge step: QK-Restore in the page equals the pre/sft tensors it
// should take, and the files offered are what `qklab merge` writes.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  baseUrl, context, downloadAll, fixtureDir, gotoReady, inNewContext, mixerTypes, page, preFixtureDir, qklabBin, repoRoot, screensDir, shardFiles, tensorBytes, tmpDir, waitForText,
} from '../harness.mjs';

export const checks = [
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
      assert.deepEqual(['method', 'alpha', 'beta', 'layers', 'demo'].map((k) => hash.get(k)), ['qk-restore', '1', '1', '', 'hypenet']);
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
];

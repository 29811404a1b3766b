// Opening a checkpoint: the page loads, summarises a dropped folder, writes
// it back byte for byte, and works offline after the first visit.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  STEP_TIMEOUT_MS, baseUrl, expectedAttn, fixtureFiles, gotoReady, inNewContext, page, safetensorsHeader, screensDir, shardFiles, textOf, tmpDir, totalNumel, waitForText,
} from '../harness.mjs';

export const checks = [
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
];

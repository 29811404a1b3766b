// Hostile and wrong inputs: markup in a tensor name stays text, a mismatched
// pair names its differences, a PNG is refused.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  STEP_TIMEOUT_MS, demoSweepForm, fixtureFiles, inNewContext, page, repoRoot, screensDir, textOf, tmpDir, waitForText,
} from '../harness.mjs';

/** A checkpoint folder: `config` (text) beside `weights` (bytes) and the demo's tokenizer; its files. */
function checkpointFiles(name, config, weights) {
  const dir = fs.mkdtempSync(path.join(tmpDir, `${name}-`));
  fs.writeFileSync(path.join(dir, 'config.json'), config);
  fs.writeFileSync(path.join(dir, 'model.safetensors'), weights);
  fs.copyFileSync(path.join(repoRoot, 'www', 'demo', 'pre', 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  return fs.readdirSync(dir).map((f) => path.join(dir, f));
}

/** The demo's pre weights with every value of `tensor` set to bf16 infinity. */
function withInfinite(tensor) {
  const buf = Buffer.from(fs.readFileSync(path.join(repoRoot, 'www', 'demo', 'pre', 'model.safetensors')));
  const n = Number(buf.readBigUInt64LE(0));
  const [start, end] = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))[tensor].data_offsets;
  for (let o = 8 + n + start; o < 8 + n + end; o += 2) buf.writeUInt16LE(0x7f80, o);
  return buf;
}

export const checks = [
  {
    // A config that lies is refused by name when the checkpoint opens;
    // weights that turn to NaN stop the sweep with a message, and the
    // engine's worker still runs the demo pair afterwards.
    name: 'hostile-config-and-nan',
    needs: 'page-loads',
    async run() {
      await inNewContext(async (p) => {
        await demoSweepForm(p, '512', '0', '1');
        const demoPre = path.join(repoRoot, 'www', 'demo', 'pre');
        const demoConfig = fs.readFileSync(path.join(demoPre, 'config.json'), 'utf8');
        const demoWeights = fs.readFileSync(path.join(demoPre, 'model.safetensors'));
        const lie = fs.readFileSync(path.join(repoRoot, 'tests', 'hostile', 'config', 'vocab-4e9.json'), 'utf8');
        await p.locator('#pre-files').setInputFiles(checkpointFiles('lie', lie, demoWeights));
        await waitForText(p, '#pre-status', /vocab_size is 4000000000, larger than any tensor dimension/);
        await p.locator('#pre-status').scrollIntoViewIfNeeded();
        await p.screenshot({ path: path.join(screensDir, 'hostile-config.png') });

        await p.locator('#pre-files').setInputFiles(checkpointFiles('nan', demoConfig, withInfinite('model.layers.2.post_attention_layernorm.weight')));
        await waitForText(p, '#pair-status', /^Compatible/);
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /NaN\/inf|^Done/, 300_000);
        const broken = await p.locator('#eval-status').textContent();
        assert.match(broken, /the model produced NaN\/inf (at layer 2 \(Lightning\)|in its logits on the GPU)/, `#eval-status: ${broken}`);
        await p.locator('#eval-status').scrollIntoViewIfNeeded();
        await p.screenshot({ path: path.join(screensDir, 'hostile-nan.png') });

        await p.locator('#pre-files').setInputFiles(checkpointFiles('pre', demoConfig, demoWeights));
        await waitForText(p, '#pair-status', /^Compatible/);
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^Done|NaN|error/i, 300_000);
        assert.match(await p.locator('#eval-status').textContent(), /^Done: /, 'the worker runs the demo pair after the NaN');
      });
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
];

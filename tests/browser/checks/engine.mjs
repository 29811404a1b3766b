// The wasm engine itself: the WebGPU self-test, the demo model's logits
// against PyTorch's, and NIAH prompts equal to the native ones.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  STEP_TIMEOUT_MS, page, repoRoot, tensorBytes, textOf,
} from '../harness.mjs';

export const checks = [
  {
    name: 'gpu-selftest',
    needs: 'page-loads',
    async run() {
      await page.locator('#gpu-selftest').click();
      await page.waitForFunction(() => {
        const t = (document.querySelector('#gpu-status')?.textContent ?? '').trim();
        return t.startsWith('GPU self-test passed') || t.startsWith('GPU self-test failed') || t.includes('no WebGPU');
      }, null, { timeout: STEP_TIMEOUT_MS });
      const status = await textOf('#gpu-status');
      assert.ok(status.startsWith('GPU self-test passed'), `#gpu-status: ${JSON.stringify(status)}`);
    },
  },
  {
    // The demo model run by the wasm engine on WebGPU (SwiftShader) against
    // the PyTorch reference's golden logits and greedy ids.
    name: 'engine-golden',
    needs: 'gpu-selftest',
    async run() {
      const fx = path.join(repoRoot, 'tests', 'fixtures', 'demo', 'sft.safetensors');
      const all = tensorBytes(fs.readFileSync(fx));
      const tensor = (name, Kind) => new Kind(all[name].buffer.slice(all[name].byteOffset, all[name].byteOffset + all[name].length));
      const ids = [...tensor('ids_c', Int32Array)];
      const want = tensor('logits_c', Float32Array);
      const out = await page.evaluate(async (ids) => {
        const files = await Promise.all(['config.json', 'model.safetensors'].map(async (n) =>
          new File([await (await fetch(`demo/sft/${n}`)).blob()], n)));
        const prompt = Uint32Array.from(ids);
        const logits = await window.qklab.runLogits(files, prompt);
        const greedy = await window.qklab.runGreedy(files, prompt, 16);
        const bytes = new Uint8Array(logits.buffer);
        let bin = '';
        for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return { logits: btoa(bin), greedy: Array.from(greedy) };
      }, ids);
      const buf = Buffer.from(out.logits, 'base64');
      const got = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
      assert.equal(got.length, want.length, 'logits [T, V]');
      let scale = 0, diff = 0;
      for (let i = 0; i < want.length; i++) {
        scale = Math.max(scale, Math.abs(want[i]));
        diff = Math.max(diff, Math.abs(got[i] - want[i]));
      }
      console.log(`browser: engine-golden: T=${ids.length} max|diff|/max|logit| = ${(diff / scale).toExponential(2)}`);
      assert.ok(diff / scale < 1e-4, `logits differ: ${diff / scale}`);
      assert.deepEqual(out.greedy, [...tensor('greedy_c', Int32Array)], 'greedy continuation');
    },
  },
  {
    // NIAH prompts made by the wasm build equal the native ones, field for
    // field (tests/fixtures/niah-prompts.json is checked by tests/niah_gen.rs).
    name: 'niah-wasm',
    needs: 'page-loads',
    async run() {
      const cases = JSON.parse(fs.readFileSync(path.join(repoRoot, 'tests', 'fixtures', 'niah-prompts.json'), 'utf8'));
      const got = await page.evaluate((args) => args.map(([task, length, depth, seed, distractors]) =>
        JSON.parse(window.qklab.niahPrompt(task, length, depth, BigInt(seed), distractors ?? undefined))), cases.map((c) => c.args));
      cases.forEach((c, i) => assert.deepEqual(got[i], c.prompt, `prompt ${JSON.stringify(c.args)}`));
    },
  },
];

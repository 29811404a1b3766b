// Hugging Face families (issue 19): Qwen2/3, Llama and Mistral logits against
// transformers', and a Llama pair through every step.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  downloadAll, fillForm, goldenLogits, gotoReady, inNewContext, nudgedCopy, page, qklabBin, repoRoot, tensorBytes, textOf, tmpDir, waitForText,
} from '../harness.mjs';

export const checks = [
  {
    // The pure softmax families (issue 19) in the wasm engine on WebGPU
    // against transformers' own logits (tests/fixtures/hf, made by
    // reference/hf_fixtures.py); the summary names the family.
    name: 'hf-golden',
    needs: 'gpu-selftest',
    async run() {
      const hf = path.join(repoRoot, 'tests', 'fixtures', 'hf');
      const worst = await goldenLogits(hf, ['qwen2-f32', 'qwen2-bf16', 'qwen3-f32', 'qwen3-bf16', 'llama-f32', 'llama-bf16', 'mistral-f32', 'mistral-bf16']);
      console.log(`browser: hf-golden: max|diff|/max|logit| ${JSON.stringify(worst)}`);
      await page.locator('#pick-files').setInputFiles(['config.json', 'model.safetensors'].map((n) => path.join(hf, 'llama-bf16', n)));
      await waitForText(page, '#summary', /Llama/);
      assert.match(await textOf('#summary'), /Family\s*Llama/);
    },
  },
  {
    // A Llama pair in the page: the pair check says it is pure softmax, a
    // merge without layers is refused with the reason, the Retrieval
    // layers step ranks its layers as `qklab layers` does natively and
    // hands the top one to the merge form, and the merge, a sweep and the
    // routing then run on it as on HypeNet.
    name: 'hf-pair-layers',
    needs: 'page-loads',
    async run() {
      await inNewContext(async (p) => {
        await gotoReady(p);
        const preDir = path.join(repoRoot, 'tests', 'fixtures', 'hf', 'llama-f32');
        const sftDir = path.join(tmpDir, 'llama-sft');
        const files = (dir) => ['config.json', 'model.safetensors'].map((n) => path.join(dir, n));
        nudgedCopy(preDir, sftDir);
        await p.locator('#pre-files').setInputFiles(files(preDir));
        await p.locator('#sft-files').setInputFiles(files(sftDir));
        await waitForText(p, '#pair-status', /pure softmax model/);
        assert.match(await p.locator('#pre-status').textContent(), /^Llama: .* parameters, .*; every layer softmax \(3\)/);
        await p.locator('#merge').click();
        await waitForText(p, '#merge-status', /pure softmax-attention model/);
        await fillForm(p, 'layers-task', 'ids', { 'layers-lengths': '64', 'layers-depths': '0.5', 'layers-samples': '1', 'layers-seed': '12345', 'layers-top': '1' });
        await p.locator('#run-layers').click();
        await waitForText(p, '#layers-status', /^(Done|.*error|Cancelled)/i, 300_000);
        assert.match(await p.locator('#layers-status').textContent(), /^Done: 3 layers/);
        const page = JSON.parse((await downloadAll(p, '#layers-report a'))['layers.json'].toString('utf8'));
        const json = path.join(tmpDir, 'layers-llama.json');
        execFileSync(qklabBin, ['layers', '--pre', preDir, '--sft', sftDir, '--task', 'ids',
          '--lengths', '64', '--depths', '0.5', '--samples', '1', '--seed', '12345', '--top', '1', '--backend', 'cpu', '--json', json], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
        const native = JSON.parse(fs.readFileSync(json, 'utf8'));
        // A random model finds no needle, so every drop is 0 and the ranking is layer order; the numbers must still agree.
        assert.deepEqual(page.ranking, native.ranking);
        assert.deepEqual(page.top, native.top);
        assert.deepEqual(page.layers.map((l) => [l.recall, l.drop]), native.layers.map((l) => [l.recall, l.drop]));
        assert.deepEqual([page.repair.sft, page.repair.merged], [native.repair.sft, native.repair.merged]);
        assert.equal(await p.locator('#layers-chart rect.bar').count(), 3, 'a bar per layer');
        const top = native.top.join(',');
        assert.equal(await p.locator('#layers').inputValue(), top, 'the top layer is in the merge form');
        await p.locator('#merge').click();
        await waitForText(p, '#merge-status', /^Done|error/i);
        assert.match(await p.locator('#merge-status').textContent(), /^Done/);
        // The merge restores exactly the top layer's q and k.
        const merged = tensorBytes((await downloadAll(p, '#downloads a'))['model.safetensors']);
        const [pre, sft] = [preDir, sftDir].map((d) => tensorBytes(fs.readFileSync(path.join(d, 'model.safetensors'))));
        assert.deepEqual(Object.keys(merged).sort(), Object.keys(sft).sort(), 'every tensor kept');
        for (const [name, bytes] of Object.entries(sft)) {
          const fromPre = new RegExp(`^model\\.layers\\.(${native.top.join('|')})\\.self_attn\\.(q|k)_proj\\.weight$`).test(name);
          assert.ok(merged[name].equals(fromPre ? pre[name] : bytes), `${name} should come from ${fromPre ? 'pre' : 'sft'}`);
        }
        // Evaluate and routing take it as they take HypeNet (token-id prompts: no tokenizer).
        await fillForm(p, 'task', 'ids', { lengths: '64', depths: '0.5', samples: '1' });
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^(Done|.*error|no )/i, 300_000);
        assert.match(await p.locator('#eval-status').textContent(), /^Done: 3 prompts \(1 per model\)/);
        await p.locator('#run-routing').click();
        await waitForText(p, '#routing-status', /^(Prompt|.*error)/i, 300_000);
        assert.match(await p.locator('#routing-status').textContent(), /^Prompt: \d+ tokens/);
        assert.deepEqual(await p.locator('#routing-layer option').allTextContents(), ['0', '1', '2'], 'every layer is a softmax layer to inspect');
      });
    },
  },
];

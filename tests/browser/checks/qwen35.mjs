// Qwen3.5 (issue 26): logits against transformers' in the page, and a pair
// of transformers-made checkpoints through pair check, merge, evaluation
// and routing.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  downloadAll, fillForm, goldenLogits, gotoReady, inNewContext, nudgedCopy, repoRoot, tensorBytes, tmpDir, waitForText,
} from '../harness.mjs';

const fixtures = path.join(repoRoot, 'tests', 'fixtures', 'qwen35');

export const checks = [
  {
    // The wasm engine on WebGPU (SwiftShader) against transformers' own
    // Qwen3.5 logits (tests/fixtures/qwen35, made by
    // reference/qwen35_fixtures.py): the gated delta rule over 150 tokens
    // (three chunks), gated attention, partial RoPE, the wrapper's names.
    name: 'qwen35-golden',
    needs: 'gpu-selftest',
    async run() {
      const worst = await goldenLogits(fixtures, ['qwen35-text-f32', 'qwen35-text-bf16', 'qwen35-vl-f32', 'qwen35-vl-bf16']);
      console.log(`browser: qwen35-golden: max|diff|/max|logit| ${JSON.stringify(worst)}`);
    },
  },
  {
    // A Qwen3.5 wrapper pair (pre made by transformers, the SFT copy made
    // here): the pair check names the softmax layers, the merge restores
    // layer 3's query rows of q_proj and all of k_proj and keeps the gate
    // rows and the vision tower from SFT, and evaluation and routing run
    // on it, routing offering the softmax layers only.
    name: 'qwen35-pair',
    needs: 'page-loads',
    async run() {
      await inNewContext(async (p) => {
        await gotoReady(p);
        const preDir = path.join(fixtures, 'qwen35-vl-f32');
        const sftDir = path.join(tmpDir, 'qwen35-sft');
        const files = (dir) => ['config.json', 'model.safetensors'].map((n) => path.join(dir, n));
        nudgedCopy(preDir, sftDir);
        await p.locator('#pre-files').setInputFiles(files(preDir));
        await p.locator('#sft-files').setInputFiles(files(sftDir));
        await waitForText(p, '#pair-status', /^(Compatible|.*error|.*not)/i);
        assert.match(await p.locator('#pair-status').textContent(), /^Compatible: .*softmax layers \[3, 7\]/);
        assert.match(await p.locator('#pre-status').textContent(), /^Qwen3\.5.*softmax layers \[3, 7\]/);
        assert.ok(await p.locator('#gate-rows-option').isVisible(), 'the gate-rows option is offered for a Qwen3.5 pair');
        await p.locator('#layers').fill('3');
        await p.locator('#merge').click();
        await waitForText(p, '#merge-status', /^(Done|.*error)/i, 120_000);
        assert.match(await p.locator('#merge-status').textContent(), /^Done/);
        const merged = tensorBytes((await downloadAll(p, '#downloads a'))['model.safetensors']);
        const [pre, sft] = [preDir, sftDir].map((d) => tensorBytes(fs.readFileSync(path.join(d, 'model.safetensors'))));
        assert.deepEqual(Object.keys(merged).sort(), Object.keys(sft).sort(), 'every tensor kept, the vision tower too');
        const layer = 'model.language_model.layers.3.self_attn.';
        for (const [name, bytes] of Object.entries(sft)) {
          if (name === `${layer}q_proj.weight`) {
            // Per head: 16 query rows from pre, then 16 gate rows from SFT; rows of 32 f32.
            const row = 32 * 4, head = 32 * row;
            for (let o = 0; o < bytes.length; o += row) {
              const fromPre = (o % head) < head / 2;
              assert.ok(merged[name].subarray(o, o + row).equals((fromPre ? pre : sft)[name].subarray(o, o + row)),
                `${name} row ${o / row} should come from ${fromPre ? 'pre' : 'sft'}`);
            }
            continue;
          }
          const fromPre = name === `${layer}k_proj.weight`;
          assert.ok(merged[name].equals(fromPre ? pre[name] : bytes), `${name} should come from ${fromPre ? 'pre' : 'sft'}`);
        }
        await fillForm(p, 'task', 'ids', { lengths: '96', depths: '0.5', samples: '1' });
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^(Done|.*error|no )/i, 300_000);
        assert.match(await p.locator('#eval-status').textContent(), /^Done: 3 prompts \(1 per model\)/);
        await p.locator('#run-routing').click();
        await waitForText(p, '#routing-status', /^(Prompt|.*error)/i, 300_000);
        assert.match(await p.locator('#routing-status').textContent(), /^Prompt: \d+ tokens/);
        assert.deepEqual(await p.locator('#routing-layer option').allTextContents(), ['3', '7'], 'the softmax layers only');

        // Hostile and mismatched inputs get the CLI's specific errors.
        await p.locator('#sft-files').setInputFiles(files(path.join(repoRoot, 'tests', 'fixtures', 'hf', 'qwen3-f32')));
        await waitForText(p, '#pair-status', /Qwen3/);
        assert.match(await p.locator('#pair-status').textContent(), /pre is Qwen3\.5 \(vision-language wrapper\), sft is Qwen3: a merge needs two checkpoints of one model/);
        const bare = path.join(tmpDir, 'qwen35-no-text-config');
        fs.mkdirSync(bare, { recursive: true });
        const config = JSON.parse(fs.readFileSync(path.join(preDir, 'config.json'), 'utf8'));
        delete config.text_config;
        fs.writeFileSync(path.join(bare, 'config.json'), JSON.stringify(config));
        fs.copyFileSync(path.join(preDir, 'model.safetensors'), path.join(bare, 'model.safetensors'));
        await p.locator('#pre-files').setInputFiles(files(bare));
        await waitForText(p, '#pre-status', /text_config/);
        assert.match(await p.locator('#pre-status').textContent(), /qwen3_5.*has no text_config object/);
      });
    },
  },
];

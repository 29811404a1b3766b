// Jet-Nemotron (issue 27): logits against NVlabs' own code in the page,
// and a pair of NVlabs-made checkpoints through pair check, merge,
// evaluation and routing.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  downloadAll, fillForm, goldenLogits, gotoReady, inNewContext, nudgedCopy, repoRoot, tensorBytes, tmpDir, waitForText,
} from '../harness.mjs';

const fixtures = path.join(repoRoot, 'tests', 'fixtures', 'jet');

export const checks = [
  {
    // The wasm engine on WebGPU (SwiftShader) against the logits of NVlabs'
    // modeling code (tests/fixtures/jet, made by reference/jet_fixtures.py):
    // JetBlocks with their dynamic convolution over 150 tokens (three
    // chunks of the gated delta rule), a full and a 16-token sliding-window
    // softmax layer.
    name: 'jet-golden',
    needs: 'gpu-selftest',
    async run() {
      const worst = await goldenLogits(fixtures, ['jet-f32', 'jet-bf16']);
      console.log(`browser: jet-golden: max|diff|/max|logit| ${JSON.stringify(worst)}`);
    },
  },
  {
    // A Jet-Nemotron pair as two folders (pre made by NVlabs' code, the
    // SFT copy made here): the page names the layer kinds, the default merge restores the
    // attn layer's q/k weights and biases only, and evaluation and routing
    // run on it, routing offering the attn and swa layers.
    name: 'jet-pair',
    needs: 'page-loads',
    async run() {
      await inNewContext(async (p) => {
        await gotoReady(p);
        const preDir = path.join(fixtures, 'jet-f32');
        const sftDir = path.join(tmpDir, 'jet-sft');
        nudgedCopy(preDir, sftDir);
        // As folders, the way a user drops a Hugging Face checkpoint.
        await p.locator('#pre-folder').setInputFiles(preDir);
        await p.locator('#sft-folder').setInputFiles(sftDir);
        await waitForText(p, '#pair-status', /^(Compatible|.*error|.*not)/i);
        assert.match(await p.locator('#pair-status').textContent(),
          /^Compatible: .*full-attention layers \[2\] are restored by default\. The sliding-window layers 4 \(16 tokens\)/);
        assert.match(await p.locator('#pre-status').textContent(),
          /^Jet-Nemotron.*softmax layers \[2, 4\]: full attention \[2\], sliding window \[4\]/);
        assert.equal(await p.locator('#pre-layers li').allTextContents().then((t) => t.join('')), 'JJSJWJ', 'the layer map');
        assert.match(await p.locator('#pre-layers li').nth(4).getAttribute('title'), /sliding window of 16 tokens/);
        await p.locator('#merge').click();
        await waitForText(p, '#merge-status', /^(Done|.*error)/i, 120_000);
        assert.match(await p.locator('#merge-status').textContent(), /^Done/);
        const merged = tensorBytes((await downloadAll(p, '#downloads a'))['model.safetensors']);
        const [pre, sft] = [preDir, sftDir].map((d) => tensorBytes(fs.readFileSync(path.join(d, 'model.safetensors'))));
        assert.deepEqual(Object.keys(merged).sort(), Object.keys(sft).sort(), 'every tensor kept');
        const restored = ['q', 'k'].flatMap((x) => ['weight', 'bias'].map((l) => `model.layers.2.self_attn.${x}_proj.${l}`));
        for (const [name, bytes] of Object.entries(sft)) {
          const fromPre = restored.includes(name);
          assert.ok(merged[name].equals(fromPre ? pre[name] : bytes), `${name} should come from ${fromPre ? 'pre' : 'sft'}`);
        }
        await fillForm(p, 'task', 'ids', { lengths: '96', depths: '0.5', samples: '1' });
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^(Done|.*error|no )/i, 300_000);
        assert.match(await p.locator('#eval-status').textContent(), /^Done: 3 prompts \(1 per model\)/);
        await p.locator('#run-routing').click();
        await waitForText(p, '#routing-status', /^(Prompt|.*error)/i, 300_000);
        assert.match(await p.locator('#routing-status').textContent(), /^Prompt: \d+ tokens/);
        assert.deepEqual(await p.locator('#routing-layer option').allTextContents(), ['2', '4'], 'the attn and swa layers');
        await p.locator('#routing-layer').selectOption('4');
        await waitForText(p, '#routing-maps', /window/);
        assert.ok(await p.locator('#routing-maps line.window').count() > 0, 'the window\'s edge is drawn');

        // A JetBlock named in Layers is refused with the reason.
        await p.locator('#layers').fill('3');
        await p.locator('#merge').click();
        await waitForText(p, '#merge-status', /JetBlock/i, 60_000);
        assert.match(await p.locator('#merge-status').textContent(), /layer 3 is a JetBlock/);
      });
    },
  },
];

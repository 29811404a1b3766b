// Benchmarks: they print numbers and run only when named in
// QKLAB_BROWSER_CHECKS.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import {
  demoSweepForm, inNewContext, waitForText,
} from '../harness.mjs';

export const checks = [
  {
    // A benchmark, not a test (QKLAB_BROWSER_CHECKS=live-sweep-bench): the
    // live run that shows the demo's effect, S1 at 2048 tokens x 5 depths x
    // 2 samples for pre, sft and QK-Restore (30 prompts), timed from Run to Done.
    name: 'live-sweep-bench',
    needs: 'page-loads',
    benchmark: true,
    async run() {
      await inNewContext(async (p) => {
        await demoSweepForm(p, '2048', '0,0.25,0.5,0.75,1', '2');
        await p.locator('#merge').click();
        await waitForText(p, '#merge-status', /^Done/);
        const t0 = Date.now();
        await p.locator('#run-sweep').click();
        await waitForText(p, '#eval-status', /^(Done|.*error)/i, 1_200_000);
        const secs = (Date.now() - t0) / 1000;
        const table = await p.locator('#table1 tr[data-model]').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent).join(' ')));
        console.log(`browser: live sweep, 30 prompts (S1 @2048, 5 depths x 2 samples, 3 models): ${secs.toFixed(1)} s; ${await p.locator('#eval-status').textContent()}`);
        console.log(`browser: live sweep table: ${table.join(' | ')}`);
      });
    },
  },
];

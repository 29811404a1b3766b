// Benchmarks: they print numbers and run only when named in
// QKLAB_BROWSER_CHECKS; one that cannot measure (an error, a cancel, a
// missing row) fails rather than printing the error as its result.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
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
        // Finished: Done, Cancelled, or any status the page shows as an error.
        await p.waitForFunction(() => {
          const s = document.querySelector('#eval-status');
          return /^(Done|Cancelled)/.test(s?.textContent ?? '') || (s?.classList.contains('error') ?? false);
        }, null, { timeout: 1_200_000 });
        const secs = (Date.now() - t0) / 1000;
        const status = await p.locator('#eval-status').textContent();
        const rows = await p.locator('#table1 tr[data-model]').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
        console.log(`browser: live sweep, 30 prompts (S1 @2048, 5 depths x 2 samples, 3 models): ${secs.toFixed(1)} s; ${status}`);
        console.log(`browser: live sweep table: ${rows.map((r) => r.join(' ')).join(' | ')}`);
        // A number only when the whole sweep ran: an error, a cancel or a
        // short table is a failed measurement, not a time.
        assert.match(status, /^Done: 30 prompts \(10 per model\) on /, 'the sweep did not finish, so nothing was measured');
        assert.deepEqual(rows.map((r) => r[0]), ['pre', 'sft', 'merged'], 'a Table 1 row per model');
        for (const r of rows) assert.ok(r.length === 2 && Number.isFinite(parseFloat(r[1])), `${r[0]}: S1@2048 recall ${JSON.stringify(r.slice(1))}`);
      });
    },
  },
];

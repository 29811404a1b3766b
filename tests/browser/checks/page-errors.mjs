// The closing check: nothing the main page did in the whole run threw,
// broke its Content-Security-Policy or logged an error.
//
// Run in order by tests/browser/smoke.mjs, which lists every check by name.

import assert from 'node:assert/strict';
import {
  consoleLines, pageErrors,
} from '../harness.mjs';

export const checks = [
  {
    name: 'no-page-errors',
    async run() {
      const csp = consoleLines.filter((l) => /Content Security Policy/i.test(l));
      assert.deepEqual(pageErrors, [], 'uncaught exceptions / crashes in the page');
      assert.deepEqual(csp, [], 'Content-Security-Policy violations');
      assert.deepEqual(consoleLines.filter((l) => l.startsWith('[error]')), [], 'console errors');
    },
  },
];

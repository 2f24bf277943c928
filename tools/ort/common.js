// Shared pieces of the ONNX Runtime reference scripts (ort_run.js, ort_eval.js): one-line errors,
// loading onnxruntime-node, creating a session with the settings every comparison uses, medians.
'use strict';
const fs = require('fs');

/** Returns die(msg, code = 1): prints "<tool>: error: msg" on one line and exits. */
function makeDie(tool) {
  return (msg, code = 1) => {
    process.stderr.write(`${tool}: error: ${msg}\n`);
    process.exit(code);
  };
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Loads onnxruntime-node and opens `model` (all graph optimizations, sequential, `threads`). */
async function openSession(model, threads, die) {
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    die(`onnxruntime-node is not installed in ${__dirname}/node_modules: run scripts/install-deps.sh`);
  }
  if (!fs.existsSync(model)) die(`${model}: no such file`);
  try {
    const session = await ort.InferenceSession.create(model, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    });
    return { ort, session };
  } catch (e) {
    die(`${model}: ${String(e.message || e).split('\n')[0]}`);
  }
}

/** Error text of a failed session.run, first line only. */
function firstLine(e) {
  return String(e && e.message ? e.message : e).split('\n')[0];
}

module.exports = { makeDie, median, openSession, firstLine };

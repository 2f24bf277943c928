// Runs an ONNX model in ONNX Runtime (reference for gstick parity tests and benchmarks).
// Usage: node ort_run.js MODEL.onnx --out-dir D [--input NAME=FILE.npy ...] [--repeat N]
//        [--threads T] [--no-write]
// Writes every output as D/<sanitized output name>.npy and prints one JSON line with latency
// statistics (median / mean / min ms over N timed runs after one warm-up run).
'use strict';
const fs = require('fs');
const path = require('path');
const { readNpy, writeNpy } = require('./npy');
const { makeDie, median, openSession, firstLine } = require('./common');

const die = makeDie('ort_run');

/** Output file stem: the same rule as gstick's (chars outside [A-Za-z0-9._-] become '_'). */
function fileStem(name) {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_');
  return s === '' || s === '.' || s === '..' ? `_${s}` : s;
}

function parseArgs(argv) {
  const a = { model: null, outDir: null, inputs: [], repeat: 1, threads: 2, write: true };
  for (let i = 0; i < argv.length; ++i) {
    const k = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${k} needs a value`, 2);
      return argv[++i];
    };
    if (k === '--out-dir') a.outDir = next();
    else if (k === '--input') {
      const v = next();
      const eq = v.indexOf('=');
      if (eq <= 0) die(`--input expects NAME=FILE.npy, got '${v}'`, 2);
      a.inputs.push([v.slice(0, eq), v.slice(eq + 1)]);
    } else if (k === '--repeat') a.repeat = Number(next());
    else if (k === '--threads') a.threads = Number(next());
    else if (k === '--no-write') a.write = false;
    else if (k.startsWith('--')) die(`unknown option ${k}`, 2);
    else if (a.model === null) a.model = k;
    else die(`unexpected argument '${k}'`, 2);
  }
  if (!a.model) die('usage: ort_run.js MODEL.onnx --out-dir D [--input NAME=FILE.npy ...] [--repeat N] [--threads T]', 2);
  if (!a.outDir && a.write) die('--out-dir is required', 2);
  if (!Number.isInteger(a.repeat) || a.repeat < 1) die('--repeat must be a positive integer', 2);
  if (!Number.isInteger(a.threads) || a.threads < 1) die('--threads must be a positive integer', 2);
  return a;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { ort, session } = await openSession(args.model, args.threads, die);
  const feeds = {};
  for (const [name, file] of args.inputs) {
    if (!session.inputNames.includes(name)) die(`'${name}' is not an input of ${args.model} (inputs: ${session.inputNames.join(', ')})`);
    let t;
    try {
      t = readNpy(file);
    } catch (e) {
      die(e.message);
    }
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  for (const n of session.inputNames) if (!(n in feeds)) die(`missing --input for model input '${n}'`);

  let out;
  try {
    out = await session.run(feeds);  // warm-up (and the run whose outputs are written)
  } catch (e) {
    die(`${args.model}: ${String(e.message || e).split('\n')[0]}`);
  }
  const times = [];
  for (let r = 0; r < args.repeat; ++r) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const outputs = {};
  if (args.write) fs.mkdirSync(args.outDir, { recursive: true });
  for (const name of session.outputNames) {
    const t = out[name];
    outputs[name] = { type: t.type, dims: t.dims };
    if (args.write) writeNpy(path.join(args.outDir, `${fileStem(name)}.npy`), t.type, t.dims, t.data);
  }
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  process.stdout.write(JSON.stringify({
    model: args.model, repeat: args.repeat, threads: args.threads,
    median_ms: median(times), mean_ms: mean, min_ms: Math.min(...times), times_ms: times, outputs,
  }) + '\n');
}

main().catch((e) => die(firstLine(e)));

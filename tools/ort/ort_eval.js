// Evaluates an image classifier in ONNX Runtime on a labelled .npy dataset (the reference for
// gstick's `eval`): top-1 accuracy and per-batch latency, optionally writing all logits.
// Usage: node ort_eval.js MODEL.onnx --inputs X.npy --labels Y.npy [--batch B] [--threads T]
//        [--logits OUT.npy]
// X: float32 [N, ...] (fed to the model's first input), Y: int64/int32 [N]. Prints one JSON line:
// {"model", "samples", "correct", "top1", "batch", "threads", "median_ms", "mean_ms"}.
'use strict';
const { readNpy, writeNpy } = require('./npy');
const { makeDie, median, openSession, firstLine } = require('./common');

const die = makeDie('ort_eval');

function parseArgs(argv) {
  const a = { model: null, inputs: null, labels: null, batch: 256, threads: 2, logits: null };
  for (let i = 0; i < argv.length; ++i) {
    const k = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${k} needs a value`, 2);
      return argv[++i];
    };
    if (k === '--inputs') a.inputs = next();
    else if (k === '--labels') a.labels = next();
    else if (k === '--batch') a.batch = Number(next());
    else if (k === '--threads') a.threads = Number(next());
    else if (k === '--logits') a.logits = next();
    else if (k.startsWith('--')) die(`unknown option ${k}`, 2);
    else if (a.model === null) a.model = k;
    else die(`unexpected argument '${k}'`, 2);
  }
  if (!a.model || !a.inputs || !a.labels) {
    die('usage: ort_eval.js MODEL.onnx --inputs X.npy --labels Y.npy [--batch B] [--threads T] [--logits OUT.npy]', 2);
  }
  if (!Number.isInteger(a.batch) || a.batch < 1) die('--batch must be a positive integer', 2);
  if (!Number.isInteger(a.threads) || a.threads < 1) die('--threads must be a positive integer', 2);
  return a;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let x, y;
  try {
    x = readNpy(args.inputs);
    y = readNpy(args.labels);
  } catch (e) {
    die(e.message);
  }
  if (x.type !== 'float32') die(`${args.inputs}: expected float32 data, got ${x.type}`);
  const n = x.dims[0];
  if (y.dims.length !== 1 || y.dims[0] !== n) die(`${args.labels}: expected ${n} labels, got shape [${y.dims}]`);
  const per = x.dims.slice(1).reduce((p, d) => p * d, 1);
  const { ort, session } = await openSession(args.model, args.threads, die);
  const inName = session.inputNames[0];
  const outName = session.outputNames[0];
  let correct = 0;
  let classes = 0;
  let all = null;
  const times = [];
  for (let s = 0; s < n; s += args.batch) {
    const b = Math.min(args.batch, n - s);
    const feed = new ort.Tensor('float32', x.data.subarray(s * per, (s + b) * per), [b, ...x.dims.slice(1)]);
    const t0 = process.hrtime.bigint();
    let out;
    try {
      out = await session.run({ [inName]: feed });
    } catch (e) {
      die(`${args.model}: ${String(e.message || e).split('\n')[0]}`);
    }
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const o = out[outName];
    if (o.dims.length !== 2 || o.dims[0] !== b) die(`${args.model}: output '${outName}' has shape [${o.dims}], expected [${b}, C]`);
    classes = o.dims[1];
    if (args.logits && all === null) all = new Float32Array(n * classes);
    for (let i = 0; i < b; ++i) {
      let best = 0;
      for (let c = 1; c < classes; ++c) if (o.data[i * classes + c] > o.data[i * classes + best]) best = c;
      if (best === Number(y.data[s + i])) ++correct;
    }
    if (all) all.set(o.data, s * classes);
  }
  if (all) writeNpy(args.logits, 'float32', [n, classes], all);
  const mean = times.reduce((a, b) => a + b, 0) / Math.max(times.length, 1);
  process.stdout.write(JSON.stringify({
    model: args.model, samples: n, correct, top1: n ? correct / n : 0, batch: args.batch,
    threads: args.threads, median_ms: median(times), mean_ms: mean,
  }) + '\n');
}

main().catch((e) => die(firstLine(e)));

// Minimal NumPy .npy reader/writer (v1-v3 headers, little-endian, C order) for ort_run.js.
'use strict';
const fs = require('fs');
const path = require('path');

// descr -> ORT tensor type and typed-array constructor. bool is stored as one byte per element.
const DTYPES = {
  '<f4': { ort: 'float32', Array: Float32Array, size: 4 },
  '<f8': { ort: 'float64', Array: Float64Array, size: 8 },
  '<i8': { ort: 'int64', Array: BigInt64Array, size: 8 },
  '<i4': { ort: 'int32', Array: Int32Array, size: 4 },
  '|i1': { ort: 'int8', Array: Int8Array, size: 1 },
  '|u1': { ort: 'uint8', Array: Uint8Array, size: 1 },
  '|b1': { ort: 'bool', Array: Uint8Array, size: 1 },
};
const ORT_TO_DESCR = {};
for (const [d, v] of Object.entries(DTYPES)) ORT_TO_DESCR[v.ort] = d;

/** Parses .npy bytes -> {type, dims, data}; throws Error naming `source` on malformed input. */
function parseNpy(buf, source) {
  const fail = (m) => { throw new Error(`${source}: ${m}`); };
  if (buf.length < 10 || buf[0] !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') fail('not a .npy file (bad magic)');
  const major = buf[6];
  let hlen, hstart;
  if (major === 1) { hlen = buf.readUInt16LE(8); hstart = 10; }
  else if (major === 2 || major === 3) {
    if (buf.length < 12) fail('truncated header');
    hlen = buf.readUInt32LE(8); hstart = 12;
  } else fail(`unsupported .npy version ${major}`);
  if (hstart + hlen > buf.length) fail('truncated header');
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header);
  const order = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !order || !shape) fail(`malformed header: ${header.trim()}`);
  if (order[1] === 'True') fail('fortran_order arrays are not supported');
  let d = descr[1];
  if (d === '<b1' || d === '|?' || d === '?') d = '|b1';
  if (d === '<i1') d = '|i1';
  if (d === '<u1') d = '|u1';
  const t = DTYPES[d];
  if (!t) fail(`unsupported dtype '${descr[1]}'`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length).map((s) => Number(s));
  if (dims.some((x) => !Number.isInteger(x) || x < 0)) fail(`bad shape (${shape[1]})`);
  const numel = dims.reduce((a, b) => a * b, 1);
  const off = hstart + hlen;
  if (buf.length - off < numel * t.size) fail(`truncated data: need ${numel * t.size} bytes, have ${buf.length - off}`);
  // Copy into an aligned buffer (typed arrays need element alignment).
  const bytes = new Uint8Array(numel * t.size);
  bytes.set(buf.subarray(off, off + numel * t.size));
  let data = new t.Array(bytes.buffer, 0, numel);
  if (t.ort === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
  return { type: t.ort, dims, data };
}

function readNpy(file) {
  return parseNpy(fs.readFileSync(file), file);
}

/** Serialises {type, dims, data} (type in ORT naming) to .npy bytes (v1 header). */
function serializeNpy(type, dims, data) {
  const d = ORT_TO_DESCR[type];
  if (!d) throw new Error(`cannot write tensor of type '${type}' as .npy`);
  const t = DTYPES[d];
  const shapeStr = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${d}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre[0] = 0x93; pre.write('NUMPY', 1, 'latin1'); pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  let body;
  if (t.ort === 'bool') body = Buffer.from(Uint8Array.from(data, (v) => (v ? 1 : 0)));
  else body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), body]);
}

/** Writes atomically (temp file in the same folder + rename). */
function writeNpy(file, type, dims, data) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp${process.pid}`);
  fs.writeFileSync(tmp, serializeNpy(type, dims, data));
  fs.renameSync(tmp, file);
}

module.exports = { parseNpy, readNpy, serializeNpy, writeNpy };

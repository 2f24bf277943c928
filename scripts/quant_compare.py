#!/usr/bin/python3
"""PyTorch FX quantization vs gstick on the same trained ONNX model, in one run.

Loads the ONNX initializers into an equivalent torch.nn.Module (the op subset of the zoo's image
classifiers), evaluates fp32, then runs torch.ao.quantization FX PTQ (prepare_fx / calibrate /
convert_fx) with the chosen engine and observer set, and FX QAT (prepare_qat_fx / fine-tune /
convert_fx). With --gstick it runs `gstick compress --algo ptq` (per observer) and
`--algo simqat` on the same model, calibration images and fine-tuning schedule, evaluates the
converted int8 models with `gstick eval` and times them with `gstick run`. Prints one table:
accuracy, calibration seconds, int8 latency at batch 1 and 32.

  /usr/bin/python3 scripts/quant_compare.py models/resnet20-fmnist.onnx --calib 2048 \
      --engine onednn --qat-epochs 1 --gstick build/gstick
"""
import argparse
import gzip
import re
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST = os.environ.get("GS_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


def load_idx(name):
    with gzip.open(os.path.join(FMNIST, name), "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fmnist(split, n):
    p = "train" if split == "train" else "t10k"
    x = load_idx(f"{p}-images-idx3-ubyte.gz")[:n].astype(np.float32) / 255.0
    y = load_idx(f"{p}-labels-idx1-ubyte.gz")[:n].astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxNet(nn.Module):
    """The ONNX graph as modules (Conv2d / BatchNorm2d / Linear / ReLU ...) run in node order;
    symbolic tracing unrolls the loop, so FX sees an ordinary module graph."""

    def __init__(self, model):
        super().__init__()
        g = model.graph
        self.inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
        self.steps = []  # (kind, module name or None, inputs, output, extra)
        self.input_name = g.input[0].name
        self.output_name = g.output[0].name
        for k, n in enumerate(g.node):
            a = attrs(n)
            mname = f"m{k}_" + (n.name or n.op_type).replace(".", "_").replace("/", "_")
            ins, out = list(n.input), n.output[0]
            op = n.op_type
            if op == "Conv":
                w = self.inits[ins[1]]
                pads = a.get("pads", [0, 0, 0, 0])
                assert pads[0] == pads[2] and pads[1] == pads[3], "asymmetric pads"
                m = nn.Conv2d(w.shape[1] * a.get("group", 1), w.shape[0], tuple(w.shape[2:]),
                              stride=tuple(a.get("strides", [1, 1])), padding=(pads[0], pads[1]),
                              dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1),
                              bias=len(ins) > 2 and ins[2] != "")
                m.weight.data.copy_(w)
                if m.bias is not None:
                    m.bias.data.copy_(self.inits[ins[2]])
                self.add_module(mname, m)
                self.steps.append(("mod", mname, ins[:1], out, None))
            elif op == "BatchNormalization":
                c = self.inits[ins[1]].numel()
                m = nn.BatchNorm2d(c, eps=a.get("epsilon", 1e-5))
                m.weight.data.copy_(self.inits[ins[1]])
                m.bias.data.copy_(self.inits[ins[2]])
                m.running_mean.copy_(self.inits[ins[3]])
                m.running_var.copy_(self.inits[ins[4]])
                self.add_module(mname, m)
                self.steps.append(("mod", mname, ins[:1], out, None))
            elif op in ("Gemm", "MatMul"):
                w = self.inits[ins[1]]
                if op == "MatMul" or not a.get("transB", 0):
                    w = w.t()
                assert a.get("alpha", 1.0) == 1.0 and not a.get("transA", 0)
                m = nn.Linear(w.shape[1], w.shape[0], bias=op == "Gemm" and len(ins) > 2)
                m.weight.data.copy_(w)
                if m.bias is not None:
                    m.bias.data.copy_(self.inits[ins[2]].reshape(-1) * a.get("beta", 1.0))
                self.add_module(mname, m)
                self.steps.append(("mod", mname, ins[:1], out, None))
            elif op == "Relu":
                self.add_module(mname, nn.ReLU())
                self.steps.append(("mod", mname, ins, out, None))
            elif op == "Clip":
                lo = float(self.inits[ins[1]]) if len(ins) > 1 and ins[1] else 0.0
                hi = float(self.inits[ins[2]]) if len(ins) > 2 and ins[2] else 6.0
                assert lo == 0.0 and hi == 6.0, "only ReLU6 clips"
                self.add_module(mname, nn.ReLU6())
                self.steps.append(("mod", mname, ins[:1], out, None))
            elif op == "MaxPool":
                p = a.get("pads", [0, 0, 0, 0])
                self.add_module(mname, nn.MaxPool2d(tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"])),
                                                    (p[0], p[1])))
                self.steps.append(("mod", mname, ins, out, None))
            elif op == "AveragePool":
                p = a.get("pads", [0, 0, 0, 0])
                self.add_module(mname, nn.AvgPool2d(tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"])),
                                                    (p[0], p[1])))
                self.steps.append(("mod", mname, ins, out, None))
            elif op == "GlobalAveragePool":
                self.add_module(mname, nn.AdaptiveAvgPool2d(1))
                self.steps.append(("mod", mname, ins, out, None))
            elif op == "Flatten":
                self.steps.append(("flatten", None, ins, out, a.get("axis", 1)))
            elif op == "Reshape":
                self.steps.append(("reshape", None, ins[:1], out, tuple(self.inits[ins[1]].tolist())))
            elif op in ("Add", "Sub", "Mul", "Div"):
                consts = [self.inits.get(i) for i in ins]
                if consts[1] is not None:
                    self.steps.append(("const_" + op, None, ins[:1], out, float(consts[1].reshape(-1)[0])))
                else:
                    assert op == "Add", f"unsupported binary {op} of two activations"
                    self.steps.append(("add", None, ins, out, None))
            else:
                raise SystemExit(f"quant_compare: unsupported op {op} ({n.name})")

    def forward(self, x):
        env = {self.input_name: x}
        for kind, mname, ins, out, extra in self.steps:
            v = [env[i] for i in ins]
            if kind == "mod":
                r = getattr(self, mname)(v[0])
            elif kind == "flatten":
                r = torch.flatten(v[0], extra)
            elif kind == "reshape":
                r = v[0].reshape(extra)
            elif kind == "add":
                r = v[0] + v[1]
            elif kind == "const_Add":
                r = v[0] + extra
            elif kind == "const_Sub":
                r = v[0] - extra
            elif kind == "const_Mul":
                r = v[0] * extra
            else:
                r = v[0] / extra
            env[out] = r
        return env[self.output_name]


def correct_mask(model, x, y, bs=500):
    """Per-image top-1 correctness (bool array) of a PyTorch model."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), bs):
            out.append((model(x[i:i + bs]).argmax(1) == y[i:i + bs]).numpy())
    return np.concatenate(out)


def mcnemar(a, b):
    """Paired comparison of two classifiers on the same images: (images only a gets right,
    images only b gets right, exact two-sided McNemar p-value, 95 % CI of acc(a) - acc(b) in
    points). Accuracy differences of a few images are within the test set's resolution."""
    n01 = int(np.sum(a & ~b))
    n10 = int(np.sum(~a & b))
    n = n01 + n10
    k = min(n01, n10)
    # exact binomial tail: P(X <= k) for X ~ Bin(n, 1/2), doubled
    logp = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    p = min(1.0, 2.0 * sum(math.exp(v) for v in logp)) if n > 0 else 1.0
    d = (n01 - n10) / len(a)
    se = math.sqrt(max(n01 + n10 - (n01 - n10) ** 2 / len(a), 0.0)) / len(a)
    return n01, n10, p, (100 * (d - 1.96 * se), 100 * (d + 1.96 * se))


def latency_ms(model, bs, reps=50):
    x = torch.rand(bs, 1, 28, 28)
    with torch.no_grad():
        for _ in range(5):
            model(x)
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model(x)
            t.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(t))


def fx_ptq(net, engine, observer, calib, bs):
    from torch.ao.quantization import QConfig, QConfigMapping, get_default_qconfig_mapping
    from torch.ao.quantization.observer import (HistogramObserver, MinMaxObserver,
                                                PerChannelMinMaxObserver)
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = engine
    if observer == "default":
        qmap = get_default_qconfig_mapping(engine)
    else:
        act = {"minmax": MinMaxObserver, "histogram": HistogramObserver}[observer]
        qmap = QConfigMapping().set_global(QConfig(
            activation=act.with_args(dtype=torch.quint8, reduce_range=(engine == "fbgemm")),
            weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)))
    prepared = prepare_fx(net, qmap, (calib[:1],))
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(calib), bs):
            prepared(calib[i:i + bs])
    secs = time.perf_counter() - t0
    return convert_fx(prepared), secs


def fx_qat(net, engine, xtrain, ytrain, epochs, lr, bs):
    """FX QAT with the engine's default QAT qconfig (fused Conv-BN(-ReLU), per-channel weights),
    SGD momentum 0.9, constant lr; returns the converted int8 model and the training seconds."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx
    torch.backends.quantized.engine = engine
    prepared = prepare_qat_fx(net.train(), get_default_qat_qconfig_mapping(engine), (xtrain[:1],))
    opt = torch.optim.SGD(prepared.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(xtrain), generator=g)
        for i in range(0, len(xtrain), bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(prepared(xtrain[idx]), ytrain[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    secs = time.perf_counter() - t0
    return convert_fx(prepared.eval()), secs


def gstick_latency(gstick, model, threads, work):
    """Median latency (ms) of `gstick run` at batch 1 and 32."""
    out = []
    for bs in (1, 32):
        x = os.path.join(work, f"x{bs}.npy")
        if not os.path.exists(x):
            np.save(x, np.random.default_rng(0).random((bs, 1, 28, 28), dtype=np.float32))
        r = subprocess.run([gstick, "run", model, "-i", f"input={x}", "-n", "50", "--threads", str(threads)],
                           capture_output=True, text=True)
        m = re.search(r"latency: median ([0-9.]+) ms", r.stdout + r.stderr)
        out.append(float(m.group(1)) if m else float("nan"))
    return out


def gstick_correct(gstick, model, x, y, work, chunk=2000):
    """Per-image top-1 correctness of `gstick run` on the test images (logits written as .npy)."""
    out = []
    for i in range(0, len(x), chunk):
        xin = os.path.join(work, "test_chunk.npy")
        np.save(xin, x[i:i + chunk].numpy())
        with tempfile.TemporaryDirectory(dir=work) as odir:
            r = subprocess.run([gstick, "run", model, "-i", f"input={xin}", "-o", odir], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(r.stderr)
            files = os.listdir(odir)
            if len(files) != 1:
                raise RuntimeError(f"{model}: expected one output, got {files}")
            logits = np.load(os.path.join(odir, files[0]))
        out.append(logits.argmax(1) == y[i:i + chunk].numpy())
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--calib", type=int, default=2048, help="calibration samples (train split)")
    ap.add_argument("--batch", type=int, default=32, help="calibration batch size")
    ap.add_argument("--test", type=int, default=10000, help="test samples")
    ap.add_argument("--engine", default="onednn", help="onednn | qnnpack (Debian's torch has no fbgemm)")
    ap.add_argument("--observers", default="default,minmax,histogram")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gstick", default="", help="gstick binary: also run gstick ptq per observer")
    ap.add_argument("--gstick-observers", default="minmax,ema,percentile,mse,kl")
    ap.add_argument("--qat-epochs", type=int, default=1, help="QAT fine-tuning epochs (0 = no QAT rows)")
    ap.add_argument("--qat-lr", type=float, default=0.001)
    ap.add_argument("--qat-batch", type=int, default=64)
    ap.add_argument("--train", type=int, default=60000, help="QAT training images")
    ap.add_argument("--json", default="", help="write the rows as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = OnnxNet(onnx.load(args.model)).eval()
    xc, _ = fmnist("train", args.calib)
    xt, yt = fmnist("test", args.test)
    rows = []
    masks = {}
    masks[("pytorch", "fp32")] = correct_mask(net, xt, yt)
    fp = 100.0 * masks[("pytorch", "fp32")].mean()
    rows.append({"impl": "pytorch", "config": "fp32", "acc": fp, "drop": 0.0, "calib_s": 0.0,
                 "lat1_ms": latency_ms(net, 1), "lat32_ms": latency_ms(net, 32)})
    for obs in args.observers.split(","):
        q, secs = fx_ptq(OnnxNet(onnx.load(args.model)).eval(), args.engine, obs, xc, args.batch)
        masks[("pytorch", "W8A8 " + obs)] = correct_mask(q, xt, yt)
        acc = 100.0 * masks[("pytorch", "W8A8 " + obs)].mean()
        rows.append({"impl": "pytorch-fx-" + args.engine, "config": "W8A8 " + obs, "acc": acc,
                     "drop": fp - acc, "calib_s": secs, "lat1_ms": latency_ms(q, 1), "lat32_ms": latency_ms(q, 32)})
    if args.qat_epochs > 0:
        xtr, ytr = fmnist("train", args.train)
        q, secs = fx_qat(OnnxNet(onnx.load(args.model)), args.engine, xtr, ytr, args.qat_epochs,
                         args.qat_lr, args.qat_batch)
        masks[("pytorch", "QAT")] = correct_mask(q, xt, yt)
        acc = 100.0 * masks[("pytorch", "QAT")].mean()
        rows.append({"impl": "pytorch-fx-" + args.engine, "config": f"QAT W8A8 {args.qat_epochs} ep",
                     "acc": acc, "drop": fp - acc, "calib_s": secs, "lat1_ms": latency_ms(q, 1),
                     "lat32_ms": latency_ms(q, 32)})
    if args.gstick:
        work = "/tmp/quant_compare"
        os.makedirs(work, exist_ok=True)
        base = os.path.basename(args.model)
        l1, l32 = gstick_latency(args.gstick, args.model, args.threads, work)
        masks[("gstick", "fp32")] = gstick_correct(args.gstick, args.model, xt, yt, work)
        rows.append({"impl": "gstick", "config": "fp32", "acc": 100.0 * masks[("gstick", "fp32")].mean(),
                     "drop": 0.0, "calib_s": 0.0, "lat1_ms": l1, "lat32_ms": l32})
        for obs in args.gstick_observers.split(","):
            out = os.path.join(work, f"{base}.{obs}.int8.onnx")
            cmd = [args.gstick, "compress", "--algo", "ptq", "--data", f"fashion-mnist:train:{args.calib}",
                   "--calib-batches", str((args.calib + args.batch - 1) // args.batch),
                   "--calib-batch-size", str(args.batch), "--threads", str(args.threads),
                   "--set", f"act_observer={obs}", args.model, "-o", out]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(" ".join(cmd), "\n", r.stderr, file=sys.stderr)
                continue
            m = re.search(r"calibration: \d+ batches, ([0-9.]+) s", r.stdout + r.stderr)
            masks[("gstick", "W8A8 " + obs)] = gstick_correct(args.gstick, out, xt, yt, work)
            acc = 100.0 * masks[("gstick", "W8A8 " + obs)].mean()
            l1, l32 = gstick_latency(args.gstick, out, args.threads, work)
            rows.append({"impl": "gstick", "config": "W8A8 " + obs, "acc": acc, "drop": fp - acc,
                         "calib_s": float(m.group(1)) if m else float("nan"), "lat1_ms": l1, "lat32_ms": l32})
        if args.qat_epochs > 0:
            out = os.path.join(work, f"{base}.simqat.int8.onnx")
            cmd = [args.gstick, "compress", "--algo", "simqat", "--data", f"fashion-mnist:train:{args.train}",
                   "--epochs", str(args.qat_epochs), "--lr", str(args.qat_lr), "--batch", str(args.qat_batch),
                   "--threads", str(args.threads), args.model, "-o", out]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            secs = time.perf_counter() - t0
            if r.returncode != 0:
                print(" ".join(cmd), "\n", r.stderr, file=sys.stderr)
            else:
                masks[("gstick", "QAT")] = gstick_correct(args.gstick, out, xt, yt, work)
                acc = 100.0 * masks[("gstick", "QAT")].mean()
                l1, l32 = gstick_latency(args.gstick, out, args.threads, work)
                rows.append({"impl": "gstick", "config": f"SimQAT W8A8 {args.qat_epochs} ep", "acc": acc,
                             "drop": fp - acc, "calib_s": secs, "lat1_ms": l1, "lat32_ms": l32})
    print(f"model {args.model}: fp32 top-1 {fp:.2f} % (PyTorch), {args.test} test images, "
          f"{args.calib} calibration images, {args.threads} threads; 'seconds' = calibration (PTQ) or "
          f"fine-tuning (QAT)")
    print("| implementation | config | top-1 % | drop | seconds | batch 1 ms | batch 32 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['impl']} | {r['config']} | {r['acc']:.2f} | {r['drop']:+.2f} | {r['calib_s']:.2f} | "
              f"{r['lat1_ms']:.3f} | {r['lat32_ms']:.3f} |")
    # Paired comparisons on the same test images (McNemar): is gstick's accuracy below PyTorch's?
    pairs = []
    for key in ("W8A8 minmax", "QAT"):
        if ("gstick", key) in masks and ("pytorch", key) in masks:
            pairs.append((key, ("gstick", key), ("pytorch", key)))
    ptq = lambda impl: [k for k in masks if k[0] == impl and k[1].startswith("W8A8")]
    if ptq("gstick") and ptq("pytorch"):
        best = lambda impl: max(ptq(impl), key=lambda k: masks[k].mean())
        pairs.append(("best PTQ", best("gstick"), best("pytorch")))
    if pairs:
        print()
        print("| comparison | gstick | PyTorch | top-1 difference (points) | only gstick right | only PyTorch right "
              "| McNemar p | 95 % CI of the difference |")
        print("|---|---|---|---|---|---|---|---|")
        for name, a, b in pairs:
            n01, n10, p, (lo, hi) = mcnemar(masks[a], masks[b])
            diff = 100.0 * (masks[a].mean() - masks[b].mean())
            print(f"| {name} | {a[1]} | {b[1]} | {diff:+.2f} | {n01} | {n10} | {p:.2f} | [{lo:+.2f}, {hi:+.2f}] |")
            rows.append({"impl": "paired", "config": name, "gstick": a[1], "pytorch": b[1], "diff": diff,
                         "only_gstick": n01, "only_pytorch": n10, "p": p, "ci": [lo, hi]})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""PyTorch FX post-training quantization of a gstick zoo ONNX model, for side-by-side tables.

Loads the ONNX initializers into an equivalent torch.nn.Module (the op subset of the zoo's image
classifiers), evaluates fp32, then runs torch.ao.quantization FX PTQ (prepare_fx / calibrate /
convert_fx) with the chosen engine and observer set, and prints accuracy, calibration seconds and
int8 / fp32 latency. Optionally runs `gstick compress --algo ptq` + `gstick eval` on the same
model and data so both appear in one run.

  /usr/bin/python3 scripts/quant_compare.py models/resnet20-fmnist.onnx --calib 2048 \
      --engine onednn --gstick build/gstick
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
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


def accuracy(model, x, y, bs=500):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), bs):
            correct += (model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum().item()
    return 100.0 * correct / len(x)


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
    ap.add_argument("--json", default="", help="write the rows as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = OnnxNet(onnx.load(args.model)).eval()
    xc, _ = fmnist("train", args.calib)
    xt, yt = fmnist("test", args.test)
    rows = []
    fp = accuracy(net, xt, yt)
    rows.append({"impl": "pytorch", "config": "fp32", "acc": fp, "drop": 0.0, "calib_s": 0.0,
                 "lat1_ms": latency_ms(net, 1), "lat32_ms": latency_ms(net, 32)})
    for obs in args.observers.split(","):
        q, secs = fx_ptq(OnnxNet(onnx.load(args.model)).eval(), args.engine, obs, xc, args.batch)
        acc = accuracy(q, xt, yt)
        rows.append({"impl": "pytorch-fx-" + args.engine, "config": "W8A8 " + obs, "acc": acc,
                     "drop": fp - acc, "calib_s": secs, "lat1_ms": latency_ms(q, 1), "lat32_ms": latency_ms(q, 32)})
    if args.gstick:
        out_dir = "/tmp/quant_compare"
        os.makedirs(out_dir, exist_ok=True)
        for obs in args.gstick_observers.split(","):
            out = os.path.join(out_dir, f"{os.path.basename(args.model)}.{obs}.int8.onnx")
            cmd = [args.gstick, "compress", "--algo", "ptq", "--data", f"fashion-mnist:train:{args.calib}",
                   "--set", f"act_observer={obs}", args.model, "-o", out]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            secs = time.perf_counter() - t0
            if r.returncode != 0:
                print(" ".join(cmd), "\n", r.stderr, file=sys.stderr)
                continue
            ev = subprocess.run([args.gstick, "eval", out, "--data", f"fashion-mnist:test:{args.test}"],
                                capture_output=True, text=True)
            acc = None
            for tok in ev.stdout.replace("%", " ").split():
                pass
            import re
            m = re.search(r"top1 ([0-9.]+)%", ev.stdout + ev.stderr)
            acc = float(m.group(1)) if m else float("nan")
            rows.append({"impl": "gstick", "config": "W8A8 " + obs, "acc": acc, "drop": fp - acc,
                         "calib_s": secs, "lat1_ms": float("nan"), "lat32_ms": float("nan")})
    print(f"{'implementation':<22} {'config':<20} {'top1 %':>8} {'drop':>6} {'calib s':>8} {'b1 ms':>7} {'b32 ms':>7}")
    for r in rows:
        print(f"{r['impl']:<22} {r['config']:<20} {r['acc']:8.2f} {r['drop']:6.2f} {r['calib_s']:8.2f} "
              f"{r['lat1_ms']:7.3f} {r['lat32_ms']:7.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

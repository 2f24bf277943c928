#!/usr/bin/python3
"""PyTorch-eager side of the training throughput benchmark (bench/train_bench.cpp runs it).

Builds the same architecture as gstick's model zoo (LeNet-5, ResNet-20 with option-B shortcuts,
the Llama-style byte LM), trains it for --warmup + --steps steps on fixed random batches with the
same optimizer as gstick's bench (SGD momentum 0.9, wd 5e-4 for the CNNs; AdamW for the LM) and
prints one JSON line: {"model", "threads", "batch", "steps", "seconds", "samples_per_s",
"cpu_seconds", "samples_per_cpu_s"} (CPU time of the process, all threads).
Run with Debian's /usr/bin/python3 (torch 1.13).
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530  # normalisation inside the zoo's image graphs


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = (x - MEAN) / STD
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        sc = x if self.downsample is None else self.downsample(x)
        return F.relu(y + sc)


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for s in range(3):
            cout = 16 << s
            for i in range(3):
                layers.append(BasicBlock(cin, cout, 2 if (i == 0 and s > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = (x - MEAN) / STD
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c["dim"], c["dim"] // c["heads"]
        self.c, self.hd = c, hd
        self.input_layernorm = RMSNorm(d, 1e-5)
        self.post_attention_layernorm = RMSNorm(d, 1e-5)
        self.q_proj = nn.Linear(d, c["heads"] * hd, bias=False)
        self.k_proj = nn.Linear(d, c["kv_heads"] * hd, bias=False)
        self.v_proj = nn.Linear(d, c["kv_heads"] * hd, bias=False)
        self.o_proj = nn.Linear(c["heads"] * hd, d, bias=False)
        self.gate_proj = nn.Linear(d, c["ffn"], bias=False)
        self.up_proj = nn.Linear(d, c["ffn"], bias=False)
        self.down_proj = nn.Linear(c["ffn"], d, bias=False)

    def forward(self, x, cos, sin, mask):
        n, t, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(n, t, self.c["heads"], self.hd).transpose(1, 2)
        k = self.k_proj(h).view(n, t, self.c["kv_heads"], self.hd).transpose(1, 2)
        v = self.v_proj(h).view(n, t, self.c["kv_heads"], self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.c["heads"] // self.c["kv_heads"]
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.hd) + mask, -1) @ v
        x = x + self.o_proj(a.transpose(1, 2).reshape(n, t, -1))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab"], c["dim"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["dim"], 1e-5)
        self.lm_head = nn.Linear(c["dim"], c["vocab"], bias=False)
        hd = c["dim"] // c["heads"]
        inv = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        f = torch.outer(torch.arange(c["max_seq"], dtype=torch.float64), inv)
        emb = torch.cat((f, f), -1)
        self.register_buffer("cos", emb.cos().float())
        self.register_buffer("sin", emb.sin().float())
        self.register_buffer("mask", torch.triu(torch.full((c["max_seq"],) * 2, -1e9), 1))

    def forward(self, ids):
        t = ids.shape[1]
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, self.cos[:t], self.sin[:t], self.mask[:t, :t])
        return self.lm_head(self.norm(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, choices=["lenet5", "resnet20", "llama-tiny"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seq", type=int, default=128, help="llama: tokens per sequence")
    ap.add_argument("--llama", default="dim=128,layers=4,heads=4,kv_heads=2,ffn=352",
                    help="llama config overrides KEY=V,...")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.model == "llama-tiny":
        c = dict(vocab=256, dim=256, layers=8, heads=8, kv_heads=4, ffn=688, max_seq=a.seq)
        for kv in filter(None, a.llama.split(",")):
            k, v = kv.split("=")
            c[k] = int(v)
        c["max_seq"] = max(c["max_seq"], a.seq)
        model = Llama(c)
        xs = torch.randint(0, 256, (a.batch, a.seq))
        ys = torch.randint(0, 256, (a.batch, a.seq))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    else:
        model = LeNet5() if a.model == "lenet5" else ResNet20()
        xs = torch.rand(a.batch, 1, 28, 28)
        ys = torch.randint(0, 10, (a.batch,))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    t0 = None
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            t0 = time.perf_counter()
            c0 = time.process_time()
        out = model(xs)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), ys.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # gstick's trainer reads the loss every step too
    dt = time.perf_counter() - t0
    dc = time.process_time() - c0
    print(json.dumps({"model": a.model, "threads": a.threads, "batch": a.batch, "steps": a.steps,
                      "seconds": dt, "samples_per_s": a.batch * a.steps / dt,
                      "cpu_seconds": dc, "samples_per_cpu_s": a.batch * a.steps / dc}))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# Generates the ONNX fixture models in tests/data/models/ with torch.onnx.export (Debian torch 1.13,
# onnx 1.12). Run: /usr/bin/python3 tests/data/gen_models.py [OUT_DIR]
# Every model is small (< 1 MB), seeded, exported in eval mode, and checked with onnx.checker.
import os
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


class BasicBlock(nn.Module):
    """ResNet basic block: conv-bn-relu-conv-bn + (projected) shortcut, relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class SmallResNet(nn.Module):
    """A 2-stage ResNet for 1x28x28 inputs; a trailing BN on the pooled features cannot be fused
    into a conv, so BatchNormalization survives export even with constant folding."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.pool = nn.MaxPool2d(2)
        self.bn_feat = nn.BatchNorm1d(16 * 7 * 7)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = self.pool(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.bn_feat(torch.flatten(x, 1)))


class MobileBlock(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand (ReLU6) -> 3x3 depthwise (HardSwish) -> 1x1 project."""

    def __init__(self, c=8, expand=4):
        super().__init__()
        h = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.Hardswish())
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 5))

    def forward(self, x):
        return self.head(x + self.project(self.dw(self.expand(x))))


class EncoderBlock(nn.Module):
    """Pre-LN transformer encoder block with explicit attention (MatMul/Softmax/Reshape/Transpose)
    and an exact (erf) GELU MLP."""

    def __init__(self, d=32, heads=4, ff=64):
        super().__init__()
        self.d, self.h = d, heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ff)
        self.fc2 = nn.Linear(ff, d)

    def forward(self, x):  # x: [B, T, d]
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        heads = lambda z: z.reshape(b, t, self.h, d // self.h).transpose(1, 2)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)
        att = torch.softmax(q @ k.transpose(-2, -1) / (d // self.h) ** 0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class UNetBlock(nn.Module):
    """Encoder-decoder with MaxPool down, Resize (nearest and bilinear) up and skip Concat."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.dec1 = nn.Sequential(nn.Conv2d(24, 8, 3, padding=1), nn.ReLU())
        self.out = nn.Conv2d(11, 2, 1)

    def forward(self, x):  # x: [B, 3, 16, 16]
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        up = F.interpolate(e2, scale_factor=2.0, mode="nearest")
        d1 = self.dec1(torch.cat([up, e1], dim=1))
        small = F.interpolate(F.avg_pool2d(d1, 2), scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.out(torch.cat([small, x], dim=1))


def randomize_bn(model, gen):
    """Non-trivial BN statistics so the BN math is actually exercised."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def export(name, model, example, opset, dynamic_batch=True, input_name="input", output_name="output"):
    model.eval()
    path = os.path.join(OUT, f"{name}.onnx")
    axes = {input_name: {0: "N"}, output_name: {0: "N"}} if dynamic_batch else None
    with torch.no_grad():
        torch.onnx.export(model, example, path, opset_version=opset, input_names=[input_name],
                          output_names=[output_name], dynamic_axes=axes, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = sorted({n.op_type for n in m.graph.node})
    size = os.path.getsize(path)
    assert size < 1 << 20, f"{path} is {size} bytes (fixtures must stay < 1 MB)"
    print(f"{path}: opset {opset}, {size} bytes, ops: {' '.join(ops)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    resnet = SmallResNet()
    randomize_bn(resnet, gen)
    x = torch.randn(1, 1, 28, 28, generator=gen)
    export("resnet_bn_op9", resnet, x, 9)
    export("resnet_bn_op13", resnet, x, 13)

    mobile = MobileBlock()
    randomize_bn(mobile, gen)
    x = torch.randn(1, 8, 16, 16, generator=gen)
    export("mobilenet_block_op9", mobile, x, 9)  # Clip min/max as attributes
    export("mobilenet_block_op11", mobile, x, 11)  # Clip min/max as inputs

    enc = EncoderBlock()
    x = torch.randn(1, 10, 32, generator=gen)
    # Fixed batch and sequence length: the block's reshapes are traced with concrete sizes.
    export("transformer_block_op12", enc, x, 12, dynamic_batch=False)  # Split attr, legacy Softmax
    export("transformer_block_op14", enc, x, 14, dynamic_batch=False)
    export("transformer_block_op17", enc, x, 17, dynamic_batch=False)

    unet = UNetBlock()
    x = torch.randn(1, 3, 16, 16, generator=gen)
    export("unet_block_op9", unet, x, 9)  # Upsample (the importer rewrites it to Resize)
    export("unet_block_op11", unet, x, 11)


if __name__ == "__main__":
    main()

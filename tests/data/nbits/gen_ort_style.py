#!/usr/bin/python3
"""Writes ort_style.onnx (+ x.npy, expected.npy): a MatMulNBits model laid out the way ONNX
Runtime's MatMulNBitsQuantizer writes it (1-D scales [N*n_blocks], 1-D packed zero points
[N*ceil(n_blocks/2)], initializer names W_Q4 / W_scales / W_zero_points, accuracy_level=1),
chained with an 8-bit symmetric MatMulNBits with a bias input. Packing and the expected output are
computed here with numpy only (independent of gstick's packing code).
Run with /usr/bin/python3 (numpy + onnx): python3 tests/data/nbits/gen_ort_style.py"""
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(1234)
here = os.path.dirname(os.path.abspath(__file__))


def pack_rows(codes, bits):
    """codes [rows, count] -> [rows, ceil(count*bits/8)] uint8, low bits first."""
    per = 8 // bits
    rows, count = codes.shape
    out = np.zeros((rows, (count * bits + 7) // 8), dtype=np.uint8)
    for i in range(count):
        out[:, i // per] |= (codes[:, i].astype(np.uint8) << ((i % per) * bits)).astype(np.uint8)
    return out


def make_layer(K, N, bits, bs, asym):
    nb = (K + bs - 1) // bs
    q = rng.integers(0, 1 << bits, size=(N, K))
    scales = (rng.random((N, nb)) * 0.05 + 0.01).astype(np.float32)
    zp = rng.integers(0, 1 << bits, size=(N, nb)) if asym else np.full((N, nb), 1 << (bits - 1))
    padded = np.zeros((N, nb * bs), dtype=np.int64)
    padded[:, :K] = q
    B = pack_rows(padded, bits).reshape(N, nb, bs * bits // 8)
    deq = (q - np.repeat(zp, bs, axis=1)[:, :K]) * np.repeat(scales, bs, axis=1)[:, :K]
    return B, scales, (pack_rows(zp, bits) if asym else None), deq.astype(np.float64)



B1, s1, z1, W1 = make_layer(72, 10, 4, 32, True)     # n_blocks = 3 (odd): zero points row-padded
B2, s2, _, W2 = make_layer(10, 6, 8, 16, False)
bias2 = rng.standard_normal(6).astype(np.float32)

inits = [numpy_helper.from_array(B1, "W_Q4"), numpy_helper.from_array(s1.reshape(-1), "W_scales"),
         numpy_helper.from_array(z1.reshape(-1), "W_zero_points"),
         numpy_helper.from_array(B2, "W2_Q8"), numpy_helper.from_array(s2.reshape(-1), "W2_scales"),
         numpy_helper.from_array(bias2, "b2")]
n1 = helper.make_node("MatMulNBits", ["x", "W_Q4", "W_scales", "W_zero_points"], ["h"],
                      name="fc1_Q4", domain="com.microsoft", K=72, N=10, bits=4, block_size=32,
                      accuracy_level=1)
relu = helper.make_node("Relu", ["h"], ["hr"], name="relu")
n2 = helper.make_node("MatMulNBits", ["hr", "W2_Q8", "W2_scales", "", "", "b2"], ["y"],
                      name="fc2_Q8", domain="com.microsoft", K=10, N=6, bits=8, block_size=16)
graph = helper.make_graph(
    [n1, relu, n2], "ort_style",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 72])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("com.microsoft", 1)])
model.ir_version = 8
onnx.save(model, os.path.join(here, "ort_style.onnx"))

x = rng.standard_normal((3, 72)).astype(np.float32)
y = np.maximum(x.astype(np.float64) @ W1.T, 0) @ W2.T + bias2
np.save(os.path.join(here, "x.npy"), x)
np.save(os.path.join(here, "expected.npy"), y.astype(np.float32))
print("wrote", here)

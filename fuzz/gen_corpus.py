#!/usr/bin/python3
"""Generates the fuzz seed corpora: fuzz/corpus/onnx_import/ (small valid ONNX models + a
truncated one), fuzz/corpus/npy/ (numpy-written .npy files) and fuzz/corpus/safetensors/
(safetensors files written byte by byte after the format description). fuzz/corpus/hf_config/
holds hand-written config.json files.

Run with the system python (numpy, onnx 1.12): /usr/bin/python3 fuzz/gen_corpus.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
OUT = os.path.join(CORPUS, "onnx_import")


def save(name, model):
    data = model.SerializeToString()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return data


def add_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "add", [x],
                          [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def legacy_model():
    # Opset 11: Squeeze axes attribute, Softmax 2-D coercion, Clip via inputs, Constant node.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
            np.full((3, 4), 0.5, np.float32))),
        helper.make_node("Squeeze", ["x"], ["s"], axes=[0]),
        helper.make_node("Mul", ["s", "c"], ["m"]),
        helper.make_node("Softmax", ["m"], ["y"], axis=0),
    ]
    g = helper.make_graph(nodes, "legacy", [x], [y],
                          value_info=[helper.make_tensor_value_info("s", TensorProto.FLOAT, [3, 4])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])


def upsample_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])
    sc = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    g = helper.make_graph([helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")],
                          "up", [x], [y], [sc])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)])


def typed_fields_model():
    # Initializers through the typed fields (not raw_data) and attributes of every kind.
    x = helper.make_tensor_value_info("x", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [2])
    i64 = helper.make_tensor("k", TensorProto.INT64, [2], [3, -4])
    f16 = helper.make_tensor("h", TensorProto.FLOAT16, [2], np.array([1.5, -2], np.float16).view(
        np.uint16).astype(np.int32).tolist())
    b = helper.make_tensor("b", TensorProto.BOOL, [3], [1, 0, 1])
    i8 = helper.make_tensor("i8", TensorProto.INT8, [2], [-7, 7])
    d = helper.make_tensor("d", TensorProto.DOUBLE, [1], [2.25])
    custom = helper.make_node("Frob", ["x", "h"], ["z"], domain="gs", name="frob", alpha=0.5,
                              count=3, label="hi", floats=[1.0, 2.0], ints=[1, 2],
                              strings=["a", "b"],
                              t=numpy_helper.from_array(np.ones((2,), np.int32)))
    nodes = [custom, helper.make_node("Add", ["x", "k"], ["y"])]
    g = helper.make_graph(nodes, "typed", [x], [y], [i64, f16, b, i8, d])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                               helper.make_opsetid("gs", 1)])


def external_model():
    # External data cannot be resolved from bytes: exercises the refusal path.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "16")):
        e = w.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("Sub", ["x", "w"], ["y"])], "ext", [x], [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def main():
    os.makedirs(OUT, exist_ok=True)
    data = save("add_opset17.onnx", add_model())
    save("legacy_opset11.onnx", legacy_model())
    save("upsample_opset9.onnx", upsample_model())
    save("typed_fields_opset13.onnx", typed_fields_model())
    save("external_data.onnx", external_model())
    with open(os.path.join(OUT, "add_truncated.onnx"), "wb") as f:
        f.write(data[: len(data) // 2])

    npy = os.path.join(CORPUS, "npy")
    os.makedirs(npy, exist_ok=True)
    np.save(os.path.join(npy, "f32_2x3.npy"), np.arange(6, dtype=np.float32).reshape(2, 3))
    np.save(os.path.join(npy, "i64_fortran.npy"), np.asfortranarray(np.arange(6).reshape(2, 3)))
    np.save(os.path.join(npy, "f8_bigendian.npy"), np.array([1.5, -2.0], dtype=">f8"))
    np.save(os.path.join(npy, "bool_scalar.npy"), np.array(True))
    np.save(os.path.join(npy, "f16_empty.npy"), np.zeros((0, 4), dtype=np.float16))

    st = os.path.join(CORPUS, "safetensors")
    os.makedirs(st, exist_ok=True)
    write_safetensors(os.path.join(st, "f32_i64_meta.safetensors"),
                      {"w": np.arange(6, dtype=np.float32).reshape(2, 3),
                       "ids": np.array([3, -1], dtype=np.int64)}, {"format": "pt"})
    write_safetensors(os.path.join(st, "f16_u8_bool_empty.safetensors"),
                      {"h": np.array([1.5, -2.0], dtype=np.float16),
                       "b": np.array([1, 0, 1], dtype=np.uint8),
                       "m": np.array([True, False]), "e": np.zeros((0, 3), dtype=np.float32)}, None)


def write_safetensors(path, tensors, metadata):
    """u64 LE header length, JSON header (space-padded to 8 bytes), contiguous LE data."""
    import json
    import struct
    names = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.float16): "F16",
             np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for k, a in sorted(tensors.items(), key=lambda kv: -kv[1].dtype.itemsize):
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": names[a.dtype], "shape": list(a.shape),
                     "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


if __name__ == "__main__":
    main()

// ONNX schemas for the com.microsoft contrib ops gstick exports (MatMulNBits), registered into
// libonnx's schema registry so the exporter's shape inference propagates through them (graph
// outputs downstream of a contrib node get their rank) and the checker validates their form.
#include <onnx/defs/schema.h>
#include <onnx/defs/shape_inference.h>

#include <mutex>

namespace gs {

namespace {

onnx::OpSchema matMulNBitsSchema() {
  using onnx::AttributeProto;
  using onnx::OpSchema;
  OpSchema s;
  s.SetName("MatMulNBits")
      .SetDomain("com.microsoft")
      .SinceVersion(1)
      .SetDoc("ONNX Runtime's MatMulNBits: Y = A @ dequant(B)^T (+ bias), B block-quantized along "
              "K to `bits` bits (layout: gstick src/quant/int4_pack.h).")
      .Attr("K", "Input feature dimension.", AttributeProto::INT)
      .Attr("N", "Output feature dimension.", AttributeProto::INT)
      .Attr("bits", "Bit width of the codes (2, 4, 8).", AttributeProto::INT, static_cast<int64_t>(4))
      .Attr("block_size", "Block size along K (power of two >= 16).", AttributeProto::INT)
      .Attr("accuracy_level", "Minimum accuracy level of A.", AttributeProto::INT,
            static_cast<int64_t>(0))
      .Attr("weight_prepacked", "EP-specific prepacked B (0: not prepacked).", AttributeProto::INT,
            static_cast<int64_t>(0))
      .Input(0, "A", "Input, not quantized.", "T1")
      .Input(1, "B", "Packed codes [N, n_blocks, blob_size].", "T2")
      .Input(2, "scales", "Per-block scales.", "T1")
      .Input(3, "zero_points", "Per-block zero points.", "T3", OpSchema::Optional)
      .Input(4, "g_idx", "Group index per K element (deprecated).", "T4", OpSchema::Optional)
      .Input(5, "bias", "Bias [N].", "T1", OpSchema::Optional)
      .Output(0, "Y", "Output, shape A[..., :-1] + [N].", "T1")
      .TypeConstraint("T1", {"tensor(float)", "tensor(float16)", "tensor(bfloat16)"}, "Floats.")
      .TypeConstraint("T2", {"tensor(uint8)"}, "Packed codes.")
      .TypeConstraint("T3", {"tensor(uint8)", "tensor(float)", "tensor(float16)", "tensor(bfloat16)"},
                      "Packed uint8 or float zero points.")
      .TypeConstraint("T4", {"tensor(int32)"}, "Group indices.")
      .TypeAndShapeInferenceFunction([](onnx::InferenceContext& ctx) {
        onnx::propagateElemTypeFromInputToOutput(ctx, 0, 0);
        if (!onnx::hasInputShape(ctx, 0)) return;
        onnx::TensorShapeProto shape = onnx::getInputShape(ctx, 0);
        if (shape.dim_size() == 0) return;
        const onnx::AttributeProto* n = ctx.getAttribute("N");
        auto* last = shape.mutable_dim(shape.dim_size() - 1);
        last->Clear();
        if (n) last->set_dim_value(n->i());
        onnx::updateOutputShape(ctx, 0, shape);
      });
  return s;
}

}  // namespace

/// Registers the contrib schemas once (idempotent; leaves schemas someone else registered alone).
void registerOnnxContribSchemas() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& ranges = onnx::OpSchemaRegistry::DomainToVersionRange::Instance();
    if (!ranges.Map().count("com.microsoft")) ranges.AddDomainToVersion("com.microsoft", 1, 1);
    if (!onnx::OpSchemaRegistry::Schema("MatMulNBits", 1, "com.microsoft"))
      onnx::RegisterSchema(matMulNBitsSchema());
  });
}

}  // namespace gs

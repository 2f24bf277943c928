// Matrix-product ops: MatMul, Gemm, Einsum, Det and the integer forms MatMulInteger, QLinearMatMul.
#include <ATen/ATen.h>

#include <cmath>

#include "ops/kernel_util.h"
#include "ops/quant_util.h"
#include "ops/registry.h"

namespace gs {
namespace {

/// ATen 1.13 has no CPU half-precision GEMM: compute in float and round the result back.
at::Tensor upcast(const at::Tensor& t) { return t.scalar_type() == at::kHalf ? t.to(at::kFloat) : t; }

Kernel matmulKernel(const Node&) {
  return [](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    const at::Tensor &a = in[0], &b = in[1];
    if (a.scalar_type() == at::kHalf || b.scalar_type() == at::kHalf) {
      out[0] = at::matmul(upcast(a), upcast(b)).to(a.scalar_type());
      return;
    }
    // at::matmul implements numpy semantics (1-D promotion, batch broadcasting) and folds
    // [..., K] x [K, N] into one GEMM without copies when the left operand is contiguous.
    out[0] = at::matmul(a, b);
  };
}

/// Gemm: Y = alpha * A' * B' + beta * C. Transposes are views taken at run time; BLAS consumes
/// them through its trans flags, so a transB weight (the usual Linear export) costs no copy and
/// gradients still reach the parameter in train mode.
Kernel gemmKernel(const Node& node) {
  float alpha = node.attrFloat("alpha", 1.0f);
  float beta = node.attrFloat("beta", 1.0f);
  bool ta = node.attrInt("transA", 0) != 0;
  bool tb = node.attrInt("transB", 0) != 0;
  const Node* np = &node;
  return [=](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    GS_CHECK(in[0].dim() == 2 && in[1].dim() == 2, np->describe(), ": A and B must be 2-D, got ranks ",
             in[0].dim(), " and ", in[1].dim());
    at::ScalarType st = in[0].scalar_type();
    bool integral = !at::isFloatingType(st);
    // Integer Gemm with fractional alpha/beta: compute in double, truncate back.
    bool via_double = integral && (alpha != std::floor(alpha) || beta != std::floor(beta));
    auto prep = [&](const at::Tensor& t) { return via_double ? t.to(at::kDouble) : upcast(t); };
    at::Tensor a = prep(in[0]), b = prep(in[1]);
    if (ta) a = a.t();
    if (tb) b = b.t();
    GS_CHECK(a.size(1) == b.size(0), np->describe(), ": inner dimensions differ: A' is [", a.size(0),
             ",", a.size(1), "], B' is [", b.size(0), ",", b.size(1), "]");
    at::Scalar sa = integral && !via_double ? at::Scalar(static_cast<int64_t>(alpha)) : at::Scalar(alpha);
    at::Scalar sb = integral && !via_double ? at::Scalar(static_cast<int64_t>(beta)) : at::Scalar(beta);
    at::Tensor y;
    if (in.size() > 2 && in[2].defined() && beta != 0.0f) {
      at::Tensor c = prep(in[2]);
      y = at::addmm(c, a, b, sb, sa);  // addmm broadcasts C to [M, N]
    } else {
      y = at::mm(a, b);
      if (alpha != 1.0f) y = at::mul(y, sa);
    }
    out[0] = y.scalar_type() == st ? y : y.to(st);
  };
}

Kernel einsumKernel(const Node& node) {
  std::string eq;
  for (char c : node.attr("equation").s())
    if (c != ' ') eq.push_back(c);  // ONNX allows spaces; ATen's parser does not everywhere
  return [eq](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    bool half = false;
    for (const auto& t : in) half = half || t.scalar_type() == at::kHalf;
    if (!half) {
      out[0] = at::einsum(eq, in);
      return;
    }
    std::vector<at::Tensor> f;
    for (const auto& t : in) f.push_back(upcast(t));
    out[0] = at::einsum(eq, f).to(at::kHalf);
  };
}

Kernel detKernel(const Node&) {
  return [](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    out[0] = in[0].scalar_type() == at::kHalf ? at::linalg_det(upcast(in[0])).to(at::kHalf)
                                              : at::linalg_det(in[0]);
  };
}

/// (A - a_zero_point) as float type `ct`; a 1-D zero point is per row of A ([M] -> [M, 1]).
at::Tensor shiftRows(const at::Tensor& a, const at::Tensor& zp, at::ScalarType ct) {
  at::Tensor af = a.to(ct);
  if (!zp.defined()) return af;
  at::Tensor z = zp.to(ct);
  if (z.dim() == 1 && a.dim() >= 2) z = z.unsqueeze(-1);
  return at::sub(af, z);
}

/// (B - b_zero_point) as float type `ct`; a 1-D zero point is per column of B and broadcasts.
at::Tensor shiftCols(const at::Tensor& b, const at::Tensor& zp, at::ScalarType ct) {
  at::Tensor bf = b.to(ct);
  return zp.defined() ? at::sub(bf, zp.to(ct)) : bf;
}

bool is8bit(const at::Tensor& t) { return t.scalar_type() == at::kByte || t.scalar_type() == at::kChar; }

/// Inner size K of a numpy matmul's right operand.
int64_t innerOfB(const at::Tensor& b) { return b.dim() >= 2 ? b.size(-2) : b.size(0); }

/// Shared by MatMulInteger and QLinearMatMul: the exact integer product (A - za)(B - zb) held in a
/// float tensor. A constant B (parameter B and zero point) is shifted and converted once.
struct IntMatmul {
  at::Tensor b_pre;  // precomputed (B - zb) in exactAccumType(K), or undefined
  const Node* node = nullptr;

  IntMatmul(const Node& n, int b_idx, int bzp_idx) : node(&n) {
    Value* bv = n.input(b_idx);
    Value* zv = n.input(bzp_idx);
    if (bv && bv->isParam() && (!zv || zv->isParam()) && is8bit(bv->data()) && bv->data().dim() > 0) {
      at::Tensor b = bv->data();
      b_pre = shiftCols(b, zv ? zv->data() : at::Tensor(), exactAccumType(innerOfB(b)));
    }
  }

  at::Tensor operator()(const at::Tensor& a, const at::Tensor& za, const at::Tensor& b,
                        const at::Tensor& zb) const {
    GS_CHECK(is8bit(a) && is8bit(b), node->describe(), ": A and B must be uint8 or int8, got ",
             a.scalar_type(), " and ", b.scalar_type());
    GS_CHECK(a.dim() >= 1 && b.dim() >= 1, node->describe(), ": A and B must have rank >= 1");
    at::ScalarType ct = exactAccumType(innerOfB(b));
    at::Tensor bf = b_pre.defined() ? b_pre : shiftCols(b, zb, ct);
    return at::matmul(shiftRows(a, za, ct), bf);
  }
};

at::Tensor opt(const std::vector<at::Tensor>& in, size_t i) { return i < in.size() ? in[i] : at::Tensor(); }

/// MatMulInteger: int32 (A - a_zero_point) x (B - b_zero_point), exact.
Kernel matmulIntegerKernel(const Node& node) {
  IntMatmul mm(node, 1, 3);
  return [mm](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    out[0] = mm(in[0], opt(in, 2), in[1], opt(in, 3)).to(at::kInt);
  };
}

/// QLinearMatMul: y = saturate(round(acc * (a_scale * b_scale / y_scale)) + y_zero_point) with
/// acc the exact integer product; the multiplier is formed in float32 as ONNX Runtime does.
Kernel qlinearMatmulKernel(const Node& node) {
  IntMatmul mm(node, 3, 5);
  const Node* np = &node;
  return [mm, np](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    const at::Tensor &a = in[0], &sa = in[1], &za = in[2], &b = in[3], &sb = in[4], &zb = in[5],
                     &sy = in[6], &zy = in[7];
    GS_CHECK(is8bit(zy), np->describe(), ": y_zero_point must be uint8 or int8");
    at::Tensor acc = mm(a, za, b, zb).to(at::kFloat);
    at::Tensor sa_f = sa.to(at::kFloat);
    if (sa_f.dim() == 1 && a.dim() >= 2) sa_f = sa_f.unsqueeze(-1);
    at::Tensor mult = at::div(at::mul(sa_f, sb.to(at::kFloat)), sy.to(at::kFloat));
    out[0] = quantizeRounded(at::mul(acc, mult), zy, zy.scalar_type());
  };
}

}  // namespace

void registerMatmulOps(OpRegistry& r) {
  r.add(OpDef("MatMul").inputs(2).kernel(matmulKernel));
  r.add(OpDef("Gemm").inputs(2, 3).attr("alpha", AttrKind::Float).attr("beta", AttrKind::Float)
            .attr("transA", AttrKind::Int).attr("transB", AttrKind::Int).kernel(gemmKernel));
  r.add(OpDef("Einsum").inputs(1, -1).attr("equation", AttrKind::String, true).kernel(einsumKernel));
  r.add(OpDef("Det").inputs(1).kernel(detKernel));
  r.add(OpDef("MatMulInteger").inputs(2, 4).kernel(matmulIntegerKernel));
  r.add(OpDef("QLinearMatMul").inputs(8).kernel(qlinearMatmulKernel));
}

}  // namespace gs

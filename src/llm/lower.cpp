// PTQ lowering to MatMulNBits / standard dequantization / int8 DequantizeLinear (see lower.h).
#include "llm/lower.h"

#include <ATen/ATen.h>

#include "llm/decoder.h"
#include "quant/int4_pack.h"
#include "support/error.h"

namespace gs::llm {

namespace {

bool isPow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

Value* param(Graph& g, const std::string& base, at::Tensor t) {
  return g.addParam(g.uniqueValueName(base), std::move(t), false);
}

Value* node1(Graph& g, const std::string& op, std::vector<Value*> in, const std::string& name,
             Node* before, DType dt, std::map<std::string, Attribute> attrs = {}) {
  Node* n = g.addNode(op, in, 1, g.uniqueNodeName(name), std::move(attrs), before);
  n->output(0)->setDType(dt);
  return n->output(0);
}

/// Removes the old weight parameter (and its Transpose) once nothing uses them.
void dropWeight(Graph& g, Value* w) {
  if (!w->uses().empty()) return;
  g.removeParam(w);
}

}  // namespace

LoweringStats lowerQuantizedLinears(Graph& g, const std::map<std::string, QuantizedWeight>& weights,
                                    bool w8a8) {
  LoweringStats st;
  for (const LinearRef& l : findLinears(g)) {
    auto it = weights.find(l.name());
    if (it == weights.end()) continue;
    const QuantizedWeight& qw = it->second;
    const int64_t N = l.outFeatures(), K = l.inFeatures();
    st.bytes_before += l.weight->data().numel() * l.weight->data().element_size();
    Node* mm = l.node;
    Value* wv = l.weight;
    Node* tr = l.out_in && mm->opType() == "MatMul" ? mm->input(1)->producer() : nullptr;
    // The value carrying W in its stored layout, to be replaced by a dequantized equivalent.
    const std::string base = l.name();
    const int64_t gcols = qw.spec.groupCols(K), ng = qw.spec.numGroups(K);
    const bool contiguous = at::equal(qw.g_idx, at::div(at::arange(K, at::kLong), gcols, "floor"));

    if (w8a8) {
      GS_CHECK(qw.spec.bits == 8 && qw.spec.symmetric && qw.spec.group_size <= 0,
               "W8A8 lowering of '", base, "' needs int8 symmetric per-channel/tensor weights");
      at::Tensor q8 = (qw.q.to(at::kShort) - 128).to(at::kChar);  // [N, K]
      at::Tensor sc = qw.scale.select(1, 0).contiguous();          // [N]
      const bool stored_oi = l.out_in;
      Value* qv = param(g, base + ".weight_int8", stored_oi ? q8 : q8.t().contiguous());
      Value* sv = param(g, base + ".weight_scale", sc);
      Value* zv = param(g, base + ".weight_zero_point", at::zeros({N}, at::kChar));
      Node* first = tr ? tr : mm;
      Value* dq = node1(g, "DequantizeLinear", {qv, sv, zv}, base + ".weight_dequantize", first,
                        DType::Float32, {{"axis", int64_t{stored_oi ? 0 : 1}}});
      (tr ? tr : mm)->setInput(tr ? 0 : 1, dq);
      dropWeight(g, wv);
      st.qdq_int8++;
      st.bytes_after += N * K + N * 5;
      continue;
    }
    const int bits = qw.spec.bits;
    // Per-channel scales are repeated over kPerChannelBlock-column blocks (ONNX Runtime rejects
    // blocks above 256 columns, so one block spanning K would not run there for K > 256).
    const bool per_channel = qw.spec.group_size == 0;
    const int64_t block = per_channel ? nbits::kPerChannelBlock : qw.spec.group_size;
    const bool nbits_ok = tr && (bits == 2 || bits == 4 || bits == 8) && contiguous &&
                          (qw.spec.group_size <= 0 || (isPow2(block) && block >= 16)) &&
                          qw.spec.group_size >= 0;
    if (nbits_ok) {
      nbits::NBitsWeight nw;
      nw.K = K;
      nw.N = N;
      nw.bits = bits;
      nw.block_size = block;
      nw.B = nbits::packCodes(qw.q, bits, block);
      at::Tensor sc = qw.scale, zp = qw.zero;
      if (per_channel) {
        sc = nbits::repeatPerChannel(sc, K, block);
        zp = nbits::repeatPerChannel(zp, K, block);
      }
      nw.scales = sc.contiguous();
      nw.zero_points = nbits::packZeroPoints(zp.to(at::kByte), bits);
      g.renameNode(mm, g.uniqueNodeName(base + ".float"));
      Node* nn = nbits::addMatMulNBits(g, mm->input(0), nw, nullptr, base, mm);
      nn->output(0)->setShape(mm->output(0)->shape());
      g.replaceAllUsesWith(mm->output(0), nn->output(0));
      g.eraseNode(mm);
      g.eraseNode(tr);
      dropWeight(g, wv);
      st.nbits++;
      st.bytes_after += nw.bytes();
      continue;
    }
    // Standard ops: W[n, k] = (q[n, k] - zero[n, g_idx[k]]) * scale[n, g_idx[k]].
    Node* first = tr ? tr : mm;
    Value* qv = param(g, base + ".qweight", qw.q.contiguous());
    Value* gi = param(g, base + ".g_idx", qw.g_idx.contiguous());
    Value* zv = param(g, base + ".qzeros", qw.zero.contiguous());
    Value* sv = param(g, base + ".scales", qw.scale.contiguous());
    Value* qf = node1(g, "Cast", {qv}, base + ".dequant.cast", first, DType::Float32,
                      {{"to", int64_t{1}}});
    Value* zk = node1(g, "Gather", {zv, gi}, base + ".dequant.zero", first, DType::Float32,
                      {{"axis", int64_t{1}}});
    Value* sk = node1(g, "Gather", {sv, gi}, base + ".dequant.scale", first, DType::Float32,
                      {{"axis", int64_t{1}}});
    Value* w = node1(g, "Mul", {node1(g, "Sub", {qf, zk}, base + ".dequant.sub", first, DType::Float32), sk},
                     base + ".dequant.mul", first, DType::Float32);  // [N, K]
    if (tr) {
      tr->setInput(0, w);
    } else {
      Value* wt = node1(g, "Transpose", {w}, base + ".dequant.transpose", first, DType::Float32,
                        {{"perm", std::vector<int64_t>{1, 0}}});
      mm->setInput(1, l.out_in ? w : wt);
      if (l.out_in) g.eraseNode(wt->producer());
    }
    dropWeight(g, wv);
    st.dequant++;
    st.bytes_after += N * K + 8 * K + 8 * N * ng;
  }
  return st;
}

}  // namespace gs::llm

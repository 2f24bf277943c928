// Llama-style decoder LM builder (RMSNorm, rotary embeddings, GQA, SwiGLU) with Hugging Face names.
#include <cmath>

#include "models/layers.h"
#include "models/zoo.h"
#include "support/error.h"

namespace gs::models {

namespace {

const at::TensorOptions kF32 = at::TensorOptions().dtype(at::kFloat);

struct Llama {
  LayerBuilder& L;
  const LlamaConfig& c;
  Value* cos = nullptr;   // [T, head_dim] sliced from model.rotary_emb.cos
  Value* sin = nullptr;
  Value* mask = nullptr;  // [T, T] additive causal mask
  Value* half_split = nullptr;

  GraphBuilder& b() { return L.b(); }

  /// HF LlamaRMSNorm `<name>`: x / sqrt(mean(x^2, -1) + eps) * weight (weight starts at 1).
  Value* rmsNorm(Value* x, const std::string& name) {
    Value* w = b().param(name + ".weight", at::ones({c.dim}, kF32));
    auto s = b().scope(name);
    Value* sq = b().op1("Pow", {x, L.scalar("exponent", 2.0)}, {}, "pow");
    Value* ms = b().op1("ReduceMean", {sq},
                        {{"axes", std::vector<int64_t>{-1}}, {"keepdims", int64_t{1}}}, "mean");
    Value* rms = b().op1("Sqrt", {b().add(ms, L.scalar("eps", c.rms_eps), "add_eps")}, {}, "sqrt");
    return b().mul(b().op1("Div", {x, rms}, {}, "div"), w, "mul");
  }

  /// HF apply_rotary_pos_emb on [N, h, T, hd]: x * cos + rotate_half(x) * sin, where
  /// rotate_half(x) = concat(-x[..., hd/2:], x[..., :hd/2]).
  Value* rope(Value* x, const std::string& name) {
    auto s = b().scope(name);
    Node* sp = b().op("Split", {x, half_split}, {{"axis", int64_t{-1}}}, "split", 2);
    for (Value* o : sp->outputs()) o->setDType(DType::Float32);
    Value* neg = b().op1("Neg", {sp->output(1)}, {}, "neg");
    Value* rot = b().op1("Concat", {neg, sp->output(0)}, {{"axis", int64_t{-1}}}, "rotate_half");
    return b().add(b().mul(x, cos, "mul_cos"), b().mul(rot, sin, "mul_sin"), "add");
  }

  /// Projection `<name>` [N,T,D] -> [N, heads, T, hd].
  Value* heads(Value* h, int64_t n, const std::string& name) {
    Value* z = L.dense(h, c.dim, n * c.headDim(), false, name, 0.02);
    z = b().reshape(z, {0, 0, n, c.headDim()}, name + ".reshape");
    return b().transpose(z, {0, 2, 1, 3}, name + ".transpose");
  }

  /// HF repeat_kv: [N, kv, T, hd] -> [N, kv * rep, T, hd], kv head j serving query heads
  /// j*rep .. j*rep+rep-1.
  Value* repeatKv(Value* x, const std::string& name) {
    const int64_t rep = c.heads / c.kv_heads;
    if (rep == 1) return x;
    auto s = b().scope(name);
    Value* u = b().op1("Unsqueeze", {x, L.ints("axes", {2})}, {}, "unsqueeze");
    Value* e = b().op1("Expand", {u, L.ints("shape", {1, 1, rep, 1, 1})}, {}, "expand");
    return b().reshape(e, {0, c.heads, -1, c.headDim()}, "reshape");
  }

  Value* attention(Value* h) {
    auto s = b().scope("self_attn");
    Value* q = rope(heads(h, c.heads, "q_proj"), "q_rotary");
    Value* k = rope(heads(h, c.kv_heads, "k_proj"), "k_rotary");
    Value* v = heads(h, c.kv_heads, "v_proj");
    k = repeatKv(k, "k_repeat");
    v = repeatKv(v, "v_repeat");
    Value* y = L.attention(q, k, v, mask, c.headDim());
    y = b().transpose(y, {0, 2, 1, 3}, "merge.transpose");
    y = b().reshape(y, {0, 0, c.heads * c.headDim()}, "merge.reshape");
    return L.dense(y, c.heads * c.headDim(), c.dim, false, "o_proj", 0.02);
  }

  Value* mlp(Value* h) {
    auto s = b().scope("mlp");
    Value* gate = L.dense(h, c.dim, c.ffn, false, "gate_proj", 0.02);
    Value* up = L.dense(h, c.dim, c.ffn, false, "up_proj", 0.02);
    // SiLU(g) = g * sigmoid(g).
    Value* act = b().mul(gate, b().op1("Sigmoid", {gate}, {}, "act_fn.sigmoid"), "act_fn");
    return L.dense(b().mul(act, up, "mul"), c.ffn, c.dim, false, "down_proj", 0.02);
  }
};

/// HF LlamaRotaryEmbedding tables [max_seq, hd]: angle(t, i) = t * theta^(-2i/hd), duplicated
/// over both halves (cat(freqs, freqs)).
std::pair<at::Tensor, at::Tensor> ropeTables(const LlamaConfig& c) {
  const int64_t hd = c.headDim();
  at::Tensor i = at::arange(0, hd, 2, at::TensorOptions().dtype(at::kDouble));
  at::Tensor inv_freq = at::pow(c.rope_theta, -i / static_cast<double>(hd));
  at::Tensor t = at::arange(c.max_seq, at::TensorOptions().dtype(at::kDouble));
  at::Tensor freqs = at::outer(t, inv_freq);
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {at::cos(emb).to(at::kFloat), at::sin(emb).to(at::kFloat)};
}

}  // namespace

void LlamaConfig::validate() const {
  GS_CHECK(vocab > 0 && dim > 0 && layers > 0 && ffn > 0 && max_seq > 0,
           "llama: vocab, dim, layers, ffn and max_seq must be positive");
  GS_CHECK(heads > 0 && kv_heads > 0 && dim % heads == 0 && heads % kv_heads == 0,
           "llama: need dim % heads == 0 and heads % kv_heads == 0 (dim ", dim, ", heads ", heads,
           ", kv_heads ", kv_heads, ")");
  GS_CHECK(headDim() % 2 == 0, "llama: head_dim must be even for rotary embeddings, got ",
           headDim());
  GS_CHECK(rms_eps > 0 && rms_eps < 1 && rope_theta > 1 && rope_theta <= 1e15,
           "llama: rms_eps must be in (0, 1) and rope_theta in (1, 1e15], got ", rms_eps, " and ",
           rope_theta);
  // Beyond these the graph's tables ([max_seq, head_dim] rotary cos / sin) or its node count
  // would not fit in memory; every published Llama is far inside them.
  constexpr int64_t kMaxLayers = 1024, kMaxWidth = int64_t{1} << 20, kMaxSeq = int64_t{1} << 22;
  GS_CHECK(layers <= kMaxLayers && dim <= kMaxWidth && ffn <= kMaxWidth && vocab <= kMaxWidth * 4 &&
               max_seq <= kMaxSeq,
           "llama: layers ", layers, ", dim ", dim, ", ffn ", ffn, ", vocab ", vocab, ", max_seq ",
           max_seq, " out of range (at most ", kMaxLayers, " layers, dim and ffn ", kMaxWidth,
           ", vocab ", kMaxWidth * 4, ", max_seq ", kMaxSeq, ")");
}

int64_t llamaMaxSeq(const Graph& g) {
  const Value* cos = g.findValue("model.rotary_emb.cos");
  return cos && cos->isParam() && cos->data().dim() == 2 ? cos->data().size(0) : 0;
}

std::unique_ptr<Graph> buildLlama(const LlamaConfig& c, uint64_t seed) {
  c.validate();
  auto g = std::make_unique<Graph>();
  g->name = "llama";
  LayerBuilder L(*g, seed);
  L.setPlaceholderInit(c.placeholder_weights);
  GraphBuilder& b = L.b();
  Llama m{L, c};
  Value* ids = b.input("input_ids", DType::Int64, std::vector<Dim>{Dim("N"), Dim("T")});
  Value* x;
  Value* embed;
  {
    auto s = b.scope("model");
    embed = b.param("embed_tokens.weight", L.normal({c.vocab, c.dim}, 0.02));
    x = b.op1("Gather", {embed, ids}, {{"axis", int64_t{0}}}, "embed_tokens");
    // T as a 1-D i64 tensor, used to slice the precomputed tables to the sequence length.
    Value* t = b.op1("Shape", {ids}, {{"start", int64_t{1}}, {"end", int64_t{2}}}, "seq_len");
    auto [cos, sin] = ropeTables(c);
    Value* zero1 = L.ints("slice_zero1", {0});
    Value* axis0 = L.ints("slice_axis0", {0});
    m.cos = b.op1("Slice", {b.param("rotary_emb.cos", cos, false), zero1, t, axis0}, {},
                  "rotary_emb.cos_slice");
    m.sin = b.op1("Slice", {b.param("rotary_emb.sin", sin, false), zero1, t, axis0}, {},
                  "rotary_emb.sin_slice");
    // The additive causal mask [T, T] is generated per run (-1e9 strictly above the diagonal):
    // a stored [max_seq, max_seq] table would take max_seq^2 floats (4 GiB at 32k positions).
    Value* tt = b.op1("Concat", {t, t}, {{"axis", int64_t{0}}}, "causal_mask.shape");
    Value* fill = b.op1("Expand", {b.param("causal_mask_fill", at::full({}, -1e9, kF32), false), tt},
                        {}, "causal_mask.expand");
    m.mask = b.op1("Trilu", {fill, b.param("causal_mask_k", at::full({}, 1, at::kLong), false)},
                   {{"upper", int64_t{1}}}, "causal_mask");
    m.half_split = L.ints("rotary_emb.half_split", {c.headDim() / 2, c.headDim() / 2});
    for (int64_t i = 0; i < c.layers; ++i) {
      auto sl = b.scope("layers." + std::to_string(i));
      x = b.add(x, m.attention(m.rmsNorm(x, "input_layernorm")), "residual1");
      x = b.add(x, m.mlp(m.rmsNorm(x, "post_attention_layernorm")), "residual2");
    }
    x = m.rmsNorm(x, "norm");
  }
  Value* logits = c.tie_embeddings ? L.denseWith(x, embed, "lm_head")
                                   : L.dense(x, c.dim, c.vocab, false, "lm_head", 0.02);
  L.output(logits, "logits", {Dim("N"), Dim("T"), c.vocab});
  return g;
}

}  // namespace gs::models

// Model zoo: closed-form parameter counts, shapes, names, verifier, ATen reference forwards
// (ResNet-20, Llama), Llama causality and GQA equivalence, one LeNet SGD step, registry errors.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ir/verifier.h"
#include "models/zoo.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "test_util.h"

namespace gs {
namespace {

using models::countParams;

at::Tensor P(const Graph& g, const std::string& name) {
  const Value* v = g.findValue(name);
  if (!v || !v->isParam()) throw Error("no parameter '" + name + "'");
  return v->data();
}

/// Images in [0,1] as the classifiers expect.
at::Tensor images(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::rand({n, 1, 28, 28}, gen, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor tokens(int64_t n, int64_t t, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(vocab, {n, t}, gen, at::TensorOptions().dtype(at::kLong));
}

/// Replaces every parameter whose name ends with `suffix` by seeded random data (fresh init makes
/// BN / norms identities, which would hide wiring mistakes from the reference comparisons).
void randomize(Graph& g, const std::string& suffix, double lo, double hi, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (Value* p : g.params()) {
    const std::string& n = p->name();
    if (n.size() >= suffix.size() &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      p->setData(at::rand(p->data().sizes(), gen, at::kFloat) * (hi - lo) + lo);
  }
}

models::LlamaConfig smallLlama(int64_t kv_heads) {
  models::LlamaConfig c;
  c.vocab = 50;
  c.dim = 32;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = kv_heads;
  c.ffn = 48;
  c.max_seq = 24;
  return c;
}

// ------------------------------------------------------------------ parameter counts

TEST(ModelZoo, LeNetParamCountIsClosedForm) {
  auto g = models::buildLeNet5();
  // conv1 6*(1*25)+6, conv2 16*(6*25)+16, fc 400*120+120, 120*84+84, 84*10+10.
  EXPECT_EQ(countParams(*g), 156 + 2416 + 48120 + 10164 + 850);
  EXPECT_EQ(countParams(*g), 61706);
}

TEST(ModelZoo, ResNet20ParamCountIsClosedForm) {
  auto g = models::buildResNet20();
  // 3x3 convs: stem 1*16, 6 x 16*16, 32*16 + 5 x 32*32, 64*32 + 5 x 64*64 (x9); projections
  // 16*32 + 32*64; BN scale+shift over 1+6+6+6 BNs + 2 projection BNs; FC 64*10+10.
  const int64_t convs = 9 * (16 + 6 * 256 + 512 + 5 * 1024 + 2048 + 5 * 4096) + 512 + 2048;
  const int64_t bn_ch = 16 + 6 * 16 + 6 * 32 + 6 * 64 + 32 + 64;
  EXPECT_EQ(countParams(*g), convs + 2 * bn_ch + 650);
  EXPECT_EQ(countParams(*g), 272186);
  // Running statistics are frozen parameters, two per BN channel.
  int64_t frozen_bn = 0;
  for (const Value* p : g->params()) {
    bool stat = p->name().find("running_") != std::string::npos;
    if (stat) {
      EXPECT_FALSE(p->trainable()) << p->name();
      frozen_bn += p->data().numel();
    }
  }
  EXPECT_EQ(frozen_bn, 2 * bn_ch);
}

TEST(ModelZoo, MobileNetV2ParamCountIsClosedForm) {
  auto g = models::buildMobileNetV2();
  // Width 0.5 channels after _make_divisible(c * 0.5, 8): stem 16; blocks
  // (t, cout, n) = (1,8,1) (6,16,2) (6,16,3) (6,32,4) (6,48,3) (6,80,3) (6,160,1); last 1280.
  EXPECT_EQ(models::makeDivisible(32 * 0.5), 16);
  EXPECT_EQ(models::makeDivisible(24 * 0.5), 16);
  EXPECT_EQ(models::makeDivisible(96 * 0.5), 48);
  EXPECT_EQ(models::makeDivisible(1280 * 1.0), 1280);
  int64_t n = 16 * 9 + 2 * 16;  // stem conv + BN
  int64_t cin = 16;
  const int64_t rows[7][3] = {{1, 8, 1}, {6, 16, 2}, {6, 16, 3}, {6, 32, 4},
                              {6, 48, 3}, {6, 80, 3}, {6, 160, 1}};
  for (const auto& r : rows)
    for (int64_t i = 0; i < r[2]; ++i) {
      int64_t hid = cin * r[0], cout = r[1];
      if (r[0] != 1) n += cin * hid + 2 * hid;  // expand 1x1 + BN
      n += hid * 9 + 2 * hid;                   // depthwise 3x3 + BN
      n += hid * cout + 2 * cout;               // project 1x1 + BN
      cin = cout;
    }
  n += 160 * 1280 + 2 * 1280 + 1280 * 10 + 10;
  EXPECT_EQ(countParams(*g), n);
  // Cross-check: the same rules with 3 input channels and 1000 classes give torchvision's
  // published mobilenet_v2(width_mult=0.5) count, 1,968,680.
  EXPECT_EQ(n + 2 * 16 * 9 + (1280 * 1000 + 1000) - (1280 * 10 + 10), 1968680);
}

TEST(ModelZoo, ViTParamCountIsClosedForm) {
  auto g = models::buildViT();
  const int64_t d = 64, f = 256, p = 16;
  const int64_t block = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d;
  EXPECT_EQ(countParams(*g), (49 * d + d) + p * d + 4 * block + 2 * d + (d * 10 + 10));
}

TEST(ModelZoo, LlamaParamCountIsClosedForm) {
  models::LlamaConfig c;
  auto g = models::buildLlama(c);
  const int64_t D = 256, hd = 32, layer = D * 8 * hd + 2 * D * 4 * hd + 8 * hd * D +
                                          3 * D * 688 + 2 * D;
  EXPECT_EQ(countParams(*g), 256 * D + 8 * layer + D + 256 * D);
  EXPECT_EQ(countParams(*g), 5935360);
  c.tie_embeddings = true;
  EXPECT_EQ(countParams(*models::buildLlama(c)), 5935360 - 256 * D);
  // The frozen tables: cos, sin [256, 32]. The causal mask is generated for each length (Trilu
  // of a broadcast -1e9), not stored as a [max_seq, max_seq] table.
  EXPECT_EQ(P(*g, "model.rotary_emb.cos").sizes(), (std::vector<int64_t>{256, 32}));
  EXPECT_EQ(models::llamaMaxSeq(*g), 256);
  const Value* mask = g->findValue("model.causal_mask");
  ASSERT_TRUE(mask && mask->producer());
  EXPECT_EQ(mask->producer()->opType(), "Trilu");
  for (const Value* p : g->params())
    if (!p->trainable()) EXPECT_LT(p->data().numel(), 256 * 256) << p->name();  // no max_seq^2 table
}

// ------------------------------------------------------------------ shapes, verifier, names

TEST(ModelZoo, EveryModelVerifiesAndHasStableNames) {
  for (const auto& info : models::modelZoo()) {
    auto a = info.build(info.defaults, 5);
    auto b = models::buildModel(info.name, {}, 5);
    auto problems = verifyGraph(*a);
    EXPECT_TRUE(problems.empty()) << info.name << ": " << problems.front();
    ASSERT_EQ(a->numNodes(), b->numNodes()) << info.name;
    auto ia = a->nodes().begin();
    for (auto ib = b->nodes().begin(); ib != b->nodes().end(); ++ia, ++ib)
      EXPECT_EQ((*ia)->name(), (*ib)->name()) << info.name;
    ASSERT_EQ(a->params().size(), b->params().size());
    for (size_t i = 0; i < a->params().size(); ++i) {
      EXPECT_EQ(a->params()[i]->name(), b->params()[i]->name());
      EXPECT_TRUE(at::equal(a->params()[i]->data(), b->params()[i]->data()))
          << info.name << " " << a->params()[i]->name() << ": same seed must give same data";
    }
    // Every float parameter that is not a scalar, except BN statistics and rotary tables, is
    // trainable; no trainable integer constants.
    for (const Value* p : a->params())
      if (p->data().dim() >= 1 && p->data().is_floating_point() &&
          p->name().find("running_") == std::string::npos &&
          p->name().find("rotary_emb") == std::string::npos)
        EXPECT_TRUE(p->trainable()) << info.name << " " << p->name();
      else if (!p->data().is_floating_point())
        EXPECT_FALSE(p->trainable()) << info.name << " " << p->name();
    EXPECT_EQ(a->outputs().size(), 1u);
    EXPECT_EQ(a->outputs()[0]->name(), "logits");
  }
  auto other = models::buildModel("lenet5", {}, 6);
  auto same = models::buildLeNet5({}, 5);
  EXPECT_FALSE(at::equal(P(*other, "conv1.weight"), P(*same, "conv1.weight")));
}

TEST(ModelZoo, SpotCheckedNamesAndAttributes) {
  auto le = models::buildLeNet5();
  EXPECT_EQ(le->nodes().front()->name(), "normalize.sub");
  EXPECT_EQ(le->findNode("normalize.div")->opType(), "Div");
  EXPECT_EQ(le->findNode("fc3")->opType(), "Gemm");
  auto rn = models::buildResNet20();
  EXPECT_EQ(rn->findNode("layer2.0.downsample.0")->attrInts("strides"),
            (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(rn->findNode("layer3.2.relu2")->opType(), "Relu");
  EXPECT_EQ(rn->findNode("layer1.0.downsample.0"), nullptr);  // identity shortcut
  EXPECT_NE(rn->findValue("layer3.0.downsample.1.running_var"), nullptr);
  auto mb = models::buildMobileNetV2();
  EXPECT_EQ(mb->findNode("features.1.conv.0.0")->attrInt("group", 1), 16);  // t = 1: depthwise
  EXPECT_EQ(mb->findNode("features.2.conv.1.0")->attrInt("group", 1), 48);  // 8 * 6
  EXPECT_EQ(mb->findNode("features.2.conv.1.2")->opType(), "Clip");
  EXPECT_EQ(mb->findNode("features.0.0")->attrInts("strides"), (std::vector<int64_t>{1, 1}));
  EXPECT_NE(mb->findNode("features.3.add"), nullptr);
  EXPECT_EQ(mb->findNode("features.2.add"), nullptr);  // stride 2
  EXPECT_EQ(mb->findNode("classifier.1")->opType(), "Gemm");
  auto vit = models::buildViT();
  EXPECT_EQ(vit->findNode("blocks.3.mlp.fc2")->opType(), "MatMul");
  EXPECT_EQ(vit->findNode("blocks.0.attn.softmax")->opType(), "Softmax");
  EXPECT_EQ(vit->findNode("patch_embed.proj")->attrInts("strides"), (std::vector<int64_t>{7, 7}));
  auto ll = models::buildLlama();
  EXPECT_EQ(ll->findNode("model.embed_tokens")->opType(), "Gather");
  EXPECT_EQ(ll->findNode("model.layers.0.self_attn.q_proj")->opType(), "MatMul");
  EXPECT_EQ(ll->findNode("model.layers.7.mlp.down_proj")->opType(), "MatMul");
  EXPECT_EQ(ll->findNode("lm_head")->opType(), "MatMul");
  EXPECT_EQ(ll->findNode("model.norm.mul")->opType(), "Mul");
  EXPECT_EQ(P(*ll, "model.layers.0.self_attn.k_proj.weight").sizes(),
            (std::vector<int64_t>{128, 256}));  // HF layout [out, in]
  EXPECT_EQ(P(*ll, "model.layers.7.mlp.down_proj.weight").sizes(),
            (std::vector<int64_t>{256, 688}));
  EXPECT_EQ(P(*ll, "lm_head.weight").sizes(), (std::vector<int64_t>{256, 256}));
  EXPECT_NE(ll->findValue("model.layers.5.post_attention_layernorm.weight"), nullptr);
  // HF init: N(0, 0.02).
  double sd = P(*ll, "model.layers.0.mlp.up_proj.weight").std().item<double>();
  EXPECT_NEAR(sd, 0.02, 0.001);
}

TEST(ModelZoo, ImageClassifierOutputShapesAtTwoBatchSizes) {
  for (const char* name : {"lenet5", "resnet20", "mobilenetv2", "vit-tiny"}) {
    auto g = models::buildModel(name);
    Executor ex(*g);
    for (int64_t n : {1, 5}) {
      auto out = ex.run({images(n, 3)});
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].sizes(), (std::vector<int64_t>{n, 10})) << name;
      EXPECT_TRUE(at::isfinite(out[0]).all().item<bool>()) << name;
    }
  }
}

TEST(ModelZoo, MobileNetV2FinalFeatureMapIs2x2) {
  auto g = models::buildMobileNetV2();
  Executor ex(*g);
  std::vector<int64_t> last;
  ex.setObserver([&](const Node& n, const std::vector<at::Tensor>&,
                     const std::vector<at::Tensor>& out) {
    if (n.name() == "features.18.2") last = out[0].sizes().vec();
  });
  ex.run({images(2, 1)});
  EXPECT_EQ(last, (std::vector<int64_t>{2, 1280, 2, 2}));
}

TEST(ModelZoo, LlamaOutputShapesAtTwoBatchesAndLengths) {
  auto c = smallLlama(2);
  auto g = models::buildLlama(c);
  Executor ex(*g);
  for (int64_t n : {1, 3})
    for (int64_t t : {1, 7, 24}) {
      auto out = ex.run({tokens(n, t, c.vocab, 1)});
      EXPECT_EQ(out[0].sizes(), (std::vector<int64_t>{n, t, c.vocab}));
    }
  auto full = models::buildLlama();
  auto out = Executor(*full).run({tokens(2, 9, 256, 2)});
  EXPECT_EQ(out[0].sizes(), (std::vector<int64_t>{2, 9, 256}));
}

// ------------------------------------------------------------------ ATen references

/// Independent ResNet-20 forward with at::conv2d / at::batch_norm (eval) / at::linear.
at::Tensor resnetReference(const Graph& g, at::Tensor x) {
  auto conv = [&](const at::Tensor& in, const std::string& n, int64_t s, int64_t p) {
    return at::conv2d(in, P(g, n + ".weight"), {}, s, p);
  };
  auto bn = [&](const at::Tensor& in, const std::string& n) {
    return at::batch_norm(in, P(g, n + ".weight"), P(g, n + ".bias"), P(g, n + ".running_mean"),
                          P(g, n + ".running_var"), false, 0.1, 1e-5, false);
  };
  x = (x - 0.2860) / 0.3530;
  x = at::relu(bn(conv(x, "conv1", 1, 1), "bn1"));
  for (int s = 1; s <= 3; ++s)
    for (int b = 0; b < 3; ++b) {
      std::string p = "layer" + std::to_string(s) + "." + std::to_string(b);
      int64_t stride = (b == 0 && s > 1) ? 2 : 1;
      at::Tensor y = at::relu(bn(conv(x, p + ".conv1", stride, 1), p + ".bn1"));
      y = bn(conv(y, p + ".conv2", 1, 1), p + ".bn2");
      at::Tensor sc = stride == 2 ? bn(conv(x, p + ".downsample.0", 2, 0), p + ".downsample.1") : x;
      x = at::relu(y + sc);
    }
  return at::linear(x.mean({2, 3}), P(g, "fc.weight"), P(g, "fc.bias"));
}

TEST(ModelZoo, ResNet20MatchesAtenReference) {
  auto g = models::buildResNet20({}, 11);
  randomize(*g, "running_mean", -0.2, 0.2, 1);
  randomize(*g, "running_var", 0.5, 1.5, 2);
  randomize(*g, "bn1.weight", 0.5, 1.5, 3);
  randomize(*g, "bn2.bias", -0.2, 0.2, 4);
  at::Tensor x = images(4, 9);
  auto out = Executor(*g).run({x});
  at::Tensor ref = resnetReference(*g, x);
  EXPECT_LE(test::maxRelDiff(out[0], ref), 1e-5);
  EXPECT_GT(ref.abs().max().item<double>(), 0.1);
}

/// Independent ViT forward (timm's VisionTransformer with mean pooling) with at::layer_norm,
/// at::softmax and the exact (erf) at::gelu.
at::Tensor vitReference(const Graph& g, const models::ViTConfig& c, at::Tensor x) {
  const int64_t N = x.size(0), D = c.dim, H = c.heads, hd = D / H;
  auto lin = [&](const at::Tensor& t, const std::string& n) {
    return at::linear(t, P(g, n + ".weight"), P(g, n + ".bias"));
  };
  auto ln = [&](const at::Tensor& t, const std::string& n) {
    return at::layer_norm(t, {D}, P(g, n + ".weight"), P(g, n + ".bias"), 1e-5);
  };
  x = (x - 0.2860) / 0.3530;
  x = at::conv2d(x, P(g, "patch_embed.proj.weight"), P(g, "patch_embed.proj.bias"), c.patch);
  x = x.flatten(2).transpose(1, 2) + P(g, "pos_embed");
  const int64_t T = x.size(1);
  for (int64_t i = 0; i < c.layers; ++i) {
    std::string p = "blocks." + std::to_string(i) + ".";
    at::Tensor h = ln(x, p + "norm1");
    auto heads = [&](const std::string& n) {
      return lin(h, p + "attn." + n).view({N, T, H, hd}).transpose(1, 2);
    };
    at::Tensor a = at::softmax(at::matmul(heads("q"), heads("k").transpose(-1, -2)) /
                                   std::sqrt(static_cast<double>(hd)),
                               -1);
    at::Tensor o = at::matmul(a, heads("v")).transpose(1, 2).reshape({N, T, D});
    x = x + lin(o, p + "attn.proj");
    x = x + lin(at::gelu(lin(ln(x, p + "norm2"), p + "mlp.fc1")), p + "mlp.fc2");
  }
  return lin(ln(x, "norm").mean(1), "head");
}

TEST(ModelZoo, ViTMatchesAtenReference) {
  models::ViTConfig c;
  auto g = models::buildViT(c, 13);
  randomize(*g, "norm1.weight", 0.5, 1.5, 1);
  randomize(*g, "norm2.bias", -0.3, 0.3, 2);
  at::Tensor x = images(3, 14);
  at::Tensor out = Executor(*g).run({x})[0];
  at::Tensor ref = vitReference(*g, c, x);
  EXPECT_LE(test::maxRelDiff(out, ref), 1e-5);
  EXPECT_GT(ref.abs().max().item<double>(), 0.1);
}

/// Independent Llama forward (HF modeling_llama written with ATen): rsqrt RMSNorm, rotate-half
/// RoPE from freshly computed angles, repeat_interleave for GQA, masked_fill(-inf) causality.
at::Tensor llamaReference(const Graph& g, const models::LlamaConfig& c, const at::Tensor& ids) {
  const int64_t N = ids.size(0), T = ids.size(1), H = c.heads, KV = c.kv_heads, hd = c.headDim();
  auto lin = [&](const at::Tensor& x, const std::string& n) { return at::linear(x, P(g, n)); };
  auto rms = [&](const at::Tensor& x, const std::string& n) {
    return x * at::rsqrt(x.pow(2).mean(-1, true) + c.rms_eps) * P(g, n);
  };
  at::Tensor inv = 1.0 / at::pow(c.rope_theta, at::arange(0, hd, 2, at::kDouble) / hd);
  at::Tensor ang = at::arange(T, at::kDouble).unsqueeze(1) * inv.unsqueeze(0);
  at::Tensor cos = at::cat({ang, ang}, -1).cos().to(at::kFloat);
  at::Tensor sin = at::cat({ang, ang}, -1).sin().to(at::kFloat);
  auto rope = [&](const at::Tensor& q) {
    auto h = q.chunk(2, -1);
    return q * cos + at::cat({-h[1], h[0]}, -1) * sin;
  };
  at::Tensor causal = at::ones({T, T}, at::kBool).triu(1);
  at::Tensor x = at::embedding(P(g, "model.embed_tokens.weight"), ids);
  for (int64_t i = 0; i < c.layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    at::Tensor h = rms(x, p + "input_layernorm.weight");
    at::Tensor q = lin(h, p + "self_attn.q_proj.weight").view({N, T, H, hd}).transpose(1, 2);
    at::Tensor k = lin(h, p + "self_attn.k_proj.weight").view({N, T, KV, hd}).transpose(1, 2);
    at::Tensor v = lin(h, p + "self_attn.v_proj.weight").view({N, T, KV, hd}).transpose(1, 2);
    q = rope(q);
    k = rope(k).repeat_interleave(H / KV, 1);
    v = v.repeat_interleave(H / KV, 1);
    at::Tensor s = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(hd));
    s = s.masked_fill(causal, -std::numeric_limits<float>::infinity());
    at::Tensor o = at::matmul(at::softmax(s, -1), v).transpose(1, 2).reshape({N, T, H * hd});
    x = x + lin(o, p + "self_attn.o_proj.weight");
    h = rms(x, p + "post_attention_layernorm.weight");
    x = x + lin(at::silu(lin(h, p + "mlp.gate_proj.weight")) * lin(h, p + "mlp.up_proj.weight"),
                p + "mlp.down_proj.weight");
  }
  return lin(rms(x, "model.norm.weight"), "lm_head.weight");
}

TEST(ModelZoo, LlamaMatchesAtenReferenceMhaAndGqa) {
  for (int64_t kv : {4, 2, 1}) {
    auto c = smallLlama(kv);
    auto g = models::buildLlama(c, 3);
    randomize(*g, "layernorm.weight", 0.5, 1.5, 5);
    randomize(*g, "model.norm.weight", 0.5, 1.5, 6);
    at::Tensor ids = tokens(2, 11, c.vocab, 4);
    at::Tensor out = Executor(*g).run({ids})[0];
    at::Tensor ref = llamaReference(*g, c, ids);
    EXPECT_LE(test::maxRelDiff(out, ref), 1e-5) << "kv_heads=" << kv;
  }
}

TEST(ModelZoo, LlamaGqaEqualsMhaWithRepeatedKvWeights) {
  // A GQA model (2 kv heads for 4 query heads) and an MHA model whose k/v projections repeat each
  // kv head's rows for the query heads it serves must compute the same logits.
  auto cg = smallLlama(2), cm = smallLlama(4);
  auto gqa = models::buildLlama(cg, 7);
  auto mha = models::buildLlama(cm, 8);
  const int64_t hd = cg.headDim();
  for (Value* p : mha->params()) {
    if (!p->trainable()) continue;  // shape constants differ (kv heads); tables are equal
    const std::string& n = p->name();
    at::Tensor src = P(*gqa, n);
    if (n.find("k_proj.weight") != std::string::npos ||
        n.find("v_proj.weight") != std::string::npos)
      src = src.view({cg.kv_heads, hd, cg.dim}).repeat_interleave(2, 0).reshape({-1, cm.dim});
    ASSERT_EQ(src.sizes(), p->data().sizes()) << n;
    p->setData(src.clone());
  }
  at::Tensor ids = tokens(3, 9, cg.vocab, 12);
  at::Tensor a = Executor(*gqa).run({ids})[0];
  at::Tensor b = Executor(*mha).run({ids})[0];
  EXPECT_LE(test::maxRelDiff(b, a), 1e-5);
}

TEST(ModelZoo, LlamaIsCausal) {
  auto c = smallLlama(2);
  auto g = models::buildLlama(c, 9);
  Executor ex(*g);
  at::Tensor ids = tokens(2, 12, c.vocab, 13);
  at::Tensor changed = ids.clone();
  const int64_t t = 6;
  changed.select(1, t).add_(1).remainder_(c.vocab);
  at::Tensor a = ex.run({ids})[0], b = ex.run({changed})[0];
  EXPECT_TRUE(at::equal(a.narrow(1, 0, t), b.narrow(1, 0, t)))
      << "positions before the changed token must not change";
  for (int64_t s = t; s < 12; ++s)
    EXPECT_GT((a.select(1, s) - b.select(1, s)).abs().max().item<double>(), 1e-6) << "pos " << s;
}

// ------------------------------------------------------------------ training

TEST(ModelZoo, LeNetSgdStepReducesLoss) {
  auto g = models::buildLeNet5({}, 21);
  std::vector<at::Tensor> params;
  for (Value* p : g->params())
    if (p->trainable()) params.push_back(p->data().requires_grad_(true));
  EXPECT_EQ(params.size(), 10u);  // 5 layers x (weight, bias)
  Executor ex(*g, {.training = true});
  at::Tensor x = images(8, 30);
  at::Tensor y = at::arange(8, at::kLong);
  auto loss_of = [&] { return at::cross_entropy_loss(ex.run({x})[0], y); };
  at::Tensor l0 = loss_of();
  l0.backward();
  {
    at::NoGradGuard ng;
    for (auto& p : params) {
      ASSERT_TRUE(p.grad().defined());
      EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0);
      p.sub_(p.grad() * 0.05);
    }
  }
  double before = l0.item<double>(), after = loss_of().item<double>();
  EXPECT_LT(after, before);
  EXPECT_NEAR(before, std::log(10.0), 0.5);  // near-uniform predictions at init
}

TEST(ModelZoo, TrainModeGradientsReachEveryTrainableParam) {
  // Train mode (BN batch statistics, autograd through Clip, depthwise convs, Gather, Split, ...):
  // every trainable parameter of every model must receive a non-zero gradient.
  for (const auto& info : models::modelZoo()) {
    models::ModelOptions small;
    if (info.name == "llama-tiny") small = {{"layers", 2}, {"dim", 64}, {"ffn", 96}};
    auto g = models::buildModel(info.name, small, 3);
    for (Value* p : g->params())
      if (p->trainable()) p->data().requires_grad_(true);
    Executor ex(*g, {.training = true});
    at::Tensor x = info.name == "llama-tiny" ? tokens(2, 16, 256, 5) : images(4, 5);
    ex.run({x})[0].pow(2).mean().backward();
    for (const Value* p : g->params()) {
      if (!p->trainable()) continue;
      const at::Tensor& gr = p->data().grad();
      ASSERT_TRUE(gr.defined()) << info.name << " " << p->name();
      EXPECT_GT(gr.abs().sum().item<double>(), 0.0) << info.name << " " << p->name();
    }
  }
}

// ------------------------------------------------------------------ registry

TEST(ModelZoo, RegistryListsModelsAndRejectsBadNames) {
  std::vector<std::string> names;
  for (const auto& m : models::modelZoo()) {
    names.push_back(m.name);
    EXPECT_FALSE(m.description.empty());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"lenet5", "resnet20", "mobilenetv2", "vit-tiny",
                                             "llama-tiny"}));
  try {
    models::buildModel("alexnet");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown model 'alexnet' (known: lenet5, resnet20"),
              std::string::npos) << e.what();
  }
  try {
    models::buildModel("llama-tiny", {{"n_layers", 2}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown option 'n_layers'"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(models::buildModel("llama-tiny", {{"kv_heads", 3}}), Error);
  EXPECT_THROW(models::buildModel("resnet20", {{"num_classes", 2.5}}), Error);
  auto two = models::buildModel("llama-tiny", {{"layers", 2}});
  EXPECT_EQ(countParams(*two), 5935360 - 6 * 725504);
  auto wide = models::buildModel("mobilenetv2", {{"width", 1.0}, {"num_classes", 3}});
  EXPECT_EQ(P(*wide, "features.0.0.weight").size(0), 32);
  EXPECT_EQ(P(*wide, "classifier.1.weight").sizes(), (std::vector<int64_t>{3, 1280}));
}

}  // namespace
}  // namespace gs

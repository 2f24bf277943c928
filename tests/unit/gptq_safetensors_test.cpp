// GPTQ layout: int32 word packing (known bit patterns), MatMulNBits <-> GPTQ conversion, and the
// safetensors + quantize_config.json round trip.
#include "io/gptq_safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "op_test_util.h"
#include "quant/int4_pack.h"

namespace gs {
namespace {

using nbits::WeightLayout;

TEST(GptqLayout, WordPackingBitPatterns) {
  // qweight: codes of 8 consecutive K rows in one int32, row 0 in the low nibble.
  at::Tensor q = at::arange(8, at::kLong).reshape({8, 1}).repeat({1, 2});
  q[3][1] = 15;
  at::Tensor w = gptq::packQweight(q, 4);
  ASSERT_EQ(w.sizes(), (at::IntArrayRef{1, 2}));
  EXPECT_EQ(static_cast<uint32_t>(w[0][0].item<int32_t>()), 0x76543210u);
  EXPECT_EQ(static_cast<uint32_t>(w[0][1].item<int32_t>()), 0x7654F210u);
  EXPECT_TRUE(at::equal(gptq::unpackQweight(w, 4), q));
  // qzeros: along N, storing zp - 1 (symmetric 4-bit zp 8 -> 0x77777777; zp 0 wraps to 15).
  at::Tensor zp = at::full({2, 8}, 8, at::kLong);
  zp[1][0] = 0;
  at::Tensor z = gptq::packQzeros(zp, 4);
  ASSERT_EQ(z.sizes(), (at::IntArrayRef{2, 1}));
  EXPECT_EQ(static_cast<uint32_t>(z[0][0].item<int32_t>()), 0x77777777u);
  EXPECT_EQ(static_cast<uint32_t>(z[1][0].item<int32_t>()), 0x7777777Fu);
  EXPECT_TRUE(at::equal(gptq::unpackQzeros(z, 4), zp));
  // 8-bit: four codes per word.
  at::Tensor q8 = at::tensor({1, 2, 3, 255}, at::kLong).reshape({4, 1});
  EXPECT_EQ(static_cast<uint32_t>(gptq::packQweight(q8, 8)[0][0].item<int32_t>()), 0xFF030201u);
}

TEST(GptqLayout, NBitsConversionRoundTrip) {
  for (int bits : {2, 4, 8})
    for (bool sym : {true, false}) {
      at::Tensor W = test::randn({128, 48}, bits + sym);  // [K, N]
      nbits::NBitsWeight w = nbits::quantizeRtn(W, WeightLayout::KxN, bits, 32, sym);
      w.scales = w.scales.to(at::kHalf).to(at::kFloat);  // GPTQ stores fp16 scales
      gptq::GptqLinear l = gptq::fromNBits(w);
      EXPECT_EQ(l.qweight.sizes(), (at::IntArrayRef{128 * bits / 32, 48}));
      EXPECT_EQ(l.qzeros.sizes(), (at::IntArrayRef{4, 48 * bits / 32}));
      EXPECT_EQ(l.scales.scalar_type(), at::kHalf);
      nbits::NBitsWeight back = gptq::toNBits(l);
      EXPECT_TRUE(at::equal(back.B, w.B)) << bits << " " << sym;
      EXPECT_TRUE(at::equal(back.scales, w.scales));
      EXPECT_TRUE(at::equal(nbits::zeroPointsFloat(back), nbits::zeroPointsFloat(w)));
      EXPECT_TRUE(at::equal(gptq::dequantize(l), nbits::dequantize(w, WeightLayout::KxN)));
    }
}

TEST(GptqLayout, ActOrderGIdxDequantizes) {
  at::Tensor W = test::randn({64, 16}, 3);
  nbits::NBitsWeight w = nbits::quantizeRtn(W, WeightLayout::KxN, 4, 16, false);
  w.scales = w.scales.to(at::kHalf).to(at::kFloat);
  at::Tensor gidx = at::arange(64, at::kLong).div(16, "floor").flip(0);
  gptq::GptqLinear l = gptq::fromNBits(w, gidx);
  at::Tensor q = nbits::unpackCodes(w.B, 64, 4, 16).to(at::kFloat).t();  // [K, N]
  at::Tensor z = nbits::zeroPointsFloat(w).t().index_select(0, gidx);
  at::Tensor s = w.scales.t().index_select(0, gidx);
  EXPECT_TRUE(at::allclose(gptq::dequantize(l), (q - z) * s));
}

TEST(GptqLayout, SafetensorsAndConfigRoundTrip) {
  std::string dir = test::tempDir("gptq");
  std::map<std::string, gptq::GptqLinear> layers;
  for (int i = 0; i < 2; ++i) {
    nbits::NBitsWeight w =
        nbits::quantizeRtn(test::randn({64, 32}, 10 + i), WeightLayout::KxN, 4, 32, i == 1);
    gptq::GptqLinear l = gptq::fromNBits(w);
    if (i == 0) l.bias = test::randn({32}, 5).to(at::kHalf);
    layers["model.layers." + std::to_string(i) + ".mlp.down_proj"] = l;
  }
  std::map<std::string, at::Tensor> extra{{"model.norm.weight", test::randn({64}, 1)}};
  gptq::writeGptqSafetensors(dir + "/model.safetensors", layers, extra);
  gptq::writeQuantizeConfig(dir + "/quantize_config.json", {.bits = 4, .group_size = 32});
  gptq::QuantizeConfig c = gptq::readQuantizeConfig(dir + "/quantize_config.json");
  EXPECT_EQ(c.bits, 4);
  EXPECT_EQ(c.group_size, 32);
  std::map<std::string, at::Tensor> extra2;
  auto back = gptq::readGptqSafetensors(dir + "/model.safetensors", c.bits, c.group_size, &extra2);
  ASSERT_EQ(back.size(), 2u);
  for (const auto& [name, l] : layers) {
    ASSERT_TRUE(back.count(name)) << name;
    const gptq::GptqLinear& r = back.at(name);
    EXPECT_TRUE(at::equal(r.qweight, l.qweight));
    EXPECT_TRUE(at::equal(r.qzeros, l.qzeros));
    EXPECT_TRUE(at::equal(r.scales, l.scales));
    EXPECT_TRUE(at::equal(r.g_idx, l.g_idx));
    EXPECT_EQ(r.bias.defined(), l.bias.defined());
    if (l.bias.defined()) {
      EXPECT_TRUE(at::equal(r.bias, l.bias));
    }
  }
  ASSERT_EQ(extra2.size(), 1u);
  EXPECT_TRUE(at::equal(extra2.at("model.norm.weight"), extra.at("model.norm.weight")));
  // The dtypes on disk are the AutoGPTQ ones.
  SafetensorsFile f(dir + "/model.safetensors");
  EXPECT_EQ(f.tensor("model.layers.1.mlp.down_proj.qweight").scalar_type(), at::kInt);
  EXPECT_EQ(f.tensor("model.layers.1.mlp.down_proj.scales").scalar_type(), at::kHalf);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  // A layer without qzeros is a clear error.
  std::map<std::string, at::Tensor> broken{{"l.qweight", layers.begin()->second.qweight},
                                           {"l.scales", layers.begin()->second.scales},
                                           {"l.g_idx", layers.begin()->second.g_idx}};
  writeSafetensors(dir + "/broken.safetensors", broken);
  test::expectError([&] { gptq::readGptqSafetensors(dir + "/broken.safetensors", 4, 32); },
                    "layer 'l' has qweight but no qzeros");
}

}  // namespace
}  // namespace gs

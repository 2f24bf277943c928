// GPTQ-layout (AutoGPTQ v1) quantized checkpoints: int32 word packing, MatMulNBits conversion,
// safetensors + quantize_config.json reading and writing.
#include "io/gptq_safetensors.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs::gptq {

namespace {

void checkBits(int bits, const char* what) {
  GS_CHECK(bits == 2 || bits == 4 || bits == 8, what, ": GPTQ packing supports bits 2, 4 and 8 (",
           "whole codes per int32 word), got ", bits);
}

/// Packs `rows` codes along axis 0 of q [R, C] into int32 words [R / per, C].
at::Tensor packAlongRows(const at::Tensor& q, int bits, const char* what) {
  const int per = 32 / bits;
  GS_CHECK(q.dim() == 2 && q.size(0) % per == 0, what, ": needs a 2-D tensor whose packed axis is ",
           "a multiple of ", per, ", got ", q.sizes());
  at::Tensor c = q.to(at::kLong).contiguous();
  if (c.numel()) {
    GS_CHECK(c.min().item<int64_t>() >= 0 && c.max().item<int64_t>() < (int64_t{1} << bits), what,
             ": codes out of range for ", bits, " bits");
  }
  const int64_t R = c.size(0), C = c.size(1);
  at::Tensor out = at::zeros({R / per, C}, at::kInt);
  const int64_t* src = c.data_ptr<int64_t>();
  auto* dst = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t col = 0; col < C; ++col)
      dst[(r / per) * C + col] |= static_cast<uint32_t>(src[r * C + col]) << ((r % per) * bits);
  return out;
}

at::Tensor unpackAlongRows(const at::Tensor& words, int bits) {
  const int per = 32 / bits;
  const uint32_t mask = (1u << bits) - 1u;
  at::Tensor w = words.to(at::kInt).contiguous();
  const int64_t R = w.size(0) * per, C = w.size(1);
  at::Tensor out = at::empty({R, C}, at::kLong);
  const auto* src = reinterpret_cast<const uint32_t*>(w.data_ptr<int32_t>());
  int64_t* dst = out.data_ptr<int64_t>();
  for (int64_t r = 0; r < R; ++r)
    for (int64_t col = 0; col < C; ++col)
      dst[r * C + col] = (src[(r / per) * C + col] >> ((r % per) * bits)) & mask;
  return out;
}

int64_t numGroups(int64_t K, int64_t group_size) {
  return group_size <= 0 ? 1 : (K + group_size - 1) / group_size;
}

}  // namespace

at::Tensor packQweight(const at::Tensor& q, int bits) {
  checkBits(bits, "gptq::packQweight");
  return packAlongRows(q, bits, "gptq::packQweight");
}

at::Tensor unpackQweight(const at::Tensor& qweight, int bits) {
  checkBits(bits, "gptq::unpackQweight");
  GS_CHECK(qweight.dim() == 2 && qweight.scalar_type() == at::kInt,
           "gptq::unpackQweight: qweight must be int32 [K*bits/32, N], got ", qweight.scalar_type(),
           " ", qweight.sizes());
  return unpackAlongRows(qweight, bits);
}

at::Tensor packQzeros(const at::Tensor& zp, int bits) {
  checkBits(bits, "gptq::packQzeros");
  GS_CHECK(zp.dim() == 2, "gptq::packQzeros: zero points must be [groups, N], got ", zp.sizes());
  // v1 stores zp - 1 in `bits` bits (zp = 0 wraps to 2^bits - 1, as AutoGPTQ writes it).
  at::Tensor stored = (zp.to(at::kLong) - 1).remainder(int64_t{1} << bits);
  return packAlongRows(stored.t(), bits, "gptq::packQzeros").t().contiguous();
}

at::Tensor unpackQzeros(const at::Tensor& qzeros, int bits) {
  checkBits(bits, "gptq::unpackQzeros");
  GS_CHECK(qzeros.dim() == 2 && qzeros.scalar_type() == at::kInt,
           "gptq::unpackQzeros: qzeros must be int32 [groups, N*bits/32], got ",
           qzeros.scalar_type(), " ", qzeros.sizes());
  return (unpackAlongRows(qzeros.t(), bits).t() + 1).remainder(int64_t{1} << bits).contiguous();
}

GptqLinear fromNBits(const nbits::NBitsWeight& w, const at::Tensor& g_idx) {
  nbits::checkWeight(w, "gptq::fromNBits");
  checkBits(w.bits, "gptq::fromNBits");
  const int per = 32 / w.bits;
  GS_CHECK(w.K % per == 0 && w.N % per == 0, "gptq::fromNBits: K (", w.K, ") and N (", w.N,
           ") must be multiples of ", per, " for ", w.bits, "-bit GPTQ packing");
  GptqLinear l;
  l.bits = w.bits;
  l.group_size = w.block_size;
  at::Tensor q = nbits::unpackCodes(w.B, w.K, w.bits, w.block_size);  // [N, K]
  l.qweight = packQweight(q.t(), w.bits);
  at::Tensor zf = nbits::zeroPointsFloat(w);  // [N, nb]
  at::Tensor zr = at::round(zf);
  GS_CHECK(at::equal(zr, zf), "gptq::fromNBits: GPTQ needs integer zero points, got float ones");
  l.qzeros = packQzeros(zr.to(at::kLong).t(), w.bits);
  l.scales = w.scales.to(at::kFloat).reshape({w.N, w.numBlocks()}).t().to(at::kHalf).contiguous();
  if (g_idx.defined()) {
    GS_CHECK(g_idx.numel() == w.K, "gptq::fromNBits: g_idx must have K = ", w.K, " elements");
    l.g_idx = g_idx.to(at::kInt).reshape({w.K}).contiguous();
  } else {
    l.g_idx = at::arange(w.K, at::kLong).div(w.block_size, "floor").to(at::kInt);
  }
  return l;
}

nbits::NBitsWeight toNBits(const GptqLinear& l) {
  checkBits(l.bits, "gptq::toNBits");
  const int64_t K = l.K(), N = l.N();
  // One group over K is stored as per-channel scales repeated over ORT-runnable blocks.
  const int64_t bs = l.group_size > 0 ? l.group_size : nbits::kPerChannelBlock;
  nbits::checkFormat(l.bits, bs, "gptq::toNBits (group_size)");
  GS_CHECK(l.scales.dim() == 2 && l.scales.size(1) == N &&
               l.scales.size(0) == numGroups(K, l.group_size),
           "gptq::toNBits: scales must be [", numGroups(K, l.group_size), ", ", N, "], got ",
           l.scales.sizes());
  nbits::NBitsWeight w;
  w.K = K;
  w.N = N;
  w.bits = l.bits;
  w.block_size = bs;
  w.B = nbits::packCodes(unpackQweight(l.qweight, l.bits).t(), l.bits, bs);
  at::Tensor s = l.scales.to(at::kFloat).t(), z = unpackQzeros(l.qzeros, l.bits).t();  // [N, G]
  if (l.group_size <= 0) {
    s = nbits::repeatPerChannel(s, K, bs);
    z = nbits::repeatPerChannel(z, K, bs);
  }
  w.scales = s.contiguous();
  w.zero_points = nbits::packZeroPoints(z, l.bits);
  return w;
}

at::Tensor dequantize(const GptqLinear& l) {
  at::Tensor q = unpackQweight(l.qweight, l.bits).to(at::kFloat);  // [K, N]
  at::Tensor gi = l.g_idx.to(at::kLong);
  at::Tensor z = unpackQzeros(l.qzeros, l.bits).to(at::kFloat).index_select(0, gi);
  at::Tensor s = l.scales.to(at::kFloat).index_select(0, gi);
  return (q - z) * s;
}

void writeGptqSafetensors(const std::string& path, const std::map<std::string, GptqLinear>& layers,
                          const std::map<std::string, at::Tensor>& extra) {
  std::map<std::string, at::Tensor> all = extra;
  auto put = [&](const std::string& name, const at::Tensor& t) {
    GS_CHECK(!all.count(name), path, ": tensor name '", name, "' is used twice");
    all[name] = t.contiguous();
  };
  for (const auto& [prefix, l] : layers) {
    put(prefix + ".qweight", l.qweight);
    put(prefix + ".qzeros", l.qzeros);
    put(prefix + ".scales", l.scales.to(at::kHalf));
    put(prefix + ".g_idx", l.g_idx.to(at::kInt));
    if (l.bias.defined()) put(prefix + ".bias", l.bias.to(at::kHalf));
  }
  writeSafetensors(path, all, {{"format", "pt"}});
}

std::map<std::string, GptqLinear> readGptqSafetensors(const std::string& path, int bits,
                                                      int64_t group_size,
                                                      std::map<std::string, at::Tensor>* extra) {
  checkBits(bits, path.c_str());
  SafetensorsFile f(path);
  std::map<std::string, GptqLinear> layers;
  const std::string suffix = ".qweight";
  for (const std::string& name : f.names()) {
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix))
      continue;
    std::string prefix = name.substr(0, name.size() - suffix.size());
    GptqLinear l;
    l.bits = bits;
    l.group_size = group_size;
    for (const char* part : {".qzeros", ".scales", ".g_idx"})
      GS_CHECK(f.contains(prefix + part), path, ": layer '", prefix, "' has qweight but no ", part + 1);
    l.qweight = f.tensor(name);
    l.qzeros = f.tensor(prefix + ".qzeros");
    l.scales = f.tensor(prefix + ".scales");
    l.g_idx = f.tensor(prefix + ".g_idx");
    if (f.contains(prefix + ".bias")) l.bias = f.tensor(prefix + ".bias");
    GS_CHECK(l.qweight.scalar_type() == at::kInt && l.qzeros.scalar_type() == at::kInt, path,
             ": layer '", prefix, "': qweight and qzeros must be I32");
    int64_t K = l.K(), N = l.N(), G = numGroups(K, group_size);
    GS_CHECK(l.qzeros.dim() == 2 && l.qzeros.size(0) == G && l.qzeros.size(1) * 32 / bits == N,
             path, ": layer '", prefix, "': qzeros must be [", G, ", ", N * bits / 32, "], got ",
             l.qzeros.sizes());
    GS_CHECK(l.scales.dim() == 2 && l.scales.size(0) == G && l.scales.size(1) == N, path,
             ": layer '", prefix, "': scales must be [", G, ", ", N, "], got ", l.scales.sizes());
    GS_CHECK(l.g_idx.numel() == K, path, ": layer '", prefix, "': g_idx must have K = ", K,
             " elements");
    if (K > 0) {
      int64_t lo = l.g_idx.min().item<int64_t>(), hi = l.g_idx.max().item<int64_t>();
      GS_CHECK(lo >= 0 && hi < G, path, ": layer '", prefix, "': g_idx values outside [0, ", G, ")");
    }
    layers[prefix] = l;
  }
  if (extra) {
    for (const std::string& name : f.names()) {
      bool owned = false;
      for (const auto& [prefix, l] : layers)
        for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx", ".bias"})
          owned |= name == prefix + part;
      if (!owned) (*extra)[name] = f.tensor(name);
    }
  }
  return layers;
}

void writeQuantizeConfig(const std::string& path, const QuantizeConfig& c) {
  nlohmann::ordered_json j;
  j["bits"] = c.bits;
  j["group_size"] = c.group_size;
  j["damp_percent"] = c.damp_percent;
  j["desc_act"] = c.desc_act;
  j["static_groups"] = c.static_groups;
  j["sym"] = c.sym;
  j["true_sequential"] = true;
  j["model_name_or_path"] = nullptr;
  j["model_file_base_name"] = "model";
  j["quant_method"] = "gptq";
  j["checkpoint_format"] = "gptq";
  writeFileAtomic(path, j.dump(2) + "\n");
}

QuantizeConfig readQuantizeConfig(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(readFile(path));
  } catch (const nlohmann::json::exception& e) {
    GS_FAIL(path, ": invalid JSON: ", e.what());
  }
  GS_CHECK(j.is_object() && j.contains("bits") && j["bits"].is_number_integer() &&
               j.contains("group_size") && j["group_size"].is_number_integer(),
           path, ": quantize_config.json needs integer 'bits' and 'group_size'");
  QuantizeConfig c;
  c.bits = j["bits"].get<int>();
  c.group_size = j["group_size"].get<int64_t>();
  c.sym = j.value("sym", true);
  c.desc_act = j.value("desc_act", false);
  c.static_groups = j.value("static_groups", false);
  c.damp_percent = j.value("damp_percent", 0.01);
  if (j.contains("checkpoint_format"))
    GS_CHECK(j["checkpoint_format"] == "gptq", path, ": checkpoint_format ",
             j["checkpoint_format"].dump(), " is not supported (only \"gptq\", v1)");
  checkBits(c.bits, path.c_str());
  return c;
}

}  // namespace gs::gptq

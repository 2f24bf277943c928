// RTN weight quantization and activation fake-quant (see quantizer.h for the integer conventions).
#include "llm/quantizer.h"

#include <ATen/ATen.h>

#include <sstream>

#include "support/error.h"

namespace gs::llm {

int64_t WeightQuantSpec::numGroups(int64_t in) const {
  return group_size > 0 ? (in + group_size - 1) / group_size : 1;
}

int64_t WeightQuantSpec::groupCols(int64_t in) const { return group_size > 0 ? group_size : in; }

std::string WeightQuantSpec::describe() const {
  std::ostringstream os;
  os << "W" << bits << " ";
  if (group_size > 0) os << "g" << group_size;
  else if (group_size == 0) os << "per-channel";
  else os << "per-tensor";
  os << (symmetric ? " sym" : " asym");
  return os.str();
}

void WeightQuantSpec::validate(int64_t in) const {
  GS_CHECK(bits >= 2 && bits <= 8, "weight quantization: bits must be in 2..8, got ", bits);
  GS_CHECK(group_size >= -1, "weight quantization: group_size must be > 0 (groups), 0 (per "
           "channel) or -1 (per tensor), got ", group_size);
}

QuantParams paramsFromRange(const at::Tensor& lo0, const at::Tensor& hi0,
                            const WeightQuantSpec& spec) {
  at::Tensor lo = at::clamp_max(lo0, 0.0);
  at::Tensor hi = at::clamp_min(hi0, 0.0);
  QuantParams p;
  if (spec.symmetric) {
    const double half = static_cast<double>(int64_t{1} << (spec.bits - 1));
    at::Tensor amax = at::maximum(hi, -lo);
    p.scale = amax / (half - 1.0);
    p.scale = at::where(amax == 0, at::ones_like(p.scale), p.scale);
    p.zero = at::full_like(p.scale, half);
  } else {
    p.scale = (hi - lo) / static_cast<double>(spec.maxq());
    p.scale = at::where(hi == lo, at::ones_like(p.scale), p.scale);
    p.zero = at::clamp(at::round(-lo / p.scale), 0, static_cast<double>(spec.maxq()));
  }
  return p;
}

at::Tensor padColumns(const at::Tensor& w, const WeightQuantSpec& spec) {
  const int64_t in = w.size(-1);
  const int64_t padded = spec.numGroups(in) * spec.groupCols(in);
  return padded == in ? w : at::constant_pad_nd(w, {0, padded - in});
}

QuantParams computeParams(const at::Tensor& w, const WeightQuantSpec& spec) {
  GS_CHECK(w.dim() == 2, "weight quantization expects a 2-D [out, in] matrix, got ", w.dim(),
           "-D");
  const int64_t out = w.size(0), in = w.size(1);
  spec.validate(in);
  at::Tensor wf = w.to(at::kFloat);
  if (spec.group_size < 0) {
    QuantParams p = paramsFromRange(wf.min().reshape({1, 1}), wf.max().reshape({1, 1}), spec);
    return {p.scale.expand({out, 1}).contiguous(), p.zero.expand({out, 1}).contiguous()};
  }
  // A ragged last group is padded with zeros, which never change a range (ranges contain 0).
  at::Tensor g = padColumns(wf, spec).reshape({out, spec.numGroups(in), spec.groupCols(in)});
  return paramsFromRange(std::get<0>(g.min(2)), std::get<0>(g.max(2)), spec);
}

at::Tensor quantizeValues(const at::Tensor& w, const at::Tensor& scale, const at::Tensor& zero,
                          int64_t maxq) {
  return at::clamp(at::round(w / scale) + zero, 0, static_cast<double>(maxq));
}

at::Tensor dequantizeValues(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero) {
  return scale * (q - zero);
}

at::Tensor QuantizedWeight::dequantize() const {
  at::Tensor s = scale.index_select(1, g_idx);
  at::Tensor z = zero.index_select(1, g_idx);
  return dequantizeValues(q.to(at::kFloat), s, z);
}

QuantizedWeight rtnQuantize(const at::Tensor& w, const WeightQuantSpec& spec) {
  QuantParams p = computeParams(w, spec);
  const int64_t in = w.size(1);
  QuantizedWeight r;
  r.spec = spec;
  r.scale = p.scale;
  r.zero = p.zero;
  r.g_idx = at::div(at::arange(in, at::kLong), spec.groupCols(in), "floor");
  at::Tensor s = p.scale.index_select(1, r.g_idx);
  at::Tensor z = p.zero.index_select(1, r.g_idx);
  r.q = quantizeValues(w.to(at::kFloat), s, z, spec.maxq()).to(at::kByte);
  return r;
}

at::Tensor fakeQuantPerToken(const at::Tensor& x, int bits) {
  const double qmax = static_cast<double>((int64_t{1} << (bits - 1)) - 1);
  at::Tensor s = at::clamp_min(std::get<0>(x.abs().max(-1, true)) / qmax, 1e-12);
  return at::clamp(at::round(x / s), -qmax - 1, qmax) * s;
}

at::Tensor fakeQuantStatic(const at::Tensor& x, const at::Tensor& scale, int bits) {
  const double qmax = static_cast<double>((int64_t{1} << (bits - 1)) - 1);
  return at::clamp(at::round(x / scale), -qmax - 1, qmax) * scale;
}

}  // namespace gs::llm

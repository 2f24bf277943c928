// Quantization math: integer ranges, qparams from ranges, parameter broadcasting, (fake) quantize.
#include "quant/qparams.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <vector>

#include "support/error.h"

namespace gs::quant {

int64_t QuantSpec::qmin() const {
  if (is_signed) return -(int64_t{1} << (bits - 1)) + (narrow_range ? 1 : 0);
  return narrow_range ? 1 : 0;
}

int64_t QuantSpec::qmax() const {
  return is_signed ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
}

void QuantSpec::validate(const std::string& what) const {
  GS_CHECK(bits >= 2 && bits <= 8, what, ": bits must be in [2, 8], got ", bits);
  GS_CHECK(granularity != Granularity::PerGroup || group_size > 0, what,
           ": per-group quantization needs group_size > 0, got ", group_size);
}

std::string QuantSpec::granularityStr() const {
  switch (granularity) {
    case Granularity::PerTensor: return "per_tensor";
    case Granularity::PerChannel: return "per_channel";
    case Granularity::PerGroup: return "per_group(" + std::to_string(group_size) + ")";
  }
  return "?";
}

std::string QuantSpec::str() const {
  std::string s = (is_signed ? "int" : "uint") + std::to_string(bits);
  s += symmetric ? "-sym" : "-asym";
  if (narrow_range) s += "-narrow";
  switch (granularity) {
    case Granularity::PerTensor: s += "-per_tensor"; break;
    case Granularity::PerChannel: s += "-per_channel(" + std::to_string(axis) + ")"; break;
    case Granularity::PerGroup:
      s += "-per_group(" + std::to_string(axis) + "," + std::to_string(group_size) + ")";
      break;
  }
  return s;
}

QLayout QLayout::of(const QuantSpec& s) {
  QLayout l;
  l.qmin = s.qmin();
  l.qmax = s.qmax();
  l.axis = s.granularity == Granularity::PerTensor ? -1 : s.axis;
  l.group_size = s.granularity == Granularity::PerGroup ? s.group_size : 0;
  return l;
}

namespace {

int64_t normAxisOf(int64_t axis, int64_t rank, const std::string& what) {
  GS_CHECK(axis >= -rank && axis < rank, what, ": axis ", axis, " out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

/// x viewed as [..., C / g, g, ...] (the group dim inserted after `axis`).
at::Tensor groupView(const at::Tensor& x, int64_t axis, int64_t g, const std::string& what) {
  GS_CHECK(x.size(axis) % g == 0, what, ": size ", x.size(axis), " of axis ", axis,
           " is not divisible by group size ", g);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[static_cast<size_t>(axis)] = x.size(axis) / g;
  shape.insert(shape.begin() + axis + 1, g);
  return x.reshape(shape);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> reduceMinMax(const at::Tensor& x_in, const QuantSpec& spec) {
  at::NoGradGuard ng;
  at::Tensor x = x_in.detach().to(at::kFloat);
  if (spec.granularity == Granularity::PerTensor || x.dim() == 0) {
    auto mm = at::aminmax(x);
    return {std::get<0>(mm), std::get<1>(mm)};
  }
  int64_t a = normAxisOf(spec.axis, x.dim(), "reduceMinMax");
  if (spec.granularity == Granularity::PerChannel) {
    at::Tensor m = x.movedim(a, 0).reshape({x.size(a), -1});
    auto mm = at::aminmax(m, 1);
    return {std::get<0>(mm), std::get<1>(mm)};
  }
  at::Tensor gv = groupView(x, a, spec.group_size, "reduceMinMax");
  return {at::amin(gv, {a + 1}), at::amax(gv, {a + 1})};
}

QParams computeQParams(const at::Tensor& min_in, const at::Tensor& max_in, const QuantSpec& spec) {
  at::NoGradGuard ng;
  const double qmin = static_cast<double>(spec.qmin()), qmax = static_cast<double>(spec.qmax());
  const double eps = std::numeric_limits<float>::epsilon();
  at::Tensor mn = at::clamp_max(min_in.detach().to(at::kFloat), 0.0);
  at::Tensor mx = at::clamp_min(max_in.detach().to(at::kFloat), 0.0);
  QParams p;
  if (spec.symmetric) {
    at::Tensor amax = at::maximum(-mn, mx);
    p.scale = at::clamp_min(amax / ((qmax - qmin) / 2.0), eps);
    double zp = spec.is_signed ? 0.0 : std::floor((qmin + qmax + 1) / 2.0);
    p.zero_point = at::full_like(p.scale, zp);
  } else {
    p.scale = at::clamp_min((mx - mn) / (qmax - qmin), eps);
    p.zero_point = at::clamp(qmin - at::round(mn / p.scale), qmin, qmax);
  }
  return p;
}

at::Tensor broadcastParam(const at::Tensor& p, const at::Tensor& x, const QLayout& l,
                          const std::string& what) {
  if (p.numel() == 1 && l.group_size == 0) return p.reshape({});
  GS_CHECK(l.axis >= 0 || l.axis >= -x.dim(), what, ": per-axis parameter without an axis");
  int64_t a = normAxisOf(l.axis, x.dim(), what);
  if (l.group_size > 0) {
    std::vector<int64_t> want(x.sizes().begin(), x.sizes().end());
    GS_CHECK(want[static_cast<size_t>(a)] % l.group_size == 0, what, ": size ", x.size(a),
             " of axis ", a, " is not divisible by group size ", l.group_size);
    want[static_cast<size_t>(a)] /= l.group_size;
    GS_CHECK(p.sizes().vec() == want, what, ": per-group parameter has shape ", p.sizes(),
             ", expected ", at::IntArrayRef(want));
    return p.repeat_interleave(l.group_size, a);
  }
  GS_CHECK(p.numel() == x.size(a), what, ": per-channel parameter has ", p.numel(),
           " elements but axis ", a, " of the input has size ", x.size(a));
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[static_cast<size_t>(a)] = p.numel();
  return p.reshape(shape);
}

at::Tensor quantizeCodes(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                         const QLayout& l, const std::string& what) {
  at::Tensor s = broadcastParam(scale.to(at::kFloat), x, l, what);
  at::Tensor q = at::round(at::div(x.to(at::kFloat), s));  // nearbyint: ties to even
  if (zero_point.defined()) q = q + broadcastParam(zero_point.to(at::kFloat), x, l, what);
  return at::clamp(q, static_cast<double>(l.qmin), static_cast<double>(l.qmax));
}

at::Tensor dequantizeCodes(const at::Tensor& q, const at::Tensor& scale,
                           const at::Tensor& zero_point, const QLayout& l,
                           const std::string& what) {
  at::Tensor d = q.to(at::kFloat);
  if (zero_point.defined()) d = d - broadcastParam(zero_point.to(at::kFloat), d, l, what);
  return d * broadcastParam(scale.to(at::kFloat), d, l, what);
}

at::Tensor fakeQuantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                        const QLayout& l, const std::string& what) {
  at::Tensor s = broadcastParam(scale.detach(), x, l, what);
  at::Tensor zp = zero_point.defined() ? broadcastParam(zero_point.detach(), x, l, what)
                                       : at::Tensor();
  at::Tensor xd = x.detach();
  at::Tensor q = at::round(at::div(xd, s));
  if (zp.defined()) q = q + zp;
  at::Tensor y = at::clamp(q, static_cast<double>(l.qmin), static_cast<double>(l.qmax));
  if (zp.defined()) y = y - zp;
  y = y * s;
  if (!x.requires_grad()) return y;
  // Exact forward value y, gradient = in-range mask: y + (x*m - (x*m).detach()) adds exactly 0.
  at::Tensor m = at::logical_and(q >= static_cast<double>(l.qmin), q <= static_cast<double>(l.qmax))
                     .to(x.scalar_type());
  at::Tensor xm = x * m;
  return y + (xm - xm.detach());
}

at::Tensor lsqQuantize(const at::Tensor& x, const at::Tensor& step, const QLayout& l,
                       const std::string& what, bool per_sample) {
  const double qmin = static_cast<double>(l.qmin), qmax = static_cast<double>(l.qmax);
  at::Tensor s = broadcastParam(step, x, l, what);
  if (!x.requires_grad() && !step.requires_grad()) {
    return at::clamp(at::round(at::div(x, s)), qmin, qmax) * s;
  }
  double n = static_cast<double>(x.numel()) / static_cast<double>(step.numel());
  if (per_sample && x.dim() > 0 && x.size(0) > 0) n /= static_cast<double>(x.size(0));
  double g = 1.0 / std::sqrt(n * qmax);
  // Gradient scaling: forward value s, gradient g * ds.
  at::Tensor sg = s * g;
  at::Tensor ss = (s - sg).detach() + sg;
  at::Tensor v = at::clamp(x / ss, qmin, qmax);
  at::Tensor vr = v + (at::round(v) - v).detach();  // round with a straight-through gradient
  return vr * ss;
}

at::Tensor lsqInitStep(const at::Tensor& x_in, const QuantSpec& spec) {
  at::NoGradGuard ng;
  at::Tensor x = x_in.detach().to(at::kFloat).abs();
  double d = std::sqrt(static_cast<double>(spec.qmax()));
  at::Tensor m;
  if (spec.granularity == Granularity::PerTensor || x.dim() == 0) {
    m = x.mean();
  } else {
    int64_t a = normAxisOf(spec.axis, x.dim(), "lsqInitStep");
    if (spec.granularity == Granularity::PerChannel)
      m = x.movedim(a, 0).reshape({x.size(a), -1}).mean(1);
    else
      m = groupView(x, a, spec.group_size, "lsqInitStep").mean({a + 1});
  }
  return at::clamp_min(2.0 * m / d, 1e-8);
}

}  // namespace gs::quant

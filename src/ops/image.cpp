// Image ops: Resize (opset 13-17 form), DepthToSpace, SpaceToDepth, GridSample.
#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "ops/spatial_util.h"

namespace gs {
namespace {

enum class ResizeMode { Nearest, Linear, Cubic };
enum class CoordMode { HalfPixel, PytorchHalfPixel, AlignCorners, Asymmetric, TfCropAndResize };
enum class NearestMode { RoundPreferFloor, RoundPreferCeil, Floor, Ceil };

struct ResizeAttrs {
  ResizeMode mode = ResizeMode::Nearest;
  CoordMode coord = CoordMode::HalfPixel;
  NearestMode nearest = NearestMode::RoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
};

ResizeAttrs parseResize(const Node& n) {
  ResizeAttrs a;
  std::string m = n.attrString("mode", "nearest");
  if (m == "nearest") a.mode = ResizeMode::Nearest;
  else if (m == "linear") a.mode = ResizeMode::Linear;
  else if (m == "cubic") a.mode = ResizeMode::Cubic;
  else GS_FAIL(n.describe(), ": unknown mode '", m, "'");
  std::string c = n.attrString("coordinate_transformation_mode", "half_pixel");
  if (c == "half_pixel") a.coord = CoordMode::HalfPixel;
  else if (c == "pytorch_half_pixel") a.coord = CoordMode::PytorchHalfPixel;
  else if (c == "align_corners") a.coord = CoordMode::AlignCorners;
  else if (c == "asymmetric") a.coord = CoordMode::Asymmetric;
  else if (c == "tf_crop_and_resize") a.coord = CoordMode::TfCropAndResize;
  else GS_FAIL(n.describe(), ": unknown coordinate_transformation_mode '", c, "'");
  std::string nm = n.attrString("nearest_mode", "round_prefer_floor");
  if (nm == "round_prefer_floor") a.nearest = NearestMode::RoundPreferFloor;
  else if (nm == "round_prefer_ceil") a.nearest = NearestMode::RoundPreferCeil;
  else if (nm == "floor") a.nearest = NearestMode::Floor;
  else if (nm == "ceil") a.nearest = NearestMode::Ceil;
  else GS_FAIL(n.describe(), ": unknown nearest_mode '", nm, "'");
  a.cubic_a = n.attrFloat("cubic_coeff_a", -0.75f);
  a.exclude_outside = n.attrInt("exclude_outside", 0) != 0;
  a.extrapolation = n.attrFloat("extrapolation_value", 0.0f);
  return a;
}

/// ONNX coordinate transform of output index j along one axis. `out` is the resized length
/// in * scale, which ONNX's reference keeps fractional (e.g. 4 * 0.8 = 3.2 for align_corners)
/// even though the tensor has floor(in * scale) elements.
double sourceCoord(const ResizeAttrs& a, int64_t j, int64_t in, double out, double scale,
                   double roi_start, double roi_end) {
  switch (a.coord) {
    case CoordMode::HalfPixel: return (j + 0.5) / scale - 0.5;
    case CoordMode::PytorchHalfPixel: return out != 1 ? (j + 0.5) / scale - 0.5 : 0.0;
    case CoordMode::AlignCorners:
      return out != 1 ? static_cast<double>(j) * (in - 1) / (out - 1) : 0.0;
    case CoordMode::Asymmetric: return j / scale;
    case CoordMode::TfCropAndResize:
      return out != 1 ? roi_start * (in - 1) + j * (roi_end - roi_start) * (in - 1) / (out - 1)
                     : 0.5 * (roi_start + roi_end) * (in - 1);
  }
  return 0.0;
}

int64_t nearestIndex(NearestMode m, double x) {
  double f = std::floor(x), r = x - f;
  switch (m) {
    case NearestMode::RoundPreferFloor: return static_cast<int64_t>(r <= 0.5 ? f : f + 1);
    case NearestMode::RoundPreferCeil: return static_cast<int64_t>(r < 0.5 ? f : f + 1);
    case NearestMode::Floor: return static_cast<int64_t>(f);
    case NearestMode::Ceil: return static_cast<int64_t>(std::ceil(x));
  }
  return 0;
}

/// Interpolation taps for one axis: out x taps source indices (clamped to the edge) and weights,
/// plus which outputs fall outside the crop box (tf_crop_and_resize extrapolation).
struct AxisTaps {
  at::Tensor index;    // int64 [out * taps]
  at::Tensor weight;   // double [out, taps]
  at::Tensor outside;  // bool [out], defined only for tf_crop_and_resize
  int64_t taps = 1;
};

AxisTaps axisTaps(const ResizeAttrs& a, int64_t in, int64_t out, double scale, double rs, double re) {
  AxisTaps t;
  t.taps = a.mode == ResizeMode::Nearest ? 1 : a.mode == ResizeMode::Linear ? 2 : 4;
  at::Tensor idx = at::empty({out, t.taps}, at::kLong);
  at::Tensor w = at::empty({out, t.taps}, at::kDouble);
  at::Tensor outside = at::zeros({out}, at::kBool);
  int64_t* ip = idx.data_ptr<int64_t>();
  double* wp = w.data_ptr<double>();
  bool* op = outside.data_ptr<bool>();
  auto clampIdx = [in](int64_t i) { return std::min(std::max<int64_t>(i, 0), in - 1); };
  const double A = a.cubic_a;
  for (int64_t j = 0; j < out; ++j) {
    double x = sourceCoord(a, j, in, in * scale, scale, rs, re);
    if (a.coord == CoordMode::TfCropAndResize && (x < 0 || x > in - 1)) op[j] = true;
    int64_t* ij = ip + j * t.taps;
    double* wj = wp + j * t.taps;
    if (a.mode == ResizeMode::Nearest) {
      ij[0] = clampIdx(nearestIndex(a.nearest, x));
      wj[0] = 1.0;
      continue;
    }
    double f = std::floor(x), r = x - f;
    int64_t fi = static_cast<int64_t>(f);
    if (a.mode == ResizeMode::Linear) {
      ij[0] = clampIdx(fi);
      ij[1] = clampIdx(fi + 1);
      wj[0] = 1.0 - r;
      wj[1] = r;
      continue;
    }
    double c[4] = {((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A,
                   ((A + 2) * r - (A + 3)) * r * r + 1,
                   ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1,
                   ((A * (2 - r) - 5 * A) * (2 - r) + 8 * A) * (2 - r) - 4 * A};
    double sum = 0;
    for (int k = 0; k < 4; ++k) {
      int64_t src = fi - 1 + k;
      if (a.exclude_outside && (src < 0 || src >= in)) c[k] = 0;
      sum += c[k];
      ij[k] = clampIdx(src);
    }
    for (int k = 0; k < 4; ++k) wj[k] = a.exclude_outside && sum != 0 ? c[k] / sum : c[k];
  }
  t.index = idx.reshape({-1});
  t.weight = w;
  if (a.coord == CoordMode::TfCropAndResize) t.outside = outside;
  return t;
}

/// True if every spatial factor is a positive integer f (given exactly as the scale) with
/// out = in * f, and ATen's float reciprocal 1/f rounds up (so its floor(j * (1/f)) equals
/// floor(j / f) exactly).
bool integerUpscale(at::IntArrayRef in, const std::vector<int64_t>& out,
                    const std::vector<double>& scales) {
  for (size_t i = 2; i < in.size(); ++i) {
    if (in[i] <= 0 || out[i] % in[i] != 0) return false;
    int64_t f = out[i] / in[i];
    if (scales[i] != static_cast<double>(f)) return false;  // ONNX divides by the given scale
    if (f < 1 || static_cast<double>(static_cast<float>(1.0 / f)) < 1.0 / f) return false;
  }
  return true;
}

/// ATen upsample kernels for the common cases (only spatial dims resized, float input).
/// Returns an undefined tensor when no ATen kernel matches ONNX's semantics exactly.
at::Tensor resizeFast(const ResizeAttrs& a, const at::Tensor& x, const std::vector<int64_t>& osz,
                      const std::vector<double>& scales, bool scales_given) {
  const int64_t r = x.dim();
  if (r < 3 || r > 5 || !at::isFloatingType(x.scalar_type())) return at::Tensor();
  if (osz[0] != x.size(0) || osz[1] != x.size(1) || scales[0] != 1.0 || scales[1] != 1.0)
    return at::Tensor();
  at::IntArrayRef out(osz.data() + 2, r - 2);
  // ATen uses the integer output length; ONNX uses in * scale (see sourceCoord).
  bool exact_len = true, all_gt1 = true;
  for (int64_t i = 2; i < r; ++i) {
    exact_len = exact_len && x.size(i) * scales[i] == static_cast<double>(osz[i]);
    all_gt1 = all_gt1 && osz[i] > 1;
  }
  auto sc = [&](int64_t i) -> c10::optional<double> {
    return scales_given ? c10::optional<double>(scales[i]) : c10::nullopt;
  };
  if (a.mode == ResizeMode::Nearest) {
    bool floor_like = (a.coord == CoordMode::Asymmetric && a.nearest == NearestMode::Floor) ||
                      ((a.coord == CoordMode::HalfPixel || a.coord == CoordMode::PytorchHalfPixel) &&
                       (a.nearest == NearestMode::RoundPreferFloor ||
                        a.nearest == NearestMode::RoundPreferCeil));
    if (!floor_like || !integerUpscale(x.sizes(), osz, scales)) return at::Tensor();
    if (r == 3) return at::upsample_nearest1d(x, out, c10::nullopt);
    if (r == 4) return at::upsample_nearest2d(x, out, c10::nullopt, c10::nullopt);
    return at::upsample_nearest3d(x, out, c10::nullopt, c10::nullopt, c10::nullopt);
  }
  bool align = a.coord == CoordMode::AlignCorners && exact_len;
  bool half = a.coord == CoordMode::HalfPixel ||
              (a.coord == CoordMode::PytorchHalfPixel && all_gt1 && exact_len);
  if (!align && !half) return at::Tensor();
  if (a.mode == ResizeMode::Linear) {
    if (r == 3) return at::upsample_linear1d(x, out, align, sc(2));
    if (r == 4) return at::upsample_bilinear2d(x, out, align, sc(2), sc(3));
    return at::upsample_trilinear3d(x, out, align, sc(2), sc(3), sc(4));
  }
  if (r == 4 && a.cubic_a == -0.75 && !a.exclude_outside)
    return at::upsample_bicubic2d(x, out, align, sc(2), sc(3));
  return at::Tensor();
}

/// Resize: output size from `sizes` or floor(in * scales); each resized axis is interpolated
/// separately (exact for the separable N-linear / N-cubic kernels) by gathering the taps with
/// index_select and contracting with their weights.
Kernel makeResize(const Node& n) {
  ResizeAttrs a = parseResize(n);
  return [a, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                 std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    const int64_t r = x.dim();
    auto given = [&](size_t i) { return in.size() > i && in[i].defined() && in[i].numel() > 0; };
    std::vector<double> scales(r, 1.0);
    std::vector<int64_t> osz(x.sizes().begin(), x.sizes().end());
    bool scales_given = false;
    if (given(3)) {
      GS_CHECK(!given(2), n.describe(), ": only one of 'scales' and 'sizes' may be given");
      osz = toInts(in[3]);
      GS_CHECK(static_cast<int64_t>(osz.size()) == r, n.describe(), ": sizes has ", osz.size(),
               " entries for an input of rank ", r);
      for (int64_t i = 0; i < r; ++i) {
        GS_CHECK(osz[i] >= 0, n.describe(), ": negative output size ", osz[i]);
        scales[i] = x.size(i) > 0 ? static_cast<double>(osz[i]) / x.size(i) : 1.0;
      }
    } else {
      GS_CHECK(given(2), n.describe(), ": one of 'scales' and 'sizes' must be given");
      scales = toDoubles(in[2]);
      GS_CHECK(static_cast<int64_t>(scales.size()) == r, n.describe(), ": scales has ",
               scales.size(), " entries for an input of rank ", r);
      scales_given = true;
      for (int64_t i = 0; i < r; ++i) {
        GS_CHECK(scales[i] > 0, n.describe(), ": scales must be positive, got ", scales[i]);
        osz[i] = static_cast<int64_t>(std::floor(x.size(i) * scales[i]));
      }
    }
    std::vector<double> roi;
    if (a.coord == CoordMode::TfCropAndResize) {
      GS_CHECK(given(1), n.describe(), ": tf_crop_and_resize needs the 'roi' input");
      roi = toDoubles(in[1]);
      GS_CHECK(static_cast<int64_t>(roi.size()) == 2 * r, n.describe(), ": roi has ", roi.size(),
               " entries, expected ", 2 * r);
    } else if (at::Tensor y = resizeFast(a, x, osz, scales, scales_given); y.defined()) {
      out[0] = y;
      return;
    }
    bool interp = a.mode != ResizeMode::Nearest;
    at::ScalarType st = x.scalar_type();
    at::Tensor y = interp && !at::isFloatingType(st) ? x.to(at::kFloat) : x;
    at::Tensor outside;
    for (int64_t d = 0; d < r; ++d) {
      bool crop = a.coord == CoordMode::TfCropAndResize;
      if (!crop && osz[d] == x.size(d) && scales[d] == 1.0) continue;
      GS_CHECK(x.size(d) > 0 || osz[d] == 0, n.describe(), ": cannot resize an empty axis ", d);
      if (osz[d] == 0 || x.size(d) == 0) {
        DimVec shape(y.sizes().begin(), y.sizes().end());
        shape[d] = osz[d];
        y = at::empty(shape, y.options());
        continue;
      }
      AxisTaps t = axisTaps(a, x.size(d), osz[d], scales[d], crop ? roi[d] : 0.0,
                            crop ? roi[d + r] : 1.0);
      at::Tensor g = y.index_select(d, t.index);
      if (t.taps > 1) {
        DimVec shape(g.sizes().begin(), g.sizes().end());
        shape[d] = osz[d];
        shape.insert(shape.begin() + d + 1, t.taps);
        DimVec wshape(shape.size(), 1);
        wshape[d] = osz[d];
        wshape[d + 1] = t.taps;
        g = (g.reshape(shape) * t.weight.to(g.scalar_type()).reshape(wshape)).sum(d + 1);
      }
      y = g;
      if (t.outside.defined()) {
        DimVec mshape(r, 1);
        mshape[d] = osz[d];
        at::Tensor m = t.outside.reshape(mshape);
        outside = outside.defined() ? outside.logical_or(m) : m;
      }
    }
    if (outside.defined()) y = at::where(outside, at::scalar_tensor(a.extrapolation, y.options()), y);
    if (y.scalar_type() != st) y = y.round().to(st);
    out[0] = y;
  };
}

/// DepthToSpace: DCR (depth-column-row, default) or CRD (torch's pixel_shuffle) ordering.
Kernel makeDepthToSpace(const Node& n) {
  int64_t b = n.attr("blocksize").i();
  GS_CHECK(b >= 1, n.describe(), ": blocksize must be >= 1");
  std::string mode = n.attrString("mode", "DCR");
  GS_CHECK(mode == "DCR" || mode == "CRD", n.describe(), ": unknown mode '", mode, "'");
  bool dcr = mode == "DCR";
  return [b, dcr, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                      std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    GS_CHECK(x.dim() == 4 && x.size(1) % (b * b) == 0, n.describe(),
             ": expected N x C x H x W with C divisible by blocksize^2, got ", x.sizes());
    int64_t N = x.size(0), C = x.size(1) / (b * b), H = x.size(2), W = x.size(3);
    at::Tensor y = dcr ? x.reshape({N, b, b, C, H, W}).permute({0, 3, 4, 1, 5, 2})
                       : x.reshape({N, C, b, b, H, W}).permute({0, 1, 4, 2, 5, 3});
    out[0] = y.reshape({N, C, H * b, W * b});
  };
}

/// SpaceToDepth: inverse of DepthToSpace in DCR order.
Kernel makeSpaceToDepth(const Node& n) {
  int64_t b = n.attr("blocksize").i();
  GS_CHECK(b >= 1, n.describe(), ": blocksize must be >= 1");
  return [b, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                 std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    GS_CHECK(x.dim() == 4 && x.size(2) % b == 0 && x.size(3) % b == 0, n.describe(),
             ": expected N x C x H x W with H, W divisible by blocksize, got ", x.sizes());
    int64_t N = x.size(0), C = x.size(1), H = x.size(2) / b, W = x.size(3) / b;
    out[0] = x.reshape({N, C, H, b, W, b}).permute({0, 3, 5, 1, 2, 4}).reshape({N, C * b * b, H, W});
  };
}

/// GridSample (opset 16) on at::grid_sampler: mode bilinear/nearest/bicubic, padding
/// zeros/border/reflection, align_corners.
Kernel makeGridSample(const Node& n) {
  std::string mode = n.attrString("mode", "bilinear");
  std::string pad = n.attrString("padding_mode", "zeros");
  bool align = n.attrInt("align_corners", 0) != 0;
  int64_t im = mode == "bilinear" ? 0 : mode == "nearest" ? 1 : mode == "bicubic" ? 2 : -1;
  int64_t pm = pad == "zeros" ? 0 : pad == "border" ? 1 : pad == "reflection" ? 2 : -1;
  GS_CHECK(im >= 0, n.describe(), ": unknown mode '", mode, "'");
  GS_CHECK(pm >= 0, n.describe(), ": unknown padding_mode '", pad, "'");
  return [im, pm, align, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                             std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    GS_CHECK(x.dim() == 4 && in[1].dim() == 4 && in[1].size(3) == 2 && in[1].size(0) == x.size(0),
             n.describe(), ": expected X of shape N x C x H x W and grid N x H_out x W_out x 2, got ",
             x.sizes(), " and ", in[1].sizes());
    at::Tensor grid = in[1].scalar_type() == x.scalar_type() ? in[1] : in[1].to(x.scalar_type());
    out[0] = at::grid_sampler(x, grid, im, pm, align);
  };
}

}  // namespace

void registerImageOps(OpRegistry& r) {
  r.add(OpDef("Resize").inputs(1, 4)
            .attr("coordinate_transformation_mode", AttrKind::String)
            .attr("cubic_coeff_a", AttrKind::Float)
            .attr("exclude_outside", AttrKind::Int)
            .attr("extrapolation_value", AttrKind::Float)
            .attr("mode", AttrKind::String)
            .attr("nearest_mode", AttrKind::String)
            .kernel(makeResize));
  r.add(OpDef("DepthToSpace").inputs(1)
            .attr("blocksize", AttrKind::Int, true)
            .attr("mode", AttrKind::String)
            .kernel(makeDepthToSpace));
  r.add(OpDef("SpaceToDepth").inputs(1)
            .attr("blocksize", AttrKind::Int, true)
            .kernel(makeSpaceToDepth));
  r.add(OpDef("GridSample").inputs(2)
            .attr("align_corners", AttrKind::Int)
            .attr("mode", AttrKind::String)
            .attr("padding_mode", AttrKind::String)
            .kernel(makeGridSample));
}

}  // namespace gs

// Shared attribute handling for windowed ops (Conv*, *Pool): auto_pad, pads, strides, window geometry.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/SmallVector.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "support/error.h"

namespace gs {

/// ONNX auto_pad modes.
enum class AutoPad { NotSet, SameUpper, SameLower, Valid };

/// Small per-call vectors (spatial rank <= 3 in practice).
using DimVec = c10::SmallVector<int64_t, 6>;

/// Parses the node's "auto_pad" attribute (default NOTSET); throws naming the node on bad values.
inline AutoPad parseAutoPad(const Node& n) {
  std::string s = n.attrString("auto_pad", "NOTSET");
  if (s == "NOTSET") return AutoPad::NotSet;
  if (s == "SAME_UPPER") return AutoPad::SameUpper;
  if (s == "SAME_LOWER") return AutoPad::SameLower;
  if (s == "VALID") return AutoPad::Valid;
  GS_FAIL(n.describe(), ": unknown auto_pad '", s, "'");
}

/// Window attributes as given on the node; empty vectors mean "attribute absent" (defaults
/// are filled once the spatial rank is known, see `resolve`).
struct WindowAttrs {
  AutoPad auto_pad = AutoPad::NotSet;
  std::vector<int64_t> kernel, strides, dilations, pads;
  bool ceil_mode = false;

  /// Reads kernel_shape/strides/dilations/pads/auto_pad (and ceil_mode if `with_ceil`).
  static WindowAttrs parse(const Node& n, bool with_ceil) {
    WindowAttrs a;
    a.auto_pad = parseAutoPad(n);
    a.kernel = n.attrInts("kernel_shape");
    a.strides = n.attrInts("strides");
    a.dilations = n.attrInts("dilations");
    a.pads = n.attrInts("pads");
    if (with_ceil) a.ceil_mode = n.attrInt("ceil_mode", 0) != 0;
    for (int64_t v : a.strides) GS_CHECK(v >= 1, n.describe(), ": strides must be >= 1");
    for (int64_t v : a.dilations) GS_CHECK(v >= 1, n.describe(), ": dilations must be >= 1");
    for (int64_t v : a.kernel) GS_CHECK(v >= 1, n.describe(), ": kernel_shape must be >= 1");
    for (int64_t v : a.pads) GS_CHECK(v >= 0, n.describe(), ": pads must be >= 0");
    return a;
  }

  /// Checks the attribute lengths against spatial rank `nd`; throws naming the node otherwise.
  void checkRank(const Node& n, size_t nd) const {
    GS_CHECK(strides.empty() || strides.size() == nd, n.describe(), ": strides has ",
             strides.size(), " entries, expected ", nd);
    GS_CHECK(dilations.empty() || dilations.size() == nd, n.describe(), ": dilations has ",
             dilations.size(), " entries, expected ", nd);
    GS_CHECK(pads.empty() || pads.size() == 2 * nd, n.describe(), ": pads has ", pads.size(),
             " entries, expected ", 2 * nd);
    GS_CHECK(kernel.empty() || kernel.size() == nd, n.describe(), ": kernel_shape has ",
             kernel.size(), " entries, expected ", nd);
  }
};

/// Resolved geometry of a windowed op over `nd` spatial dims.
struct WindowGeometry {
  DimVec kernel, stride, dilation, pad_begin, pad_end, out;
  bool symmetric() const {
    for (size_t i = 0; i < pad_begin.size(); ++i)
      if (pad_begin[i] != pad_end[i]) return false;
    return true;
  }
};

inline int64_t ceilDiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
inline int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/// ONNX output sizes and pads for a forward window op (Conv, MaxPool, AveragePool, LpPool):
/// NOTSET uses explicit pads with floor (or ceil) rounding; SAME_* pads so that
/// out = ceil(in / stride), the odd pad going to the end (UPPER) or the beginning (LOWER);
/// VALID uses no padding.
inline WindowGeometry forwardGeometry(const WindowAttrs& a, at::IntArrayRef in,
                                      at::IntArrayRef kernel) {
  const size_t nd = in.size();
  WindowGeometry g;
  for (size_t i = 0; i < nd; ++i) {
    int64_t k = kernel[i];
    int64_t s = a.strides.empty() ? 1 : a.strides[i];
    int64_t d = a.dilations.empty() ? 1 : a.dilations[i];
    int64_t eff = (k - 1) * d + 1;
    int64_t pb = 0, pe = 0, o = 0;
    switch (a.auto_pad) {
      case AutoPad::NotSet: {
        pb = a.pads.empty() ? 0 : a.pads[i];
        pe = a.pads.empty() ? 0 : a.pads[i + nd];
        int64_t span = in[i] + pb + pe - eff;
        o = (a.ceil_mode ? ceilDiv(span, s) : floorDiv(span, s)) + 1;
        // ceil_mode: a window that would start in the right padding is dropped (as in ONNX's
        // current spec, ONNX Runtime and torch).
        if (a.ceil_mode && o > 1 && (o - 1) * s >= in[i] + pb) --o;
        break;
      }
      case AutoPad::SameUpper:
      case AutoPad::SameLower: {
        o = ceilDiv(in[i], s);
        int64_t total = std::max<int64_t>(0, (o - 1) * s + eff - in[i]);
        int64_t small = total / 2;
        pb = a.auto_pad == AutoPad::SameUpper ? small : total - small;
        pe = total - pb;
        break;
      }
      case AutoPad::Valid:
        o = floorDiv(in[i] - eff, s) + 1;
        break;
    }
    g.kernel.push_back(k);
    g.stride.push_back(s);
    g.dilation.push_back(d);
    g.pad_begin.push_back(pb);
    g.pad_end.push_back(pe);
    g.out.push_back(o);
  }
  return g;
}

/// at::constant_pad_nd pad list (last dim first) for per-dim begin/end amounts over the
/// trailing `begin.size()` dims; negative amounts crop.
inline DimVec padList(at::IntArrayRef begin, at::IntArrayRef end) {
  DimVec p;
  for (size_t i = begin.size(); i-- > 0;) {
    p.push_back(begin[i]);
    p.push_back(end[i]);
  }
  return p;
}

}  // namespace gs

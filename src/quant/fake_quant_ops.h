// gs-domain fake-quantization ops (gs::FakeQuant, gs::LsqQuant): registration and attribute names.
#pragma once
#include <string>

#include "ops/registry.h"
#include "quant/qparams.h"

namespace gs {

/// Registers gs::FakeQuant and gs::LsqQuant (called from registerAllOps).
///
/// gs::FakeQuant(x, scale?, zero_point?, enable?, running_min?, running_max?) -> y
///   y = (clamp(round(x / scale) + zp, quant_min, quant_max) - zp) * scale, straight-through
///   gradient (zero outside the clamp range). `axis` / `group_size` give the parameter layout
///   (quant::QLayout). `enable` (scalar, 0 = pass x through unchanged) implements quantization
///   delay: a trainer callback flips it. `observer` updates scale / zero point in train mode,
///   in place on the parameter tensors: "minmax" from the current batch, "ema" from running_min /
///   running_max (updated with `averaging_constant`); "dynamic" / "dynamic_per_token" compute
///   them from every input in every mode (per tensor / per row over the last axis).
/// gs::LsqQuant(x, step, enable?) -> y: quant::lsqQuantize with a learnable step (`per_sample`=1:
///   gradient scale counts elements per sample, for activations).
void registerGsQuantOps(OpRegistry& r);

namespace quant {

/// Spec implied by a node's quant_min / quant_max / symmetric / axis / group_size attributes.
QuantSpec specFromAttrs(const Node& n);

}  // namespace quant
}  // namespace gs

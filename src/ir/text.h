// IR text form: printer and parser that round-trip exactly.
//
// Grammar (one statement per line; '#' starts a comment):
//   graph "main" {
//     opset "" 17
//     input %x: f32[N,1,28,28]
//     param %conv1.weight: f32[6,1,5,5] = tensor<f32[6,1,5,5]>[0.1, ...]
//     param frozen %table: i64[3] = tensor<i64[3]>[1, 2, 3]
//     %y: f32[N,6,24,24] = Conv(%x, %conv1.weight, _) @conv1 {kernel_shape=[5,5], pads=[0,0,0,0]}
//     %a: f32[?], %b = Split(%y) @split {axis=1}
//     %q = com.microsoft::MatMulNBits(%a, %w) @mm {bits=4}
//     output %y
//   }
// Names that are not [A-Za-z0-9_.:/-]+ are written quoted: %"my value". `_` is an omitted input
// or output. Attribute values: 5 (int), 5.0 / 1e-05 / inf / nan (float), "s" (string),
// [1,2] (ints), [1.0,2.5] (floats), ["a"] (strings), ints[] / floats[] / strings[] (empty lists),
// tensor<i64[2]>[1, 2] (tensor). Floats print with 9 significant digits (exact for f32).
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "ir/graph.h"

namespace gs {

struct PrintOptions {
  /// Print parameter / tensor-attribute contents. When false, tensors with more than
  /// `max_inline_elements` elements print as `tensor<f32[...]>...` (not parseable).
  bool tensor_data = true;
  int64_t max_inline_elements = 16;
};

/// Prints the graph in the text form above.
std::string printGraph(const Graph& g, const PrintOptions& opts = {});

/// Parses the text form. Throws gs::Error "<source>:<line>:<col>: message" on bad input.
std::unique_ptr<Graph> parseGraph(std::string_view text, const std::string& source = "<text>");

}  // namespace gs

// IR text form: printer and parser that round-trip exactly.
//
// Grammar (one statement per line; '#' starts a comment; docs/ir.md has the full reference):
//   graph "main" {
//     opset "" 17
//     input %x: f32[N,1,28,28]
//     param %conv1.weight: f32[6,1,5,5] = tensor<f32[6,1,5,5]>[0.1, ...]
//     param frozen %table: i64[3] = tensor<i64[3]>[1, 2, 3]
//     %y: f32[N,6,24,24] = Conv(%x, %conv1.weight, _) @conv1 {kernel_shape=[5,5], pads=[0,0,0,0]}
//     %a: f32[?], %b = Split(%y) @split {axis=1}
//     %q = com.microsoft::MatMulNBits(%a, %w) @mm {bits=4}
//     () = Print(%q) @sink
//     output %y
//   }
// Names that are not [A-Za-z0-9_.:/-]+ (or that end with ':') are written quoted: %"my value";
// op types and domains quote anything outside [A-Za-z0-9_./-]. Strings escape \" \\ \n \t \r and
// other bytes outside 0x20..0x7e as \xHH. Because ':' may occur in bare names (`%conv:1`), the
// type annotation needs a space after the colon: `%conv:1: f32[2]`.
// Types: dtype name (f32 f64 f16 bf16 i8 u8 i16 i32 i64 u16 u32 u64 bool str c64 c128 undef)
// followed by [dims] or [*] (unknown rank); a dim is a size, a symbol (bare C identifier or a
// quoted string) or `?` (unknown). A value without annotation is undef[*]; the printer omits
// exactly that annotation. `_` is an omitted input or output; `()` is an empty output list.
// `@name` is optional when parsing (a fresh name is derived from the op type).
// Attribute values: 5 (int), 5.0 / 1e-05 / inf / -inf / nan (float), "s" (string),
// [1,2] (ints), [1.0,2.5] (floats; an int element promotes the list), ["a"] (strings),
// ints[] / floats[] / strings[] (empty or explicitly typed lists), tensor<i64[2]>[1, 2] (tensor).
// Tensor literals list elements flat in row-major order; bool elements are true/false and complex
// elements (re, im). Floats print in the shortest form that parses back to the same bits (f16 and
// bf16 through float), so printing and parsing is exact for every value but NaN payloads.
// The parser accepts values only after their definition (text order is topological order).
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

/// Prints the graph in the text form above. Throws gs::Error only for tensors of a dtype the
/// text form cannot hold (none of the dtypes ATen stores).
std::string printGraph(const Graph& g, const PrintOptions& opts = {});

/// Parses the text form. Throws gs::Error "<source>:<line>:<col>: message" on bad input
/// (columns count bytes from 1). Tensor literals whose declared size exceeds what the remaining
/// text could hold are refused before anything is allocated.
std::unique_ptr<Graph> parseGraph(std::string_view text, const std::string& source = "<text>");

}  // namespace gs

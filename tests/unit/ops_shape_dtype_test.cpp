// Shape-family ops over every ATen-backed element type: results equal the int64 computation
// cast to the type (data movement and index arithmetic must not depend on the dtype).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "op_test_util.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

struct Case {
  const char* op;
  std::vector<at::Tensor> in;  // in[0] (and in[2] for scatters, when `upd`) take the dtype
  std::map<std::string, Attribute> attrs = {};
  size_t nout = 1;
  bool typed_updates = false;
};

class ShapeOpsDType : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(ShapeOpsDType, MatchesInt64ComputationCast) {
  const at::ScalarType st = GetParam();
  // Values 0..2 are exact in every type; the int64 reference sees the same values (bool: 0/1).
  at::Tensor xs = (at::arange(24) % 3).to(st).reshape({2, 3, 4});
  at::Tensor x4s = (at::arange(48) % 3).to(st).reshape({1, 2, 4, 6});
  at::Tensor zeros_idx = at::zeros({2, 3, 4}, at::kLong);
  std::vector<Case> cases = {
      {"Reshape", {xs, i64({-1, 6})}},
      {"Transpose", {xs}},
      {"Concat", {xs, xs.flip(1)}, {{"axis", 1}}},
      {"Split", {xs, i64({1, 3})}, {{"axis", 2}}, 2},
      {"Slice", {xs, i64({-1}), i64({INT64_MIN}), i64({2}), i64({-1})}},
      {"Gather", {xs, i64({-1, 0})}, {{"axis", 1}}},
      {"GatherElements", {xs, (at::arange(24) % 2).reshape({2, 3, 4})}},
      {"GatherND", {xs, i64({1, 2}).reshape({1, 2})}},
      {"ScatterElements", {xs, zeros_idx, xs.flip(2)}, {}, 1, true},
      {"ScatterElements", {xs, zeros_idx, xs}, {{"reduction", "add"}}, 1, true},
      {"ScatterElements", {xs, zeros_idx, xs}, {{"reduction", "mul"}}, 1, true},
      {"ScatterND", {xs, i64({1}).reshape({1, 1}), xs.slice(0, 0, 1)}, {}, 1, true},
      {"ScatterND", {xs, i64({1, 1}).reshape({2, 1}), xs}, {{"reduction", "add"}}, 1, true},
      {"ScatterND", {xs, i64({1, 1}).reshape({2, 1}), xs}, {{"reduction", "mul"}}, 1, true},
      {"Expand", {xs, i64({2, 2, 3, 4})}},
      {"Tile", {xs, i64({1, 2, 1})}},
      {"Pad", {xs, i64({0, 1, 1, 0, 1, 1})}},
      {"Pad", {xs, i64({0, 1, 2, 0, 1, 3})}, {{"mode", "reflect"}}},
      {"Pad", {xs, i64({0, -1, 1, 0, 1, 1})}, {{"mode", "edge"}}},
      {"Pad", {x4s, i64({0, 0, 1, 2, 0, 0, 3, 1})}, {{"mode", "reflect"}}},
      {"Pad", {x4s, i64({0, 0, 1, 2, 0, 0, 3, 1})}, {{"mode", "edge"}}},
      {"NonZero", {xs}},
      {"Trilu", {xs, at::scalar_tensor(1, at::kLong)}},
      {"Trilu", {xs}, {{"upper", 0}}},
      {"Compress", {xs, i64({1, 0, 1}).to(at::kBool)}, {{"axis", 1}}},
      {"ReverseSequence", {xs, i64({2, 1, 2})}},
      {"Unique", {xs}, {}, 4},
      {"Unique", {xs}, {{"axis", 1}, {"sorted", 0}}, 4},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    std::vector<at::Tensor> ref_in = c.in;
    ref_in[0] = ref_in[0].to(at::kLong);
    if (c.typed_updates) ref_in[2] = ref_in[2].to(at::kLong);
    auto got = runOp(c.op, c.in, c.attrs, c.nout);
    auto want = runOp(c.op, ref_in, c.attrs, c.nout);
    // Outputs carry the data type, except NonZero's and Unique's index outputs (int64).
    const std::string op = c.op;
    for (size_t i = 0; i < got.size(); ++i) {
      at::ScalarType ot = op == "NonZero" || (op == "Unique" && i > 0) ? at::kLong : st;
      EXPECT_TENSOR_EQ(got[i], want[i].to(ot));
    }
  }
  at::Tensor one = at::ones({1}, st);
  EXPECT_TENSOR_EQ(runOp("ConstantOfShape", {i64({2, 1})}, {{"value", one}})[0],
                   at::ones({2, 1}, st));
  at::Tensor oh = runOp("OneHot", {i64({1, -1}), i64({3}), at::cat({at::zeros({1}, st), one})})[0];
  EXPECT_TENSOR_EQ(oh, i64({0, 1, 0, 0, 0, 1}).reshape({2, 3}).to(st));
  EXPECT_TENSOR_EQ(runOp("EyeLike", {xs[0]})[0], at::eye(3, 4, at::kDouble).to(st));
}

INSTANTIATE_TEST_SUITE_P(AllTypes, ShapeOpsDType,
                         ::testing::Values(at::kBool, at::kByte, at::kChar, at::kShort, at::kInt,
                                           at::kLong, at::kHalf, at::kBFloat16, at::kFloat,
                                           at::kDouble),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

}  // namespace
}  // namespace gs

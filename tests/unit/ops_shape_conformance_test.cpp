// Shape/indexing kernels against ONNX's own node conformance cases (expected outputs from
// /usr/share/libonnx-testdata), imported with gstick's ONNX importer and run by the executor.
#include <gtest/gtest.h>

#include "io/tensor_proto.h"
#include "op_test_util.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

// One ctest entry per group rather than per case: each test process pays LibTorch's start-up.
TEST(ShapeConformance, ShapeOpsMatchOnnxCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCases(
      {"test_shape", "test_size", "test_reshape", "test_flatten", "test_transpose", "test_squeeze",
       "test_concat", "test_split", "test_slice",
       // test_unsqueeze_axis_3 is checked below.
       "test_unsqueeze_axis_0", "test_unsqueeze_axis_1", "test_unsqueeze_axis_2",
       "test_unsqueeze_negative_axes", "test_unsqueeze_three_axes", "test_unsqueeze_two_axes",
       "test_unsqueeze_unsorted_axes"},
      {.rtol = 1e-4, .atol = 1e-5}));
}

TEST(ShapeConformance, IndexOpsMatchOnnxCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCases(
      {"test_gather_0", "test_gather_1", "test_gather_2d", "test_gather_negative",
       "test_gather_elements", "test_gathernd", "test_scatter_with", "test_scatter_without",
       "test_scatter_elements", "test_scatternd", "test_nonzero", "test_compress",
       "test_reversesequence", "test_unique"},
      {.rtol = 1e-4, .atol = 1e-5}));
}

TEST(ShapeConformance, GenOpsMatchOnnxCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCases({"test_expand", "test_tile", "test_constant_pad", "test_edge_pad",
                                   "test_reflect_pad", "test_constantofshape", "test_range",
                                   "test_onehot", "test_tril", "test_triu", "test_eyelike"},
                                  {.rtol = 1e-4, .atol = 1e-5}));
}

// test_unsqueeze_axis_3 is the opset-11 form (axes attribute): through the importer's upgrade,
// and in the opset-13 input form on its data: x [3,4,5], axes [3] -> [3,4,5,1].
TEST(ShapeConformance, UnsqueezeAxis3InInputForm) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCase("test_unsqueeze_axis_3", kExact));
  const std::string dir = onnxNodeDir() + "/test_unsqueeze_axis_3/test_data_set_0/";
  at::Tensor x = readTensorProtoFile(dir + "input_0.pb");
  at::Tensor want = readTensorProtoFile(dir + "output_0.pb");
  EXPECT_TRUE(matchesExpected(run1("Unsqueeze", {x, i64({3})}), want, kExact));
}

}  // namespace
}  // namespace gs

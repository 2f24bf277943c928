// Shape/indexing kernels against ONNX's own node conformance cases (expected outputs from
// /usr/share/libonnx-testdata), run as one-node graphs through the executor.
#include <gtest/gtest.h>

#include "single_node_case.h"

namespace gs {
namespace {

// One ctest entry per group rather than per case: each test process pays LibTorch's start-up.
TEST(ShapeConformance, ShapeOpsMatchOnnxCases) {
  GS_EXPECT_ONNX_CASES("test_shape", "test_size", "test_reshape", "test_flatten", "test_transpose",
                       "test_squeeze", "test_concat", "test_split", "test_slice",
                       // test_unsqueeze_axis_3 is the opset-11 form (axes attribute), which the
                       // importer rewrites to the input form; it is checked below.
                       "test_unsqueeze_axis_0", "test_unsqueeze_axis_1", "test_unsqueeze_axis_2",
                       "test_unsqueeze_negative_axes", "test_unsqueeze_three_axes",
                       "test_unsqueeze_two_axes", "test_unsqueeze_unsorted_axes");
}

TEST(ShapeConformance, IndexOpsMatchOnnxCases) {
  GS_EXPECT_ONNX_CASES("test_gather_0", "test_gather_1", "test_gather_2d", "test_gather_negative",
                       "test_gather_elements", "test_gathernd", "test_scatter_with",
                       "test_scatter_without", "test_scatter_elements", "test_scatternd",
                       "test_nonzero", "test_compress", "test_reversesequence", "test_unique");
}

TEST(ShapeConformance, GenOpsMatchOnnxCases) {
  GS_EXPECT_ONNX_CASES("test_expand", "test_tile", "test_constant_pad", "test_edge_pad",
                       "test_reflect_pad", "test_constantofshape", "test_range", "test_onehot",
                       "test_tril", "test_triu", "test_eyelike");
}

// test_unsqueeze_axis_3 in the opset-13 input form: x [3,4,5], axes [3] -> [3,4,5,1].
TEST(ShapeConformance, UnsqueezeAxis3InInputForm) {
  at::Tensor x = test::loadTensorPb(std::string(test::kOnnxNodeDir) +
                                    "/test_unsqueeze_axis_3/test_data_set_0/input_0.pb");
  at::Tensor want = test::loadTensorPb(std::string(test::kOnnxNodeDir) +
                                       "/test_unsqueeze_axis_3/test_data_set_0/output_0.pb");
  EXPECT_EQ(test::compareExpected(test::run1("Unsqueeze", {x, at::tensor({3}, at::kLong)}), want),
            "");
}

}  // namespace
}  // namespace gs

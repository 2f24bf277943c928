// Indexing and generating ops (shape_index.cpp, shape_gen.cpp): closed-form cases and values
// copied from ONNX's spec examples / conformance outputs, gradients, errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

TEST(IndexOps, GatherNegativeIndicesAndShapes) {
  at::Tensor x = at::arange(12, at::kFloat).reshape({3, 4});
  EXPECT_TENSOR_EQ(runOp("Gather", {x, i64({-1, 0})})[0], at::stack({x[2], x[0]}));
  EXPECT_TENSOR_EQ(runOp("Gather", {x, at::tensor({-4, 1}, at::kInt)}, {{"axis", -1}})[0],
                   x.index_select(1, i64({0, 1})));
  at::Tensor y = runOp("Gather", {x, i64({0, 2, -1, 1}).reshape({2, 2})}, {{"axis", 1}})[0];
  EXPECT_EQ(y.sizes(), at::IntArrayRef({3, 2, 2}));
  EXPECT_TENSOR_EQ(y[1], f32({4, 6, 7, 5}).reshape({2, 2}));
  // Scalar index removes the axis and returns a view.
  at::Tensor s = runOp("Gather", {x, at::scalar_tensor(-2, at::kLong)})[0];
  EXPECT_TENSOR_EQ(s, x[1]);
  EXPECT_EQ(s.data_ptr(), x[1].data_ptr());
  EXPECT_EQ(errorOf([&] {
              runOp("Gather", {x, i64({3})});
            }),
            "node 'n' (Gather): index 3 out of range [-3, 3)");
}

TEST(IndexOps, GatherElementsNegative) {
  // ONNX test_gather_elements_negative_indices.
  at::Tensor x = f32({1, 2, 3, 4, 5, 6, 7, 8, 9}).reshape({3, 3});
  at::Tensor idx = i64({-1, -2, 0, -2, 0, 0}).reshape({2, 3});
  EXPECT_TENSOR_EQ(runOp("GatherElements", {x, idx})[0], f32({7, 5, 3, 4, 2, 3}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(
      runOp("GatherElements", {x, i64({0, 0, 1, 0}).reshape({2, 2})}, {{"axis", -1}})[0],
      f32({1, 1, 5, 4}).reshape({2, 2}));
}

TEST(IndexOps, GatherNDBatchDims) {
  at::Tensor x = at::arange(8, at::kInt).reshape({2, 2, 2});
  EXPECT_TENSOR_EQ(runOp("GatherND", {x, i64({1, 0}).reshape({2, 1})}, {{"batch_dims", 1}})[0],
                   at::tensor({2, 3, 4, 5}, at::kInt).reshape({2, 2}));
  // batch_dims=0, full index -> scalars; negative entries wrap.
  EXPECT_TENSOR_EQ(runOp("GatherND", {x, i64({0, 1, 1, -1, 0, 0}).reshape({2, 3})})[0],
                   at::tensor({3, 4}, at::kInt));
  // batch_dims=2 on [2,2,3]: index the last dim per (i, j).
  at::Tensor z = at::arange(12, at::kFloat).reshape({2, 2, 3});
  at::Tensor o =
      runOp("GatherND", {z, i64({2, 0, 1, -1}).reshape({2, 2, 1})}, {{"batch_dims", 2}})[0];
  EXPECT_TENSOR_EQ(o, f32({2, 3, 7, 11}).reshape({2, 2}));
  EXPECT_THROW(runOp("GatherND", {x, i64({0, 0, 0, 0}).reshape({1, 4})}), Error);
}

TEST(IndexOps, ScatterElementsReductions) {
  at::Tensor x = f32({1, 2, 3, 4, 5}).reshape({1, 5});
  at::Tensor idx = i64({1, 1}).reshape({1, 2}), upd = f32({1.1f, 2.1f}).reshape({1, 2});
  at::Tensor add = runOp("ScatterElements", {x, idx, upd}, {{"axis", 1}, {"reduction", "add"}})[0];
  EXPECT_LT(test::maxRelDiff(add, f32({1, 5.2f, 3, 4, 5}).reshape({1, 5})), 1e-6);
  at::Tensor mul = runOp("ScatterElements", {x, idx, upd}, {{"axis", 1}, {"reduction", "mul"}})[0];
  EXPECT_LT(test::maxRelDiff(mul, f32({1, 2 * 1.1f * 2.1f, 3, 4, 5}).reshape({1, 5})), 1e-6);
  at::Tensor none =
      runOp("ScatterElements", {x, i64({-1, 0}).reshape({1, 2}), upd}, {{"axis", -1}})[0];
  EXPECT_TENSOR_EQ(none, f32({2.1f, 2, 3, 4, 1.1f}).reshape({1, 5}));
  // Deprecated Scatter is ScatterElements without reduction.
  EXPECT_TENSOR_EQ(runOp("Scatter", {x, i64({-1, 0}).reshape({1, 2}), upd}, {{"axis", 1}})[0],
                   none);
  EXPECT_EQ(
      errorOf([&] {
        runOp("ScatterElements", {x, idx, upd}, {{"reduction", "avg"}});
      }),
      "node 'n' (ScatterElements): unknown reduction 'avg' (expected none, add, mul, max or min)");
}

// Train mode takes the autograd-capable scatter_reduce path: same values, closed-form gradients.
TEST(IndexOps, ScatterElementsMulTrainMatchesEvalAndGradient) {
  Graph g;
  Value* x = g.addParam("x", f32({1, 2, 3}).requires_grad_(true));
  Value* u = g.addParam("u", f32({4, 5}).requires_grad_(true));
  Node* n = g.addNode("ScatterElements", {x, g.addParam("i", i64({1, 1}), false), u}, 1, "sc",
                      {{"reduction", "mul"}});
  g.addOutput(n->output(0));
  at::Tensor eval = Executor(g).run({})[0];
  Executor train(g, {.training = true});
  at::Tensor y = train.run({})[0];
  EXPECT_TENSOR_EQ(eval, f32({1, 40, 3}));
  EXPECT_TENSOR_EQ(y.detach(), eval);
  (y * f32({1, 10, 100})).sum().backward();
  EXPECT_TENSOR_EQ(x->data().grad(), f32({1, 10 * 4 * 5, 100}));  // d(x1*u0*u1)/dx1 = u0*u1
  EXPECT_TENSOR_EQ(u->data().grad(), f32({10 * 2 * 5, 10 * 2 * 4}));
}

TEST(IndexOps, ScatterNDReductions) {
  // ONNX spec example 2 (replace slices) and its add / mul variants.
  at::Tensor d = at::tensor({1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1}, at::kFloat);
  at::Tensor data = at::cat({d, d, d.flip(0), d}).reshape({4, 4, 4});
  at::Tensor idx = i64({0, 2}).reshape({2, 1});
  at::Tensor upd =
      at::cat({at::full({4}, 5.f), at::full({4}, 6.f), at::full({4}, 7.f), at::full({4}, 8.f),
               at::full({4}, 1.f), at::full({4}, 2.f), at::full({4}, 3.f), at::full({4}, 4.f)})
          .reshape({2, 4, 4});
  at::Tensor none = runOp("ScatterND", {data, idx, upd})[0];
  EXPECT_TENSOR_EQ(none[0], upd[0]);
  EXPECT_TENSOR_EQ(none[2], upd[1]);
  EXPECT_TENSOR_EQ(none[1], data[1]);
  // Duplicate index 0 with mul (ONNX test_scatternd_multiply): data[0] * upd[0] * upd[1].
  at::Tensor dup = i64({0, 0}).reshape({2, 1});
  at::Tensor mul = runOp("ScatterND", {data, dup, upd}, {{"reduction", "mul"}})[0];
  EXPECT_TENSOR_EQ(mul[0].select(0, 1), f32({60, 72, 84, 96}));
  EXPECT_TENSOR_EQ(mul[0], data[0] * upd[0] * upd[1]);
  at::Tensor add =
      runOp("ScatterND", {data, i64({-4, 0}).reshape({2, 1}), upd}, {{"reduction", "add"}})[0];
  EXPECT_TENSOR_EQ(add[0], data[0] + upd[0] + upd[1]);
  // Element-level indices (k = rank).
  at::Tensor e =
      runOp("ScatterND", {at::zeros({2, 3}), i64({1, 2, 0, 0}).reshape({2, 2}), f32({7, 9})})[0];
  EXPECT_TENSOR_EQ(e, f32({9, 0, 0, 0, 0, 7}).reshape({2, 3}));
}

TEST(IndexOps, NonZeroCompressReverseSequence) {
  at::Tensor x = at::tensor({1, 0, 0, 1}, at::kInt).reshape({2, 2});
  EXPECT_TENSOR_EQ(runOp("NonZero", {x})[0], i64({0, 1, 0, 1}).reshape({2, 2}));
  at::Tensor c = i64({0, 1, 1}).to(at::kBool);
  at::Tensor a = f32({1, 2, 3, 4, 5, 6}).reshape({3, 2});
  EXPECT_TENSOR_EQ(runOp("Compress", {a, c}, {{"axis", 0}})[0], f32({3, 4, 5, 6}).reshape({2, 2}));
  EXPECT_TENSOR_EQ(runOp("Compress", {a, i64({0, 1}).to(at::kBool)}, {{"axis", -1}})[0],
                   f32({2, 4, 6}).reshape({3, 1}));
  EXPECT_TENSOR_EQ(runOp("Compress", {a, c})[0], f32({2, 3}));  // flattened, short condition
  // ONNX test_reversesequence_batch.
  at::Tensor s = at::arange(16, at::kFloat).reshape({4, 4});
  EXPECT_TENSOR_EQ(
      runOp("ReverseSequence", {s, i64({1, 2, 3, 4})}, {{"batch_axis", 0}, {"time_axis", 1}})[0],
      f32({0, 1, 2, 3, 5, 4, 6, 7, 10, 9, 8, 11, 15, 14, 13, 12}).reshape({4, 4}));
  // time-major with a trailing feature dim.
  at::Tensor t = at::arange(12, at::kFloat).reshape({3, 2, 2});
  at::Tensor r = runOp("ReverseSequence", {t, i64({3, 2})})[0];
  EXPECT_TENSOR_EQ(r.select(1, 0), t.select(1, 0).flip(0));
  EXPECT_TENSOR_EQ(r.select(1, 1), at::stack({t[1][1], t[0][1], t[2][1]}));
}

TEST(IndexOps, UniqueSortedAndFirstOccurrenceOrder) {
  at::Tensor x = f32({2, 1, 1, 3, 4, 3});
  auto o = runOp("Unique", {x}, {{"sorted", 0}}, 4);
  EXPECT_TENSOR_EQ(o[0], f32({2, 1, 3, 4}));
  EXPECT_TENSOR_EQ(o[1], i64({0, 1, 3, 4}));
  EXPECT_TENSOR_EQ(o[2], i64({0, 1, 1, 2, 3, 2}));
  EXPECT_TENSOR_EQ(o[3], i64({1, 2, 2, 1}));
  o = runOp("Unique", {x}, {}, 4);
  EXPECT_TENSOR_EQ(o[0], f32({1, 2, 3, 4}));
  EXPECT_TENSOR_EQ(o[1], i64({1, 0, 3, 4}));
  EXPECT_TENSOR_EQ(o[2], i64({1, 0, 0, 2, 3, 2}));
  o = runOp("Unique", {f32({1, 0, 0, 1, 0, 0, 2, 3, 4}).reshape({3, 3})}, {{"axis", -2}}, 4);
  EXPECT_TENSOR_EQ(o[0], f32({1, 0, 0, 2, 3, 4}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(o[1], i64({0, 2}));
  EXPECT_TENSOR_EQ(o[2], i64({0, 0, 1}));
  EXPECT_TENSOR_EQ(o[3], i64({2, 1}));
}

TEST(GenOps, ExpandBidirectionalAndTile) {
  at::Tensor x = f32({1, 2, 3}).reshape({3, 1});
  at::Tensor e = runBoth("Expand", {x, i64({2, 1, 4})});
  EXPECT_EQ(e.sizes(), at::IntArrayRef({2, 3, 4}));
  EXPECT_TENSOR_EQ(e[1].select(1, 3), f32({1, 2, 3}));
  EXPECT_EQ(runBoth("Expand", {x, i64({1})}).sizes(), at::IntArrayRef({3, 1}));
  EXPECT_EQ(errorOf([&] {
              runOp("Expand", {x, i64({2, 4})});
            }),
            "node 'n' (Expand): cannot broadcast input [3,1] to shape [2,4]");
  EXPECT_TENSOR_EQ(runBoth("Tile", {f32({1, 2}).reshape({1, 2}), i64({2, 3})}),
                   f32({1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2}).reshape({2, 6}));
}

TEST(GenOps, PadConstantReflectEdgeAndCrop) {
  at::Tensor a = f32({1, 2, 3});
  EXPECT_TENSOR_EQ(runBoth("Pad", {a, i64({2, 2})}, {{"mode", "reflect"}}),
                   f32({3, 2, 1, 2, 3, 2, 1}));
  EXPECT_TENSOR_EQ(runBoth("Pad", {a, i64({2, 2})}, {{"mode", "edge"}}),
                   f32({1, 1, 1, 2, 3, 3, 3}));
  // Wider than the input: numpy's repeated reflection.
  EXPECT_TENSOR_EQ(runBoth("Pad", {a, i64({4, 5})}, {{"mode", "reflect"}}),
                   f32({1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2}));
  EXPECT_TENSOR_EQ(runBoth("Pad", {a, i64({1, -1}), at::scalar_tensor(7.f)}), f32({7, 1, 2}));
  EXPECT_TENSOR_EQ(runBoth("Pad", {i64({4, 5}), i64({0, 2}), at::scalar_tensor(-1, at::kLong)}),
                   i64({4, 5, -1, -1}));
  at::Tensor x = at::arange(12, at::kFloat).reshape({3, 4});
  EXPECT_TENSOR_EQ(runBoth("Pad", {x, i64({1, 2, 1, 2})}, {{"mode", "reflect"}}),
                   f32({6, 5, 4, 5, 6,  7, 6, 5, 2,  1,  0,  1, 2, 3, 2, 1, 6, 5, 4, 5,
                        6, 7, 6, 5, 10, 9, 8, 9, 10, 11, 10, 9, 6, 5, 4, 5, 6, 7, 6, 5})
                       .reshape({5, 8}));
  // Negative begin pad crops, then edge-pads the end.
  EXPECT_TENSOR_EQ(runBoth("Pad", {x, i64({0, -1, 0, 2})}, {{"mode", "edge"}}),
                   f32({1, 2, 3, 3, 3, 5, 6, 7, 7, 7, 9, 10, 11, 11, 11}).reshape({3, 5}));
  // 4-d float (fused ATen kernel) agrees with the generic gather path (double input).
  at::Tensor img = test::randn({2, 3, 5, 6}, 7);
  for (const char* mode : {"reflect", "edge"}) {
    at::Tensor fused = runOp("Pad", {img, i64({0, 0, 2, 3, 0, 0, 4, 1})}, {{"mode", mode}})[0];
    at::Tensor generic =
        runOp("Pad", {img.to(at::kDouble), i64({0, 0, 2, 3, 0, 0, 4, 1})}, {{"mode", mode}})[0];
    EXPECT_TENSOR_EQ(fused.to(at::kDouble), generic);
  }
  // opset-18 axes input.
  EXPECT_TENSOR_EQ(runBoth("Pad", {x, i64({1, 0}), at::Tensor(), i64({-1})}),
                   at::constant_pad_nd(x, {1, 0}));
  EXPECT_THROW(runOp("Pad", {x, i64({1, 2})}), Error);
  EXPECT_THROW(runOp("Pad", {x, i64({0, 0, 0, 0})}, {{"mode", "wrap"}}), Error);
}

TEST(GenOps, ConstantOfShapeRangeEyeLike) {
  EXPECT_TENSOR_EQ(runBoth("ConstantOfShape", {i64({2, 3})}), at::zeros({2, 3}));
  at::Tensor c = runOp("ConstantOfShape", {i64({4})}, {{"value", at::tensor({7}, at::kInt)}})[0];
  EXPECT_TENSOR_EQ(c, at::full({4}, 7, at::kInt));
  EXPECT_EQ(runOp("ConstantOfShape", {i64({0})})[0].numel(), 0);
  EXPECT_EQ(runOp("ConstantOfShape", {i64({})})[0].dim(), 0);
  auto sc = [](auto v, at::ScalarType t) { return at::scalar_tensor(v, t); };
  EXPECT_TENSOR_EQ(runOp("Range", {sc(10, at::kInt), sc(6, at::kInt), sc(-3, at::kInt)})[0],
                   at::tensor({10, 7}, at::kInt));
  EXPECT_TENSOR_EQ(runOp("Range", {sc(1, at::kLong), sc(5, at::kLong), sc(-1, at::kLong)})[0],
                   i64({}));
  EXPECT_LT(test::maxRelDiff(runOp("Range", {sc(1.f, at::kFloat), sc(2.f, at::kFloat),
                                             sc(0.25f, at::kFloat)})[0],
                             f32({1, 1.25f, 1.5f, 1.75f})),
            1e-7);
  EXPECT_TENSOR_EQ(runOp("EyeLike", {at::zeros({3, 4}, at::kInt)}, {{"k", 1}})[0],
                   at::tensor({0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, at::kInt).reshape({3, 4}));
  EXPECT_TENSOR_EQ(runOp("EyeLike", {at::zeros({3, 2})}, {{"k", -1}, {"dtype", 11}})[0],
                   at::tensor({0., 0., 1., 0., 0., 1.}, at::kDouble).reshape({3, 2}));
  EXPECT_TENSOR_EQ(runOp("EyeLike", {at::zeros({2, 2})}, {{"k", 5}})[0], at::zeros({2, 2}));
}

TEST(GenOps, OneHotAxesAndNegativeIndices) {
  // ONNX test_onehot_negative_indices: depth 10, indices [0, -7, -8] -> 0, 3, 2.
  at::Tensor y = runOp("OneHot", {i64({0, -7, -8}), at::scalar_tensor(10.f), f32({1, 3})})[0];
  EXPECT_EQ(y.sizes(), at::IntArrayRef({3, 10}));
  at::Tensor want = at::ones({3, 10});
  want[0][0] = 3;
  want[1][3] = 3;
  want[2][2] = 3;
  EXPECT_TENSOR_EQ(y, want);
  // axis=0 on [2] indices, out-of-range index 5 gives all off-values.
  at::Tensor z = runOp("OneHot", {i64({1, 5}), at::scalar_tensor(3, at::kLong), i64({0, 1})},
                       {{"axis", 0}})[0];
  EXPECT_TENSOR_EQ(z, i64({0, 0, 1, 0, 0, 0}).reshape({3, 2}));
  at::Tensor w = runOp("OneHot", {f32({1, 2}).reshape({1, 2}), at::scalar_tensor(3.f), f32({0, 1})},
                       {{"axis", -2}})[0];
  EXPECT_EQ(w.sizes(), at::IntArrayRef({1, 3, 2}));
  EXPECT_TENSOR_EQ(w[0], f32({0, 0, 1, 0, 0, 1}).reshape({3, 2}));
}

TEST(GenOps, TriluUpperLowerK) {
  at::Tensor x = at::arange(1, 13, at::kFloat).reshape({3, 4});
  EXPECT_TENSOR_EQ(runOp("Trilu", {x})[0], at::triu(x));
  EXPECT_TENSOR_EQ(runOp("Trilu", {x, at::scalar_tensor(-1, at::kLong)}, {{"upper", 0}})[0],
                   f32({0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0}).reshape({3, 4}));
  EXPECT_TENSOR_EQ(runOp("Trilu", {x, at::scalar_tensor(2, at::kLong)})[0],
                   f32({0, 0, 3, 4, 0, 0, 0, 8, 0, 0, 0, 0}).reshape({3, 4}));
}

// Gather / Pad / Expand / ScatterElements float paths carry gradients (train mode).
TEST(IndexOps, GradientsFlowThroughGatherPadExpandScatter) {
  at::Tensor w0 = test::randn({3, 4}, 21), u0 = test::randn({1, 2}, 22);
  Graph g;
  Value* w = g.addParam("w", w0.clone().requires_grad_(true));
  Value* u = g.addParam("u", u0.clone().requires_grad_(true));
  Node* ga =
      g.addNode("Gather", {w, g.addParam("i", i64({-1, 0, 2}), false)}, 1, "ga", {{"axis", 1}});
  Node* pd = g.addNode("Pad", {ga->output(0), g.addParam("p", i64({1, 2, 0, 1}), false)}, 1, "pd",
                       {{"mode", "reflect"}});
  Node* ex = g.addNode("Expand", {pd->output(0), g.addParam("s", i64({2, 1, 1}), false)}, 1, "ex");
  Node* sc =
      g.addNode("ScatterElements",
                {ex->output(0), g.addParam("j", i64({1, 1}).reshape({1, 1, 2}), false),
                 g.addNode("Unsqueeze", {u, g.addParam("a", i64({0}), false)}, 1, "un")->output(0)},
                1, "sc", {{"axis", 2}, {"reduction", "add"}});
  g.addOutput(sc->output(0));
  Executor exe(g, {.training = true});
  at::Tensor y = exe.run({})[0];
  at::Tensor wt = test::randn(y.sizes(), 23);
  (y * wt).sum().backward();

  at::Tensor wr = w0.clone().requires_grad_(true), ur = u0.clone().requires_grad_(true);
  // ONNX pads [1, 2, 0, 1]: axis 0 gets (1, 0), axis 1 gets (2, 1).
  at::Tensor p = at::reflection_pad1d(wr.index_select(1, i64({3, 0, 2})).t(), {1, 0}).t();
  p = at::reflection_pad1d(p, {2, 1});
  at::Tensor ref = p.expand({2, p.size(0), p.size(1)})
                       .scatter_add(2, i64({1, 1}).reshape({1, 1, 2}), ur.unsqueeze(0));
  EXPECT_LT(test::maxRelDiff(y.detach(), ref.detach()), 1e-6);
  (ref * wt).sum().backward();
  EXPECT_LT(test::maxRelDiff(w->data().grad(), wr.grad()), 1e-6);
  EXPECT_LT(test::maxRelDiff(u->data().grad(), ur.grad()), 1e-6);
}

}  // namespace
}  // namespace gs

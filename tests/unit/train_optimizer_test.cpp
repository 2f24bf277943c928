// Optimizers and gradient clipping against torch.optim 1.13 (numbers from /usr/bin/python3).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ir/graph.h"
#include "support/error.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"

namespace gs {
namespace {

// Reference (python3 + torch 1.13):
//   p = torch.tensor([1.0, -2.0, 0.5, 3.0], requires_grad=True)
//   a = torch.tensor([1.0, 2.0, 0.5, 4.0]); b = torch.tensor([0.1, -0.3, 0.2, 0.0])
//   for _ in range(5):
//       opt.zero_grad(); loss = 0.5 * (a * p * p).sum() + (b * p).sum(); loss.backward(); opt.step()
std::vector<float> runQuadratic(OptimizerConfig cfg, int steps = 5) {
  Graph g;
  Value* p = g.addParam("p", at::tensor({1.0f, -2.0f, 0.5f, 3.0f}));
  Optimizer opt(g, cfg);
  at::Tensor a = at::tensor({1.0f, 2.0f, 0.5f, 4.0f}), b = at::tensor({0.1f, -0.3f, 0.2f, 0.0f});
  for (int i = 0; i < steps; ++i) {
    opt.zeroGrad();
    at::Tensor x = p->data();
    at::Tensor loss = 0.5 * (a * x * x).sum() + (b * x).sum();
    loss.backward();
    opt.step();
  }
  at::Tensor r = p->data().detach();
  return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + 4);
}

void expectNear(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 2e-6 * std::max(1.0, std::abs(want[i]))) << "element " << i;
}

TEST(TrainOptimizer, SgdPlain) {  // torch.optim.SGD(ps, lr=0.1)
  expectNear(runQuadratic(OptimizerConfig::sgd(0.1)),
             {0.54953903, -0.554511964, 0.296402872, 0.233279973});
}

TEST(TrainOptimizer, SgdMomentumDampeningWeightDecay) {
  // torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
  expectNear(runQuadratic(OptimizerConfig::sgd(0.1, 0.9, 0.01, false, 0.1)),
             {-0.0818771347, 1.30434382, 0.00262420578, -2.31796265});
}

TEST(TrainOptimizer, SgdNesterov) {
  // torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001)
  expectNear(runQuadratic(OptimizerConfig::sgd(0.05, 0.9, 0.001, true)),
             {0.24701114, 0.375439048, 0.157975167, -1.24725163});
}

TEST(TrainOptimizer, AdamW) {
  // torch.optim.AdamW(ps, lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)
  expectNear(runQuadratic(OptimizerConfig::adamw(0.1, 0.05, 0.9, 0.99, 1e-8)),
             {0.487140775, -1.45828152, 0.00183018297, 2.43265915});
}

// opt = SGD([p], lr=0.1, momentum=0.9); sch = OneCycleLR(opt, max_lr=0.1, total_steps=10)
// 10 x: zero_grad; loss = (p*p).sum()*3; backward; clip_grad_norm_([p], 1.0); step; sch.step()
TEST(TrainOptimizer, OneCycleWithClippingMatchesTorch) {
  Graph g;
  Value* p = g.addParam("p", at::tensor({1.0f, -2.0f, 0.5f, 3.0f}));
  Optimizer opt(g, OptimizerConfig::sgd(0.1, 0.9));
  LrScheduleConfig sc;
  sc.kind = LrScheduleConfig::Kind::OneCycle;
  sc.totalSteps = 10;
  LrSchedule sch(sc);
  sch.apply(opt);
  const double lrs[] = {0.004, 0.052, 0.1, 0.0950484632013, 0.081174565395, 0.0611262021936,
                        0.0388741978064, 0.018825834605, 0.00495193679865, 4e-07};
  const double moms[] = {0.95, 0.9, 0.85, 0.854951556605, 0.868825509907, 0.888873953302,
                         0.911126046698, 0.931174490093, 0.945048443395, 0.95};
  for (int i = 0; i < 10; ++i) {
    EXPECT_NEAR(opt.groups()[0].options.lr, lrs[i], 1e-12) << "step " << i;
    EXPECT_NEAR(opt.groups()[0].options.momentum, moms[i], 1e-12) << "step " << i;
    opt.zeroGrad();
    at::Tensor x = p->data();
    ((x * x).sum() * 3).backward();
    double n = clipGradNorm(opt.params(), 1.0);
    if (i == 0) EXPECT_NEAR(n, 6 * std::sqrt(1 + 4 + 0.25 + 9), 1e-5);
    opt.step();
    sch.step(opt);
  }
  at::Tensor r = p->data().detach();
  expectNear(std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + 4),
             {0.581032991, -1.16206598, 0.290516496, 1.74309897});
}

TEST(TrainOptimizer, ClipLeavesSmallGradients) {
  Graph g;
  Value* a = g.addParam("a", at::tensor({3.0f}));
  Value* b = g.addParam("b", at::tensor({4.0f}));
  Optimizer opt(g, OptimizerConfig::sgd(1.0));
  (a->data() * 0.3 + b->data() * 0.4).sum().backward();  // grads 0.3, 0.4: norm 0.5
  EXPECT_NEAR(clipGradNorm(opt.params(), 1.0), 0.5, 1e-6);
  EXPECT_FLOAT_EQ(a->data().grad().item<float>(), 0.3f);
  EXPECT_NEAR(clipGradNorm(opt.params(), 0.25), 0.5, 1e-6);  // coef 0.25/(0.5+1e-6)
  EXPECT_NEAR(a->data().grad().item<float>(), 0.3 * 0.25 / (0.5 + 1e-6), 1e-7);
  EXPECT_NEAR(b->data().grad().item<float>(), 0.4 * 0.25 / (0.5 + 1e-6), 1e-7);
}

TEST(TrainOptimizer, ParamGroupsByRegex) {
  Graph g;
  Value* w = g.addParam("fc.weight", at::ones({2}));
  Value* bias = g.addParam("fc.bias", at::ones({2}));
  Value* bn = g.addParam("conv1.bn.weight", at::ones({2}));
  g.addParam("conv1.bn.running_mean", at::zeros({2}), /*trainable=*/false);
  g.addParam("shape", at::tensor({1, 2}, at::kLong));
  OptimizerConfig cfg = OptimizerConfig::sgd(0.5, 0, 0.1);
  cfg.noDecayOnBiasAndNorm();
  cfg.groups.push_back({"^fc\\.", {{"lr", 0.25}}});
  Optimizer opt(g, cfg);
  ASSERT_EQ(opt.groups().size(), 3u);
  EXPECT_TRUE(opt.groups()[0].params.empty());
  EXPECT_EQ(opt.groups()[1].params, (std::vector<Value*>{bias, bn}));
  EXPECT_EQ(opt.groups()[2].params, (std::vector<Value*>{w}));  // fc.bias matched group 1 first
  EXPECT_EQ(opt.params().size(), 3u);  // frozen stats and integer params are not optimised
  for (Value* v : opt.params()) (v->data() * 2).sum().backward();
  opt.step();
  // fc.weight (lr 0.25, wd 0.1): 1 - 0.25 * (2 + 0.1 * 1) = 0.475; no-decay group: 1 - 0.5 * 2 = 0
  EXPECT_NEAR(w->data()[0].item<float>(), 0.475f, 1e-6);
  EXPECT_FLOAT_EQ(bias->data()[0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(bn->data()[1].item<float>(), 0.0f);

  cfg.groups.push_back({"x", {{"lrr", 1}}});
  EXPECT_THROW(Optimizer(g, cfg), Error);
  OptimizerConfig bad = OptimizerConfig::sgd(0.1);
  bad.groups.push_back({"(", {}});
  EXPECT_THROW(Optimizer(g, bad), Error);
}

TEST(TrainOptimizer, StateRoundTripResumesExactly) {
  for (auto cfg : {OptimizerConfig::sgd(0.1, 0.9, 0.01, true), OptimizerConfig::adamw(0.05)}) {
    auto full = runQuadratic(cfg, 6);
    Graph g;
    Value* p = g.addParam("p", at::tensor({1.0f, -2.0f, 0.5f, 3.0f}));
    at::Tensor a = at::tensor({1.0f, 2.0f, 0.5f, 4.0f}), b = at::tensor({0.1f, -0.3f, 0.2f, 0.0f});
    auto stepOnce = [&](Optimizer& o) {
      o.zeroGrad();
      at::Tensor x = p->data();
      (0.5 * (a * x * x).sum() + (b * x).sum()).backward();
      o.step();
    };
    OptimizerState saved;
    {
      Optimizer o1(g, cfg);
      for (int i = 0; i < 3; ++i) stepOnce(o1);
      saved = o1.state();
      for (auto& [k, t] : saved.tensors) t = t.clone();
    }
    Optimizer o2(g, cfg);
    o2.loadState(saved);
    EXPECT_EQ(o2.steps(), 3);
    for (int i = 0; i < 3; ++i) stepOnce(o2);
    at::Tensor r = p->data().detach();
    for (int i = 0; i < 4; ++i) EXPECT_EQ(r[i].item<float>(), full[i]) << "element " << i;
  }
  Graph g;
  g.addParam("p", at::ones({2}));
  Optimizer sgd(g, OptimizerConfig::sgd(0.1));
  Optimizer adam(g, OptimizerConfig::adamw());
  EXPECT_THROW(adam.loadState(sgd.state()), Error);
}

}  // namespace
}  // namespace gs

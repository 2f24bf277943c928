// LR schedules against closed forms and torch's OneCycleLR.
#include <gtest/gtest.h>

#include <cmath>

#include "support/error.h"
#include "train/lr_schedule.h"

namespace gs {
namespace {

using K = LrScheduleConfig::Kind;

TEST(TrainLrSchedule, ConstantAndStep) {
  LrSchedule c({});
  EXPECT_DOUBLE_EQ(c.value(1000, 0.3).lr, 0.3);
  LrScheduleConfig s;
  s.kind = K::Step;
  s.stepSize = 3;
  s.gamma = 0.5;
  LrSchedule st(s);
  const double want[] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25};
  for (int i = 0; i < 7; ++i) EXPECT_DOUBLE_EQ(st.value(i, 1.0).lr, want[i]) << i;
  s.stepSize = 0;
  EXPECT_THROW(LrSchedule{s}, Error);
}

TEST(TrainLrSchedule, CosineWithWarmup) {
  LrScheduleConfig s;
  s.kind = K::Cosine;
  s.totalSteps = 14;
  s.warmupSteps = 4;
  s.minLr = 0.01;
  LrSchedule c(s);
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(c.value(i, 0.2).lr, 0.2 * (i + 1) / 4.0);
  EXPECT_DOUBLE_EQ(c.value(4, 0.2).lr, 0.2);
  EXPECT_NEAR(c.value(9, 0.2).lr, 0.01 + 0.19 * 0.5, 1e-15);  // halfway: cos(pi/2) = 0
  EXPECT_NEAR(c.value(6, 0.2).lr, 0.01 + 0.19 * (1 + std::cos(M_PI * 0.2)) / 2, 1e-15);
  EXPECT_DOUBLE_EQ(c.value(14, 0.2).lr, 0.01);
  EXPECT_DOUBLE_EQ(c.value(20, 0.2).lr, 0.01);  // clamped past the end
  s.totalSteps = 0;
  EXPECT_THROW(LrSchedule{s}, Error);
}

// torch: OneCycleLR(SGD(lr=0.2), max_lr=0.2, total_steps=12, pct_start=0.25, three_phase=True,
//                   anneal_strategy='linear', cycle_momentum=False, div_factor=10,
//                   final_div_factor=100); lr before each of 12 steps.
TEST(TrainLrSchedule, OneCycleThreePhaseLinearMatchesTorch) {
  LrScheduleConfig s;
  s.kind = K::OneCycle;
  s.totalSteps = 12;
  s.pctStart = 0.25;
  s.threePhase = true;
  s.cosAnneal = false;
  s.cycleMomentum = false;
  s.divFactor = 10;
  s.finalDivFactor = 100;
  LrSchedule o(s);
  const double want[] = {0.02, 0.11, 0.2, 0.11, 0.02, 0.0171714285714, 0.0143428571429,
                         0.0115142857143, 0.00868571428571, 0.00585714285714, 0.00302857142857,
                         0.0002};
  for (int i = 0; i < 12; ++i) {
    auto v = o.value(i, 0.2);
    EXPECT_NEAR(v.lr, want[i], 1e-13) << i;
    EXPECT_FALSE(v.momentum.has_value());
  }
  EXPECT_THROW(o.value(13, 0.2), Error);
}

TEST(TrainLrSchedule, OneCycleCosClosedForm) {
  LrScheduleConfig s;
  s.kind = K::OneCycle;
  s.totalSteps = 100;
  LrSchedule o(s);
  // phase 1 ends at step 29 (pct_start * total - 1) at max_lr, momentum at base.
  EXPECT_NEAR(o.value(0, 1.0).lr, 1.0 / 25, 1e-15);
  EXPECT_NEAR(o.value(29, 1.0).lr, 1.0, 1e-15);
  EXPECT_NEAR(*o.value(29, 1.0).momentum, 0.85, 1e-15);
  EXPECT_NEAR(o.value(99, 1.0).lr, 1.0 / 25 / 1e4, 1e-18);
  double pct = (64 - 29) / 70.0;
  EXPECT_NEAR(o.value(64, 1.0).lr, 4e-6 + (1.0 - 4e-6) / 2 * (std::cos(M_PI * pct) + 1), 1e-15);
}

}  // namespace
}  // namespace gs

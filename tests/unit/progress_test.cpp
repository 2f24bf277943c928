// Progress: plain-mode line format, throttling, rate and ETA with an injected clock.
#include <gtest/gtest.h>

#include <sstream>

#include "support/progress.h"

namespace gs {
namespace {

TEST(Progress, PlainLinesRateAndEta) {
  double t = 100.0;
  std::ostringstream os;
  ProgressOptions o;
  o.out = &os;
  o.tty = false;
  o.clock = [&] { return t; };
  o.logInterval = 5.0;
  Progress p("epoch 1/2", 100, o);
  t = 102.0;
  p.update(10, 640, "loss 0.5000");  // first update prints
  EXPECT_DOUBLE_EQ(p.rate(), 320.0);
  EXPECT_DOUBLE_EQ(p.eta(), 18.0);  // 2 s per 10 steps, 90 to go
  t = 104.0;
  p.update(20, 1280, "loss 0.4000");  // within 5 s of the last line: silent
  t = 107.5;
  p.update(40, 2560, "loss 0.3000");
  EXPECT_DOUBLE_EQ(p.eta(), 7.5 / 40 * 60);
  t = 118.0;
  p.update(100, 6400, "loss 0.2000");
  EXPECT_DOUBLE_EQ(p.eta(), 0.0);
  p.finish("loss 0.2 top1 90.00%");
  p.finish("again");  // no second final line
  EXPECT_EQ(os.str(),
            "epoch 1/2: step 10/100 loss 0.5000 | 320.0 img/s | ETA 0:18\n"
            "epoch 1/2: step 40/100 loss 0.3000 | 341.3 img/s | ETA 0:11\n"
            "epoch 1/2: step 100/100 loss 0.2000 | 355.6 img/s | ETA 0:00\n"
            "epoch 1/2: step 100/100 loss 0.2 top1 90.00% | 355.6 img/s | 0:18 elapsed\n");
}

TEST(Progress, TtyBarRedrawsInPlace) {
  double t = 0;
  std::ostringstream os;
  ProgressOptions o;
  o.out = &os;
  o.tty = true;
  o.clock = [&] { return t; };
  o.barWidth = 10;
  o.unit = "tok";
  Progress p("train", 4, o);
  t = 1;
  p.update(2, 100);
  EXPECT_EQ(os.str(), "\rtrain [#####.....] 2/4 | 100.0 tok/s | ETA 0:01\x1b[K");
}

TEST(Progress, FormatDuration) {
  EXPECT_EQ(Progress::formatDuration(0), "0:00");
  EXPECT_EQ(Progress::formatDuration(59.6), "1:00");
  EXPECT_EQ(Progress::formatDuration(3725), "1:02:05");
  EXPECT_EQ(Progress::formatDuration(-1), "?");
}

}  // namespace
}  // namespace gs

// LR schedule closed forms; OneCycle follows torch.optim.lr_scheduler.OneCycleLR line by line.
#include "train/lr_schedule.h"

#include <cmath>
#include <vector>

#include "support/error.h"
#include "train/optimizer.h"

namespace gs {
namespace {

double annealCos(double start, double end, double pct) {
  double cos_out = std::cos(M_PI * pct) + 1;
  return end + (start - end) / 2.0 * cos_out;
}
double annealLinear(double start, double end, double pct) { return (end - start) * pct + start; }

}  // namespace

LrScheduleConfig::Kind LrScheduleConfig::parseKind(const std::string& s) {
  if (s == "constant") return Kind::Constant;
  if (s == "step") return Kind::Step;
  if (s == "cosine") return Kind::Cosine;
  if (s == "onecycle" || s == "one-cycle") return Kind::OneCycle;
  GS_FAIL("unknown lr schedule '", s, "' (expected constant, step, cosine or onecycle)");
}

LrSchedule::LrSchedule(LrScheduleConfig c) : c_(c) {
  using K = LrScheduleConfig::Kind;
  if (c_.kind == K::Step) {
    GS_CHECK(c_.stepSize >= 1, "step lr schedule: step size must be >= 1, got ", c_.stepSize);
  }
  if (c_.kind == K::Cosine) {
    GS_CHECK(c_.totalSteps > 0, "cosine lr schedule: total steps must be > 0");
    GS_CHECK(c_.warmupSteps >= 0 && c_.warmupSteps < c_.totalSteps,
             "cosine lr schedule: warmup steps must be in [0, total steps), got ", c_.warmupSteps);
  }
  if (c_.kind == K::OneCycle) {
    GS_CHECK(c_.totalSteps > 0, "one-cycle lr schedule: total steps must be > 0");
    GS_CHECK(c_.pctStart >= 0 && c_.pctStart <= 1,
             "one-cycle lr schedule: pct_start must be in [0, 1], got ", c_.pctStart);
    GS_CHECK(c_.divFactor > 0 && c_.finalDivFactor > 0,
             "one-cycle lr schedule: div factors must be > 0");
  }
}

ScheduleValue LrSchedule::value(int64_t step, double base) const {
  using K = LrScheduleConfig::Kind;
  switch (c_.kind) {
    case K::Constant:
      return {base, std::nullopt};
    case K::Step:
      return {base * std::pow(c_.gamma, static_cast<double>(step / c_.stepSize)), std::nullopt};
    case K::Cosine: {
      if (step < c_.warmupSteps)
        return {base * static_cast<double>(step + 1) / static_cast<double>(c_.warmupSteps),
                std::nullopt};
      double t = static_cast<double>(step - c_.warmupSteps) /
                 static_cast<double>(c_.totalSteps - c_.warmupSteps);
      t = std::min(1.0, std::max(0.0, t));
      return {c_.minLr + (base - c_.minLr) * (1 + std::cos(M_PI * t)) / 2, std::nullopt};
    }
    case K::OneCycle: {
      GS_CHECK(step <= c_.totalSteps, "one-cycle lr schedule: tried to step ", step + 1,
               " times; the specified number of total steps is ", c_.totalSteps);
      const double initial = base / c_.divFactor, max_lr = base,
                   min_lr = initial / c_.finalDivFactor;
      const double bm = c_.baseMomentum, mm = c_.maxMomentum;
      struct Phase {
        double end_step, start_lr, end_lr, start_m, end_m;
      };
      const double total = static_cast<double>(c_.totalSteps);
      std::vector<Phase> phases;
      if (c_.threePhase) {
        phases = {{c_.pctStart * total - 1, initial, max_lr, mm, bm},
                  {2 * c_.pctStart * total - 2, max_lr, initial, bm, mm},
                  {total - 1, initial, min_lr, mm, mm}};
      } else {
        phases = {{c_.pctStart * total - 1, initial, max_lr, mm, bm},
                  {total - 1, max_lr, min_lr, bm, mm}};
      }
      auto anneal = c_.cosAnneal ? annealCos : annealLinear;
      double start_step = 0;
      const double s = static_cast<double>(step);
      for (size_t i = 0; i < phases.size(); ++i) {
        const Phase& p = phases[i];
        if (s <= p.end_step || i == phases.size() - 1) {
          double pct = (s - start_step) / (p.end_step - start_step);
          ScheduleValue v{anneal(p.start_lr, p.end_lr, pct), std::nullopt};
          if (c_.cycleMomentum) v.momentum = anneal(p.start_m, p.end_m, pct);
          return v;
        }
        start_step = p.end_step;
      }
      break;
    }
  }
  GS_FAIL("internal error: unknown lr schedule kind");
}

void LrSchedule::apply(Optimizer& opt) const {
  for (ParamGroup& g : opt.groups()) {
    ScheduleValue v = value(step_, g.baseLr);
    g.options.lr = v.lr;
    if (v.momentum) {
      if (opt.kind() == OptimizerKind::SGD) g.options.momentum = *v.momentum;
      else g.options.beta1 = *v.momentum;
    }
  }
}

void LrSchedule::step(Optimizer& opt) {
  ++step_;
  apply(opt);
}

void LrSchedule::setStep(int64_t s, Optimizer& opt) {
  step_ = s;
  apply(opt);
}

}  // namespace gs

// Trainer implementation: the train step, evaluation, checkpoints.
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <mutex>

#include "io/safetensors.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

constexpr const char* kFormat = "gstick-checkpoint-1";

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t metaInt(const std::map<std::string, std::string>& m, const std::string& k,
                const std::string& path) {
  auto it = m.find(k);
  GS_CHECK(it != m.end(), path, ": checkpoint metadata lacks '", k, "'");
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    GS_FAIL(path, ": checkpoint metadata '", k, "' is not an integer: '", it->second, "'");
  }
}

at::Tensor rngState() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void setRngState(const at::Tensor& s) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(s);
}

}  // namespace

Trainer::Trainer(Graph& g, TrainerOptions options) : g_(g), o_(std::move(options)) {
  GS_CHECK(o_.epochs >= 0, "trainer: epochs must be >= 0, got ", o_.epochs);
  GS_CHECK(o_.maxSteps >= 0, "trainer: maxSteps must be >= 0, got ", o_.maxSteps);
  GS_CHECK(o_.evalBatchSize >= 1, "trainer: eval batch size must be >= 1");
  GS_CHECK(o_.clipGradNorm >= 0, "trainer: clip norm must be >= 0");
  GS_CHECK(o_.labelSmoothing >= 0 && o_.labelSmoothing <= 1,
           "trainer: label smoothing must be in [0, 1], got ", o_.labelSmoothing);
  GS_CHECK(!g_.outputs().empty(), "trainer: graph '", g_.name, "' has no outputs");
  if (!o_.outputName.empty()) {
    bool found = false;
    for (size_t i = 0; i < g_.outputs().size(); ++i)
      if (g_.outputs()[i]->name() == o_.outputName) {
        output_index_ = i;
        found = true;
      }
    GS_CHECK(found, "trainer: graph '", g_.name, "' has no output named '", o_.outputName, "'");
  }
  GS_CHECK(g_.inputs().size() == 1, "trainer: graph '", g_.name,
           "' must have exactly one input (the batch), it has ", g_.inputs().size());
  opt_ = std::make_unique<Optimizer>(g_, o_.optimizer);
}

Trainer::~Trainer() = default;

at::Tensor Trainer::forward(Executor& ex, const at::Tensor& inputs) {
  return ex.run({inputs})[output_index_];
}

void Trainer::trainEpoch(DataLoader& loader, TrainContext& ctx, TrainResult& res) {
  MetricAccumulator acc;
  Epoch ep = loader.epoch(ctx.epoch);
  std::optional<Progress> progress;
  int64_t total = ctx.stepsPerEpoch;
  if (o_.maxSteps > 0) total = std::min(total, o_.maxSteps - step_);
  if (o_.progress)
    progress.emplace("epoch " + std::to_string(ctx.epoch + 1) + "/" + std::to_string(o_.epochs),
                     total, o_.progressOptions);
  int64_t seen = 0;
  int64_t i = 0;
  double t0 = now();
  for (Batch& b : ep) {
    ctx.batch = &b;
    ctx.stepInEpoch = i;
    ctx.step = step_;
    for (auto& cb : callbacks_) cb->onStepBegin(ctx);
    at::Tensor out = forward(*train_ex_, b.inputs);
    at::Tensor flat, labels;
    bool token = false;
    flattenForLoss(out, b.labels, flat, labels, token);
    at::Tensor ce = at::cross_entropy_loss(flat, labels, {}, at::Reduction::Mean, -100,
                                           o_.labelSmoothing);
    at::Tensor loss = ce;
    ctx.outputs = out;
    for (auto& cb : callbacks_) cb->onLoss(ctx, loss);
    opt_->zeroGrad();
    loss.backward();
    if (o_.clipGradNorm > 0) clipGradNorm(opt_->params(), o_.clipGradNorm);
    for (auto& cb : callbacks_) cb->onBackwardEnd(ctx);
    opt_->step();
    if (schedule_) schedule_->step(*opt_);
    ++step_;
    ++res.steps;
    seen += b.size();
    acc.add(flat.detach(), labels, ce.item<double>() * static_cast<double>(labels.size(0)), token);
    ctx.loss = loss.item<double>();
    ctx.train = acc.result();
    ctx.step = step_;
    if (progress) {
      char buf[48];
      std::snprintf(buf, sizeof(buf), "loss %.4f", ctx.train.loss);
      progress->update(i + 1, seen, buf);
    }
    for (auto& cb : callbacks_) cb->onStepEnd(ctx);
    ctx.outputs = at::Tensor();
    ctx.batch = nullptr;
    ++i;
    if (ctx.stopTraining || (o_.maxSteps > 0 && step_ >= o_.maxSteps)) break;
  }
  res.trainSeconds += now() - t0;
  res.samples += seen;
  if (progress) progress->finish(ctx.train.summary());
}

TrainResult Trainer::fit(std::shared_ptr<const Dataset> train, std::shared_ptr<const Dataset> val) {
  GS_CHECK(train, "trainer: no training dataset");
  GS_CHECK(train->hasLabels(), "trainer: training dataset ", train->describe(), " has no labels");
  LoaderOptions lo = o_.loader;
  lo.seed = o_.seed;
  DataLoader loader(train, lo);
  const int64_t per_epoch = loader.numBatches();
  if (o_.schedule) {
    LrScheduleConfig sc = *o_.schedule;
    if (sc.totalSteps == 0) {
      sc.totalSteps = o_.epochs * per_epoch;
      if (o_.maxSteps > 0) sc.totalSteps = std::min(sc.totalSteps, o_.maxSteps);
    }
    schedule_ = std::make_unique<LrSchedule>(sc);
    schedule_->setStep(step_, *opt_);
  }
  if (!seeded_) {
    at::manual_seed(o_.seed);
    seeded_ = true;
  }
  if (!train_ex_) train_ex_ = std::make_unique<Executor>(g_, ExecOptions{.training = true});

  TrainContext ctx;
  ctx.trainer = this;
  ctx.graph = &g_;
  ctx.optimizer = opt_.get();
  ctx.schedule = schedule_.get();
  ctx.numEpochs = o_.epochs;
  ctx.stepsPerEpoch = per_epoch;
  ctx.epoch = epoch_;
  ctx.step = step_;
  TrainResult res;
  for (auto& cb : callbacks_) cb->onTrainBegin(ctx);
  while (epoch_ < o_.epochs && !ctx.stopTraining && (o_.maxSteps <= 0 || step_ < o_.maxSteps)) {
    ctx.epoch = epoch_;
    ctx.train = Metrics();
    for (auto& cb : callbacks_) cb->onEpochBegin(ctx);
    trainEpoch(loader, ctx, res);
    res.train = ctx.train;
    ++epoch_;  // the epoch is done (a checkpoint written below resumes with the next one)
    if (val) {
      ctx.eval = evaluate(*val);
      ctx.hasEval = true;
      res.eval = ctx.eval;
      if (o_.progress) {
        std::ostream& os = o_.progressOptions.out ? *o_.progressOptions.out : std::cerr;
        os << "epoch " << epoch_ << "/" << o_.epochs << ": eval " << ctx.eval.summary() << " ("
           << ctx.eval.count << (ctx.eval.tokenLevel ? " tokens)" : " samples)") << std::endl;
      }
    }
    ++res.epochsRun;
    for (auto& cb : callbacks_) cb->onEpochEnd(ctx);
    if (!o_.checkpointPath.empty()) saveCheckpoint(o_.checkpointPath);
  }
  for (auto& cb : callbacks_) cb->onTrainEnd(ctx);
  return res;
}

Metrics Trainer::evaluate(const Dataset& data) {
  GS_CHECK(data.hasLabels(), "evaluate: dataset ", data.describe(), " has no labels");
  if (!eval_ex_) eval_ex_ = std::make_unique<Executor>(g_, ExecOptions{.training = false});
  MetricAccumulator acc;
  c10::InferenceMode guard;
  const int64_t n = data.size();
  for (int64_t s = 0; s < n; s += o_.evalBatchSize) {
    int64_t e = std::min(n, s + o_.evalBatchSize);
    Batch b = data.getBatch(at::arange(s, e, at::kLong));
    at::Tensor out = forward(*eval_ex_, b.inputs);
    at::Tensor flat, labels;
    bool token = false;
    flattenForLoss(out, b.labels, flat, labels, token);
    at::Tensor ce = at::cross_entropy_loss(flat.to(at::kFloat), labels, {}, at::Reduction::Sum);
    acc.add(flat, labels, ce.item<double>(), token);
  }
  return acc.result();
}

void Trainer::saveCheckpoint(const std::string& path) const {
  std::map<std::string, at::Tensor> tensors;
  for (const Value* p : g_.params()) tensors[p->name()] = p->data().detach();
  OptimizerState os = opt_->state();
  for (auto& [k, t] : os.tensors) {
    GS_CHECK(!tensors.count(k), path, ": parameter name '", k, "' clashes with optimizer state");
    tensors[k] = t;
  }
  GS_CHECK(!tensors.count("trainer.rng"), path, ": parameter name 'trainer.rng' is reserved");
  tensors["trainer.rng"] = rngState();
  std::map<std::string, std::string> meta = os.metadata;
  meta["format"] = kFormat;
  meta["trainer.epoch"] = std::to_string(epoch_);
  meta["trainer.step"] = std::to_string(step_);
  meta["trainer.seed"] = std::to_string(o_.seed);
  meta["graph"] = g_.name;
  writeSafetensors(path, tensors, meta);
}

void Trainer::loadCheckpoint(const std::string& path) {
  SafetensorsFile f(path);
  auto fmt = f.metadata().find("format");
  GS_CHECK(fmt != f.metadata().end() && fmt->second == kFormat, path,
           ": not a gstick training checkpoint (metadata 'format' is not '", kFormat, "')");
  loadParams(g_, path, /*strict=*/true);
  OptimizerState os;
  os.metadata = f.metadata();
  for (const std::string& n : f.names())
    if (n.rfind("optimizer.", 0) == 0) os.tensors[n] = f.tensor(n);
  try {
    opt_->loadState(os);
  } catch (const Error& e) {
    GS_FAIL(path, ": ", e.what());
  }
  GS_CHECK(f.contains("trainer.rng"), path, ": checkpoint lacks the RNG state 'trainer.rng'");
  setRngState(f.tensor("trainer.rng").clone());
  seeded_ = true;
  epoch_ = metaInt(f.metadata(), "trainer.epoch", path);
  step_ = metaInt(f.metadata(), "trainer.step", path);
  if (schedule_) schedule_->setStep(step_, *opt_);
}

void saveParams(const Graph& g, const std::string& path,
                const std::map<std::string, std::string>& metadata) {
  std::map<std::string, at::Tensor> tensors;
  for (const Value* p : g.params()) tensors[p->name()] = p->data().detach();
  writeSafetensors(path, tensors, metadata);
}

void loadParams(Graph& g, const std::string& path, bool strict) {
  SafetensorsFile f(path);
  at::NoGradGuard no_grad;
  for (Value* p : g.params()) {
    GS_CHECK(f.contains(p->name()), path, ": parameter '", p->name(), "' is missing");
    at::Tensor t = f.tensor(p->name());
    GS_CHECK(t.sizes() == p->data().sizes(), path, ": parameter '", p->name(), "' has shape ",
             t.sizes(), " in the file, ", p->data().sizes(), " in the graph");
    p->data().detach().copy_(t);
  }
  if (!strict) return;
  for (const std::string& n : f.names()) {
    if (n.rfind("optimizer.", 0) == 0 || n.rfind("trainer.", 0) == 0) continue;
    Value* v = g.findValue(n);
    GS_CHECK(v && v->isParam(), path, ": tensor '", n, "' is not a parameter of graph '", g.name,
             "'");
  }
}

}  // namespace gs

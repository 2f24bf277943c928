// SGD / AdamW updates written with ATen in-place ops, mirroring torch 1.13's single-tensor code.
#include "train/optimizer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <cstdio>
#include <regex>

#include "support/error.h"

namespace gs {
namespace {

std::string fmt(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

double parseDouble(const std::map<std::string, std::string>& m, const std::string& k) {
  auto it = m.find(k);
  GS_CHECK(it != m.end(), "optimizer state: missing metadata '", k, "'");
  try {
    return std::stod(it->second);
  } catch (const std::exception&) {
    GS_FAIL("optimizer state: metadata '", k, "' is not a number: '", it->second, "'");
  }
}

void applyOverride(GroupOptions& o, const std::string& key, double v, const std::string& pattern) {
  if (key == "lr") o.lr = v;
  else if (key == "weight_decay") o.weightDecay = v;
  else if (key == "momentum") o.momentum = v;
  else if (key == "dampening") o.dampening = v;
  else if (key == "nesterov") o.nesterov = v != 0;
  else if (key == "beta1") o.beta1 = v;
  else if (key == "beta2") o.beta2 = v;
  else if (key == "eps") o.eps = v;
  else
    GS_FAIL("param group '", pattern, "': unknown option '", key,
            "' (expected lr, weight_decay, momentum, dampening, nesterov, beta1, beta2, eps)");
}

void checkOptions(const GroupOptions& o, OptimizerKind kind, const std::string& what) {
  GS_CHECK(o.lr >= 0, what, ": lr must be >= 0, got ", o.lr);
  GS_CHECK(o.weightDecay >= 0, what, ": weight_decay must be >= 0, got ", o.weightDecay);
  if (kind == OptimizerKind::SGD) {
    GS_CHECK(o.momentum >= 0, what, ": momentum must be >= 0, got ", o.momentum);
    GS_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), what,
             ": Nesterov momentum requires momentum > 0 and dampening = 0");
  } else {
    GS_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, what,
             ": betas must be in [0, 1), got (", o.beta1, ", ", o.beta2, ")");
    GS_CHECK(o.eps >= 0, what, ": eps must be >= 0, got ", o.eps);
  }
}

}  // namespace

OptimizerConfig OptimizerConfig::sgd(double lr, double momentum, double weightDecay, bool nesterov,
                                     double dampening) {
  OptimizerConfig c;
  c.kind = OptimizerKind::SGD;
  c.defaults.lr = lr;
  c.defaults.momentum = momentum;
  c.defaults.weightDecay = weightDecay;
  c.defaults.nesterov = nesterov;
  c.defaults.dampening = dampening;
  return c;
}

OptimizerConfig OptimizerConfig::adamw(double lr, double weightDecay, double beta1, double beta2,
                                       double eps) {
  OptimizerConfig c;
  c.kind = OptimizerKind::AdamW;
  c.defaults.lr = lr;
  c.defaults.weightDecay = weightDecay;
  c.defaults.beta1 = beta1;
  c.defaults.beta2 = beta2;
  c.defaults.eps = eps;
  return c;
}

OptimizerConfig& OptimizerConfig::noDecayOnBiasAndNorm() {
  groups.push_back({R"((^|\.)bias$|(bn|norm|ln)[^.]*\.weight$)", {{"weight_decay", 0.0}}});
  return *this;
}

Optimizer::Optimizer(Graph& g, OptimizerConfig config) : kind_(config.kind) {
  checkOptions(config.defaults, kind_, "optimizer");
  std::vector<std::regex> res;
  groups_.resize(1 + config.groups.size());
  groups_[0].options = config.defaults;
  for (size_t i = 0; i < config.groups.size(); ++i) {
    const auto& spec = config.groups[i];
    try {
      res.emplace_back(spec.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      GS_FAIL("param group: bad regex '", spec.pattern, "': ", e.what());
    }
    GroupOptions o = config.defaults;
    for (const auto& [k, v] : spec.overrides) applyOverride(o, k, v, spec.pattern);
    checkOptions(o, kind_, "param group '" + spec.pattern + "'");
    groups_[i + 1].options = o;
  }
  for (Value* p : g.params()) {
    if (!p->trainable() || !p->data().defined() || !p->data().is_floating_point()) continue;
    size_t gi = 0;
    for (size_t i = 0; i < res.size(); ++i)
      if (std::regex_search(p->name(), res[i])) {
        gi = i + 1;
        break;
      }
    if (!p->data().requires_grad()) p->data().requires_grad_(true);
    groups_[gi].params.push_back(p);
  }
  for (auto& gr : groups_) {
    gr.baseLr = gr.options.lr;
    gr.baseMomentum = kind_ == OptimizerKind::SGD ? gr.options.momentum : gr.options.beta1;
  }
}

std::vector<Value*> Optimizer::params() const {
  std::vector<Value*> out;
  for (const auto& gr : groups_) out.insert(out.end(), gr.params.begin(), gr.params.end());
  return out;
}

void Optimizer::zeroGrad() {
  for (const auto& gr : groups_)
    for (Value* p : gr.params) {
      at::Tensor d = p->data();
      if (d.grad().defined()) d.mutable_grad() = at::Tensor();
    }
}

void Optimizer::step() {
  at::NoGradGuard no_grad;
  for (const auto& gr : groups_) {
    const GroupOptions& o = gr.options;
    for (Value* v : gr.params) {
      at::Tensor param = v->data();
      at::Tensor grad = param.grad();
      if (!grad.defined()) continue;
      ParamState& st = state_[v];
      if (kind_ == OptimizerKind::SGD) {
        at::Tensor d_p = grad;
        if (o.weightDecay != 0) d_p = d_p.add(param, o.weightDecay);
        if (o.momentum != 0) {
          if (!st.momentum_buffer.defined()) {
            st.momentum_buffer = d_p.clone().detach();
          } else {
            st.momentum_buffer.mul_(o.momentum).add_(d_p, 1 - o.dampening);
          }
          d_p = o.nesterov ? d_p.add(st.momentum_buffer, o.momentum) : st.momentum_buffer;
        }
        param.add_(d_p, -o.lr);
      } else {
        if (!st.exp_avg.defined()) {
          st.exp_avg = at::zeros_like(param, at::MemoryFormat::Preserve);
          st.exp_avg_sq = at::zeros_like(param, at::MemoryFormat::Preserve);
        }
        st.step += 1;
        param.mul_(1 - o.lr * o.weightDecay);
        st.exp_avg.mul_(o.beta1).add_(grad, 1 - o.beta1);
        st.exp_avg_sq.mul_(o.beta2).addcmul_(grad, grad, 1 - o.beta2);
        double bias_correction1 = 1 - std::pow(o.beta1, st.step);
        double bias_correction2 = 1 - std::pow(o.beta2, st.step);
        double step_size = o.lr / bias_correction1;
        double bias_correction2_sqrt = std::sqrt(bias_correction2);
        at::Tensor denom = (st.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(o.eps);
        param.addcdiv_(st.exp_avg, denom, -step_size);
      }
    }
  }
  ++steps_;
}

OptimizerState Optimizer::state() const {
  OptimizerState s;
  s.metadata["optimizer.kind"] = kind_ == OptimizerKind::SGD ? "sgd" : "adamw";
  s.metadata["optimizer.groups"] = std::to_string(groups_.size());
  s.metadata["optimizer.steps"] = std::to_string(steps_);
  for (size_t i = 0; i < groups_.size(); ++i) {
    const GroupOptions& o = groups_[i].options;
    std::string k = "optimizer.group." + std::to_string(i) + ".";
    s.metadata[k + "lr"] = fmt(o.lr);
    s.metadata[k + "momentum"] = fmt(o.momentum);
    s.metadata[k + "beta1"] = fmt(o.beta1);
  }
  for (const auto& [v, st] : state_) {
    std::string k = "optimizer." + v->name() + ".";
    if (st.momentum_buffer.defined()) s.tensors[k + "momentum_buffer"] = st.momentum_buffer;
    if (st.exp_avg.defined()) {
      s.tensors[k + "exp_avg"] = st.exp_avg;
      s.tensors[k + "exp_avg_sq"] = st.exp_avg_sq;
      s.tensors[k + "step"] = at::scalar_tensor(st.step, at::kDouble);
    }
  }
  return s;
}

void Optimizer::loadState(const OptimizerState& s) {
  auto kind = s.metadata.find("optimizer.kind");
  GS_CHECK(kind != s.metadata.end(), "optimizer state: missing 'optimizer.kind'");
  std::string want = kind_ == OptimizerKind::SGD ? "sgd" : "adamw";
  GS_CHECK(kind->second == want, "optimizer state is for '", kind->second, "', this optimizer is '",
           want, "'");
  GS_CHECK(static_cast<size_t>(parseDouble(s.metadata, "optimizer.groups")) == groups_.size(),
           "optimizer state has ", s.metadata.at("optimizer.groups"), " param groups, expected ",
           groups_.size());
  steps_ = static_cast<int64_t>(parseDouble(s.metadata, "optimizer.steps"));
  for (size_t i = 0; i < groups_.size(); ++i) {
    std::string k = "optimizer.group." + std::to_string(i) + ".";
    groups_[i].options.lr = parseDouble(s.metadata, k + "lr");
    groups_[i].options.momentum = parseDouble(s.metadata, k + "momentum");
    groups_[i].options.beta1 = parseDouble(s.metadata, k + "beta1");
  }
  state_.clear();
  auto get = [&](const Value* v, const std::string& slot) -> at::Tensor {
    auto it = s.tensors.find("optimizer." + v->name() + "." + slot);
    if (it == s.tensors.end()) return {};
    GS_CHECK(slot == "step" || it->second.sizes() == v->data().sizes(), "optimizer state '",
             it->first, "' has shape ", it->second.sizes(), ", parameter has ", v->data().sizes());
    return it->second.detach().to(v->data().scalar_type()).clone();
  };
  for (Value* v : params()) {
    ParamState st;
    st.momentum_buffer = get(v, "momentum_buffer");
    st.exp_avg = get(v, "exp_avg");
    st.exp_avg_sq = get(v, "exp_avg_sq");
    auto step = s.tensors.find("optimizer." + v->name() + ".step");
    if (step != s.tensors.end()) st.step = step->second.item<double>();
    GS_CHECK(st.exp_avg.defined() == st.exp_avg_sq.defined(), "optimizer state for '", v->name(),
             "' has only one of exp_avg / exp_avg_sq");
    if (st.momentum_buffer.defined() || st.exp_avg.defined()) state_[v] = std::move(st);
  }
}

double clipGradNorm(const std::vector<Value*>& params, double maxNorm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (Value* p : params)
    if (p->data().grad().defined()) grads.push_back(p->data().grad());
  if (grads.empty()) return 0.0;
  std::vector<at::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(at::norm(g.detach(), 2));
  at::Tensor total = at::norm(at::stack(norms), 2);
  // torch evaluates max_norm / (total + 1e-6) as reciprocal() * max_norm.
  at::Tensor coef = at::clamp((total + 1e-6).reciprocal() * maxNorm, c10::nullopt, 1.0);
  for (auto& g : grads) g.detach().mul_(coef);
  return total.item<double>();
}

}  // namespace gs

// Executor implementation: slot-based plan, eager free of intermediates, InferenceMode in eval.
#include "runtime/executor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <dlfcn.h>

#include <chrono>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "runtime/fusion.h"
#include "support/error.h"

namespace gs {

void setIntraOpThreads(int n) {
  at::set_num_threads(n);
  using SetFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
}

void initRuntime() {
  static std::once_flag once;
  std::call_once(once, [] {
    int n = 0;
    if (const char* env = std::getenv("OMP_NUM_THREADS")) n = std::atoi(env);
    if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
    if (n <= 0) n = 1;
    setIntraOpThreads(n);
#if defined(__GLIBC__)
    // Activations of a few hundred KB and up are malloc'd and freed on every run. With glibc's
    // defaults they come from fresh mmap()s or a heap top trimmed back to the OS after each free,
    // so every run page-faults them in again: on a shared VM that made a 32x16x28x28 conv 9x
    // slower (12 ms instead of 1.3 ms). Keep such blocks in the heap and keep freed memory for
    // reuse, as ONNX Runtime's arena does. GS_MALLOC_TUNING=0 keeps glibc's defaults.
    const char* tune = std::getenv("GS_MALLOC_TUNING");
    if (!tune || std::string(tune) != "0") {
      mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
      mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
#endif
  });
}

std::string firstLine(const std::string& s) {
  auto p = s.find('\n');
  std::string l = p == std::string::npos ? s : s.substr(0, p);
  while (!l.empty() && (l.back() == '\r' || l.back() == ' ')) l.pop_back();
  return l;
}

Executor::Executor(const Graph& g, ExecOptions opts) : g_(g), opts_(opts) {
  initRuntime();
  const OpRegistry& reg = OpRegistry::global();
  std::unordered_map<const Value*, int> slot;
  auto slotOf = [&](const Value* v) {
    auto it = slot.find(v);
    if (it != slot.end()) return it->second;
    int s = num_slots_++;
    slot.emplace(v, s);
    return s;
  };
  for (const Value* v : g.inputs()) input_slots_.push_back(slotOf(v));
  for (const Value* p : g.params()) param_slots_.emplace_back(slotOf(p), p);
  for (const auto& n : g.nodes()) {
    const OpSchema* s = reg.find(n->domain(), n->opType());
    int ver = g.opsets.count(n->domain()) ? static_cast<int>(g.opsets.at(n->domain())) : 0;
    GS_CHECK(s && s->kernel, n->describe(), ": unsupported op '", n->opType(), "'",
             n->domain().empty() ? "" : " in domain '" + n->domain() + "'",
             ver ? " (opset " + std::to_string(ver) + ")" : std::string());
    const int nin = static_cast<int>(n->numInputs());
    GS_CHECK(nin <= s->max_inputs || s->max_inputs < 0, n->describe(), ": takes at most ",
             s->max_inputs, " inputs, got ", nin);
    for (int i = 0; i < s->min_inputs; ++i)
      GS_CHECK(n->hasInput(static_cast<size_t>(i)), n->describe(), ": required input ", i,
               " is missing (", n->opType(), " takes at least ", s->min_inputs,
               " inputs)");
    Step st;
    st.node = n.get();
    try {
      st.kernel = s->kernel(*n);
    } catch (const gs::Error&) {
      throw;
    } catch (const c10::Error& e) {
      GS_FAIL(n->describe(), ": ", firstLine(e.what_without_backtrace()));
    } catch (const std::exception& e) {
      GS_FAIL(n->describe(), ": ", firstLine(e.what()));
    }
    for (const Value* v : n->inputs()) {
      if (!v) {
        st.in_slots.push_back(-1);
        continue;
      }
      auto it = slot.find(v);
      GS_CHECK(it != slot.end(), n->describe(), ": input '", v->name(),
               "' is used before it is produced");
      st.in_slots.push_back(it->second);
    }
    for (const Value* v : n->outputs()) st.out_slots.push_back(v ? slotOf(v) : -1);
    steps_.push_back(std::move(st));
  }
  for (const Value* v : g.outputs()) {
    auto it = slot.find(v);
    GS_CHECK(it != slot.end(), "graph output '", v->name(), "' is never produced");
    output_slots_.push_back(it->second);
  }
  finishPlan(steps_);

  // Eval plan with fused groups: a group's step replaces its last node; its other nodes vanish.
  if (opts_.fuse) {
    std::vector<FusedGroup> groups = findFusions(g);
    if (!groups.empty()) {
      std::unordered_map<const Node*, int> group_of;  // covered node -> group, -1 for skipped
      for (size_t i = 0; i < groups.size(); ++i)
        for (const Node* n : groups[i].nodes)
          group_of[n] = n == groups[i].nodes.back() ? static_cast<int>(i) : -1;
      for (const Step& st : steps_) {
        auto it = group_of.find(st.node);
        if (it == group_of.end()) {
          Step c = st;
          c.free_after.clear();
          c.move_in.clear();
          fused_steps_.push_back(std::move(c));
          continue;
        }
        if (it->second < 0) continue;
        FusedGroup& fg = groups[static_cast<size_t>(it->second)];
        Step f;
        f.node = fg.anchor;
        f.kernel = std::move(fg.kernel);
        for (const Value* v : fg.inputs) f.in_slots.push_back(v ? slot.at(v) : -1);
        for (const Value* v : fg.outputs) f.out_slots.push_back(slot.at(v));
        fused_steps_.push_back(std::move(f));
      }
      finishPlan(fused_steps_);
      has_fused_ = true;
    }
  }
  slots_.resize(static_cast<size_t>(num_slots_));
}

void Executor::finishPlan(std::vector<Step>& steps) const {
  // Last use of every intermediate slot -> free it right after that step.
  std::vector<int> last(num_slots_, -1);
  for (size_t i = 0; i < steps.size(); ++i)
    for (int s : steps[i].in_slots)
      if (s >= 0) last[s] = static_cast<int>(i);
  std::vector<bool> keep(num_slots_, false);
  for (int s : output_slots_) keep[s] = true;
  for (int s : input_slots_) keep[s] = true;  // caller's tensors: never moved out of
  for (auto& [s, p] : param_slots_) keep[s] = true;
  for (size_t i = 0; i < steps.size(); ++i)
    for (int s : steps[i].out_slots)
      if (s >= 0 && !keep[s] && last[s] < 0) last[s] = static_cast<int>(i);  // unused output
  for (int s = 0; s < num_slots_; ++s)
    if (!keep[s] && last[s] >= 0) steps[last[s]].free_after.push_back(s);
  // An input whose slot dies at this step is moved into the kernel's argument (its last
  // occurrence only, when a node reads the same value twice), saving a refcount round trip.
  for (size_t i = 0; i < steps.size(); ++i) {
    Step& st = steps[i];
    st.move_in.assign(st.in_slots.size(), 0);
    for (size_t k = 0; k < st.in_slots.size(); ++k) {
      int s = st.in_slots[k];
      if (s < 0 || keep[s] || last[s] != static_cast<int>(i)) continue;
      bool later = false;
      for (size_t j = k + 1; j < st.in_slots.size(); ++j) later = later || st.in_slots[j] == s;
      st.move_in[k] = !later;
    }
  }
}

Executor::~Executor() = default;

void Executor::checkInput(const Value* v, const at::Tensor& t) const {
  GS_CHECK(t.defined(), "input '", v->name(), "': no tensor given");
  if (!opts_.check_inputs) return;
  if (v->dtype() != DType::Undefined) {
    DType got = fromScalarType(t.scalar_type());
    GS_CHECK(got == v->dtype(), "input '", v->name(), "': expected ", typeString(v->dtype(), v->shape()),
             ", got dtype ", dtypeName(got), " with shape ", typeString(got, shapeOf(t)));
  }
  if (v->shape()) {
    const auto& dims = *v->shape();
    bool ok = static_cast<int64_t>(dims.size()) == t.dim();
    for (size_t i = 0; ok && i < dims.size(); ++i)
      if (dims[i].isStatic() && dims[i].value != t.size(static_cast<int64_t>(i))) ok = false;
    GS_CHECK(ok, "input '", v->name(), "': expected shape ", typeString(v->dtype(), v->shape()),
             ", got ", typeString(fromScalarType(t.scalar_type()), shapeOf(t)));
  }
}

std::vector<at::Tensor> Executor::run(const std::vector<at::Tensor>& inputs) {
  GS_CHECK(inputs.size() == input_slots_.size(), "graph '", g_.name, "' takes ",
           input_slots_.size(), " inputs, got ", inputs.size());
  // Scratch vectors are members (no allocation per run); they are emptied again on every exit
  // so the executor holds no activations between runs.
  struct Clear {
    Executor* e;
    ~Clear() {
      for (auto& t : e->slots_) t = at::Tensor();
      e->in_.clear();
      e->out_.clear();
    }
  } clear{this};
  std::vector<at::Tensor>& slots = slots_;
  for (size_t i = 0; i < inputs.size(); ++i) {
    checkInput(g_.inputs()[i], inputs[i]);
    slots[input_slots_[i]] = inputs[i];
  }
  for (auto& [s, p] : param_slots_) slots[s] = p->data();

  std::optional<c10::InferenceMode> infer;
  if (!opts_.training) infer.emplace();
  KernelContext ctx;
  ctx.training = opts_.training;
  if (profiling_) profile_.clear();
  std::vector<at::Tensor>& in = in_;
  std::vector<at::Tensor>& out = out_;
  for (const Step& st : activeSteps()) {
    in.clear();
    for (size_t k = 0; k < st.in_slots.size(); ++k) {
      int s = st.in_slots[k];
      if (s < 0) in.emplace_back();
      else if (st.move_in[k]) in.push_back(std::move(slots[s]));
      else in.push_back(slots[s]);
    }
    out.clear();
    out.resize(st.out_slots.size());
    auto t0 = profiling_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    try {
      st.kernel(ctx, in, out);
    } catch (const gs::Error& e) {
      std::string m = e.what();
      if (m.rfind("node '", 0) == 0) throw;
      GS_FAIL(st.node->describe(), ": ", m);
    } catch (const c10::Error& e) {
      GS_FAIL(st.node->describe(), ": ", firstLine(e.what_without_backtrace()));
    } catch (const std::exception& e) {
      GS_FAIL(st.node->describe(), ": ", firstLine(e.what()));
    }
    if (profiling_)
      profile_.emplace_back(st.node, std::chrono::duration<double>(
                                         std::chrono::steady_clock::now() - t0).count());
    if (observer_) observer_(*st.node, in, out);
    for (size_t k = 0; k < st.out_slots.size(); ++k) {
      if (st.out_slots[k] < 0) continue;
      GS_CHECK(out[k].defined(), st.node->describe(), ": kernel produced no output ", k);
      slots[st.out_slots[k]] = std::move(out[k]);
    }
    for (int s : st.free_after) slots[s] = at::Tensor();
  }
  std::vector<at::Tensor> res;
  res.reserve(output_slots_.size());
  for (int s : output_slots_) res.push_back(slots[s]);
  return res;
}

std::map<std::string, at::Tensor> Executor::runNamed(const std::map<std::string, at::Tensor>& inputs) {
  std::vector<at::Tensor> ins;
  for (const Value* v : g_.inputs()) {
    auto it = inputs.find(v->name());
    GS_CHECK(it != inputs.end(), "missing graph input '", v->name(), "'");
    ins.push_back(it->second);
  }
  for (const auto& [k, t] : inputs)
    GS_CHECK(g_.findValue(k) && g_.findValue(k)->isGraphInput(), "'", k,
             "' is not an input of graph '", g_.name, "'");
  auto outs = run(ins);
  std::map<std::string, at::Tensor> res;
  for (size_t i = 0; i < outs.size(); ++i) res[g_.outputs()[i]->name()] = outs[i];
  return res;
}

}  // namespace gs

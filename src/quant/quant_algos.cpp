// The quantization algorithms as CompAlgo subclasses: ptq (static / dynamic int8 PTQ), simqat
// (Golden Stick SimulatedQuantizationAwareTraining) and lsq (learned step size QAT).
#include "quant/quant_algos.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <sstream>
#include <unordered_map>

#include "algo/registry.h"
#include "quant/algo_util.h"
#include "quant/bn_fold.h"
#include "quant/convert.h"
#include "quant/fake_quant_ops.h"
#include "quant/observer.h"
#include "quant/ptq.h"
#include "quant/quantizer.h"
#include "quant/simqat.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

using namespace quant;

const std::set<std::string> kLayerOps{"Conv", "ConvTranspose", "Gemm", "MatMul"};

std::string fmt(double v, int prec = 2) {
  std::ostringstream os;
  os.precision(prec);
  os << std::fixed << v;
  return os.str();
}

/// Active layers of `algo` that are quantizable in `g`, with their records.
template <typename F>
void forQuantizable(const CompAlgo& algo, const Graph& g, F f) {
  for (const CompAlgo::LayerRecord* l : algo.activeLayers()) {
    const Node* n = g.findNode(l->name);
    if (n && quantizableLayer(*n)) f(*l);
  }
}

// ============================================================================================ ptq

/// The convert (QDQ export) field every quantization algorithm shares.
FieldSpec int32BiasField() {
  return FieldSpec::boolean("int32_bias", true,
                            "convert: Conv / Gemm biases as int32 in accumulator units "
                            "(x_scale * w_scale), as ONNX Runtime's quantizer writes them; false "
                            "keeps float biases");
}

QdqOptions qdqOptions(const Config& c) {
  QdqOptions o;
  o.int32_bias = c.getBool("int32_bias");
  return o;
}

class PtqAlgo : public CompAlgo {
 public:
  using CompAlgo::CompAlgo;
  std::string name() const override { return "ptq"; }
  std::set<std::string> layerOps() const override { return kLayerOps; }
  bool needsCalibration() const override { return config().getString("mode") == "static"; }

 protected:
  bool dynamic() const { return config().getString("mode") == "dynamic"; }

  LayerQuantConfig layerConfig(const LayerRecord& l) const {
    const Config& s = l.policy.settings;
    LayerQuantConfig c;
    c.node = l.name;
    c.weight = makeSpec(s.getInt("weight_bits"), true, s.getBool("weight_symmetric"),
                        s.getBool("weight_narrow_range"), s.getString("weight_granularity"),
                        s.getInt("group_size"));
    c.act = makeSpec(s.getInt("act_bits"), s.getBool("act_signed"), s.getBool("act_symmetric"),
                     false);
    c.weight_observer = s.getString("weight_observer");
    c.act_observer = s.getString("act_observer");
    c.act_kind = dynamic() ? FqKind::Dynamic : FqKind::Static;
    if (dynamic()) {
      c.act.is_signed = true;
      c.act.symmetric = true;
    }
    return c;
  }

  Graph applyImpl(Graph g) override {
    std::vector<LayerQuantConfig> ls;
    forQuantizable(*this, g, [&](const LayerRecord& l) { ls.push_back(layerConfig(l)); });
    PtqOptions o;
    o.observer.percentile = config().getFloat("percentile");
    o.observer.averaging_constant = config().getFloat("averaging_constant");
    o.observer.bins = config().getInt("bins");
    o.fold_bn = config().getBool("fold_bn");
    o.quantize_outputs = !dynamic();  // int8 residual Adds; per-token Adds gain nothing
    const auto& cal = context().calibration;
    int64_t nb = cal ? cal->size() : 0;
    o.bias_correction = config().getBool("bias_correction") && nb > 0;
    BatchFn batch = [&cal](int64_t i) { return std::vector<at::Tensor>{cal->batch(i).inputs}; };
    auto qs = ptqQuantize(g, ls, o, batch, nb, &report_);
    if (config().getBool("int32_bias") && !dynamic()) roundBiasesToAccumulatorGrid(g, qs);
    return g;
  }

  /// Gives the fake-quant graph the biases convert() will store as int32 (b rounded to
  /// x_scale * w_scale per output channel), so that what is evaluated before convert is what
  /// runtimes execute after it.
  static void roundBiasesToAccumulatorGrid(Graph& g, const std::vector<Quantizer>& qs) {
    std::map<std::string, const Quantizer*> wq, aq;
    for (const Quantizer& q : qs) {
      if (q.is_weight) wq[q.layer] = &q;
      else if (q.kind == FqKind::Static)
        for (const std::string& l : q.layers) aq.emplace(l, &q);
    }
    for (const auto& [name, w] : wq) {
      Node* n = g.findNode(name);
      auto a = aq.find(name);
      Value* b = n ? accumulatorBias(*n) : nullptr;
      if (!b || a == aq.end() || a->second->spec.granularity != Granularity::PerTensor) continue;
      at::Tensor bs = accumulatorStep(a->second->scale->data(), w->scale->data(), b->data().numel());
      if (!bs.defined()) continue;
      b->setData((at::round(b->data().to(at::kFloat) / bs) * bs).to(b->data().scalar_type()));
    }
  }

  Graph convertImpl(Graph g) override {
    qdq_ = lowerToQdq(g, qdqOptions(config()));
    return g;
  }

  std::string policyString(const LayerRecord& l) const override {
    LayerQuantConfig c = layerConfig(l);
    return policyText(&c.weight, &c.act, dynamic() ? "dyn" : "") + " " +
           (dynamic() ? c.weight_observer : c.weight_observer + "/" + c.act_observer);
  }

  void describeLayer(const Graph&, const Node* node, const LayerRecord&, SummaryRow& row) const override {
    if (!node) return;
    std::tie(row.paramsAfter, row.bytesAfter) = quantizedLayerStorage(*node);
  }

  void describeSummary(SummaryTable& t) const override {
    t.notes.push_back({"mode", config().getString("mode")});
    t.notes.push_back({"calibration", std::to_string(report_.batches) + " batches, " +
                                          fmt(report_.calibration_seconds) + " s"});
    t.notes.push_back({"bn folded", std::to_string(report_.bn_folded)});
    t.notes.push_back({"bias corrected layers", std::to_string(report_.bias_corrected)});
    t.notes.push_back({"quantizers", std::to_string(report_.quantizers)});
  }

 private:
  PtqReport report_;
  QdqReport qdq_;
};

ConfigSchema ptqFields() {
  std::vector<std::string> obs;
  for (const auto& [k, d] : observerKinds()) obs.push_back(k);
  return {
      FieldSpec::enumeration("mode", "static", {"static", "dynamic"},
                             "static: calibrated int8 activations; dynamic: per-token int8 "
                             "activations computed at run time (A8dyn-W8)"),
      FieldSpec::integer("weight_bits", 8, 2, 8, "weight bit width").layer(),
      FieldSpec::integer("act_bits", 8, 2, 8, "activation bit width").layer(),
      FieldSpec::enumeration("weight_granularity", "per_channel",
                             {"per_tensor", "per_channel", "per_group"},
                             "weight scales: one, one per output channel, or one per group_size "
                             "input elements").layer(),
      FieldSpec::integer("group_size", 128, 1, 1 << 20, "per_group: elements per group").layer(),
      FieldSpec::boolean("weight_symmetric", true, "weights: zero point 0").layer(),
      FieldSpec::boolean("weight_narrow_range", false, "weights: grid [-127, 127] instead of "
                                                       "[-128, 127]").layer(),
      FieldSpec::boolean("act_signed", false, "activations: int8 (true) or uint8 (false)").layer(),
      FieldSpec::boolean("act_symmetric", false, "activations: symmetric grid").layer(),
      FieldSpec::enumeration("weight_observer", "minmax", {"minmax", "mse"},
                             "observer choosing weight ranges").layer(),
      FieldSpec::enumeration("act_observer", "minmax", obs,
                             "observer choosing activation ranges from calibration data").layer(),
      FieldSpec::real("percentile", 99.99, 50, 100, "percentile observer: kept mass (percent)"),
      FieldSpec::real("averaging_constant", 0.01, 0, 1, "ema observer: weight of each new batch"),
      FieldSpec::integer("bins", 32768, 64, 1 << 20, "histogram observers: bins"),
      FieldSpec::boolean("bias_correction", true, "subtract E[(Wq - W) x] from Conv / Gemm biases"),
      FieldSpec::boolean("fold_bn", true, "fold Conv -> BatchNormalization before quantizing"),
      int32BiasField(),
  };
}

// ========================================================================================= simqat

/// Parses "int8" / "uint8" / "int4" ... into (bits, signed).
std::pair<int64_t, bool> parseDtype(const std::string& d) {
  bool u = d.rfind("uint", 0) == 0;
  return {std::stoll(d.substr(u ? 4 : 3)), !u};
}

class SimQatAlgo : public CompAlgo {
 public:
  using CompAlgo::CompAlgo;
  std::string name() const override { return "simqat"; }
  std::set<std::string> layerOps() const override { return kLayerOps; }
  bool needsTraining() const override { return true; }
  int64_t recommendedEpochs() const override { return 2; }

 protected:
  /// Element i (0 = activations, 1 = weights) of a two-element list field.
  const Json& pairAt(const std::string& key, size_t i) const {
    const Json& j = config().get(key);
    GS_CHECK(j.is_array() && j.size() == 2, "simqat config: '", key,
             "' must be a list [activation, weight]");
    return j.at(i);
  }

  QuantSpec specOf(size_t i) const {
    auto [bits, sgn] = parseDtype(pairAt("quant_dtype", i).get<std::string>());
    bool pc = pairAt("per_channel", i).get<bool>();
    GS_CHECK(!(i == 0 && pc), "simqat config: per_channel is not supported for activations "
                              "(per_channel[0] must be false)");
    return makeSpec(bits, sgn, pairAt("symmetric", i).get<bool>(), pairAt("narrow_range", i).get<bool>(),
                    pc ? "per_channel" : "per_tensor");
  }

  Graph applyImpl(Graph g) override {
    bool fusion = config().getBool("enable_fusion"), bn_fold = config().getBool("bn_fold");
    GS_CHECK(!bn_fold || fusion, "simqat config: bn_fold needs enable_fusion (BN is folded into "
                                 "the fused Conv+BN cell)");
    int64_t act_delay = pairAt("quant_delay", 0).get<int64_t>();
    int64_t w_delay = pairAt("quant_delay", 1).get<int64_t>();
    act_enable_ = g.uniqueValueName("quant.act_enable");
    g.addParam(act_enable_, at::scalar_tensor(act_delay > 0 ? 0.0f : 1.0f), false);
    w_enable_ = g.uniqueValueName("quant.weight_enable");
    g.addParam(w_enable_, at::scalar_tensor(w_delay > 0 ? 0.0f : 1.0f), false);
    delays_ = {{act_enable_, act_delay}, {w_enable_, w_delay}};
    std::vector<LayerQuantConfig> ls;
    std::vector<std::string> convs;
    forQuantizable(*this, g, [&](const LayerRecord& l) {
      LayerQuantConfig c;
      c.node = l.name;
      c.act = specOf(0);
      c.weight = specOf(1);
      c.act_kind = c.weight_kind = FqKind::Train;
      ls.push_back(c);
      if (l.op == "Conv") convs.push_back(l.name);
    });
    InsertOptions io;
    io.act_enable = g.findValue(act_enable_);
    io.weight_enable = g.findValue(w_enable_);
    io.averaging_constant = config().getFloat("averaging_constant");
    io.quantize_outputs = true;
    insertQuantizers(g, ls, io);
    if (bn_fold && config().getBool("one_conv_fold")) {
      folds_ = insertBnFold(g, convs, BnFoldKind::OneConv);
    } else if (bn_fold) {
      // Batch statistics until freeze_bn steps, then the running ones (a flag like quant delay).
      std::string frozen = g.uniqueValueName("quant.bn_frozen");
      int64_t freeze = config().getInt("freeze_bn");
      Value* fv = g.addParam(frozen, at::scalar_tensor(freeze > 0 ? 0.0f : 1.0f), false);
      folds_ = insertBnFold(g, convs, BnFoldKind::TwoConv, fv);
      if (folds_.empty()) g.removeParam(fv);
      else delays_.emplace_back(frozen, freeze);
    }
    return g;
  }

  std::vector<CallbackPtr> trainingCallbacks() override {
    return {std::make_shared<QuantDelayCallback>(delays_)};
  }

  Graph convertImpl(Graph g) override {
    finishBnFold(g, folds_);
    foldBatchNormsThroughQuantizers(g);
    foldBatchNorms(g);
    lowerToQdq(g, qdqOptions(config()));
    return g;
  }

  std::string policyString(const LayerRecord&) const override {
    QuantSpec a = specOf(0), w = specOf(1);
    std::string bn = !config().getBool("bn_fold")          ? "bn=nofold"
                     : config().getBool("one_conv_fold") ? "bn=one_conv_fold"
                                                         : "bn=two_conv_fold";
    return policyText(&w, &a) + " " + bn;
  }

  void describeLayer(const Graph&, const Node* node, const LayerRecord&, SummaryRow& row) const override {
    if (!node) return;
    std::tie(row.paramsAfter, row.bytesAfter) = quantizedLayerStorage(*node);
  }

 private:
  std::string act_enable_, w_enable_;
  std::vector<std::pair<std::string, int64_t>> delays_;
  std::vector<ConvBnFold> folds_;
};

ConfigSchema simqatFields() {
  std::vector<std::string> dtypes{"int2", "int3", "int4", "int5", "int6", "int7", "int8", "uint8"};
  // uint8 activations: the same asymmetric 256-level grid as int8 (zero point + 128), but ONNX
  // Runtime's x86 QDQ fusion takes U8S8 Conv/Add and leaves most S8S8 ones in float
  // (docs/quantization.md, "Why uint8 activations").
  FieldSpec dt = FieldSpec::list("quant_dtype", FieldType::Enum, Json::array({"uint8", "int8"}),
                                 "[activation, weight] integer grid");
  dt.choices = dtypes;
  return {
      FieldSpec::list("quant_delay", FieldType::Int, Json::array({0, 0}),
                      "[activation, weight] training steps before fake quantization activates "
                      "(observers run from step 0)"),
      dt,
      FieldSpec::list("per_channel", FieldType::Bool, Json::array({false, true}),
                      "[activation, weight] per-channel scales (activations: false only)"),
      FieldSpec::list("symmetric", FieldType::Bool, Json::array({false, true}),
                      "[activation, weight] symmetric grids"),
      FieldSpec::list("narrow_range", FieldType::Bool, Json::array({false, false}),
                      "[activation, weight] drop the most negative code"),
      FieldSpec::boolean("enable_fusion", false, "treat Conv+BatchNormalization as one cell "
                                                 "(required by bn_fold)"),
      FieldSpec::boolean("bn_fold", false, "fold BN into the quantized weight during training"),
      FieldSpec::boolean("one_conv_fold", true, "bn_fold variant: true = quantize "
                                                "W*gamma/sqrt(var+eps) with running statistics, "
                                                "rescale, real BN; false = two-conv fold (first "
                                                "conv for batch statistics, correction factor)"),
      FieldSpec::integer("freeze_bn", 10000000, 0, std::nullopt,
                         "two-conv fold: steps before switching from batch to running statistics "
                         "(which then stop updating)"),
      FieldSpec::real("averaging_constant", 0.01, 0, 1,
                      "activation EMA observers: weight of each new batch (gstick setting)"),
      int32BiasField(),
  };
}

// ============================================================================================ lsq

class LsqAlgo : public CompAlgo {
 public:
  using CompAlgo::CompAlgo;
  std::string name() const override { return "lsq"; }
  std::set<std::string> layerOps() const override { return kLayerOps; }
  bool needsTraining() const override { return true; }
  int64_t recommendedEpochs() const override { return 5; }

 protected:
  int64_t bitsOf(const LayerRecord& l, const char* key, bool edge) const {
    int64_t fl = config().getInt("first_last_bits");
    return edge && fl > 0 ? fl : l.policy.settings.getInt(key);
  }

  Graph applyImpl(Graph g) override {
    if (config().getBool("fold_bn")) foldBatchNorms(g);
    std::vector<const LayerRecord*> ls;
    forQuantizable(*this, g, [&](const LayerRecord& l) { ls.push_back(&l); });
    GS_CHECK(!ls.empty(), "lsq: no quantizable layer");
    // Activation statistics of each layer's input from a few batches of fp32 data.
    std::shared_ptr<const Dataset> data;
    if (context().calibration) data = context().calibration->dataset;
    if (!data) data = context().trainData;
    GS_CHECK(data, "lsq: needs data to initialise activation steps (calibration or training set)");
    int64_t bs = 64, nb = std::min<int64_t>(config().getInt("init_batches"), (data->size() + bs - 1) / bs);
    std::map<std::string, std::unique_ptr<Observer>> kl;
    std::map<std::string, std::pair<double, double>> stats;  // min, sum |x|
    std::map<std::string, double> count;
    bool use_kl = config().getString("init") == "kl";
    {
      std::unordered_map<const Node*, std::string> watch;
      for (auto* l : ls) watch[g.findNode(l->name)] = l->name;
      Executor ex(g);
      ex.setObserver([&](const Node& n, const std::vector<at::Tensor>& in, const std::vector<at::Tensor>&) {
        auto it = watch.find(&n);
        if (it == watch.end()) return;
        const at::Tensor& x = in[static_cast<size_t>(quantizableLayer(n)->act_index)];
        auto& st = stats.try_emplace(it->second, 1e30, 0.0).first->second;
        st.first = std::min(st.first, x.min().item<double>());
        st.second += x.abs().sum().item<double>();
        count[it->second] += static_cast<double>(x.numel());
        if (use_kl) {
          auto& o = kl[it->second];
          if (!o) o = makeObserver("kl", makeSpec(8, true, true, false));
          o->observe(x);
        }
      });
      for (int64_t b = 0; b < nb; ++b) {
        int64_t lo = b * bs, hi = std::min(lo + bs, data->size());
        ex.run({data->getBatch(at::arange(lo, hi, at::kLong)).inputs});
      }
    }
    std::vector<LayerQuantConfig> cfgs;
    for (size_t i = 0; i < ls.size(); ++i) {
      const LayerRecord& l = *ls[i];
      bool edge = i == 0 || i + 1 == ls.size();
      LayerQuantConfig c;
      c.node = l.name;
      c.weight = makeSpec(bitsOf(l, "weight_bits", edge), true, true, true,
                          l.policy.settings.getBool("per_channel") ? "per_channel" : "per_tensor");
      bool nonneg = stats.at(l.name).first >= 0;
      c.act = makeSpec(bitsOf(l, "act_bits", edge), !nonneg, !nonneg, !nonneg);
      c.weight_kind = c.act_kind = FqKind::Lsq;
      cfgs.push_back(c);
    }
    auto qs = insertQuantizers(g, cfgs);
    for (const Quantizer& q : qs) {
      if (q.is_weight) {
        if (use_kl && q.spec.granularity == Granularity::PerTensor) {
          auto o = makeObserver("mse", q.spec);
          o->observe(q.node->input(0)->data());
          q.scale->setData(o->qparams().scale.reshape(q.scale->data().sizes()));
        }
        continue;  // mean init done by insertQuantizers
      }
      double qp = static_cast<double>(q.spec.qmax());
      double step;
      if (use_kl) {
        double t = kl.at(q.layer)->range().second.item<double>();
        step = t / qp;
      } else {
        step = 2.0 * (stats.at(q.layer).second / count.at(q.layer)) / std::sqrt(qp);
      }
      q.scale->setData(at::scalar_tensor(static_cast<float>(std::max(step, 1e-8))).reshape(q.scale->data().sizes()));
    }
    for (const Quantizer& q : qs) specs_[q.layer + (q.is_weight ? "/w" : "/a")] = q.spec;
    return g;
  }

  Graph convertImpl(Graph g) override {
    lowerToQdq(g, qdqOptions(config()));
    return g;
  }

  std::string policyString(const LayerRecord& l) const override {
    auto w = specs_.find(l.name + "/w"), a = specs_.find(l.name + "/a");
    return policyText(w == specs_.end() ? nullptr : &w->second, a == specs_.end() ? nullptr : &a->second) +
           " lsq(" + config().getString("init") + ")";
  }

  void describeLayer(const Graph&, const Node* node, const LayerRecord&, SummaryRow& row) const override {
    if (!node) return;
    std::tie(row.paramsAfter, row.bytesAfter) = quantizedLayerStorage(*node);
  }

 private:
  std::map<std::string, QuantSpec> specs_;
};

ConfigSchema lsqFields() {
  return {
      FieldSpec::integer("weight_bits", 4, 2, 8, "weight bit width (symmetric narrow grid)").layer(),
      FieldSpec::integer("act_bits", 4, 2, 8, "activation bit width (unsigned for non-negative "
                                              "inputs, else symmetric narrow)").layer(),
      FieldSpec::boolean("per_channel", true, "weights: one learned step per output channel").layer(),
      FieldSpec::integer("first_last_bits", 8, 0, 8,
                         "bits of the first and last quantized layers (0 = same as the others)"),
      FieldSpec::enumeration("init", "mean", {"mean", "kl"},
                             "step init: 2 * mean|x| / sqrt(Qp) (LSQ paper), or activations from "
                             "the KL threshold / per-tensor weights from the MSE-optimal range"),
      FieldSpec::integer("init_batches", 4, 1, 1000, "batches (of 64) used to initialise "
                                                     "activation steps"),
      FieldSpec::boolean("fold_bn", true, "fold BatchNormalization before training (the folded "
                                          "network is trained)"),
      int32BiasField(),
  };
}

}  // namespace

void registerQuantAlgos(AlgoRegistry& r) {
  r.add({"ptq", "post-training int8 quantization: calibrated static or per-token dynamic "
                "activations, per-channel weights, bias correction; converts to ONNX QDQ",
         ptqFields(), algoFactory<PtqAlgo>(), {}});
  r.add({"simqat", "simulated quantization-aware training (Golden Stick SimQAT): EMA activation "
                   "/ min-max weight fake quantizers, quant delay, BN fold variants",
         simqatFields(), algoFactory<SimQatAlgo>(), {}});
  r.add({"lsq", "learned step size quantization (Esser et al. 2019) for W4A4 / W3A3 / W2A2",
         lsqFields(), algoFactory<LsqAlgo>(), {}});
}

}  // namespace gs

// CompAlgo base: policy resolution, per-layer bookkeeping, summaries, calibration batches, export.
#include "algo/comp_algo.h"

#include <ATen/ATen.h>

#include <set>

#include "io/onnx.h"
#include "support/error.h"

namespace gs {

int64_t CalibrationData::size() const {
  if (!dataset || batchSize <= 0) return 0;
  int64_t avail = (dataset->size() + batchSize - 1) / batchSize;
  return std::min(numBatches, avail);
}

Batch CalibrationData::batch(int64_t i) const {
  GS_CHECK(dataset, "calibration: no dataset");
  GS_CHECK(i >= 0 && i < size(), "calibration: batch ", i, " out of range [0, ", size(), ")");
  int64_t lo = i * batchSize, hi = std::min(lo + batchSize, dataset->size());
  return dataset->getBatch(at::arange(lo, hi, at::kLong));
}

std::pair<int64_t, int64_t> layerParamStats(const Node& n) {
  std::set<const Value*> seen;
  int64_t elems = 0, bytes = 0;
  for (auto* v : n.inputs()) {
    if (!v || !v->isParam() || !seen.insert(v).second) continue;
    elems += v->data().numel();
    bytes += v->data().numel() * static_cast<int64_t>(v->data().element_size());
  }
  return {elems, bytes};
}

CompAlgo::CompAlgo(Config cfg, ConfigSchema schema)
    : cfg_(std::move(cfg)), schema_(std::move(schema)), policies_(cfg_, schema_) {}

CompAlgo::~CompAlgo() = default;

std::vector<const CompAlgo::LayerRecord*> CompAlgo::activeLayers() const {
  std::vector<const LayerRecord*> out;
  for (auto& l : layers_)
    if (!l.policy.skip) out.push_back(&l);
  return out;
}

Graph CompAlgo::apply(Graph g) {
  GS_CHECK(!needsCalibration() || (ctx_.calibration && ctx_.calibration->size() > 0), name(),
           ": needs calibration data (give --data)");
  layers_.clear();
  for (auto& [node, pol] : policies_.resolve(g, layerOps())) {
    LayerRecord r;
    r.name = node->name();
    r.op = node->opType();
    r.policy = pol;
    std::tie(r.paramsBefore, r.bytesBefore) = layerParamStats(*node);
    layers_.push_back(std::move(r));
  }
  return applyImpl(std::move(g));
}

std::vector<CallbackPtr> CompAlgo::callbacks() {
  auto cbs = trainingCallbacks();
  std::string path = cfg_.has("export_path") ? cfg_.getString("export_path") : "";
  if (!path.empty()) cbs.push_back(makeExportCallback(*this, path));
  return cbs;
}

Graph CompAlgo::convert(Graph g) { return convertImpl(std::move(g)); }

std::string CompAlgo::policyString(const LayerRecord& layer) const {
  std::string s;
  const Json& j = layer.policy.settings.json();
  for (auto it = j.begin(); it != j.end(); ++it)
    s += (s.empty() ? "" : ",") + it.key() + "=" +
         (it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
  return s.empty() ? "default" : s;
}

void CompAlgo::describeLayer(const Graph&, const Node* node, const LayerRecord& layer,
                             SummaryRow& row) const {
  if (!node) {
    row.note = "removed";
    return;
  }
  std::tie(row.paramsAfter, row.bytesAfter) = layerParamStats(*node);
  (void)layer;
}

SummaryTable CompAlgo::summary(const Graph& g) const {
  SummaryTable t;
  t.algo = name();
  for (auto& l : layers_) {
    SummaryRow row;
    row.layer = l.name;
    row.op = l.op;
    row.paramsBefore = l.paramsBefore;
    row.bytesBefore = l.bytesBefore;
    const Node* n = g.findNode(l.name);
    if (l.policy.skip) {
      row.policy = "skip";
      row.note = l.policy.reason;
      if (n) std::tie(row.paramsAfter, row.bytesAfter) = layerParamStats(*n);
    } else {
      row.policy = policyString(l);
      describeLayer(g, n, l, row);
    }
    t.rows.push_back(std::move(row));
  }
  describeSummary(t);
  return t;
}

namespace {

/// Converts a copy of the trained graph and exports it at training end.
class ExportCallback : public Callback {
 public:
  ExportCallback(CompAlgo& algo, std::string path) : algo_(algo), path_(std::move(path)) {}
  void onTrainEnd(TrainContext& ctx) override {
    GS_ASSERT(ctx.graph, "export callback without a graph");
    auto copy = ctx.graph->clone(/*copy_data=*/true);
    Graph out = algo_.convert(std::move(*copy));
    exportOnnxFile(out, path_);
  }

 private:
  CompAlgo& algo_;
  std::string path_;
};

}  // namespace

CallbackPtr makeExportCallback(CompAlgo& algo, std::string path) {
  return std::make_shared<ExportCallback>(algo, std::move(path));
}

}  // namespace gs

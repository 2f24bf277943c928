// Block-by-block PTQ driver (see pipeline.h): calibration, outlier scales, weight quantization,
// activation / KV fake-quant insertion, propagation of quantized activations to the next block.
#include "llm/pipeline.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <unordered_set>

#include "io/safetensors.h"
#include "llm/awq.h"
#include "llm/decoder.h"
#include "llm/gptq.h"
#include "llm/lower.h"
#include "llm/smoothquant.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs::llm {

namespace {

bool fileExists(const std::string& p) { return std::filesystem::exists(p); }

int64_t procStatusKb(const char* key) {
  std::ifstream f("/proc/self/status");
  if (!f) return -1;
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) return std::stoll(line.substr(k.size()));
  return -1;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// mean_x ||D x||^2 for D [out, in] given H = 2/n sum x x^T: trace(D H D^T) / 2, in float64
/// over column blocks of H so no float64 copy of a wide layer's H is ever made.
double outputError(const at::Tensor& d, const at::Tensor& h) {
  at::Tensor dd = d.to(at::kDouble);
  const int64_t in = h.size(0), step = 512;
  double sum = 0;
  for (int64_t j = 0; j < in; j += step) {
    const int64_t n = std::min(step, in - j);
    sum += (dd.mm(h.narrow(1, j, n).to(at::kDouble)) * dd.narrow(1, j, n)).sum().item<double>();
  }
  return sum / 2.0;
}

/// mean_x ||D x||^2 over the rows x of `x` [rows, in] for D [out, in]: the output error on
/// sampled calibration rows (float32 products 256 rows at a time, summed in float64).
double rowOutputError(const at::Tensor& d, const at::Tensor& x) {
  const at::Tensor dt = d.t();
  const int64_t rows = x.size(0), step = 256;
  double sum = 0;
  for (int64_t r = 0; r < rows; r += step)
    sum += at::mm(x.narrow(0, r, std::min(step, rows - r)), dt).to(at::kDouble).square().sum().item<double>();
  return sum / static_cast<double>(rows);
}

/// Returns freed heap memory to the OS: the executor's malloc tuning keeps freed blocks in the
/// heap for speed, which after a block would otherwise stay counted in RSS.
void trimHeap() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

/// Pages out the memory-mapped checkpoint weights `g` still references (the embedding table once
/// the calibration inputs are embedded, a finished block's float layers and norms): they are
/// read from the file again if ever used.
void dropMappedParams(const Graph& g) {
  for (const Value* v : g.params()) dropMappedPages(v->data());
}

using Chunk = std::map<std::string, at::Tensor>;

std::vector<Node*> allNodes(Graph& g) {
  std::vector<Node*> v;
  for (const auto& n : g.nodes()) v.push_back(n.get());
  return v;
}

/// Runs `sub` on every chunk, taking inputs by name from the chunk.
template <typename F>
void runChunks(const Subgraph& sub, std::vector<Chunk>& chunks, Executor& ex, F&& on_outputs) {
  for (Chunk& c : chunks) {
    std::vector<at::Tensor> in;
    for (const std::string& n : sub.inputs) {
      auto it = c.find(n);
      GS_CHECK(it != c.end(), "PTQ: block input '", n, "' is not available (is the graph a "
               "chain of decoder blocks?)");
      in.push_back(it->second);
    }
    on_outputs(c, ex.run(in));
  }
}

/// Cached hyper-parameters (see PipelineOptions::cache_path).
struct Cache {
  nlohmann::json j = nlohmann::json::object();
  std::map<std::string, at::Tensor> gptq;
  bool valid = false;

  static std::string gptqPath(const std::string& p) { return p + ".gptq.safetensors"; }
  void load(const std::string& path, const nlohmann::json& cfg) {
    if (path.empty() || !fileExists(path)) return;
    nlohmann::json k = nlohmann::json::parse(readFile(path), nullptr, false);
    if (k.is_discarded() || !k.is_object() || k.value("config", nlohmann::json()) != cfg) return;
    j = k;
    if (fileExists(gptqPath(path))) {
      for (auto& [n, t] : readSafetensors(gptqPath(path)).tensors) gptq[n] = t.clone();
    }
    valid = true;
  }
  std::optional<at::Tensor> vec(const std::string& section, const std::string& key) const {
    if (!valid || !j.contains(section) || !j[section].contains(key)) return std::nullopt;
    std::vector<float> v = j[section][key].get<std::vector<float>>();
    return at::tensor(v, at::kFloat);
  }
  void putVec(const std::string& section, const std::string& key, const at::Tensor& t) {
    at::Tensor c = t.to(at::kFloat).contiguous().reshape({-1});
    j[section][key] = std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  std::optional<QuantizedWeight> weight(const std::string& name, const WeightQuantSpec& s) const {
    if (!valid || !gptq.count(name + ".q")) return std::nullopt;
    QuantizedWeight w;
    w.spec = s;
    w.q = gptq.at(name + ".q");
    w.scale = gptq.at(name + ".scale");
    w.zero = gptq.at(name + ".zero");
    w.g_idx = gptq.at(name + ".g_idx");
    return w;
  }
  void save(const std::string& path, const nlohmann::json& cfg) {
    if (path.empty()) return;
    j["config"] = cfg;
    writeFileAtomic(path, j.dump(1));
    if (!gptq.empty()) writeSafetensors(gptqPath(path), gptq);
  }
};

/// Scores candidate weights of a linear group on the output of the block region it feeds (see
/// inspectRegion), against the region's float output on the captured calibration chunks.
class RegionScorer {
 public:
  RegionScorer(const Graph& g, const std::vector<Node*>& nodes, const std::vector<LinearRef>& lins,
               const std::vector<Chunk>& data)
      : sub_(extractSubgraph(g, nodes)), data_(data) {
    for (const LinearRef& l : lins) {
      LinearRef r = l;
      r.weight = sub_.graph->findValue(l.weight->name());
      GS_ASSERT(r.weight);
      lins_.push_back(r);
    }
    Executor ex(*sub_.graph);
    for (const Chunk& c : data_) refs_.push_back(ex.run(inputs(c)));
  }
  double score(const std::vector<at::Tensor>& wq) {
    for (size_t k = 0; k < lins_.size(); ++k) lins_[k].setWeightOI(wq[k]);
    Executor ex(*sub_.graph);
    double e = 0;
    for (size_t c = 0; c < data_.size(); ++c) {
      std::vector<at::Tensor> out = ex.run(inputs(data_[c]));
      for (size_t o = 0; o < out.size(); ++o)
        e += (out[o] - refs_[c][o]).square().mean().item<double>();
    }
    return e / static_cast<double>(std::max<size_t>(1, data_.size()));
  }

 private:
  std::vector<at::Tensor> inputs(const Chunk& c) const {
    std::vector<at::Tensor> in;
    for (const std::string& n : sub_.inputs) in.push_back(c.at(n));
    return in;
  }
  Subgraph sub_;
  const std::vector<Chunk>& data_;
  std::vector<LinearRef> lins_;
  std::vector<std::vector<at::Tensor>> refs_;
};

/// AWQ scoring regions of a block: for each linear group (keyed by its input value) whose
/// inspectRegion reaches beyond the group's own outputs, the region's nodes; and the region inputs
/// computed inside the block, to be captured during the calibration forward.
struct AwqRegions {
  std::map<std::string, std::vector<Node*>> nodes;
  std::set<std::string> captures;
};

AwqRegions findAwqRegions(const Graph& g, const DecoderBlock& blk,
                          const std::map<std::string, std::set<std::string>>& group_outputs) {
  AwqRegions r;
  const std::set<const Node*> in_block(blk.nodes.begin(), blk.nodes.end());
  for (const auto& [key, own] : group_outputs) {
    std::vector<Node*> nodes = inspectRegion(blk.nodes, g.findValue(key));
    Subgraph probe = extractSubgraph(g, nodes);
    bool beyond = false;  // a region ending at the group's own outputs adds nothing
    for (const std::string& o : probe.outputs) beyond = beyond || !own.count(o);
    if (!beyond) continue;
    for (const std::string& in : probe.inputs) {
      const Node* p = g.findValue(in)->producer();
      if (p && in_block.count(p)) r.captures.insert(in);
    }
    r.nodes[key] = std::move(nodes);
  }
  return r;
}

}  // namespace

std::vector<std::pair<Value*, at::Tensor>> floatParams(const std::vector<Node*>& nodes) {
  std::vector<std::pair<Value*, at::Tensor>> old;
  std::unordered_set<const Value*> seen;
  for (Node* n : nodes) {
    for (Value* v : n->inputs()) {
      if (!v || !v->isParam() || !seen.insert(v).second) continue;
      const at::Tensor& t = v->data();
      if (!t.defined() || (t.scalar_type() != at::kHalf && t.scalar_type() != at::kBFloat16)) continue;
      old.emplace_back(v, t);
      v->setData(t.to(at::kFloat));
    }
  }
  return old;
}

int64_t peakRssKb() { return procStatusKb("VmHWM"); }
int64_t currentRssKb() { return procStatusKb("VmRSS"); }

at::Tensor calibrationWindows(const at::Tensor& tokens, int64_t samples, int64_t seq) {
  GS_CHECK(tokens.dim() == 1, "calibration: token stream must be 1-D");
  const int64_t n = tokens.size(0);
  GS_CHECK(samples > 0 && seq > 0 && n >= seq, "calibration: need a stream of at least ", seq,
           " tokens for ", samples, " windows, got ", n);
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < samples; ++i) {
    const int64_t off = samples == 1 ? 0 : (n - seq) * i / (samples - 1);
    rows.push_back(tokens.narrow(0, off, seq).to(at::kLong));
  }
  return at::stack(rows);
}

PtqResult quantizeDecoder(Graph& g, const at::Tensor& calib, const PtqConfig& cfg,
                          const PipelineOptions& opts) {
  cfg.validate();
  GS_CHECK(calib.dim() == 2 && calib.scalar_type() == at::kLong,
           "PTQ: calibration ids must be int64 [samples, T]");
  const double t_start = now();
  const nlohmann::json cfg_json = ptqConfigToJson(cfg);
  Cache cache;
  cache.load(opts.cache_path, cfg_json);
  PtqResult res;
  auto phase = [&](int64_t block, const char* name) {
    if (opts.on_phase) opts.on_phase(block, name);
  };
  phase(-1, "prefix");

  // ---- prefix: everything the blocks need that no block computes (embedding, rotary, mask).
  std::vector<DecoderBlock> blocks = findDecoderBlocks(g);
  const int64_t nblocks = static_cast<int64_t>(blocks.size());
  std::vector<Node*> block_nodes;
  for (const DecoderBlock& b : blocks) block_nodes.insert(block_nodes.end(), b.nodes.begin(), b.nodes.end());
  std::unordered_set<const Node*> in_block(block_nodes.begin(), block_nodes.end());
  std::vector<Value*> needed;
  for (Node* n : block_nodes)
    for (Value* v : n->inputs())
      if (v && !v->isParam() && (!v->producer() || !in_block.count(v->producer())))
        needed.push_back(v);
  const std::vector<Node*> pre_nodes = backwardSlice(g, needed, block_nodes);
  // The prefix runs on float copies of compact (f16 / bf16) parameters, bound back afterwards:
  // the embedding table is needed in float again only at the end.
  std::vector<std::pair<Value*, at::Tensor>> compact = floatParams(pre_nodes);
  Subgraph pre = extractSubgraph(g, pre_nodes);
  std::vector<Chunk> chunks;
  {
    std::vector<at::Tensor> ids;
    for (int64_t c = 0; c < calib.size(0); c += cfg.calib_batch)
      ids.push_back(calib.narrow(0, c, std::min(cfg.calib_batch, calib.size(0) - c)));
    for (const at::Tensor& t : ids) {
      Chunk c;
      for (Value* in : g.inputs()) c[in->name()] = t;
      chunks.push_back(std::move(c));
    }
    Executor pe(*pre.graph);
    runChunks(pre, chunks, pe, [&](Chunk& c, std::vector<at::Tensor> outs) {
      for (size_t k = 0; k < outs.size(); ++k) c[pre.outputs[k]] = outs[k];
    });
  }
  dropMappedParams(*pre.graph);
  pre.graph.reset();  // it shares the float copies
  for (auto& [v, t] : compact) v->setData(std::move(t));
  compact.clear();
  std::set<std::string> side(pre.outputs.begin(), pre.outputs.end());
  for (Value* in : g.inputs()) side.insert(in->name());

  const bool gptq = cfg.recovery == PrecisionRecovery::Gptq;
  const bool awq = cfg.outlier == OutlierSuppression::Awq;
  const bool smooth = cfg.outlier == OutlierSuppression::Smooth;
  // Errors from the Hessian (exact) or from sampled calibration rows (cfg.error_rows).
  const bool hessian_error = cfg.measure_error && cfg.error_rows == 0;
  const bool row_error = cfg.measure_error && cfg.error_rows > 0;
  const bool need_h = gptq || hessian_error;
  const bool need_amax = smooth || (cfg.act_bits && cfg.act_granularity == ActGranularity::PerTensor);

  for (int64_t bi = 0; bi < nblocks; ++bi) {
    const double t_block = now();
    phase(bi, "calibrate");
    blocks = findDecoderBlocks(g);
    const DecoderBlock blk = blocks[bi];  // a copy: `blocks` is recomputed after insertions
    floatParams(blk.nodes);  // compact checkpoint weights: one block in float at a time
    struct Lin {
      LinearRef ref;
      std::optional<WeightQuantSpec> spec;
      std::string in_name;
    };
    std::vector<Lin> lins;
    std::vector<std::string> group_order;
    std::map<std::string, std::vector<size_t>> groups;
    std::map<std::string, std::string> first_of_group;  // first linear of a group -> input
    for (const LinearRef& l : blk.linears) {
      Lin x{l, cfg.weightSpecFor(l.name()), l.input()->name()};
      if (x.spec) x.spec->validate(l.inFeatures());
      if (!groups.count(x.in_name)) {
        group_order.push_back(x.in_name);
        first_of_group[l.name()] = x.in_name;
      }
      groups[x.in_name].push_back(lins.size());
      lins.push_back(x);
    }
    // KV-cache values: K after rotary, V after the head split (zoo / HF-import naming).
    std::vector<std::string> kv_values;
    if (cfg.kv_bits) {
      for (const char* suffix : {".self_attn.k_rotary.add", ".self_attn.v_proj.transpose"}) {
        Node* n = g.findNode(blk.prefix + suffix);
        GS_CHECK(n, "PTQ: kv-cache quantization needs node '", blk.prefix + suffix,
                 "' (K after rotary / V heads) in block '", blk.prefix, "'");
        kv_values.push_back(n->output(0)->name());
      }
    }

    // AWQ scores a group whose input feeds more than its own layers before the residual stream
    // (q/k/v: the attention; gate/up: the MLP) on that region's output, as AutoAWQ's
    // module2inspect. Its inputs produced inside the block are kept for the first chunks.
    AwqRegions regions;
    if (awq) {
      std::map<std::string, std::set<std::string>> group_outputs;
      for (const Lin& l : lins) group_outputs[l.in_name].insert(l.ref.node->output(0)->name());
      regions = findAwqRegions(g, blk, group_outputs);
    }
    const int64_t region_chunks =
        regions.nodes.empty()
            ? 0
            : std::min<int64_t>(static_cast<int64_t>(chunks.size()),
                                (cfg.awq_max_tokens + calib.size(1) * cfg.calib_batch - 1) /
                                    (calib.size(1) * cfg.calib_batch));
    std::vector<Chunk> region_inputs(static_cast<size_t>(region_chunks));

    // ---- calibration statistics of the float block (inputs from the quantized blocks before).
    std::map<std::string, HessianAccumulator> hess;
    std::map<std::string, std::vector<at::Tensor>> es;
    // AWQ: statistics of at most awq_max_tokens strided rows per group input, not the rows.
    std::map<std::string, AwqInputStats> X;
    std::map<std::string, ChannelAbsMax> amax;
    std::map<std::string, at::Tensor> kv_amax;
    const int64_t rows_per_chunk =
        cfg.awq_max_tokens / std::max<int64_t>(1, static_cast<int64_t>(chunks.size())) + 1;
    const int64_t error_rows_per_chunk =
        cfg.error_rows / std::max<int64_t>(1, static_cast<int64_t>(chunks.size())) + 1;
    {
      Subgraph sub = extractSubgraph(g, blk.nodes);
      Executor ex(*sub.graph);
      std::set<std::string> kv_set(kv_values.begin(), kv_values.end());
      int64_t chunk_index = 0;
      ex.setObserver([&](const Node& n, const std::vector<at::Tensor>& in,
                         const std::vector<at::Tensor>& out) {
        if (chunk_index < region_chunks)
          for (size_t k = 0; k < out.size(); ++k)
            if (n.output(k) && regions.captures.count(n.output(k)->name()))
              region_inputs[chunk_index][n.output(k)->name()] = out[k];
        if (kv_set.count(n.output(0)->name())) {
          at::Tensor m = std::get<0>(std::get<0>(out[0].detach().abs().max(2)).max(0));  // [kv, hd]
          at::Tensor& a = kv_amax[n.output(0)->name()];
          a = a.defined() ? at::maximum(a, m) : m;
        }
        auto it = first_of_group.find(n.name());
        if (it == first_of_group.end()) return;  // statistics once per shared input
        const std::string& key = it->second;
        const at::Tensor& x = in[0];
        if (need_h) hess.try_emplace(key, x.size(-1)).first->second.add(x);
        if (awq) X.try_emplace(key, x.size(-1))
                     .first->second.add(subsampleRows(x, rows_per_chunk));
        if (row_error) es[key].push_back(subsampleRows(x, error_rows_per_chunk));
        if (need_amax) amax[key].add(x);
      });
      runChunks(sub, chunks, ex, [&](Chunk&, std::vector<at::Tensor>) { ++chunk_index; });
    }
    for (int64_t c = 0; c < region_chunks; ++c)
      for (const auto& [name, t] : chunks[c])
        region_inputs[c].emplace(name, t);  // block inputs (hidden state, rotary tables, mask)
    std::map<std::string, at::Tensor> E;  // calibration rows for the error report (row_error)
    for (auto& [k, v] : es) E[k] = subsampleRows(at::cat(v, 0), cfg.error_rows);
    es.clear();
    std::map<std::string, at::Tensor> H;
    for (auto& [k, h] : hess) H[k] = h.hessian();
    hess.clear();
    trimHeap();  // the float forward's freed activations
    // Output error of D = W - Q(W) on linear input `in`; -1 when it has no statistics.
    auto layerError = [&](const at::Tensor& d, const std::string& in) {
      if (row_error) return E.count(in) ? rowOutputError(d, E.at(in)) : -1.0;
      return H.count(in) ? outputError(d, H.at(in)) : -1.0;
    };

    std::map<std::string, LayerReport> reps;
    for (const Lin& l : lins) {
      LayerReport r;
      r.name = l.ref.name();
      r.scheme = l.spec ? l.spec->describe() : "float";
      r.method = l.spec ? (gptq ? "GPTQ" : "RTN") : "-";
      if (l.spec && awq) r.method = "AWQ+" + r.method;
      if (l.spec && smooth) r.method = "SQ+" + r.method;
      // Plain RTN's error on the unscaled weights: here, before outlier scales are folded;
      // without them just before the layer is quantized (below), so its temporaries never add
      // to the statistics of the whole block held here.
      if (l.spec && cfg.measure_error && (awq || smooth)) {
        at::Tensor w = l.ref.weightOI();
        r.err_rtn = layerError(w - rtnFakeQuant(w, *l.spec), l.in_name);
      }
      reps[r.name] = r;
    }

    // ---- phase 1: outlier scales (computed on float weights, folded before quantization).
    phase(bi, "scales");
    if (awq || smooth) {
      for (const std::string& key : group_order) {
        std::vector<size_t>& idx = groups[key];
        std::vector<at::Tensor> ws;
        std::optional<WeightQuantSpec> spec;
        for (size_t i : idx) {
          ws.push_back(lins[i].ref.weightOI());
          if (!spec && lins[i].spec) spec = lins[i].spec;
        }
        if (!spec) continue;
        FoldTarget ft = findFoldTarget(g, g.findValue(key));
        if (ft.kind == FoldTarget::None) continue;
        std::optional<at::Tensor> s = cache.vec("scales", key);
        if (!s) {
          if (awq) {
            AwqScorer scorer;
            std::optional<RegionScorer> rs;
            if (regions.nodes.count(key)) {
              std::vector<LinearRef> refs;
              for (size_t i : idx) refs.push_back(lins[i].ref);
              rs.emplace(g, regions.nodes.at(key), refs, region_inputs);
              scorer = [&](const std::vector<at::Tensor>& wq) { return rs->score(wq); };
            }
            s = awqSearchScales(X.at(key), ws, cfg.awqConfig(*spec), scorer).scales;
          } else {
            s = smoothQuantScales(amax.at(key).value(), ws, cfg.smooth_alpha);
          }
        }
        cache.putVec("scales", key, *s);
        foldInverseScales(ft, *s);
        for (size_t k = 0; k < idx.size(); ++k) lins[idx[k]].ref.setWeightOI(ws[k] * *s);
        if (X.count(key)) X.at(key).divideInputs(*s);
        if (E.count(key)) E[key] = E[key] / *s;
        if (H.count(key)) H[key] = H[key] / at::outer(*s, *s);
        if (amax.count(key)) {
          ChannelAbsMax m;
          m.add((amax[key].value() / *s).unsqueeze(0));
          amax[key] = m;
        }
        for (size_t i : idx) reps[lins[i].ref.name()].fold = ft.describe();
      }
    }

    region_inputs.clear();

    // ---- phase 2: weights. Each group's H is dropped after its last linear.
    phase(bi, "quantize");
    std::map<std::string, size_t> last_of_group;
    for (size_t i = 0; i < lins.size(); ++i) last_of_group[lins[i].in_name] = i;
    for (size_t li = 0; li < lins.size(); ++li) {
      const Lin& l = lins[li];
      if (!l.spec) continue;
      const double t0 = now();
      at::Tensor w = l.ref.weightOI();
      LayerReport& r = reps[l.ref.name()];
      if (cfg.measure_error && !awq && !smooth)
        r.err_rtn = layerError(w - rtnFakeQuant(w, *l.spec), l.in_name);
      QuantizedWeight qw;
      std::optional<QuantizedWeight> cached = gptq ? cache.weight(l.ref.name(), *l.spec) : std::nullopt;
      if (cached) {
        qw = *cached;
      } else {
        at::Tensor wc = w;
        const bool qk = l.ref.name().find("q_proj") != std::string::npos ||
                        l.ref.name().find("k_proj") != std::string::npos;
        if (awq && cfg.awqClips() && (cfg.awq_clip_qk || !qk))
          wc = awqClip(X.at(l.in_name), w, cfg.awqConfig(*l.spec));
        if (gptq) {
          at::Tensor h = H.at(l.in_name);
          // Unless the error report needs it, the group's last linear hands H over: GPTQ frees
          // it once its float64 copy exists.
          if (!hessian_error && last_of_group[l.in_name] == li) H.erase(l.in_name);
          qw = gptqQuantize(wc, std::move(h), cfg.gptqConfig(*l.spec)).weight;
        } else {
          qw = rtnQuantize(wc, *l.spec);
        }
      }
      at::Tensor dq = qw.dequantize();
      if (cfg.measure_error) r.err = layerError(w - dq, l.in_name);
      l.ref.setWeightOI(dq);
      w = at::Tensor();
      dq = at::Tensor();
      if (last_of_group[l.in_name] == li) {
        H.erase(l.in_name);
        X.erase(l.in_name);
        E.erase(l.in_name);
      }
      if (gptq && !opts.cache_path.empty()) {
        cache.gptq[l.ref.name() + ".q"] = qw.q;
        cache.gptq[l.ref.name() + ".scale"] = qw.scale;
        cache.gptq[l.ref.name() + ".zero"] = qw.zero;
        cache.gptq[l.ref.name() + ".g_idx"] = qw.g_idx;
      }
      res.weights[l.ref.name()] = std::move(qw);
      r.seconds = now() - t0;
      trimHeap();  // this layer's quantization temporaries (GPTQ: tens of MB per wide layer)
    }

    // ---- phase 3: activation and KV-cache fake quant nodes (in the block's name scope).
    if (cfg.act_bits) {
      for (const std::string& key : group_order) {
        bool all = true;
        for (size_t i : groups[key]) all = all && lins[i].spec.has_value();
        if (!all) continue;
        const std::string name = lins[groups[key].front()].ref.name() + ".act_quant";
        Value* x = g.findValue(key);
        if (cfg.act_granularity == ActGranularity::PerTensor) {
          std::optional<at::Tensor> cs = cache.vec("act_scales", key);
          const float sc = cs ? (*cs)[0].item<float>()
                              : std::max(amax.at(key).value().max().item<float>() / 127.0f, 1e-12f);
          cache.putVec("act_scales", key, at::tensor({sc}));
          res.act_scales[lins[groups[key].front()].ref.name()] = sc;
          insertQdq(g, x, sc, name);
        } else {
          insertFakeQuant(g, x, at::Tensor(), name);
        }
      }
    }
    for (size_t k = 0; k < kv_values.size(); ++k) {
      const std::string name = blk.prefix + (k == 0 ? ".self_attn.k_cache_quant" : ".self_attn.v_cache_quant");
      at::Tensor scale;
      if (cfg.kv_granularity == ActGranularity::PerChannel) {
        std::optional<at::Tensor> cs = cache.vec("kv_scales", kv_values[k]);
        at::Tensor m = kv_amax.at(kv_values[k]);  // [kv, hd]
        scale = cs ? cs->reshape(m.sizes()) : at::clamp_min(m / 127.0, 1e-12);
        cache.putVec("kv_scales", kv_values[k], scale);
        scale = scale.unsqueeze(0).unsqueeze(2);  // [1, kv, 1, hd]
      }
      insertFakeQuant(g, g.findValue(kv_values[k]), scale, name);
    }

    // ---- phase 4: the quantized block produces the next block's inputs.
    phase(bi, "propagate");
    H.clear();
    X.clear();
    E.clear();
    trimHeap();  // the quantization temporaries
    blocks = findDecoderBlocks(g);
    {
      Subgraph sub = extractSubgraph(g, blocks[bi].nodes);
      Executor ex(*sub.graph);
      runChunks(sub, chunks, ex, [&](Chunk& c, std::vector<at::Tensor> outs) {
        for (auto it = c.begin(); it != c.end();)
          it = side.count(it->first) ? std::next(it) : c.erase(it);
        for (size_t k = 0; k < outs.size(); ++k) c[sub.outputs[k]] = outs[k];
      });
      dropMappedParams(*sub.graph);
    }
    phase(bi, "release");
    double sum_rtn = 0, sum = 0;
    std::map<std::string, QuantizedWeight> done;
    for (const Lin& l : lins) {
      const LayerReport& r = reps[l.ref.name()];
      res.layers.push_back(r);
      sum_rtn += std::max(0.0, r.err_rtn);
      sum += std::max(0.0, r.err);
      if (!l.spec) continue;
      if (opts.pack_weights) {
        done.emplace(l.ref.name(), res.weights.at(l.ref.name()));
      } else if (opts.release_weights) {
        const at::Tensor& d = l.ref.weight->data();
        l.ref.weight->setData(at::zeros({1}, d.options()).expand(d.sizes()));
      }
    }
    const size_t nlins = lins.size();
    lins.clear();  // lowering erases the nodes these refer to
    if (!done.empty()) lowerQuantizedLinears(g, done, cfg.act_bits == 8);
    if (!opts.keep_codes)
      for (const auto& [name, w] : done) res.weights.erase(name);
    done.clear();
    trimHeap();
    if (opts.progress || opts.on_block) {
      std::ostringstream st;
      st << blk.prefix << " (" << nlins << " linears)";
      if (cfg.measure_error) st << " | err " << sum << " (RTN " << sum_rtn << ")";
      st << " | " << static_cast<int>((now() - t_block) * 1000) << " ms | RSS "
         << currentRssKb() / 1024 << " MB";
      if (opts.progress) {
        *opts.progress << "ptq: block " << (bi + 1) << "/" << nblocks << " " << cfg.describe()
                       << " " << st.str() << "\n";
        opts.progress->flush();
      }
      if (opts.on_block) opts.on_block(bi + 1, nblocks, calib.numel(), st.str());
    }
  }
  phase(nblocks, "end");
  cache.save(opts.cache_path, cfg_json);
  res.blocks = nblocks;
  floatParams(allNodes(g));  // the embedding, final norm and lm_head of a compact checkpoint
  res.seconds = now() - t_start;
  res.peak_rss_kb = peakRssKb();
  return res;
}

}  // namespace gs::llm

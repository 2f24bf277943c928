// Quantization accuracy table: fp32 vs PTQ W8A8 with every observer (+ dynamic A8dyn), SimQAT and
// LSQ fine-tuning, gstick fake-quant vs converted QDQ vs ONNX Runtime, calibration seconds.
//   quant_bench MODEL.onnx [--calib 2048] [--test 10000] [--observers minmax,ema,...]
//               [--simqat-epochs 0] [--lsq-epochs 0] [--train 60000] [--bins N] [--ort] [--out DIR]
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "algo/registry.h"
#include "data/dataset.h"
#include "io/npy.h"
#include "io/onnx.h"
#include "ort_runner.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "train/trainer.h"

using namespace gs;

namespace {

struct Row {
  std::string config;
  double acc = 0, acc_qdq = -1, acc_ort = -1, agree = -1, agree_fq = -1, seconds = 0;
  double dfq = -1, dort = -1;  // max |logit difference| in output quantization steps
  double wfq = -1, wort = -1;  // share of logits within one output quantization step (%)
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

at::Tensor logitsOf(const Graph& g, const at::Tensor& x) {
  Executor ex(g);
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += 500) parts.push_back(ex.run({x.slice(0, i, i + 500)})[0]);
  return at::cat(parts);
}

double acc(const at::Tensor& logits, const at::Tensor& y) {
  return logits.argmax(1).eq(y).to(at::kDouble).mean().item<double>() * 100;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    GS_CHECK(argc >= 2, "usage: quant_bench MODEL.onnx [--calib N] [--test N] [--observers a,b] "
                        "[--simqat-epochs E] [--lsq-epochs E] [--train N] [--bins N] [--ort] [--out DIR]");
    std::string model = argv[1], out_dir = "/tmp/quant_bench";
    int64_t calib = 2048, ntest = 10000, ntrain = 60000, sq_epochs = 0, lsq_epochs = 0;
    int64_t bins = 0;  // histogram observers' bins (0: the ptq default)
    std::string observers = "minmax,ema,percentile,mse,kl";
    bool ort = false;
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&] { GS_CHECK(i + 1 < argc, a, " needs a value"); return std::string(argv[++i]); };
      if (a == "--calib") calib = std::stoll(next());
      else if (a == "--test") ntest = std::stoll(next());
      else if (a == "--train") ntrain = std::stoll(next());
      else if (a == "--observers") observers = next();
      else if (a == "--simqat-epochs") sq_epochs = std::stoll(next());
      else if (a == "--lsq-epochs") lsq_epochs = std::stoll(next());
      else if (a == "--ort") ort = true;
      else if (a == "--bins") bins = std::stoll(next());
      else if (a == "--out") out_dir = next();
      else GS_FAIL("unknown option ", a);
    }
    initRuntime();
    std::filesystem::create_directories(out_dir);
    auto fp = importOnnxFile(model);
    FashionMnistDataset test(FashionMnistDataset::Split::Test, ntest);
    Batch tb = test.getBatch(at::arange(test.size(), at::kLong));
    std::string xin = out_dir + "/test_x.npy", yin = out_dir + "/test_y.npy";
    if (ort) {
      writeNpy(xin, tb.inputs);
      writeNpy(yin, tb.labels);
    }
    at::Tensor lf = logitsOf(*fp, tb.inputs);
    double acc_fp = acc(lf, tb.labels);
    // The step of a uint8 min-max quantizer on the logits: the unit of the fidelity columns.
    const double out_step = (lf.max() - lf.min()).item<double>() / 255.0;
    std::vector<Row> rows;
    rows.push_back({"fp32", acc_fp});
    auto calib_ds = std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Train, calib);

    auto withinOneStep = [&](const at::Tensor& a, const at::Tensor& b) {
      return ((a - b).abs() <= out_step).to(at::kDouble).mean().item<double>() * 100;
    };
    auto finish = [&](Row r, CompAlgo& algo, Graph& q, const std::string& tag) {
      at::Tensor lq = logitsOf(q, tb.inputs);
      r.acc = acc(lq, tb.labels);
      Graph d = algo.convert(std::move(*q.clone(true)));
      at::Tensor ld = logitsOf(d, tb.inputs);
      r.acc_qdq = acc(ld, tb.labels);
      r.agree_fq = lq.argmax(1).eq(ld.argmax(1)).to(at::kDouble).mean().item<double>() * 100;
      r.dfq = (lq - ld).abs().max().item<double>() / out_step;
      r.wfq = withinOneStep(lq, ld);
      if (ort) {
        std::string path = out_dir + "/" + tag + ".onnx", lo = out_dir + "/" + tag + ".ort_logits.npy";
        exportOnnxFile(d, path);
        auto e = ort::evalOrt(path, xin, yin, lo);
        r.acc_ort = 100.0 * e.correct / e.samples;
        at::Tensor lort = readNpy(lo);
        r.agree = lort.argmax(1).eq(ld.argmax(1)).to(at::kDouble).mean().item<double>() * 100;
        r.dort = (lort - ld).abs().max().item<double>() / out_step;
        r.wort = withinOneStep(lort, ld);
      }
      rows.push_back(r);
      std::printf("%-34s %7.2f%%\n", r.config.c_str(), r.acc);
      std::fflush(stdout);
    };

    for (const std::string& obs : split(observers)) {
      Json cfg{{"act_observer", obs}};
      if (bins > 0) cfg["bins"] = bins;
      auto algo = AlgoRegistry::global().create("ptq", cfg);
      AlgoContext ctx;
      ctx.calibration = CalibrationData{calib_ds, (calib + 31) / 32, 32};
      algo->setContext(ctx);
      double t0 = now();
      Graph q = algo->apply(std::move(*fp->clone()));
      Row r;
      r.config = "ptq W8A8 static " + obs;
      r.seconds = now() - t0;
      finish(r, *algo, q, "ptq_" + obs);
    }
    {
      auto algo = AlgoRegistry::global().create("ptq", Json{{"mode", "dynamic"}});
      double t0 = now();
      Graph q = algo->apply(std::move(*fp->clone()));
      Row r;
      r.config = "ptq W8A8dyn per-token";
      r.seconds = now() - t0;
      finish(r, *algo, q, "ptq_dynamic");
    }
    auto train = std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Train, ntrain);
    auto qat = [&](const std::string& name, Json cfg, int64_t epochs, double lr, const std::string& label) {
      auto algo = AlgoRegistry::global().create(name, cfg);
      AlgoContext ctx;
      ctx.trainData = train;
      ctx.calibration = CalibrationData{calib_ds, 4, 64};
      algo->setContext(ctx);
      Graph q = algo->apply(std::move(*fp->clone(true)));
      TrainerOptions o;
      o.epochs = epochs;
      o.loader.batchSize = 128;
      o.optimizer = OptimizerConfig::sgd(lr, 0.9, 5e-4);
      LrScheduleConfig sc;
      sc.kind = LrScheduleConfig::Kind::Cosine;
      o.schedule = sc;
      o.progress = false;
      double t0 = now();
      Trainer t(q, o);
      for (auto& cb : algo->callbacks()) t.addCallback(cb);
      t.fit(train);
      Row r;
      r.config = label;
      r.seconds = now() - t0;
      finish(r, *algo, q, name);
    };
    if (sq_epochs > 0)
      qat("simqat", Json::object(), sq_epochs, 0.002,
          "simqat W8A8 " + std::to_string(sq_epochs) + " ep");
    if (lsq_epochs > 0)
      qat("lsq", Json::object(), lsq_epochs, 0.005, "lsq W4A4 " + std::to_string(lsq_epochs) + " ep");

    std::printf("\nmodel %s, test %lld, calibration %lld train images\n", model.c_str(),
                static_cast<long long>(ntest), static_cast<long long>(calib));
    std::printf("| config | top-1 fake-quant | top-1 int8 (gstick) | top-1 ORT (QDQ) | top-1 change vs fp32 | "
                "agreement fake-quant / int8 | agreement int8 / ORT | max logit diff fake-quant / int8 | "
                "max logit diff int8 / ORT | logits within 1 step fake-quant / int8 | logits within 1 step int8 / ORT | "
                "seconds |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const Row& r : rows) {
      auto f = [](double v, const char* unit) {
        if (v < 0) return std::string("-");
        char b[32];
        std::snprintf(b, sizeof b, "%.2f%s", v, unit);
        return std::string(b);
      };
      char drop[32] = "-";
      if (r.config != "fp32") std::snprintf(drop, sizeof drop, "%+.2f", r.acc_qdq - acc_fp);
      std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.config.c_str(),
                  f(r.acc, "").c_str(), f(r.acc_qdq, "").c_str(), f(r.acc_ort, "").c_str(), drop,
                  f(r.agree_fq, "%").c_str(), f(r.agree, "%").c_str(), f(r.dfq, " steps").c_str(),
                  f(r.dort, " steps").c_str(), f(r.wfq, "%").c_str(), f(r.wort, "%").c_str(),
                  f(r.seconds, "").c_str());
    }
    std::printf("\nlogit differences are in output quantization steps: (max - min of the fp32 test logits) / 255 "
                "= %.4f\n", out_step);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quant_bench: %s\n", e.what());
    return 1;
  }
}

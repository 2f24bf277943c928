// `gstick compress` on a Hugging Face Llama checkpoint written from the trained tiny Llama: the
// gptq / rtn / awq presets through the CLI (MatMulNBits ONNX and GPTQ-layout safetensors), the
// per-block progress, perplexity close to fp32 and equal to the C++ API's, and one-line errors.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "data/perplexity.h"
#include "data/text_dataset.h"
#include "io/gptq_safetensors.h"
#include "io/onnx.h"
#include "llm/decoder.h"
#include "llm/hf_llama.h"
#include "llm/pipeline.h"
#include "runtime/executor.h"
#include "support/file_util.h"
#include "test_util.h"

namespace gs {
namespace {

namespace fs = std::filesystem;
using test::CmdResult;
using test::expectOneErrorLine;
using test::gstick;

const std::string kModel = std::string(GS_SOURCE_DIR) + "/models/llama-tiny-text.onnx";

// The configuration models/README.md trains llama-tiny-text.onnx with (zoo defaults otherwise).
models::LlamaConfig tinyTextConfig() {
  return {.vocab = 256, .dim = 128, .layers = 4, .heads = 4, .kv_heads = 2, .ffn = 352, .max_seq = 128};
}

// Held-out slice: the first 4096 validation tokens, windows of 128.
double perplexity(const Graph& g) {
  static const at::Tensor tokens = openTextData(parseDataSpec("text:validation:4096")).tokens;
  Executor ex(g);
  return evaluatePerplexity(ex, tokens, {.context = 128, .stride = 128}).perplexity;
}

class CliLlmCompress : public ::testing::Test {
 protected:
  // One HF checkpoint of the trained model for the suite, written with the library's writer.
  static void SetUpTestSuite() {
    dir_ = test::tempDir("hf_tiny_text");
    auto g = importOnnxFile(kModel);
    llm::saveHfLlama(*g, tinyTextConfig(), dir_);
    fp32_ = perplexity(*g);
  }
  static std::string dir_;
  static double fp32_;
};
std::string CliLlmCompress::dir_;
double CliLlmCompress::fp32_ = 0;

TEST_F(CliLlmCompress, CheckpointIsTheTrainedModel) {
  // Guards the config above: the HF checkpoint computes the ONNX model's logits.
  auto onnx = importOnnxFile(kModel);
  llm::HfLlama hf = llm::loadHfLlama(dir_);
  at::Tensor ids = openTextData(parseDataSpec("text:validation:256")).tokens.reshape({2, 128});
  Executor a(*onnx), b(*hf.graph);
  EXPECT_TRUE(at::equal(a.run({ids})[0], b.run({ids})[0]));
  EXPECT_NEAR(fp32_, 6.0, 0.6);  // the model card's ~6.0 validation perplexity
}

TEST_F(CliLlmCompress, GptqOnnxMatchesApiAndShowsProgress) {
  const std::string out = test::tempDir("cli_gptq") + "/tiny-gptq.onnx";
  CmdResult r = gstick("compress --algo gptq " + dir_ + " -o " + out +
                       " --data text:train --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  // Per-block progress (stderr is not a TTY here: plain lines), then the summary on stdout.
  EXPECT_NE(r.out.find("loaded " + dir_ + ": Llama 4 layers, dim 128, F32"), std::string::npos)
      << r.out;
  EXPECT_NE(r.err.find("gptq W4 g128 asym, GPTQ: step 1/4 model.layers.0 (7 linears)"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step 4/4 model.layers.3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tok/s | ETA"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("MB"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("wrote " + out), std::string::npos) << r.out;
  // The per-layer error report is on by default (from sampled calibration rows).
  EXPECT_NE(r.err.find("(7 linears) | err "), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("out_mse_rtn"), std::string::npos) << r.out;

  auto q = importOnnxFile(out);
  int64_t nbits = 0;
  for (const auto& n : q->nodes()) nbits += n->opType() == "MatMulNBits";
  EXPECT_EQ(nbits, 28);  // 7 linears x 4 blocks
  const double ppl_cli = perplexity(*q);

  // The C++ API on the same checkpoint, calibration windows and recipe: the default 32 windows
  // of 256 tokens are 64 windows of the model's 128 positions.
  llm::HfLlama hf = llm::loadHfLlama(dir_);
  at::Tensor calib = llm::calibrationWindows(openTextData(parseDataSpec("text:train")).tokens, 64, 128);
  llm::PtqConfig cfg;
  cfg.recovery = llm::PrecisionRecovery::Gptq;
  llm::quantizeDecoder(*hf.graph, calib, cfg);
  const double ppl_api = perplexity(*hf.graph);

  EXPECT_NEAR(ppl_cli / ppl_api, 1.0, 1e-4) << ppl_cli << " vs " << ppl_api;
  EXPECT_LT(ppl_cli / fp32_ - 1.0, 0.02) << ppl_cli << " vs fp32 " << fp32_;
  EXPECT_GT(ppl_cli, fp32_ * 0.99);
}

TEST_F(CliLlmCompress, GptqLayoutCheckpointLoadsBack) {
  const std::string out = test::tempDir("cli_gptq_st") + "/tiny-gptq";
  CmdResult r = gstick("compress --algo gptq " + dir_ + " -o " + out +
                       " --format gptq --data text:train:65536 --set calib_samples=16 --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  gptq::QuantizeConfig qc = gptq::readQuantizeConfig(out + "/quantize_config.json");
  EXPECT_EQ(qc.bits, 4);
  EXPECT_EQ(qc.group_size, 128);
  EXPECT_FALSE(qc.sym);
  nlohmann::json cj = nlohmann::json::parse(readFile(out + "/config.json"));
  EXPECT_EQ(cj["quantization_config"]["quant_method"], "gptq");
  EXPECT_EQ(cj["num_hidden_layers"], 4);
  std::map<std::string, at::Tensor> extra;
  auto layers = gptq::readGptqSafetensors(out + "/model.safetensors", qc.bits, qc.group_size, &extra);
  ASSERT_EQ(layers.size(), 28u);
  EXPECT_EQ(layers.at("model.layers.2.mlp.down_proj").qweight.sizes(),
            (std::vector<int64_t>{352 / 8, 128}));

  // Rebuild the model from the GPTQ tensors: every linear = dequantize(qweight, qzeros, scales,
  // g_idx)^T, the other tensors from the file; compare with the same recipe through the API.
  llm::HfLlama m = llm::loadHfLlama(dir_);
  for (const auto& [name, t] : extra) m.graph->findValue(name)->setData(t);
  for (const auto& [prefix, l] : layers)
    m.graph->findValue(prefix + ".weight")->setData(gptq::dequantize(l).t().contiguous());
  llm::HfLlama api = llm::loadHfLlama(dir_);
  at::Tensor calib = llm::calibrationWindows(
      openTextData(parseDataSpec("text:train:65536")).tokens, 32, 128);  // 16 x 256 tokens
  llm::PtqConfig cfg;
  cfg.recovery = llm::PrecisionRecovery::Gptq;
  llm::PtqResult res = llm::quantizeDecoder(*api.graph, calib, cfg);
  // Codes and zero points are exact; scales are float16 in the GPTQ layout.
  for (const auto& [name, w] : res.weights) {
    const gptq::GptqLinear& l = layers.at(name);
    EXPECT_TRUE(at::equal(gptq::unpackQweight(l.qweight, 4).t(), w.q.to(at::kLong))) << name;
    EXPECT_TRUE(at::equal(gptq::unpackQzeros(l.qzeros, 4).t(), w.zero.to(at::kLong))) << name;
  }
  const double ppl_st = perplexity(*m.graph), ppl_api = perplexity(*api.graph);
  EXPECT_NEAR(ppl_st / ppl_api, 1.0, 2e-3) << ppl_st << " vs " << ppl_api;
}

TEST_F(CliLlmCompress, PresetsKeepOverridesAndRtnAwqRun) {
  // rtn / awq presets with an override: W8 per-channel RTN is within 0.5 % of fp32; AWQ W4 runs.
  const std::string d = test::tempDir("cli_presets");
  CmdResult r = gstick("compress --algo rtn " + dir_ + " -o " + d + "/w8.onnx --set weight_dtype=int8"
                       " --set group_size=0 --set measure_error=false --data text:train:65536 "
                       "--threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("rtn W8 per-channel asym"), std::string::npos) << r.err;
  // The error report is off: no error in the progress lines, no error columns in the summary.
  EXPECT_EQ(r.err.find("| err"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("out_mse"), std::string::npos) << r.out;
  EXPECT_NEAR(perplexity(*importOnnxFile(d + "/w8.onnx")) / fp32_, 1.0, 5e-3);
  r = gstick("compress --algo awq " + dir_ + " -o " + d + "/awq.onnx --set calib_samples=8"
             " --data text:train:65536 --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("AWQ+RTN, scales folded into norm"), std::string::npos) << r.out;
  // The preset's 512-token windows are split to the model's 128 positions: 8 x 512 tokens make
  // 32 windows.
  EXPECT_NE(r.err.find("32 x 128 calibration tokens"), std::string::npos) << r.err;
  EXPECT_LT(perplexity(*importOnnxFile(d + "/awq.onnx")) / fp32_, 1.02);
  // The preset's defaults are visible in `gstick algos NAME`.
  r = gstick("algos gptq");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("precision_recovery"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gptq"), std::string::npos) << r.out;
}

TEST_F(CliLlmCompress, BadInputIsOneErrorLine) {
  const std::string d = test::tempDir("cli_llm_bad");
  // A directory without config.json.
  fs::create_directories(d + "/empty");
  expectOneErrorLine(gstick("compress --algo gptq " + d + "/empty -o " + d + "/o.onnx"), 1,
                     "no config.json");
  // A truncated model.safetensors.
  fs::create_directories(d + "/trunc");
  fs::copy_file(dir_ + "/config.json", d + "/trunc/config.json");
  {
    const std::string bytes = readFile(dir_ + "/model.safetensors");
    std::ofstream(d + "/trunc/model.safetensors", std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  expectOneErrorLine(gstick("compress --algo gptq " + d + "/trunc -o " + d + "/o.onnx"), 1,
                     "model.safetensors");
  // Invalid preset overrides: an unknown key and an unsupported width.
  expectOneErrorLine(gstick("compress --algo gptq --set weight_bits=5 " + dir_ + " -o " + d +
                            "/o.onnx"), 1, "weight_bits");
  expectOneErrorLine(gstick("compress --algo gptq --set weight_dtype=int5 " + dir_ + " -o " + d +
                            "/o.onnx"), 1, "weight_dtype");
  expectOneErrorLine(gstick("compress --algo rtn --set error_rows=-1 " + dir_ + " -o " + d +
                            "/o.onnx"), 1, "error_rows");
  expectOneErrorLine(gstick("compress --algo awq --set awq_max_tokens=0 " + dir_ + " -o " + d +
                            "/o.onnx"), 1, "awq_max_tokens");
  expectOneErrorLine(gstick("compress --algo gptq --set calib_samples=65536 --set "
                            "calib_seq=65536 " + dir_ + " -o " + d + "/o.onnx"), 1,
                     "calibration tokens");
  // AWQ with int8 activations is an invalid combination.
  expectOneErrorLine(gstick("compress --algo awq --set act_dtype=int8 " + dir_ + " -o " + d +
                            "/o.onnx"), 1, "awq");
  // GPTQ checkpoints cannot hold int3 or W8A8, nor come from an ONNX model.
  expectOneErrorLine(gstick("compress --algo gptq --set weight_dtype=int3 --format gptq " + dir_ +
                            " -o " + d + "/g3"), 1, "int3");
  expectOneErrorLine(gstick("compress --algo smoothquant --format gptq " + dir_ + " -o " + d +
                            "/sq"), 1, "weight-only");
  expectOneErrorLine(gstick("compress --algo gptq --format gptq " + kModel + " -o " + d + "/x"), 1,
                     "Hugging Face checkpoint");
  // Calibration data that is not text.
  expectOneErrorLine(gstick("compress --algo gptq " + dir_ + " -o " + d +
                            "/o.onnx --data fashion-mnist:test:16"), 1, "calibrates on text");
  EXPECT_FALSE(fs::exists(d + "/o.onnx"));
}

}  // namespace
}  // namespace gs

// The streamed ONNX export (initializers written one at a time into the protobuf wire format):
// byte-identical to protobuf's serialisation of the whole ModelProto, checker-valid, external
// data at the recorded offsets, clean errors on unwritable output, mapped tensors' pages released.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "io/onnx.h"
#include "io/safetensors.h"
#include "io/tensor_proto.h"
#include "ir/graph.h"
#include "op_test_util.h"
#include "quant/int4_pack.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs {
namespace {

namespace fs = std::filesystem;
using nbits::WeightLayout;

/// A graph with initializers of many kinds: a MatMulNBits layer (packed uint8 codes and zero
/// points, float scales), a 20 MiB float32 weight (bigger than the writer's 1 MiB buffer and its
/// 16 MiB chunks, so its length varint takes 4 bytes), fp16, int64, bool, an empty and a 0-d
/// tensor, and a non-contiguous (transposed) parameter.
std::unique_ptr<Graph> manyInitializers() {
  auto g = std::make_unique<Graph>();
  g->name = "stream";
  Value* x = g->addInput("x", DType::Float32, std::vector<Dim>{Dim("batch"), 96});
  nbits::NBitsWeight w = nbits::quantizeRtn(test::randn({96, 24}, 3), WeightLayout::KxN, 4, 32, false);
  Node* fc = nbits::addMatMulNBits(*g, x, w, nullptr, "fc");
  Value* big = g->addParam("big", test::randn({24, 5 << 18}, 5));  // 20 MiB
  Node* mm = g->addNode("MatMul", {fc->output(0), big}, 1, "mm");
  mm->output(0)->setDType(DType::Float32);
  mm->output(0)->setShape(std::vector<Dim>{Dim("batch"), 5 << 18});
  g->addParam("transposed", test::randn({24, 8}, 6).t(), false);  // [8, 24], strided
  g->addParam("half", test::randn({7}, 7).to(at::kHalf), false);
  g->addParam("ids", at::arange(5, at::kLong), false);
  g->addParam("mask", at::tensor({1, 0, 1}).to(at::kBool), false);
  g->addParam("empty", at::zeros({0, 3}), false);
  g->addParam("scalar", at::scalar_tensor(2.5f), false);
  g->addOutput(mm->output(0));
  return g;
}

/// The non-streamed form: the exported model's own graph structure with every initializer as a
/// complete TensorProto from the graph's tensors (what the exporter built before streaming),
/// serialised by protobuf in one piece.
std::string wholeModelBytes(const onnx::ModelProto& exported, const Graph& g) {
  onnx::ModelProto m = exported;
  m.mutable_graph()->clear_initializer();
  for (const Value* p : g.params())
    tensorToProto(p->data(), p->name(), m.mutable_graph()->add_initializer());
  return m.SerializeAsString();
}

TEST(OnnxStreamExport, BytesEqualTheWholeModelProtoAndPassTheChecker) {
  auto g = manyInitializers();
  const std::string bytes = exportOnnxBytes(*g);
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(bytes));
  ASSERT_EQ(m.graph().initializer_size(), static_cast<int>(g->params().size()));
  EXPECT_EQ(bytes, wholeModelBytes(m, *g));
  // Field for field as well (a byte mismatch above would also show here).
  onnx::ModelProto whole;
  ASSERT_TRUE(whole.ParseFromString(wholeModelBytes(m, *g)));
  EXPECT_EQ(whole.SerializeAsString(), m.SerializeAsString());
  EXPECT_NO_THROW(onnx::checker::check_model(m));
  TensorLoadContext ctx;
  ctx.source = "stream";
  for (int i = 0; i < m.graph().initializer_size(); ++i) {
    const onnx::TensorProto& t = m.graph().initializer(i);
    const Value* p = g->params()[i];
    EXPECT_EQ(t.name(), p->name());
    EXPECT_TRUE(at::equal(tensorFromProto(t, ctx), p->data().contiguous())) << p->name();
  }
  // The file export streams the same bytes through a file descriptor and its buffer.
  const std::string path = test::tempDir("onnx_stream") + "/m.onnx";
  exportOnnxFile(*g, path);
  EXPECT_EQ(readFile(path), bytes);
  // And the model runs the same after the round trip.
  auto back = importOnnxFile(path);
  at::Tensor in = test::randn({2, 96}, 11);
  EXPECT_TRUE(at::equal(Executor(*g).run({in})[0], Executor(*back).run({in})[0]));
}

TEST(OnnxStreamExport, ExternalDataIsStreamedAtAlignedOffsets) {
  auto g = manyInitializers();
  const std::string dir = test::tempDir("onnx_stream_ext");
  OnnxExportOptions o;
  o.external_data_threshold = 100;  // "big", the transposed weight, B, the scales, "half" (14 B) not
  exportOnnxFile(*g, dir + "/m.onnx", o);
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(readFile(dir + "/m.onnx")));
  const std::string data = readFile(dir + "/m.onnx.data");
  uint64_t end = 0;
  int external = 0;
  for (int i = 0; i < m.graph().initializer_size(); ++i) {
    const onnx::TensorProto& t = m.graph().initializer(i);
    const at::Tensor d = g->params()[i]->data().contiguous();
    const uint64_t nbytes = d.nbytes();
    if (nbytes < 100) {
      EXPECT_EQ(t.data_location(), onnx::TensorProto::DEFAULT) << t.name();
      EXPECT_EQ(t.raw_data().size(), nbytes);
      continue;
    }
    ++external;
    ASSERT_EQ(t.data_location(), onnx::TensorProto::EXTERNAL) << t.name();
    ASSERT_EQ(t.external_data_size(), 3);
    EXPECT_EQ(t.external_data(0).key(), "location");
    EXPECT_EQ(t.external_data(0).value(), "m.onnx.data");
    const uint64_t offset = std::stoull(t.external_data(1).value());
    EXPECT_EQ(std::stoull(t.external_data(2).value()), nbytes);
    EXPECT_EQ(offset, (end + 63) / 64 * 64) << t.name();  // in order, aligned to 64 bytes
    EXPECT_FALSE(t.has_raw_data());
    ASSERT_LE(offset + nbytes, data.size());
    EXPECT_EQ(std::memcmp(data.data() + offset, d.data_ptr(), nbytes), 0) << t.name();
    end = offset + nbytes;
  }
  EXPECT_EQ(external, 4);
  EXPECT_EQ(data.size(), end);
  // The padding is zeros, and the model reads back.
  auto back = importOnnxFile(dir + "/m.onnx");
  for (const Value* p : g->params())
    EXPECT_TRUE(at::equal(back->findValue(p->name())->data(), p->data().contiguous())) << p->name();
}

/// File names in `dir`.
std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(OnnxStreamExport, UnwritableOutputIsACleanErrorAndLeavesNothingBehind) {
  auto g = manyInitializers();
  const std::string dir = test::tempDir("onnx_stream_err");
  test::expectError([&] { exportOnnxFile(*g, dir + "/missing/m.onnx"); },
                    dir + "/missing/m.onnx: cannot write: No such file or directory");
  std::ofstream(dir + "/file") << "x";
  test::expectError([&] { exportOnnxFile(*g, dir + "/file/m.onnx"); }, "cannot write: Not a directory");
  // A write failing mid-stream (file size limit: EFBIG after 1 MiB of the ~20 MiB model): the
  // existing output is untouched and no temp file is left.
  std::ofstream(dir + "/m.onnx") << "previous";
  auto exportWithSizeLimit = [&](const OnnxExportOptions& o) {
    struct rlimit old {};
    EXPECT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // write() fails with EFBIG instead
    struct rlimit lim = old;
    lim.rlim_cur = 1 << 20;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
    std::string msg;
    try {
      exportOnnxFile(*g, dir + "/m.onnx", o);
    } catch (const Error& e) {
      msg = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    return msg;
  };
  std::string msg = exportWithSizeLimit({});
  EXPECT_NE(msg.find(dir + "/m.onnx: write failed: File too large"), std::string::npos) << msg;
  EXPECT_EQ(readFile(dir + "/m.onnx"), "previous");
  EXPECT_EQ(listDir(dir), (std::vector<std::string>{"file", "m.onnx"}));
  // The same with external data: the data file is written first and fails the same way.
  OnnxExportOptions o;
  o.external_data_threshold = 100;
  msg = exportWithSizeLimit(o);
  EXPECT_NE(msg.find(dir + "/m.onnx.data: write failed: File too large"), std::string::npos) << msg;
  EXPECT_EQ(readFile(dir + "/m.onnx"), "previous");
  EXPECT_EQ(listDir(dir), (std::vector<std::string>{"file", "m.onnx"}));
}

// exportOnnxFile's two-file commit: a model whose write fails after its external data was
// written must not leave the new data beside the old model (or the reverse).
TEST(OnnxStreamExport, StagedFilesAreCommittedTogetherOrNotAtAll) {
  const std::string dir = test::tempDir("onnx_stream_staged");
  std::ofstream(dir + "/m.onnx") << "old model";
  std::ofstream(dir + "/m.onnx.data") << "old data";
  auto writeText = [](const std::string& text) {
    return [text](int fd) { return writeAll(fd, text.data(), text.size()); };
  };
  test::expectError(
      [&] {
        StagedFile data(dir + "/m.onnx.data");
        data.write(writeText("new data"));
        StagedFile model(dir + "/m.onnx");
        model.write([](int) {
          errno = ENOSPC;
          return false;
        });
        data.commit();
        model.commit();
      },
      dir + "/m.onnx: write failed: No space left on device");
  EXPECT_EQ(readFile(dir + "/m.onnx"), "old model");
  EXPECT_EQ(readFile(dir + "/m.onnx.data"), "old data");
  EXPECT_EQ(listDir(dir), (std::vector<std::string>{"m.onnx", "m.onnx.data"}));
  {
    StagedFile data(dir + "/m.onnx.data");
    data.write(writeText("new data"));
    StagedFile model(dir + "/m.onnx");
    model.write(writeText("new model"));
    EXPECT_EQ(readFile(dir + "/m.onnx.data"), "old data");  // nothing visible before commit
    data.commit();
    model.commit();
  }
  EXPECT_EQ(readFile(dir + "/m.onnx"), "new model");
  EXPECT_EQ(readFile(dir + "/m.onnx.data"), "new data");
  EXPECT_EQ(listDir(dir), (std::vector<std::string>{"m.onnx", "m.onnx.data"}));
}

TEST(OnnxStreamExport, AutoExternalDataAboveOnePointFiveGiB) {
  // Zero-stride tensors: the sizes are logical, no memory is allocated.
  Graph g;
  Value* p = g.addParam("w", at::zeros({1}).expand({(int64_t{3} << 27) - 2}), false);
  g.addParam("b", at::zeros({1}), false);
  EXPECT_EQ(autoExternalDataThreshold(g), 0);  // 1.5 GiB - 4 bytes in total
  p->setData(at::zeros({1}).expand({int64_t{3} << 27}));
  EXPECT_EQ(autoExternalDataThreshold(g), 1 << 20);
}

TEST(OnnxStreamExport, MappedCheckpointTensorsLeaveRssAfterTheExport) {
  // A 48 MiB float32 weight viewed on a safetensors mapping (as loadHfLlama binds an fp32
  // embedding / lm_head): writing it reads the file through the mapping, chunk by chunk, and the
  // written chunks' pages are handed back.
  const std::string dir = test::tempDir("onnx_stream_mmap");
  const int64_t n = 12 << 20;
  at::Tensor ref = at::arange(n, at::kFloat).reshape({3 << 10, 4 << 10});
  writeSafetensors(dir + "/w.safetensors", {{"w", ref}});
  auto g2 = std::make_unique<Graph>();
  Value* x2 = g2->addInput("x", DType::Float32, std::vector<Dim>{1, 4 << 10});
  SafetensorsFile f(dir + "/w.safetensors");
  Value* w2 = g2->addParam("w", f.tensor("w"), false);
  Value* wt = g2->addNode("Transpose", {w2}, 1, "wt", {{"perm", std::vector<int64_t>{1, 0}}})->output(0);
  wt->setDType(DType::Float32);
  Node* mm = g2->addNode("MatMul", {x2, wt}, 1, "mm");
  mm->output(0)->setDType(DType::Float32);
  mm->output(0)->setShape(std::vector<Dim>{1, 3 << 10});
  g2->addOutput(mm->output(0));
  const int64_t before = test::rssFileKb();
  ASSERT_GE(before, 0);
  exportOnnxFile(*g2, dir + "/m.onnx");
  const int64_t after = test::rssFileKb();
  std::printf("RssFile: %lld kB before the export of a 48 MiB mapped weight, %+lld kB after\n",
              static_cast<long long>(before), static_cast<long long>(after - before));
  EXPECT_LT(after - before, 8 * 1024) << "the mapped weight's pages stayed resident";
  // The pages are read again from the file when used.
  auto back = importOnnxFile(dir + "/m.onnx");
  EXPECT_TRUE(at::equal(back->findValue("w")->data(), ref));
  EXPECT_TRUE(at::equal(g2->findValue("w")->data(), ref));
}

}  // namespace
}  // namespace gs

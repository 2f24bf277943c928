// IDX reader, gzip reader, Fashion-MNIST / tensor datasets and data specs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/dataset.h"
#include "data/gzip.h"
#include "data/idx.h"
#include "io/npy.h"
#include "op_test_util.h"
#include "support/error.h"

namespace gs {
namespace {

namespace fs = std::filesystem;
using test::expectError;

// Builds IDX bytes by hand (independently of serializeIdx): big-endian magic and dims, payload.
std::string idxBytes(uint32_t magic, const std::vector<uint32_t>& dims, const std::string& data) {
  std::string out;
  auto put32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(char((v >> s) & 0xff));
  };
  put32(magic);
  for (uint32_t d : dims) put32(d);
  return out + data;
}

std::string pattern(size_t n, int mul = 7) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char((i * mul) % 251);
  return s;
}

std::string writeBytes(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::string p = dir + "/" + name;
  std::ofstream(p, std::ios::binary).write(bytes.data(), bytes.size());
  return p;
}

const std::string kFm = "/usr/share/datasets/fashion-mnist";

// Reference values computed with /usr/bin/python3 (gzip + numpy) from the Debian files.
TEST(DataIdx, RealFashionMnistTrainFiles) {
  at::Tensor labels = readIdx(kFm + "/train-labels-idx1-ubyte.gz", kIdxUint8Labels);
  ASSERT_EQ(labels.sizes(), at::IntArrayRef({60000}));
  ASSERT_EQ(labels.scalar_type(), at::kByte);
  std::vector<int64_t> first{9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
  EXPECT_TRUE(labels.narrow(0, 0, 10).to(at::kLong).equal(at::tensor(first)));
  at::Tensor images = readIdx(kFm + "/train-images-idx3-ubyte.gz", kIdxUint8Images);
  ASSERT_EQ(images.sizes(), at::IntArrayRef({60000, 28, 28}));
  EXPECT_EQ(images[0].to(at::kLong).sum().item<int64_t>(), 76247);
  std::vector<int64_t> row{0, 0, 237, 226, 217, 223};
  EXPECT_TRUE(images[0][14].narrow(0, 10, 6).to(at::kLong).equal(at::tensor(row)));
  EXPECT_EQ(images.to(at::kLong).sum().item<int64_t>(), 3431114169LL);
}

TEST(DataIdx, RealFashionMnistTestSplitDataset) {
  FashionMnistDataset ds(FashionMnistDataset::Split::Test);
  ASSERT_EQ(ds.size(), 10000);
  std::vector<int64_t> first{9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
  EXPECT_TRUE(ds.labels().narrow(0, 0, 10).equal(at::tensor(first)));
  Sample s = ds.get(0);
  ASSERT_EQ(s.input.sizes(), at::IntArrayRef({1, 28, 28}));
  ASSERT_EQ(s.input.scalar_type(), at::kFloat);
  EXPECT_EQ(s.label.item<int64_t>(), 9);
  EXPECT_NEAR(s.input.sum().item<double>(), 33456.0 / 255.0, 1e-3);
  EXPECT_FLOAT_EQ(s.input[0][14][12].item<float>(), 98.0f / 255.0f);
  Batch b = ds.getBatch(at::tensor(std::vector<int64_t>{3, 0, 9999}));
  ASSERT_EQ(b.inputs.sizes(), at::IntArrayRef({3, 1, 28, 28}));
  EXPECT_TRUE(
      b.labels.equal(at::tensor(std::vector<int64_t>{1, 9, ds.labels()[9999].item<int64_t>()})));
  EXPECT_TRUE(b.inputs[1].equal(s.input));
  EXPECT_GE(b.inputs.min().item<float>(), 0.0f);
  EXPECT_LE(b.inputs.max().item<float>(), 1.0f);
  EXPECT_EQ(b.inputs.max().item<float>(), 1.0f);  // some pixel is 255
  expectError([&] { ds.get(10000); }, "out of range [0, 10000)");
  expectError(
      [&] {
        ds.getBatch(at::tensor(std::vector<int64_t>{0, -1}));
      },
      "index -1 out of range");
}

TEST(DataIdx, LimitKeepsFirstSamples) {
  FashionMnistDataset ds(FashionMnistDataset::Split::Train, 100);
  ASSERT_EQ(ds.size(), 100);
  EXPECT_TRUE(ds.labels().narrow(0, 0, 4).equal(at::tensor(std::vector<int64_t>{9, 0, 0, 3})));
  EXPECT_EQ(ds.images()[0].to(at::kLong).sum().item<int64_t>(), 76247);
  expectError([] { FashionMnistDataset(FashionMnistDataset::Split::Test, 10001); },
              "fashion-mnist:test: limit 10001 exceeds the 10000 samples");
}

TEST(DataIdx, AllIdxTypesRoundTripBigEndian) {
  std::string dir = test::tempDir("idx_types");
  // int32 values 0x01020304 etc. must come back in host order.
  std::string raw;
  for (uint32_t v : {0x01020304u, 0xfffffffeu, 7u, 0x80000000u})
    for (int s = 24; s >= 0; s -= 8) raw.push_back(char((v >> s) & 0xff));
  at::Tensor t = readIdx(writeBytes(dir, "i32", idxBytes(idxMagic(0x0C, 2), {2, 2}, raw)));
  ASSERT_EQ(t.scalar_type(), at::kInt);
  std::vector<int32_t> want{0x01020304, -2, 7, INT32_MIN};
  EXPECT_TRUE(t.flatten().equal(at::tensor(want)));
  // serializeIdx writes the same bytes readIdx decodes, for every type.
  for (at::ScalarType dt : {at::kByte, at::kChar, at::kShort, at::kInt, at::kFloat, at::kDouble}) {
    at::Tensor x = (test::randn({3, 4, 5}, 9) * 100).to(dt);
    std::string p = writeBytes(dir, "rt", serializeIdx(x));
    EXPECT_TRUE(readIdx(p).equal(x)) << dt;
    std::string pz = writeBytes(dir, "rt.gz", gzipCompress(serializeIdx(x)));
    EXPECT_TRUE(readIdx(pz).equal(x)) << dt;
  }
  EXPECT_EQ(serializeIdx(at::zeros({2}, at::kByte)).substr(0, 4), std::string("\0\0\x08\x01", 4));
}

TEST(DataIdx, BadMagic) {
  std::string dir = test::tempDir("idx_magic");
  std::string p = writeBytes(dir, "labels", idxBytes(0x00000803, {2, 1, 1}, "ab"));
  std::string msg = expectError([&] { readIdx(p, kIdxUint8Labels); },
                                "bad magic number 0x00000803, expected 0x00000801");
  EXPECT_EQ(msg.find(p), 0u) << msg;
  std::string zip = writeBytes(dir, "zip", "PK\x03\x04 some zip file");
  expectError([&] { readIdx(zip); }, zip + ": bad magic number 0x504b0304, not an IDX file");
  std::string badType = writeBytes(dir, "t", idxBytes(0x00000A01, {1}, "x"));
  expectError([&] { readIdx(badType); }, "bad magic number 0x00000a01, not an IDX file");
  std::string noDims = writeBytes(dir, "d", idxBytes(0x00000800, {}, "x"));
  expectError([&] { readIdx(noDims); }, "bad magic number 0x00000800");
  std::string tiny = writeBytes(dir, "tiny", std::string("\0\0", 2));
  expectError([&] { readIdx(tiny); }, "truncated: 2 bytes, too short for an IDX header");
}

TEST(DataIdx, TruncatedDataNamesHeaderAndLength) {
  std::string dir = test::tempDir("idx_trunc");
  std::string bytes = idxBytes(kIdxUint8Images, {60000, 28, 28}, pattern(1000));
  std::string gz = writeBytes(dir, "train-images-idx3-ubyte.gz", gzipCompress(bytes));
  std::string msg = expectError([&] { readIdx(gz, kIdxUint8Images); }, "");
  EXPECT_EQ(msg,
            gz + ": truncated: header says 60000x28x28 = 47040000 bytes of data, file has 1000");
  std::string raw = writeBytes(dir, "train-images-idx3-ubyte", bytes);
  msg = expectError([&] { readIdx(raw); }, "");
  EXPECT_EQ(msg,
            raw + ": truncated: header says 60000x28x28 = 47040000 bytes of data, file has 1000");
  // Multi-byte types count bytes, not elements.
  std::string i32 = writeBytes(dir, "i32", idxBytes(idxMagic(0x0C, 2), {10, 3}, pattern(100)));
  expectError([&] { readIdx(i32); },
              "header says 10x3 = 30 int32 = 120 bytes of data, file has 100");
  // Header cut inside the dims.
  std::string dims = writeBytes(dir, "dims", idxBytes(kIdxUint8Images, {5}, ""));
  expectError([&] { readIdx(dims); }, "header declares 3 dims but the file ends after 1 of them");
  // Too long is an error as well (exact length).
  std::string longer = writeBytes(dir, "long", idxBytes(kIdxUint8Labels, {10}, pattern(12)));
  expectError([&] { readIdx(longer); }, "wrong length: header says 10 bytes of data, file has 12");
}

TEST(DataIdx, TruncatedOrCorruptGzip) {
  std::string dir = test::tempDir("idx_gzip");
  std::string gz = gzipCompress(idxBytes(kIdxUint8Images, {20, 28, 28}, pattern(20 * 784, 13)));
  std::string ok = writeBytes(dir, "ok.gz", gz);
  EXPECT_EQ(readIdx(ok).sizes(), at::IntArrayRef({20, 28, 28}));
  std::string half = writeBytes(dir, "half.gz", gz.substr(0, gz.size() / 2));
  expectError([&] { readIdx(half); }, half + ": truncated gzip stream");
  // Cutting only the CRC/length trailer still fails: the stream never reaches its end.
  std::string noTrailer = writeBytes(dir, "notrailer.gz", gz.substr(0, gz.size() - 4));
  expectError([&] { readIdx(noTrailer); }, "truncated gzip stream");
  std::string flipped = gz;
  flipped[flipped.size() / 2] ^= 0x55;
  flipped[flipped.size() / 2 + 1] ^= 0x3c;
  std::string bad = writeBytes(dir, "bad.gz", flipped);
  expectError([&] { readIdx(bad); }, bad + ": corrupt gzip data");
  std::string garbage = writeBytes(dir, "garbage.gz", gz + "xyz");
  expectError([&] { readIdx(garbage); }, "trailing garbage after the gzip stream");
  // Two concatenated members are one stream (as `cat a.gz b.gz` makes).
  std::string bytes = idxBytes(kIdxUint8Labels, {6}, "\1\2\3\4\5\6");
  std::string two =
      writeBytes(dir, "two.gz", gzipCompress(bytes.substr(0, 9)) + gzipCompress(bytes.substr(9)));
  EXPECT_TRUE(readIdx(two).equal(at::arange(1, 7, at::kByte)));
}

TEST(DataIdx, InsaneDimsRefusedBeforeAllocating) {
  std::string dir = test::tempDir("idx_dims");
  std::string big = writeBytes(dir, "big", idxBytes(kIdxUint8Images, {65536, 65536, 1}, "x"));
  expectError([&] { readIdx(big); }, "bad dims 65536x65536x1: more than 2^31 elements");
  std::string huge = writeBytes(
      dir, "huge", idxBytes(kIdxUint8Images, {4294967295u, 4294967295u, 4294967295u}, ""));
  expectError([&] { readIdx(huge); }, "more than 2^31 elements");
  std::string zero = writeBytes(dir, "zero", idxBytes(kIdxUint8Images, {3, 0, 28}, ""));
  expectError([&] { readIdx(zero); }, "bad dims 3x0x28: dim 1 is zero");
}

// A Fashion-MNIST directory written by the test: uncompressed or gzip files.
void writeFmDir(const std::string& dir, const std::string& prefix, const at::Tensor& images,
                const at::Tensor& labels, bool gz) {
  std::string img = serializeIdx(images), lab = serializeIdx(labels);
  writeBytes(dir, prefix + "-images-idx3-ubyte" + (gz ? ".gz" : ""), gz ? gzipCompress(img) : img);
  writeBytes(dir, prefix + "-labels-idx1-ubyte" + (gz ? ".gz" : ""), gz ? gzipCompress(lab) : lab);
}

TEST(DataIdx, FashionMnistDirValidation) {
  at::Tensor images = at::randint(0, 256, {5, 28, 28}, at::kByte);
  at::Tensor labels = at::tensor(std::vector<uint8_t>{3, 1, 4, 1, 5});
  // Uncompressed files are accepted.
  std::string plain = test::tempDir("fm_plain");
  writeFmDir(plain, "t10k", images, labels, false);
  FashionMnistDataset ds(FashionMnistDataset::Split::Test, 0, plain);
  ASSERT_EQ(ds.size(), 5);
  EXPECT_TRUE(ds.images().squeeze(1).equal(images));
  EXPECT_TRUE(
      ds.getBatch(at::arange(5)).inputs.mul(255).round().to(at::kByte).squeeze(1).equal(images));
  EXPECT_TRUE(ds.labels().equal(labels.to(at::kLong)));

  std::string mismatch = test::tempDir("fm_count");
  writeFmDir(mismatch, "train", images, labels.narrow(0, 0, 4), true);
  expectError([&] { FashionMnistDataset(FashionMnistDataset::Split::Train, 0, mismatch); },
              "train-labels-idx1-ubyte.gz has 4 labels but " + mismatch +
                  "/train-images-idx3-ubyte.gz has 5 images");

  std::string wrongDims = test::tempDir("fm_dims");
  writeFmDir(wrongDims, "train", at::zeros({5, 28, 27}, at::kByte), labels, true);
  expectError([&] { FashionMnistDataset(FashionMnistDataset::Split::Train, 0, wrongDims); },
              "train-images-idx3-ubyte.gz: images are 28x27, Fashion-MNIST images are 28x28");

  std::string badLabel = test::tempDir("fm_label");
  writeFmDir(badLabel, "train", images, at::tensor(std::vector<uint8_t>{3, 1, 10, 1, 5}), true);
  expectError([&] { FashionMnistDataset(FashionMnistDataset::Split::Train, 0, badLabel); },
              "label 10 out of range");

  std::string swapped = test::tempDir("fm_swapped");
  writeFmDir(swapped, "train", images, labels, true);
  fs::rename(swapped + "/train-labels-idx1-ubyte.gz", swapped + "/tmp");
  fs::rename(swapped + "/train-images-idx3-ubyte.gz", swapped + "/train-labels-idx1-ubyte.gz");
  fs::rename(swapped + "/tmp", swapped + "/train-images-idx3-ubyte.gz");
  expectError([&] { FashionMnistDataset(FashionMnistDataset::Split::Train, 0, swapped); },
              "bad magic number 0x00000801, expected 0x00000803");

  std::string empty = test::tempDir("fm_empty");
  expectError([&] { FashionMnistDataset(FashionMnistDataset::Split::Train, 0, empty); },
              "fashion-mnist: neither " + empty + "/train-images-idx3-ubyte.gz nor");
}

TEST(DataSpecs, Parse) {
  using Split = FashionMnistDataset::Split;
  DataSpec s = parseDataSpec("fashion-mnist");
  EXPECT_EQ(s.kind, DataSpec::Kind::FashionMnist);
  EXPECT_EQ(s.split, Split::Train);
  EXPECT_EQ(s.limit, 0);
  s = parseDataSpec("fashion-mnist:test");
  EXPECT_EQ(s.split, Split::Test);
  s = parseDataSpec("fashion-mnist:train:500");
  EXPECT_EQ(s.split, Split::Train);
  EXPECT_EQ(s.limit, 500);
  s = parseDataSpec("fashion-mnist:test:7");
  EXPECT_EQ(s.split, Split::Test);
  EXPECT_EQ(s.limit, 7);
  s = parseDataSpec("fashion-mnist:64");
  EXPECT_EQ(s.split, Split::Train);
  EXPECT_EQ(s.limit, 64);
  s = parseDataSpec("npy:/some/dir");
  EXPECT_EQ(s.kind, DataSpec::Kind::Npy);
  EXPECT_EQ(s.dir, "/some/dir");
  EXPECT_EQ(s.limit, 0);
  s = parseDataSpec("npy:/some/dir:32");
  EXPECT_EQ(s.dir, "/some/dir");
  EXPECT_EQ(s.limit, 32);
  // An existing directory whose name ends in ":N" is taken whole.
  std::string odd = test::tempDir("spec") + "/run:12";
  fs::create_directories(odd);
  s = parseDataSpec("npy:" + odd);
  EXPECT_EQ(s.dir, odd);
  EXPECT_EQ(s.limit, 0);

  expectError([] { parseDataSpec("mnist"); }, "data spec 'mnist': unknown data source; expected");
  expectError([] { parseDataSpec("fashion-mnist:val"); }, "unknown split 'val'");
  expectError([] { parseDataSpec("fashion-mnist:train:abc"); }, "'abc' is not a sample count");
  expectError([] { parseDataSpec("fashion-mnist:test:0"); }, "sample count must be positive");
  expectError([] { parseDataSpec("fashion-mnist:test:5:6"); }, "too many ':' fields");
  expectError([] { parseDataSpec("fashion-mnist:5:test"); }, "unexpected 'test'");
  expectError([] { parseDataSpec("npy:"); }, "missing directory");
  expectError([] { parseDataSpec(""); }, "unknown data source");
}

TEST(DataSpecs, OpenFashionMnistWithLimit) {
  auto ds = openDataset("fashion-mnist:test:25");
  EXPECT_EQ(ds->size(), 25);
  EXPECT_EQ(ds->describe(), "fashion-mnist:test (25 samples)");
  EXPECT_EQ(ds->get(1).label.item<int64_t>(), 2);
}

TEST(DataTensors, TensorDatasetBatches) {
  at::Tensor x = test::randn({10, 3, 4}, 5);
  at::Tensor y = at::arange(10, at::kInt).flip(0);
  TensorDataset ds(x, y);
  EXPECT_EQ(ds.size(), 10);
  EXPECT_EQ(ds.inputShape(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(ds.labels().scalar_type(), at::kLong);
  Batch b = ds.getBatch(at::tensor(std::vector<int64_t>{7, 2}));
  EXPECT_TRUE(b.inputs[0].equal(x[7]));
  EXPECT_TRUE(b.inputs[1].equal(x[2]));
  EXPECT_TRUE(b.labels.equal(at::tensor(std::vector<int64_t>{2, 7})));
  Sample s = ds.get(4);
  EXPECT_TRUE(s.input.equal(x[4]));
  EXPECT_EQ(s.label.item<int64_t>(), 5);
  TensorDataset unl(x);
  EXPECT_FALSE(unl.hasLabels());
  EXPECT_FALSE(unl.get(0).label.defined());
  EXPECT_FALSE(unl.getBatch(at::arange(3)).labels.defined());
  expectError([&] { TensorDataset(x, at::zeros({9}, at::kLong)); },
              "labels [9] do not match 10 inputs [10,3,4]");
  expectError(
      [&] {
        TensorDataset(x, at::zeros({10, 1}, at::kLong));
      },
      "labels [10,1] do not match");
  expectError([&] { ds.getBatch(at::tensor(std::vector<int64_t>{10})); },
              "index 10 out of range [0, 10)");
  expectError([&] { ds.getBatch(at::zeros({2}, at::kFloat)); }, "batch indices must be integers");
}

TEST(DataTensors, NpyDirectoryDatasets) {
  std::string dir = test::tempDir("npy_ds");
  at::Tensor x = test::randn({6, 2, 3}, 21);
  at::Tensor y = at::tensor(std::vector<int32_t>{5, 4, 3, 2, 1, 0});
  writeNpy(dir + "/inputs.npy", x);
  writeNpy(dir + "/labels.npy", y);
  auto ds = TensorDataset::fromNpy(dir);
  ASSERT_EQ(ds->size(), 6);
  EXPECT_TRUE(ds->inputs().equal(x));
  EXPECT_TRUE(ds->labels().equal(y.to(at::kLong)));
  EXPECT_EQ(ds->get(1).label.item<int64_t>(), 4);

  auto lim = openDataset("npy:" + dir + ":4");
  ASSERT_EQ(lim->size(), 4);
  Batch b = lim->getBatch(at::arange(4));
  EXPECT_TRUE(b.inputs.equal(x.narrow(0, 0, 4)));
  EXPECT_TRUE(b.labels.equal(at::tensor(std::vector<int64_t>{5, 4, 3, 2})));
  expectError([&] { openDataset("npy:" + dir + ":7"); }, "limit 7 exceeds the 6 samples");

  std::string unl = test::tempDir("npy_unl");
  writeNpy(unl + "/inputs.npy", x);
  auto u = openDataset("npy:" + unl);
  EXPECT_FALSE(u->hasLabels());
  EXPECT_EQ(u->size(), 6);

  std::string bad = test::tempDir("npy_bad");
  writeNpy(bad + "/inputs.npy", x);
  writeNpy(bad + "/labels.npy", y.narrow(0, 0, 5));
  expectError([&] { openDataset("npy:" + bad); },
              "npy:" + bad + ": labels [5] do not match 6 inputs");
  std::string none = test::tempDir("npy_none");
  expectError([&] { openDataset("npy:" + none); }, none + "/inputs.npy: missing");
  expectError([&] { openDataset("npy:" + none + "/nope"); }, "not a directory");
}

}  // namespace
}  // namespace gs

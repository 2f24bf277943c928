// safetensors: round trip of every dtype, hand-written reference file, corrupt headers rejected.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "io/safetensors.h"
#include "support/error.h"
#include "test_util.h"

namespace gs {
namespace {

std::string writeBytes(const std::string& name, const std::string& bytes) {
  std::string path = test::tempDir("safetensors") + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string u64(uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

/// A file from a header text and a data section.
std::string fileOf(const std::string& header, const std::string& data) {
  return u64(header.size()) + header + data;
}

void expectError(const std::string& bytes, const std::string& fragment) {
  std::string path = writeBytes("bad.safetensors", bytes);
  try {
    SafetensorsFile f(path);
    FAIL() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find(path), 0u) << m;
    EXPECT_NE(m.find(fragment), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(Safetensors, RoundTripAllDtypes) {
  std::map<std::string, at::Tensor> t;
  t["f64"] = test::randn({3, 2}, 1).to(at::kDouble);
  t["f32"] = test::randn({2, 3, 4}, 2);
  t["f16"] = test::randn({5}, 3).to(at::kHalf);
  t["bf16"] = test::randn({3}, 4).to(at::kBFloat16);
  t["i64"] = at::tensor(std::vector<int64_t>{-5, int64_t{1} << 40, 7});
  t["i32"] = at::tensor({-3, 4}, at::kInt);
  t["i16"] = at::tensor({-300, 301, 2}, at::kShort);
  t["i8"] = at::tensor({-128, 127, 1}, at::kChar);
  t["u8"] = at::tensor({0, 255, 3}, at::kByte);
  t["bool"] = at::tensor({1, 0, 1}, at::kByte).to(at::kBool);
  t["scalar"] = at::scalar_tensor(2.5, at::kFloat);
  t["empty"] = at::empty({0, 3});
  t["strided"] = test::randn({4, 3}, 5).t();  // non-contiguous input
  std::string path = test::tempDir("safetensors") + "/all.safetensors";
  writeSafetensors(path, t, {{"epoch", "3"}, {"note", "héllo \"q\""}});
  // Header length multiple of 8 -> the data section starts 8-aligned.
  std::string bytes = [&] {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  EXPECT_EQ((8 + hlen) % 8, 0u);
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("epoch"), "3");
  EXPECT_EQ(f.metadata().at("note"), "héllo \"q\"");
  EXPECT_EQ(f.names().size(), t.size());
  EXPECT_EQ(f.names().front(), "f64");  // 8-byte elements first
  for (const auto& [name, want] : t) {
    at::Tensor got = f.tensor(name);
    EXPECT_EQ(got.scalar_type(), want.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), want.sizes()) << name;
    EXPECT_TRUE(at::equal(got, want)) << name;
    if (got.numel() > 0)
      EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data_ptr()) % got.element_size(), 0u) << name;
  }
  // Views are copy-on-write: writing to one does not change the file.
  at::Tensor v = f.tensor("f32");
  v.fill_(7);
  EXPECT_TRUE(at::equal(SafetensorsFile(path).tensor("f32"), t["f32"]));
  // Tensors outlive the file object.
  at::Tensor keep = SafetensorsFile(path).tensor("i64");
  EXPECT_EQ(keep[1].item<int64_t>(), 1LL << 40);
  EXPECT_THROW(f.tensor("nope"), Error);
  EXPECT_THROW(writeSafetensors(path, {{"c", at::ones({2}, at::kComplexFloat)}}), Error);
  EXPECT_THROW(writeSafetensors(path, {{"__metadata__", at::ones({2})}}), Error);
}

// A file laid out by hand from the format spec (as the reference Python/Rust writer would emit,
// header padded with spaces): F32 [2,2] = 1,2,3,4 then I64 [1] = -1 then U8 [3] = 9,8,7.
TEST(Safetensors, ReadsHandWrittenReferenceFile) {
  std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"I64","shape":[1],"data_offsets":[16,24]},)"
      R"("c":{"dtype":"U8","shape":[3],"data_offsets":[24,27]}})";
  while ((8 + header.size()) % 8) header += ' ';
  std::string data;
  for (float x : {1.0f, 2.0f, 3.0f, 4.0f}) data.append(reinterpret_cast<const char*>(&x), 4);
  int64_t m1 = -1;
  data.append(reinterpret_cast<const char*>(&m1), 8);
  data += std::string("\x09\x08\x07", 3);
  TensorFile tf = readSafetensors(writeBytes("ref.safetensors", fileOf(header, data)));
  EXPECT_EQ(tf.metadata.at("format"), "pt");
  EXPECT_TRUE(at::equal(tf.tensors.at("a"), at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({2, 2})));
  EXPECT_EQ(tf.tensors.at("b").item<int64_t>(), -1);
  EXPECT_TRUE(at::equal(tf.tensors.at("c"), at::tensor({9, 8, 7}, at::kByte)));
}

TEST(Safetensors, CorruptFilesRejected) {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data8(8, '\0');
  expectError("abc", "shorter than the 8-byte header length");
  expectError(u64(1000) + "{}", "exceeds the file size");
  expectError(u64(200ull << 20) + "{}", "exceeds the 100 MB limit");
  expectError(fileOf(R"({"a": [1, 2)", ""), "not valid JSON");
  expectError(fileOf("[1,2]", ""), "not a JSON object");
  expectError(fileOf(ok, std::string(4, '\0')), "outside the data section");  // truncated data
  expectError(fileOf(ok, std::string(12, '\0')), "the data section has 12 bytes");
  expectError(fileOf(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                     data8),
              "overlaps");
  expectError(fileOf(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data8), "gap");
  expectError(fileOf(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8),
              "needs 12 bytes but its data_offsets span 8");
  expectError(fileOf(R"({"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", data8),
              "unsupported dtype 'C64'");
  expectError(fileOf(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8),
              "bad shape entry");
  expectError(fileOf(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data8),
              "begin > end");
  expectError(fileOf(R"({"a":{"dtype":"F32","shape":[2]}})", data8), "needs data_offsets");
  expectError(fileOf(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                     data8),
              "needs too many bytes");
  expectError(fileOf(R"({"__metadata__":{"k":1}})", ""), "is not a string");
}

}  // namespace
}  // namespace gs

// .npy I/O: dtype round trips, numpy-written headers (v1, Fortran order, big-endian), errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>

#include "io/npy.h"
#include "support/error.h"
#include "test_util.h"

namespace gs {
namespace {

/// A .npy file as numpy 1.x writes it (v1 header padded to 64 bytes, newline-terminated).
std::string npyBytes(const std::string& dict, const std::string& data) {
  std::string h = dict;
  size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(h.size() & 0xff));
  out.push_back(static_cast<char>(h.size() >> 8));
  return out + h + data;
}

TEST(Npy, RoundTripAllDTypes) {
  std::vector<at::Tensor> ts = {
      test::randn({2, 3}, 1),
      test::randn({4}, 2).to(at::kDouble),
      test::randn({3, 1}, 3).to(at::kHalf),
      at::tensor({-5, 0, 7}).to(at::kChar),
      at::tensor({0, 255}).to(at::kByte),
      at::tensor({-300, 300}).to(at::kShort),
      at::tensor({-70000, 70000}).to(at::kInt),
      at::tensor({int64_t{1} << 40, int64_t{-3}}),
      at::tensor({1, 0}).to(at::kBool),
      at::complex(at::tensor({1.f}), at::tensor({2.f})),
      at::scalar_tensor(3.5),
      at::zeros({0, 5}),
  };
  std::string dir = test::tempDir("npy");
  for (const auto& t : ts) {
    std::string p = dir + "/t.npy";
    writeNpy(p, t);
    at::Tensor back = readNpy(p);
    EXPECT_EQ(back.scalar_type(), t.scalar_type());
    EXPECT_EQ(back.sizes(), t.sizes());
    EXPECT_TRUE(at::equal(back, t)) << t.scalar_type();
    std::string b = serializeNpy(t);
    size_t hlen = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
    EXPECT_EQ((10 + hlen) % 64, 0u) << "data must start 64-byte aligned";
  }
}

TEST(Npy, WritesNumpyCompatibleHeader) {
  std::string b = serializeNpy(at::zeros({3, 4}));
  EXPECT_NE(b.find("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"),
            std::string::npos);
  EXPECT_NE(serializeNpy(at::zeros({5}, at::kBool)).find("'descr': '|b1'"), std::string::npos);
  EXPECT_NE(serializeNpy(at::zeros({5})).find("'shape': (5,)"), std::string::npos);
  EXPECT_NE(serializeNpy(at::scalar_tensor(1.0)).find("'shape': ()"), std::string::npos);
}

TEST(Npy, ReadsFortranOrderAndBigEndian) {
  // numpy.asfortranarray([[1, 2, 3], [4, 5, 6]], dtype='<i4'): column-major data.
  std::vector<int32_t> col{1, 4, 2, 5, 3, 6};
  std::string data(reinterpret_cast<char*>(col.data()), col.size() * 4);
  at::Tensor t = parseNpy(
      npyBytes("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", data), "f.npy");
  EXPECT_TRUE(at::equal(t, at::tensor({1, 2, 3, 4, 5, 6}, at::kInt).reshape({2, 3})));
  // numpy.array([1.0, -2.5], dtype='>f8')
  std::string be;
  for (double v : {1.0, -2.5}) {
    char buf[8];
    std::memcpy(buf, &v, 8);
    for (int i = 7; i >= 0; --i) be.push_back(buf[i]);
  }
  at::Tensor d = parseNpy(
      npyBytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", be), "b.npy");
  EXPECT_TRUE(at::equal(d, at::tensor({1.0, -2.5})));
}

TEST(Npy, ErrorsNameTheFile) {
  auto expectErr = [](const std::string& bytes, const std::string& needle) {
    try {
      parseNpy(bytes, "x.npy");
      ADD_FAILURE() << "expected error " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("x.npy: " + needle), std::string::npos) << e.what();
    }
  };
  expectErr("hello world, not npy", "not a .npy file (bad magic)");
  std::string ok = serializeNpy(at::ones({4}));
  expectErr(ok.substr(0, ok.size() - 2), "data has 14 bytes, shape needs 16");
  expectErr(ok.substr(0, 20), "truncated .npy header");
  expectErr(npyBytes("{'descr': '<U4', 'fortran_order': False, 'shape': (1,), }", "abcd"),
            "unsupported .npy dtype '<U4'");
  expectErr(npyBytes("{'descr': '<f4', 'shape': (1,), }", "abcd"),
            "bad .npy header: needs descr, fortran_order and shape");
  EXPECT_THROW(readNpy("/nonexistent/file.npy"), Error);
}

}  // namespace
}  // namespace gs

// IDX reader: validates the header before allocating, streams the payload into the tensor.
#include "data/idx.h"

#include <ATen/ATen.h>

#include <cstring>
#include <sstream>

#include "data/gzip.h"
#include "support/error.h"

namespace gs {
namespace {

struct IdxType {
  uint8_t code;
  at::ScalarType dtype;
  const char* name;
};

constexpr IdxType kIdxTypes[] = {
    {0x08, at::kByte, "uint8"}, {0x09, at::kChar, "int8"},     {0x0B, at::kShort, "int16"},
    {0x0C, at::kInt, "int32"},  {0x0D, at::kFloat, "float32"}, {0x0E, at::kDouble, "float64"},
};

const IdxType* findType(uint8_t code) {
  for (const IdxType& t : kIdxTypes)
    if (t.code == code) return &t;
  return nullptr;
}

const IdxType* findType(at::ScalarType dtype) {
  for (const IdxType& t : kIdxTypes)
    if (t.dtype == dtype) return &t;
  return nullptr;
}

uint32_t bigEndian32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string hex32(uint32_t v) {
  std::ostringstream os;
  os << "0x" << std::hex;
  os.width(8);
  os.fill('0');
  os << v;
  return os.str();
}

// IDX stores multi-byte values big-endian; swap in place on little-endian hosts.
void swapToHost(void* data, int64_t count, size_t width) {
  if (width == 1 || __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__) return;
  auto* p = static_cast<unsigned char*>(data);
  if (width == 2) {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      v = __builtin_bswap16(v);
      std::memcpy(p + 2 * i, &v, 2);
    }
  } else if (width == 4) {
    for (int64_t i = 0; i < count; ++i) {
      uint32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      v = __builtin_bswap32(v);
      std::memcpy(p + 4 * i, &v, 4);
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      uint64_t v;
      std::memcpy(&v, p + 8 * i, 8);
      v = __builtin_bswap64(v);
      std::memcpy(p + 8 * i, &v, 8);
    }
  }
}

}  // namespace

at::Tensor readIdx(const std::string& path, uint32_t expectedMagic) {
  ByteReader in(path);
  unsigned char head[4];
  size_t got = in.read(head, 4);
  GS_CHECK(got == 4, path, ": truncated: ", got, " bytes, too short for an IDX header");
  uint32_t magic = bigEndian32(head);
  const IdxType* type = findType(head[2]);
  uint8_t ndims = head[3];
  GS_CHECK(head[0] == 0 && head[1] == 0 && type && ndims >= 1 && ndims <= 16, path,
           ": bad magic number ", hex32(magic),
           ", not an IDX file (expected 0x0000, a type code 08/09/0b/0c/0d/0e, 1..16 dims",
           expectedMagic ? ", e.g. " + hex32(expectedMagic) : std::string(), ")");
  GS_CHECK(!expectedMagic || magic == expectedMagic, path, ": bad magic number ", hex32(magic),
           ", expected ", hex32(expectedMagic));

  std::vector<unsigned char> dimBytes(4 * ndims);
  got = in.read(dimBytes.data(), dimBytes.size());
  GS_CHECK(got == dimBytes.size(), path, ": truncated: header declares ", int(ndims),
           " dims but the file ends after ", got / 4, " of them");
  std::vector<int64_t> dims(ndims);
  std::string dimText;
  int64_t numel = 1;
  bool tooBig = false;
  for (int d = 0; d < ndims; ++d) {
    dims[d] = bigEndian32(&dimBytes[4 * d]);
    dimText += (d ? "x" : "") + std::to_string(dims[d]);
    // Each dim < 2^32 and numel <= 2^31 before multiplying, so the product fits in int64.
    if (!tooBig) {
      numel *= dims[d];
      tooBig = numel > kIdxMaxElements;
    }
  }
  for (int d = 0; d < ndims; ++d)
    GS_CHECK(dims[d] > 0, path, ": bad dims ", dimText, ": dim ", d, " is zero");
  GS_CHECK(!tooBig, path, ": bad dims ", dimText,
           ": more than 2^31 elements, refusing to allocate");

  at::Tensor t = at::empty(dims, at::TensorOptions().dtype(type->dtype));
  size_t width = t.element_size();
  size_t want = size_t(numel) * width;
  got = in.read(t.data_ptr(), want);
  auto describe = [&] {
    return "header says " + dimText + (ndims > 1 ? " = " + std::to_string(numel) : std::string()) +
           (width == 1 ? "" : " " + std::string(type->name) + " = " + std::to_string(want)) +
           " bytes of data";
  };
  GS_CHECK(got == want, path, ": truncated: ", describe(), ", file has ", got);
  size_t extra = in.skipToEnd();
  GS_CHECK(extra == 0, path, ": wrong length: ", describe(), ", file has ", want + extra);
  swapToHost(t.data_ptr(), numel, width);
  return t;
}

std::string serializeIdx(const at::Tensor& t) {
  const IdxType* type = findType(t.scalar_type());
  GS_CHECK(type, "serializeIdx: dtype ", t.scalar_type(), " has no IDX type code");
  GS_CHECK(t.dim() >= 1 && t.dim() <= 16, "serializeIdx: ", t.dim(), " dims, IDX allows 1..16");
  at::Tensor c = t.contiguous().cpu();
  std::string out;
  auto put32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(char((v >> s) & 0xff));
  };
  put32(idxMagic(type->code, uint8_t(c.dim())));
  for (int64_t d : c.sizes()) {
    GS_CHECK(d > 0 && d < (int64_t(1) << 32), "serializeIdx: dim ", d, " not representable");
    put32(uint32_t(d));
  }
  size_t header = out.size();
  out.resize(header + c.nbytes());
  std::memcpy(out.data() + header, c.data_ptr(), c.nbytes());
  swapToHost(out.data() + header, c.numel(), c.element_size());  // host -> big-endian
  return out;
}

}  // namespace gs

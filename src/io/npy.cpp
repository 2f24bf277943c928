// NumPy .npy reader/writer: v1/v2/v3 headers, any byte order, C or Fortran order on read.
#include "io/npy.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "ir/dtype.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs {

namespace {

constexpr char kMagic[] = "\x93NUMPY";

struct NpyType {
  char kind;  // 'f', 'i', 'u', 'b', 'c'
  int size;
  at::ScalarType st;
};
constexpr NpyType kTypes[] = {
    {'f', 4, at::kFloat},  {'f', 8, at::kDouble},         {'f', 2, at::kHalf},
    {'i', 1, at::kChar},   {'i', 2, at::kShort},          {'i', 4, at::kInt},
    {'i', 8, at::kLong},   {'u', 1, at::kByte},           {'b', 1, at::kBool},
    {'c', 8, at::kComplexFloat}, {'c', 16, at::kComplexDouble},
};

/// Minimal parser for the header's Python dict literal.
class HeaderParser {
 public:
  HeaderParser(const std::string& s, const std::string& src) : s_(s), src_(src) {}

  void parse(std::string* descr, bool* fortran, std::vector<int64_t>* shape) {
    bool got_descr = false, got_order = false, got_shape = false;
    expect('{');
    while (true) {
      skipWs();
      if (peek() == '}') break;
      std::string key = str();
      expect(':');
      skipWs();
      if (key == "descr") {
        *descr = str();
        got_descr = true;
      } else if (key == "fortran_order") {
        *fortran = boolean();
        got_order = true;
      } else if (key == "shape") {
        *shape = tuple();
        got_shape = true;
      } else {
        GS_FAIL(src_, ": bad .npy header: unknown key '", key, "'");
      }
      skipWs();
      if (peek() == ',') ++i_;
    }
    GS_CHECK(got_descr && got_order && got_shape, src_,
             ": bad .npy header: needs descr, fortran_order and shape");
  }

 private:
  char peek() {
    GS_CHECK(i_ < s_.size(), src_, ": bad .npy header: unexpected end");
    return s_[i_];
  }
  void skipWs() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  void expect(char c) {
    skipWs();
    GS_CHECK(peek() == c, src_, ": bad .npy header: expected '", c, "' at offset ", i_);
    ++i_;
  }
  std::string str() {
    skipWs();
    char q = peek();
    GS_CHECK(q == '\'' || q == '"', src_, ": bad .npy header: expected a string at offset ", i_);
    size_t e = s_.find(q, i_ + 1);
    GS_CHECK(e != std::string::npos, src_, ": bad .npy header: unterminated string");
    std::string r = s_.substr(i_ + 1, e - i_ - 1);
    i_ = e + 1;
    return r;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    GS_CHECK(s_.compare(i_, 5, "False") == 0, src_, ": bad .npy header: expected True/False");
    i_ += 5;
    return false;
  }
  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> r;
    while (true) {
      skipWs();
      if (peek() == ')') break;
      size_t st = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      GS_CHECK(i_ > st && i_ - st <= 18, src_, ": bad .npy header: bad dimension in shape");
      r.push_back(std::stoll(s_.substr(st, i_ - st)));
      skipWs();
      if (peek() == ',') ++i_;
    }
    ++i_;
    return r;
  }
  const std::string& s_;
  const std::string& src_;
  size_t i_ = 0;
};

}  // namespace

at::Tensor parseNpy(const std::string& bytes, const std::string& source) {
  GS_CHECK(bytes.size() >= 10 && bytes.compare(0, 6, kMagic, 6) == 0, source,
           ": not a .npy file (bad magic)");
  int major = static_cast<unsigned char>(bytes[6]);
  GS_CHECK(major >= 1 && major <= 3, source, ": unsupported .npy version ", major);
  size_t hlen, hstart;
  auto u8 = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(bytes[i])); };
  if (major == 1) {
    hlen = u8(8) | (u8(9) << 8);
    hstart = 10;
  } else {
    GS_CHECK(bytes.size() >= 12, source, ": truncated .npy header");
    hlen = u8(8) | (u8(9) << 8) | (u8(10) << 16) | (u8(11) << 24);
    hstart = 12;
  }
  GS_CHECK(hstart + hlen <= bytes.size(), source, ": truncated .npy header");
  std::string header = bytes.substr(hstart, hlen);
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  HeaderParser(header, source).parse(&descr, &fortran, &shape);

  GS_CHECK(descr.size() >= 3, source, ": unsupported .npy dtype '", descr, "'");
  char order = descr[0], kind = descr[1];
  int size = 0;
  try {
    size = std::stoi(descr.substr(2));
  } catch (const std::exception&) {
    GS_FAIL(source, ": unsupported .npy dtype '", descr, "'");
  }
  const NpyType* type = nullptr;
  for (const auto& t : kTypes)
    if (t.kind == kind && t.size == size) type = &t;
  GS_CHECK(type, source, ": unsupported .npy dtype '", descr, "'");
  GS_CHECK(order == '<' || order == '>' || order == '|' || order == '=', source,
           ": bad byte order in .npy dtype '", descr, "'");

  int64_t numel = 1;
  for (int64_t d : shape) GS_CHECK(!__builtin_mul_overflow(numel, d, &numel), source, ": shape overflows");
  int64_t nbytes = 0;
  GS_CHECK(!__builtin_mul_overflow(numel, int64_t{size}, &nbytes), source, ": shape overflows");
  size_t dstart = hstart + hlen;
  GS_CHECK(static_cast<int64_t>(bytes.size() - dstart) == nbytes, source, ": data has ",
           bytes.size() - dstart, " bytes, shape ", "needs ", nbytes, " (truncated or corrupt)");

  std::vector<int64_t> dims = shape;
  if (fortran) std::reverse(dims.begin(), dims.end());
  at::Tensor t = at::empty(dims, at::TensorOptions().dtype(type->st));
  if (nbytes) std::memcpy(t.data_ptr(), bytes.data() + dstart, static_cast<size_t>(nbytes));
  if (order == '>' && size > 1) {
    // Big-endian data: reverse bytes within each element (complex: within each component).
    int w = kind == 'c' ? size / 2 : size;
    auto* p = static_cast<unsigned char*>(t.data_ptr());
    for (int64_t i = 0; i < nbytes; i += w) std::reverse(p + i, p + i + w);
  }
  if (fortran) {
    std::vector<int64_t> perm(dims.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(perm.size() - 1 - i);
    t = t.permute(perm).contiguous();
  }
  return t;
}

at::Tensor readNpy(const std::string& path) { return parseNpy(readFile(path), path); }

std::string serializeNpy(const at::Tensor& t) {
  at::Tensor c = t.resolve_conj().resolve_neg().cpu().contiguous();
  const NpyType* type = nullptr;
  for (const auto& k : kTypes)
    if (k.st == c.scalar_type()) type = &k;
  GS_CHECK(type, "cannot write ", c10::toString(c.scalar_type()), " tensors as .npy");
  std::string descr = std::string(type->size == 1 ? "|" : "<") + type->kind +
                      std::to_string(type->size);
  std::string shape = "(";
  for (int64_t i = 0; i < c.dim(); ++i) shape += std::to_string(c.size(i)) + (c.dim() == 1 ? "," : (i + 1 < c.dim() ? ", " : ""));
  shape += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so that the data starts on a 64-byte boundary; newline-terminated.
  size_t pre = 10;
  size_t total = pre + header.size() + 1;
  bool v2 = false;
  if (total + (64 - total % 64) % 64 - pre > 65535) {
    v2 = true;
    pre = 12;
    total = pre + header.size() + 1;
  }
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out(kMagic, 6);
  out.push_back(static_cast<char>(v2 ? 2 : 1));
  out.push_back(0);
  size_t hl = header.size();
  out.push_back(static_cast<char>(hl & 0xff));
  out.push_back(static_cast<char>((hl >> 8) & 0xff));
  if (v2) {
    out.push_back(static_cast<char>((hl >> 16) & 0xff));
    out.push_back(static_cast<char>((hl >> 24) & 0xff));
  }
  out += header;
  out.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
  return out;
}

void writeNpy(const std::string& path, const at::Tensor& t) {
  writeFileAtomic(path, serializeNpy(t));
}

}  // namespace gs

// MatMulNBits weight format: bit packing, RTN quantization, dequantization oracle, node builder.
#include "quant/int4_pack.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "support/error.h"

namespace gs::nbits {

int64_t NBitsWeight::bytes() const {
  int64_t b = 0;
  for (const at::Tensor* t : {&B, &scales, &zero_points})
    if (t->defined()) b += t->numel() * static_cast<int64_t>(t->element_size());
  return b;
}

void checkFormat(int bits, int64_t block_size, const std::string& what) {
  GS_CHECK(bits == 2 || bits == 4 || bits == 8, what, ": bits must be 2, 4 or 8 (ONNX Runtime's ",
           "MatMulNBits kernels), got ", bits);
  GS_CHECK(block_size >= 16 && (block_size & (block_size - 1)) == 0, what,
           ": block_size must be a power of two >= 16, got ", block_size);
}

int64_t perChannelBlockSize(int64_t K) {
  int64_t b = 16;
  while (b < K) b *= 2;
  return b;
}

namespace {

/// Packs `count` codes per row (rows x count, uint8 in [0, 2^bits)) into rows x ceil(count*bits/8)
/// bytes, low bits first. `row_in` / `row_out` are row strides.
void packBits(const uint8_t* in, int64_t rows, int64_t count, int64_t row_in, int bits,
              uint8_t* out, int64_t row_out) {
  const int per = 8 / bits;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = in + r * row_in;
    uint8_t* dst = out + r * row_out;
    std::fill(dst, dst + row_out, uint8_t{0});
    for (int64_t i = 0; i < count; ++i)
      dst[i / per] |= static_cast<uint8_t>(src[i] << ((i % per) * bits));
  }
}

void unpackBits(const uint8_t* in, int64_t rows, int64_t count, int64_t row_in, int bits,
                uint8_t* out, int64_t row_out) {
  const int per = 8 / bits;
  const uint8_t mask = static_cast<uint8_t>((1 << bits) - 1);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = in + r * row_in;
    uint8_t* dst = out + r * row_out;
    for (int64_t i = 0; i < count; ++i)
      dst[i] = static_cast<uint8_t>((src[i / per] >> ((i % per) * bits)) & mask);
  }
}

at::Tensor checkedCodes(const at::Tensor& q, int bits, const char* what) {
  GS_CHECK(q.dim() == 2, what, " must be 2-D, got rank ", q.dim());
  GS_CHECK(!q.is_floating_point() && q.scalar_type() != at::kBool, what,
           " must have an integer dtype, got ", q.scalar_type());
  if (q.numel() > 0) {
    int64_t lo = q.min().item<int64_t>(), hi = q.max().item<int64_t>();
    GS_CHECK(lo >= 0 && hi < (int64_t{1} << bits), what, " must lie in [0, ", (1 << bits) - 1,
             "] for ", bits, "-bit packing, got [", lo, ", ", hi, "]");
  }
  return q.to(at::kByte).contiguous();
}

/// W as float32 [N, K].
at::Tensor toNxK(const at::Tensor& W, WeightLayout layout) {
  GS_CHECK(W.dim() == 2, "nbits: weight must be 2-D, got rank ", W.dim());
  GS_CHECK(W.is_floating_point(), "nbits: weight must be floating point, got ", W.scalar_type());
  at::Tensor w = W.detach().to(at::kFloat);
  return (layout == WeightLayout::KxN ? w.t() : w).contiguous();
}

/// [N, K] -> [N, n_blocks, block_size], zero-padded along K.
at::Tensor blocked(const at::Tensor& wNK, int64_t block_size) {
  int64_t N = wNK.size(0), K = wNK.size(1), nb = (K + block_size - 1) / block_size;
  at::Tensor p = nb * block_size == K ? wNK : at::constant_pad_nd(wNK, {0, nb * block_size - K});
  return p.reshape({N, nb, block_size});
}

}  // namespace

at::Tensor packCodes(const at::Tensor& q, int bits, int64_t block_size) {
  checkFormat(bits, block_size, "nbits::packCodes");
  at::Tensor c = checkedCodes(q, bits, "nbits::packCodes: codes");
  int64_t N = c.size(0), K = c.size(1), nb = (K + block_size - 1) / block_size;
  int64_t blob = block_size * bits / 8;
  at::Tensor padded = at::zeros({N, nb * block_size}, at::kByte);
  padded.narrow(1, 0, K).copy_(c);
  at::Tensor B = at::empty({N, nb, blob}, at::kByte);
  // Blocks are whole bytes, so packing each row of N as one run of nb*block_size codes is the same
  // as packing block by block.
  packBits(padded.data_ptr<uint8_t>(), N, nb * block_size, nb * block_size, bits,
           B.data_ptr<uint8_t>(), nb * blob);
  return B;
}

at::Tensor unpackCodes(const at::Tensor& B, int64_t K, int bits, int64_t block_size) {
  checkFormat(bits, block_size, "nbits::unpackCodes");
  int64_t nb = (K + block_size - 1) / block_size, blob = block_size * bits / 8;
  GS_CHECK(B.scalar_type() == at::kByte && B.dim() == 3 && B.size(1) == nb && B.size(2) == blob,
           "nbits::unpackCodes: B must be uint8 [N, ", nb, ", ", blob, "], got ", B.scalar_type(),
           " ", B.sizes());
  at::Tensor b = B.contiguous();
  int64_t N = b.size(0);
  at::Tensor out = at::empty({N, nb * block_size}, at::kByte);
  unpackBits(b.data_ptr<uint8_t>(), N, nb * block_size, nb * blob, bits, out.data_ptr<uint8_t>(),
             nb * block_size);
  return out.narrow(1, 0, K).contiguous();
}

at::Tensor packZeroPoints(const at::Tensor& zp, int bits) {
  checkFormat(bits, 16, "nbits::packZeroPoints");
  at::Tensor c = checkedCodes(zp, bits, "nbits::packZeroPoints: zero points");
  int64_t N = c.size(0), nb = c.size(1), bytes = (nb * bits + 7) / 8;
  at::Tensor out = at::empty({N, bytes}, at::kByte);
  packBits(c.data_ptr<uint8_t>(), N, nb, nb, bits, out.data_ptr<uint8_t>(), bytes);
  return out;
}

at::Tensor unpackZeroPoints(const at::Tensor& packed, int64_t n_blocks, int bits) {
  checkFormat(bits, 16, "nbits::unpackZeroPoints");
  int64_t bytes = (n_blocks * bits + 7) / 8;
  GS_CHECK(packed.scalar_type() == at::kByte && packed.numel() % std::max<int64_t>(bytes, 1) == 0,
           "nbits::unpackZeroPoints: packed zero points must be uint8 with a multiple of ", bytes,
           " elements, got ", packed.scalar_type(), " ", packed.sizes());
  at::Tensor p = packed.contiguous();
  int64_t N = bytes ? p.numel() / bytes : 0;
  at::Tensor out = at::empty({N, n_blocks}, at::kByte);
  unpackBits(p.data_ptr<uint8_t>(), N, n_blocks, bytes, bits, out.data_ptr<uint8_t>(), n_blocks);
  return out;
}

at::Tensor zeroPointsFloat(const NBitsWeight& w) {
  int64_t nb = w.numBlocks();
  if (!w.zero_points.defined())
    return at::full({w.N, nb}, static_cast<float>(defaultZeroPoint(w.bits)), at::kFloat);
  if (w.zero_points.is_floating_point()) return w.zero_points.to(at::kFloat).reshape({w.N, nb});
  return unpackZeroPoints(w.zero_points, nb, w.bits).to(at::kFloat);
}

at::Tensor expandPerK(const at::Tensor& per_block, int64_t K, int64_t block_size) {
  return per_block.repeat_interleave(block_size, 1).narrow(1, 0, K);
}

void checkWeight(const NBitsWeight& w, const std::string& what) {
  checkFormat(w.bits, w.block_size, what);
  GS_CHECK(w.K > 0 && w.N > 0, what, ": K and N must be positive, got K=", w.K, " N=", w.N);
  int64_t nb = w.numBlocks(), blob = w.blobSize();
  GS_CHECK(w.B.defined() && w.B.scalar_type() == at::kByte && w.B.dim() == 3 &&
               w.B.size(0) == w.N && w.B.size(1) == nb && w.B.size(2) == blob,
           what, ": B must be uint8 [N=", w.N, ", n_blocks=", nb, ", blob_size=", blob, "], got ",
           w.B.defined() ? c10::toString(w.B.scalar_type()) : "nothing", " ",
           w.B.defined() ? w.B.sizes() : at::IntArrayRef{});
  GS_CHECK(w.scales.defined() && w.scales.is_floating_point() && w.scales.numel() == w.N * nb, what,
           ": scales must be float with N*n_blocks = ", w.N * nb, " elements ([N, n_blocks])");
  if (!w.zero_points.defined()) return;
  if (w.zero_points.is_floating_point()) {
    GS_CHECK(w.zero_points.numel() == w.N * nb, what, ": float zero_points must have N*n_blocks = ",
             w.N * nb, " elements, got ", w.zero_points.numel());
  } else {
    int64_t bytes = (nb * w.bits + 7) / 8;
    GS_CHECK(w.zero_points.scalar_type() == at::kByte && w.zero_points.numel() == w.N * bytes,
             what, ": packed zero_points must be uint8 [N, ceil(n_blocks*bits/8)] = [", w.N, ", ",
             bytes, "], got ", w.zero_points.scalar_type(), " ", w.zero_points.sizes());
  }
}

NBitsWeight quantizeWithParams(const at::Tensor& W, WeightLayout layout, const at::Tensor& scales,
                               const at::Tensor& zero_points, int bits, int64_t block_size) {
  checkFormat(bits, block_size, "nbits::quantizeWithParams");
  at::Tensor w = toNxK(W, layout);
  NBitsWeight r;
  r.N = w.size(0);
  r.K = w.size(1);
  r.bits = bits;
  r.block_size = block_size;
  int64_t nb = r.numBlocks();
  GS_CHECK(scales.numel() == r.N * nb, "nbits::quantizeWithParams: scales must have N*n_blocks = ",
           r.N * nb, " elements, got ", scales.sizes());
  at::Tensor s = scales.detach().to(at::kFloat).reshape({r.N, nb}).contiguous();
  at::Tensor zp = zero_points.defined()
                      ? zero_points.detach().to(at::kFloat).reshape({r.N, nb})
                      : at::full({r.N, nb}, static_cast<float>(defaultZeroPoint(bits)), at::kFloat);
  // Divide exactly (w * (1/s) can differ in the last ulp); zero scales give code zp.
  at::Tensor sk = expandPerK(s, r.K, block_size);
  at::Tensor ratio = at::where(sk == 0, at::zeros_like(w), w / at::where(sk == 0, at::ones_like(sk), sk));
  at::Tensor q = at::clamp(at::round(ratio) + expandPerK(zp, r.K, block_size), 0,
                           (1 << bits) - 1);
  r.B = packCodes(q.to(at::kByte), bits, block_size);
  r.scales = s;
  if (zero_points.defined()) {
    at::Tensor zi = zero_points.detach().reshape({r.N, nb});
    if (zi.is_floating_point()) zi = at::round(zi);
    r.zero_points = packZeroPoints(zi.to(at::kLong), bits);
  }
  return r;
}

NBitsWeight quantizeRtn(const at::Tensor& W, WeightLayout layout, int bits, int64_t block_size,
                        bool symmetric) {
  checkFormat(bits, block_size, "nbits::quantizeRtn");
  at::Tensor w = toNxK(W, layout);
  at::Tensor blk = blocked(w, block_size);  // zero padding never widens a range that includes 0
  const double qmax = (1 << bits) - 1;
  if (symmetric) {
    at::Tensor s = std::get<0>(blk.abs().max(2)) / ((1 << (bits - 1)) - 1);
    return quantizeWithParams(w, WeightLayout::NxK, s, at::Tensor(), bits, block_size);
  }
  at::Tensor lo = at::clamp_max(std::get<0>(blk.min(2)), 0);
  at::Tensor hi = at::clamp_min(std::get<0>(blk.max(2)), 0);
  at::Tensor s = (hi - lo) / qmax;
  at::Tensor zp = at::where(s == 0, at::zeros_like(s), at::clamp(at::round(-lo / s), 0, qmax));
  return quantizeWithParams(w, WeightLayout::NxK, s, zp, bits, block_size);
}

at::Tensor dequantize(const NBitsWeight& w, WeightLayout layout) {
  checkWeight(w, "nbits::dequantize");
  int64_t nb = w.numBlocks();
  at::Tensor q = unpackCodes(w.B, w.K, w.bits, w.block_size).to(at::kFloat);
  at::Tensor s = expandPerK(w.scales.to(at::kFloat).reshape({w.N, nb}), w.K, w.block_size);
  at::Tensor z = expandPerK(zeroPointsFloat(w), w.K, w.block_size);
  at::Tensor d = (q - z) * s;
  return layout == WeightLayout::KxN ? d.t().contiguous() : d;
}

Node* addMatMulNBits(Graph& g, Value* A, const NBitsWeight& w, Value* bias, const std::string& name,
                     Node* before) {
  checkWeight(w, "nbits::addMatMulNBits '" + name + "'");
  GS_CHECK(A, "nbits::addMatMulNBits '", name, "': input A is null");
  auto param = [&](const char* suffix, const at::Tensor& t) {
    Value* v = g.addParam(g.uniqueValueName(name + suffix), t, /*trainable=*/false);
    return v;
  };
  int64_t nb = w.numBlocks();
  std::vector<Value*> ins{A, param(".B", w.B.contiguous()),
                          param(".scales", w.scales.reshape({w.N, nb}).contiguous())};
  if (w.zero_points.defined()) ins.push_back(param(".zero_points", w.zero_points.contiguous()));
  if (bias) {
    while (ins.size() < 5) ins.push_back(nullptr);
    ins.push_back(bias);
  }
  std::map<std::string, Attribute> attrs{{"K", Attribute(w.K)},
                                         {"N", Attribute(w.N)},
                                         {"bits", Attribute(int64_t{w.bits})},
                                         {"block_size", Attribute(w.block_size)},
                                         {"accuracy_level", Attribute(int64_t{0})}};
  Node* n = g.addNode("MatMulNBits", ins, 1, name, std::move(attrs), before, kDomain);
  g.opsets[kDomain] = kOpsetVersion;
  Value* y = n->output(0);
  y->setDType(A->dtype() == DType::Undefined ? DType::Float32 : A->dtype());
  if (A->shape() && !A->shape()->empty()) {
    std::vector<Dim> s = *A->shape();
    s.back() = Dim(w.N);
    y->setShape(s);
  }
  return n;
}

NBitsWeight weightOf(const Node& n) {
  GS_CHECK(n.opType() == "MatMulNBits" && n.domain() == kDomain, n.describe(),
           ": not a com.microsoft MatMulNBits node");
  NBitsWeight w;
  w.K = n.attr("K").i();
  w.N = n.attr("N").i();
  w.bits = static_cast<int>(n.attrInt("bits", 4));
  w.block_size = n.attr("block_size").i();
  auto data = [&](size_t i, const char* what) {
    Value* v = n.input(i);
    GS_CHECK(v && v->isParam(), n.describe(), ": input ", what, " must be a constant parameter");
    return v->data();
  };
  w.B = data(1, "B");
  w.scales = data(2, "scales");
  if (n.hasInput(3)) w.zero_points = data(3, "zero_points");
  checkWeight(w, n.describe());
  return w;
}

}  // namespace gs::nbits

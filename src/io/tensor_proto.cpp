// TensorProto conversion: typed fields, raw data, bounded and folder-confined external data.
#include "io/tensor_proto.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "support/error.h"
#include "support/file_util.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "ONNX raw_data is little-endian; gstick assumes a little-endian host");

namespace gs {

namespace fs = std::filesystem;

DType dtypeFromOnnx(int32_t code, const std::string& what) {
  GS_CHECK(isKnownDTypeCode(code), what, ": unknown ONNX data type code ", code);
  return static_cast<DType>(code);
}

namespace {

/// Prefix for errors about tensor `p`.
std::string where(const onnx::TensorProto& p, const TensorLoadContext& ctx) {
  return ctx.source + ": tensor '" + p.name() + "'";
}

/// Parses a non-negative decimal integer from an external-data field.
int64_t parseOffset(const std::string& s, const std::string& what) {
  GS_CHECK(!s.empty() && s.size() <= 18 && s.find_first_not_of("0123456789") == std::string::npos,
           what, " must be a non-negative integer, got '", s, "'");
  return std::stoll(s);
}

/// Reads `length` bytes at `offset` of the confined external file into `dst`.
at::Tensor readExternal(const onnx::TensorProto& p, const TensorLoadContext& ctx, int64_t nbytes,
                        at::IntArrayRef dims, const at::TensorOptions& opts) {
  const std::string w = where(p, ctx);
  std::string location;
  int64_t offset = 0, length = -1;
  bool has_location = false;
  for (const auto& e : p.external_data()) {
    if (e.key() == "location") {
      location = e.value();
      has_location = true;
    } else if (e.key() == "offset") {
      offset = parseOffset(e.value(), w + ": external data offset");
    } else if (e.key() == "length") {
      length = parseOffset(e.value(), w + ": external data length");
    }
  }
  GS_CHECK(has_location && !location.empty(), w, ": external data without a location");
  GS_CHECK(!ctx.base_dir.empty(), w, ": external data '", location,
           "' cannot be resolved (model was not loaded from a file; no base folder)");
  fs::path loc(location);
  GS_CHECK(!loc.is_absolute() && location[0] != '/' && location[0] != '\\', w,
           ": external data location '", location, "' is an absolute path (refused)");
  fs::path norm = loc.lexically_normal();
  bool escapes = norm.empty();
  for (const auto& part : norm)
    if (part == "..") escapes = true;
  GS_CHECK(!escapes, w, ": external data location '", location,
           "' escapes the model folder (refused)");
  fs::path full = fs::path(ctx.base_dir) / norm;
  // Symlinks may still point outside: compare canonical paths too.
  std::error_code ec;
  fs::path cbase = fs::weakly_canonical(fs::path(ctx.base_dir), ec);
  fs::path cfull = fs::weakly_canonical(full, ec);
  if (!ec) {
    auto b = cbase.lexically_normal().string(), f = cfull.lexically_normal().string();
    GS_CHECK(f.size() > b.size() && f.compare(0, b.size(), b) == 0, w, ": external data location '",
             location, "' resolves outside the model folder (refused)");
  }
  if (length >= 0)
    GS_CHECK(length == nbytes, w, ": external data length ", length,
             " does not match the declared shape and type (", nbytes, " bytes)");
  int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC);
  GS_CHECK(fd >= 0, w, ": cannot open external data '", full.string(), "': ", std::strerror(errno));
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (!ok) {
    ::close(fd);
    GS_FAIL(w, ": external data '", full.string(), "' is not a regular file");
  }
  int64_t avail = static_cast<int64_t>(st.st_size) - offset;
  if (offset > st.st_size || avail < nbytes) {
    ::close(fd);
    GS_FAIL(w, ": external data '", location, "' too short: needs ", nbytes, " bytes at offset ",
            offset, ", file has ", static_cast<int64_t>(st.st_size));
  }
  at::Tensor dst = at::empty(dims, opts);
  char* out = static_cast<char*>(dst.data_ptr());
  int64_t done = 0;
  while (done < nbytes) {
    ssize_t r = ::pread(fd, out + done, static_cast<size_t>(nbytes - done), offset + done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = errno;
      ::close(fd);
      GS_FAIL(w, ": read error in external data '", location, "': ",
              r == 0 ? "unexpected end of file" : std::strerror(e));
    }
    done += r;
  }
  ::close(fd);
  return dst;
}

/// Copies a repeated typed field into `t`, converting element type `Src` -> `Dst`.
template <typename Dst, typename Field>
void copyTyped(const Field& f, at::Tensor& t) {
  Dst* d = static_cast<Dst*>(t.data_ptr());
  for (int i = 0; i < f.size(); ++i) d[i] = static_cast<Dst>(f.Get(i));
}

}  // namespace

at::Tensor tensorFromProto(const onnx::TensorProto& p, const TensorLoadContext& ctx) {
  const std::string w = where(p, ctx);
  GS_CHECK(p.data_type() != onnx::TensorProto::STRING, w, ": string tensors are not supported");
  GS_CHECK(p.data_type() != onnx::TensorProto::UNDEFINED, w, ": data type is undefined");
  DType dt = dtypeFromOnnx(p.data_type(), w);
  GS_CHECK(dt != DType::UInt16 && dt != DType::UInt32 && dt != DType::UInt64, w, ": element type ",
           dtypeName(dt), " is not supported (ATen has no unsigned 16/32/64-bit type)");
  GS_CHECK(!p.has_segment(), w, ": segmented tensors are not supported");
  std::vector<int64_t> dims;
  int64_t numel = 1;
  for (int64_t d : p.dims()) {
    GS_CHECK(d >= 0, w, ": negative dimension ", d);
    GS_CHECK(!__builtin_mul_overflow(numel, d, &numel), w, ": element count overflows");
    dims.push_back(d);
  }
  const int64_t esize = static_cast<int64_t>(dtypeSize(dt));
  int64_t nbytes = 0;
  GS_CHECK(!__builtin_mul_overflow(numel, esize, &nbytes), w, ": byte size overflows");
  GS_CHECK(nbytes <= ctx.max_tensor_bytes, w, ": declared size ", nbytes,
           " bytes exceeds the limit of ", ctx.max_tensor_bytes, " bytes");
  auto opts = at::TensorOptions().dtype(toScalarType(dt));

  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    GS_CHECK(!p.has_raw_data(), w, ": has both raw_data and external data");
    return readExternal(p, ctx, nbytes, dims, opts);
  }
  if (p.has_raw_data()) {
    GS_CHECK(static_cast<int64_t>(p.raw_data().size()) == nbytes, w, ": raw_data has ",
             p.raw_data().size(), " bytes, declared shape and type need ", nbytes);
    at::Tensor t = at::empty(dims, opts);
    if (nbytes) std::memcpy(t.data_ptr(), p.raw_data().data(), static_cast<size_t>(nbytes));
    return t;
  }
  // Typed fields: the element count must match before anything is allocated.
  auto need = [&](int64_t have, int64_t per, const char* field) {
    GS_CHECK(have == numel * per, w, ": ", field, " has ", have, " values, declared shape needs ",
             numel * per);
  };
  switch (dt) {
    case DType::Float32: need(p.float_data_size(), 1, "float_data"); break;
    case DType::Complex64: need(p.float_data_size(), 2, "float_data"); break;
    case DType::Float64: need(p.double_data_size(), 1, "double_data"); break;
    case DType::Complex128: need(p.double_data_size(), 2, "double_data"); break;
    case DType::Int64: need(p.int64_data_size(), 1, "int64_data"); break;
    default: need(p.int32_data_size(), 1, "int32_data"); break;
  }
  at::Tensor t = at::empty(dims, opts);
  if (numel == 0) return t;
  switch (dt) {
    case DType::Float32:
    case DType::Complex64: copyTyped<float>(p.float_data(), t); break;
    case DType::Float64:
    case DType::Complex128: copyTyped<double>(p.double_data(), t); break;
    case DType::Int64: copyTyped<int64_t>(p.int64_data(), t); break;
    case DType::Int32: copyTyped<int32_t>(p.int32_data(), t); break;
    case DType::Int16: copyTyped<int16_t>(p.int32_data(), t); break;
    case DType::Int8: copyTyped<int8_t>(p.int32_data(), t); break;
    case DType::UInt8: copyTyped<uint8_t>(p.int32_data(), t); break;
    case DType::Float16:
    case DType::BFloat16: copyTyped<uint16_t>(p.int32_data(), t); break;  // raw 16-bit patterns
    case DType::Bool: {
      bool* d = t.data_ptr<bool>();
      for (int i = 0; i < p.int32_data_size(); ++i) d[i] = p.int32_data(i) != 0;
      break;
    }
    default: GS_FAIL(w, ": unsupported element type ", dtypeName(dt));
  }
  return t;
}

void tensorProtoHeader(const at::Tensor& t, const std::string& name, onnx::TensorProto* p) {
  p->Clear();
  p->set_name(name);
  p->set_data_type(static_cast<int32_t>(fromScalarType(t.scalar_type())));
  for (int64_t d : t.sizes()) p->add_dims(d);
}

at::Tensor rawDataTensor(const at::Tensor& t) {
  return t.resolve_conj().resolve_neg().cpu().contiguous();
}

void tensorToProto(const at::Tensor& t, const std::string& name, onnx::TensorProto* p) {
  at::Tensor c = rawDataTensor(t);
  tensorProtoHeader(c, name, p);
  p->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
}

at::Tensor readTensorProtoFile(const std::string& path, std::string* name_out) {
  std::string bytes = readFile(path);
  onnx::TensorProto p;
  GS_CHECK(p.ParseFromString(bytes), path, ": not a valid TensorProto (protobuf parse failed)");
  if (name_out) *name_out = p.name();
  TensorLoadContext ctx;
  ctx.source = path;
  ctx.base_dir = fs::path(path).parent_path().string();
  if (ctx.base_dir.empty()) ctx.base_dir = ".";
  return tensorFromProto(p, ctx);
}

void writeTensorProtoFile(const std::string& path, const at::Tensor& t, const std::string& name) {
  onnx::TensorProto p;
  tensorToProto(t, name, &p);
  writeFileAtomic(path, p.SerializeAsString());
}

}  // namespace gs

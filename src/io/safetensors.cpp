// safetensors reader (mmap + header validation) and atomic writer.
#include "io/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "support/error.h"
#include "support/file_util.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace gs {
namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // the reference implementation's limit

struct DtypeInfo {
  const char* name;
  c10::ScalarType type;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat},  {"F16", at::kHalf}, {"BF16", at::kBFloat16},
    {"I64", at::kLong},   {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},
    {"U8", at::kByte},    {"BOOL", at::kBool},
};

bool dtypeFromName(const std::string& s, c10::ScalarType& out) {
  for (const auto& d : kDtypes)
    if (s == d.name) {
      out = d.type;
      return true;
    }
  return false;
}

void putU64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

std::string safetensorsDtypeName(c10::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  GS_FAIL("safetensors: unsupported dtype ", c10::toString(t));
}

std::string serializeSafetensors(const std::map<std::string, at::Tensor>& tensors,
                                 const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> order;
  for (const auto& [name, t] : tensors) {
    GS_CHECK(name != "__metadata__", "safetensors: '__metadata__' is reserved, not a tensor name");
    GS_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
    safetensorsDtypeName(t.scalar_type());  // validates
    order.emplace_back(name, t.detach().to(at::kCPU).contiguous());
  }
  // Larger elements first keeps every tensor aligned to its element size (data start is 8-aligned).
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second.element_size() > b.second.element_size();
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  uint64_t off = 0;
  for (const auto& [name, t] : order) {
    uint64_t n = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", safetensorsDtypeName(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  std::string out;
  out.reserve(8 + h.size() + off);
  putU64(out, h.size());
  out += h;
  for (const auto& [name, t] : order)
    out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return out;
}

void writeSafetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::string bytes;
  try {
    bytes = serializeSafetensors(tensors, metadata);
  } catch (const Error& e) {
    GS_FAIL(path, ": ", e.what());
  }
  writeFileAtomic(path, bytes);
}

namespace {

/// madvise(`advice`) on the pages lying wholly inside [b, e): pages shared with neighbouring
/// data are left alone.
void adviseWholePages(uintptr_t b, uintptr_t e, int advice) {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t pb = (b + page - 1) / page * page, pe = e / page * page;
  if (pe > pb) ::madvise(reinterpret_cast<void*>(pb), pe - pb, advice);
}

}  // namespace

/// Address ranges [begin, end) of the live mappings, for dropMappedPages.
std::mutex g_maps_mu;
std::set<std::pair<uintptr_t, uintptr_t>> g_maps;

/// The read-only (copy-on-write) mapping of a whole file, with a count of the live tensor views
/// of every byte range so a range's pages can leave the process when its last view is released.
struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  std::mutex mu;
  std::map<std::pair<uint64_t, uint64_t>, int64_t> live;  // [begin, end) in file offsets -> views
  ~Mapping() {
    if (addr && addr != MAP_FAILED) {
      {
        std::lock_guard<std::mutex> lock(g_maps_mu);
        g_maps.erase(range());
      }
      ::munmap(addr, size);
    }
  }
  std::pair<uintptr_t, uintptr_t> range() const {
    const auto b = reinterpret_cast<uintptr_t>(addr);
    return {b, b + size};
  }
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(addr); }
  void acquire(uint64_t b, uint64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    ++live[{b, e}];
  }
  /// Last view of [b, e) gone: MADV_DONTNEED on the pages lying wholly inside it. Clean file
  /// pages simply leave RSS (a later view reads them from the file again); private copy-on-write
  /// changes made through the released views are discarded, which is fine since no view is left
  /// to see them. Boundary pages shared with neighbouring tensors are kept.
  void release(uint64_t b, uint64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = live.find({b, e});
    if (it == live.end() || --it->second > 0) return;
    live.erase(it);
    const auto base = reinterpret_cast<uintptr_t>(addr);
    adviseWholePages(base + b, base + e, MADV_DONTNEED);
  }
};

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  GS_CHECK(fd >= 0, path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    GS_FAIL(path, ": not a regular file");
  }
  auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    GS_FAIL(path, ": not a safetensors file: ", size, " bytes, shorter than the 8-byte header length");
  }
  map_ = std::make_shared<Mapping>();
  map_->size = size;
  map_->addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  GS_CHECK(map_->addr != MAP_FAILED, path, ": mmap failed: ", std::strerror(err));
  {
    std::lock_guard<std::mutex> lock(g_maps_mu);
    g_maps.insert(map_->range());
  }
  const uint8_t* p = map_->bytes();
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(p[i]) << (8 * i);
  GS_CHECK(hlen <= kMaxHeader, path, ": header length ", hlen, " exceeds the 100 MB limit");
  GS_CHECK(hlen <= size - 8, path, ": header length ", hlen, " exceeds the file size (", size,
           " bytes); the file is truncated or not safetensors");
  std::string_view htext(reinterpret_cast<const char*>(p + 8), hlen);
  GS_CHECK(!htext.empty() && htext.front() == '{', path, ": header is not a JSON object");
  auto j = nlohmann::json::parse(htext.begin(), htext.end(), nullptr, /*allow_exceptions=*/false);
  GS_CHECK(!j.is_discarded() && j.is_object(), path, ": header is not valid JSON");
  data_start_ = 8 + hlen;
  const uint64_t data_size = size - data_start_;

  std::vector<std::pair<std::string, const Entry*>> sorted;
  for (const auto& [name, v] : j.items()) {
    if (name == "__metadata__") {
      GS_CHECK(v.is_object(), path, ": __metadata__ must be an object of strings");
      for (const auto& [k, s] : v.items()) {
        GS_CHECK(s.is_string(), path, ": __metadata__ value '", k, "' is not a string");
        metadata_[k] = s.get<std::string>();
      }
      continue;
    }
    GS_CHECK(v.is_object(), path, ": entry '", name, "' is not an object");
    Entry e{};
    auto dt = v.find("dtype");
    GS_CHECK(dt != v.end() && dt->is_string(), path, ": tensor '", name, "' has no dtype");
    GS_CHECK(dtypeFromName(dt->get<std::string>(), e.dtype), path, ": tensor '", name,
             "' has unsupported dtype '", dt->get<std::string>(),
             "' (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");
    auto sh = v.find("shape");
    GS_CHECK(sh != v.end() && sh->is_array(), path, ": tensor '", name, "' has no shape array");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
      GS_CHECK(d.is_number_unsigned(), path, ": tensor '", name, "' has a bad shape entry ", d.dump());
      auto dv = d.get<uint64_t>();
      GS_CHECK(dv <= static_cast<uint64_t>(INT64_MAX), path, ": tensor '", name, "' dim too large");
      e.shape.push_back(static_cast<int64_t>(dv));
      if (dv != 0 && numel > UINT64_MAX / dv) overflow = true;
      numel *= dv;
    }
    auto off = v.find("data_offsets");
    GS_CHECK(off != v.end() && off->is_array() && off->size() == 2 && (*off)[0].is_number_unsigned() &&
                 (*off)[1].is_number_unsigned(),
             path, ": tensor '", name, "' needs data_offsets [begin, end]");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    GS_CHECK(e.begin <= e.end, path, ": tensor '", name, "' has data_offsets [", e.begin, ", ",
             e.end, "] with begin > end");
    GS_CHECK(e.end <= data_size, path, ": tensor '", name, "' data_offsets [", e.begin, ", ", e.end,
             "] are outside the data section (", data_size, " bytes)");
    uint64_t es = c10::elementSize(e.dtype);
    GS_CHECK(!overflow && numel <= UINT64_MAX / es && numel * es == e.end - e.begin, path,
             ": tensor '", name, "' of shape ", sh->dump(), " and dtype ", dt->get<std::string>(),
             " needs ", overflow ? std::string("too many") : std::to_string(numel * es),
             " bytes but its data_offsets span ", e.end - e.begin);
    entries_[name] = std::move(e);
  }
  for (const auto& [name, e] : entries_) sorted.emplace_back(name, &e);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second->begin != b.second->begin ? a.second->begin < b.second->begin
                                              : a.second->end < b.second->end;
  });
  uint64_t pos = 0;
  std::string prev;
  for (const auto& [name, e] : sorted) {
    GS_CHECK(e->begin >= pos, path, ": tensor '", name, "' overlaps tensor '", prev, "'");
    GS_CHECK(e->begin == pos, path, ": gap before tensor '", name, "' (bytes ", pos, "..",
             e->begin, " belong to no tensor)");
    pos = e->end;
    prev = name;
  }
  GS_CHECK(pos == data_size, path, ": the data section has ", data_size,
           " bytes but the tensors cover ", pos);
}

SafetensorsFile::~SafetensorsFile() = default;

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::pair<uint64_t, std::string>> v;
  for (const auto& [n, e] : entries_) v.emplace_back(e.begin, n);
  std::sort(v.begin(), v.end());
  std::vector<std::string> out;
  for (auto& [o, n] : v) out.push_back(n);
  return out;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  auto it = entries_.find(name);
  GS_CHECK(it != entries_.end(), path_, ": no tensor named '", name, "'");
  const Entry& e = it->second;
  auto opts = at::TensorOptions().dtype(e.dtype);
  if (e.begin == e.end) return at::empty(e.shape, opts);
  uint8_t* ptr = static_cast<uint8_t*>(map_->addr) + data_start_ + e.begin;
  if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(e.dtype) != 0) {
    at::Tensor t = at::empty(e.shape, opts);
    std::memcpy(t.data_ptr(), ptr, e.end - e.begin);
    return t;
  }
  auto keep = map_;
  const uint64_t b = data_start_ + e.begin, end = data_start_ + e.end;
  keep->acquire(b, end);
  return at::from_blob(ptr, e.shape, [keep, b, end](void*) { keep->release(b, end); }, opts);
}

TensorFile SafetensorsFile::readAll() const {
  TensorFile f;
  for (const auto& [n, e] : entries_) f.tensors[n] = tensor(n);
  f.metadata = metadata_;
  return f;
}

TensorFile readSafetensors(const std::string& path) { return SafetensorsFile(path).readAll(); }

bool dropMappedPages(const void* data, size_t bytes) {
  if (!data || bytes == 0) return false;
  const auto b = reinterpret_cast<uintptr_t>(data);
  const uintptr_t e = b + bytes;
  {
    std::lock_guard<std::mutex> lock(g_maps_mu);
    auto it = g_maps.upper_bound({b, UINTPTR_MAX});
    if (it == g_maps.begin() || (--it)->first > b || it->second < e) return false;
  }
#ifdef MADV_PAGEOUT
  adviseWholePages(b, e, MADV_PAGEOUT);
#endif
  return true;
}

bool dropMappedPages(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return false;
  return dropMappedPages(t.storage().data(), t.storage().nbytes());
}

}  // namespace gs

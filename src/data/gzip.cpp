// ByteReader: plain or gzip file streaming through zlib's inflate.
#include "data/gzip.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "support/error.h"

namespace gs {

struct ByteReader::Zlib {
  z_stream zs{};
  std::vector<unsigned char> in = std::vector<unsigned char>(1 << 16);
  bool initialised = false;
  ~Zlib() {
    if (initialised) inflateEnd(&zs);
  }
};

ByteReader::ByteReader(const std::string& path) : path_(path) {
  std::error_code ec;
  GS_CHECK(!std::filesystem::is_directory(path, ec), path, ": is a directory, expected a file");
  file_ = std::fopen(path.c_str(), "rb");
  GS_CHECK(file_, path, ": cannot open: ", std::strerror(errno));
  unsigned char magic[2];
  size_t got = std::fread(magic, 1, 2, file_);
  gzip_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  std::rewind(file_);
  if (gzip_) {
    z_ = std::make_unique<Zlib>();
    // 16 + MAX_WBITS: gzip wrapper only, so the header and CRC/length trailer are verified.
    if (inflateInit2(&z_->zs, 16 + MAX_WBITS) != Z_OK) {
      std::fclose(file_);
      file_ = nullptr;
      GS_FAIL(path, ": zlib inflateInit2 failed");
    }
    z_->initialised = true;
  }
}

ByteReader::~ByteReader() {
  if (file_) std::fclose(file_);
}

bool ByteReader::refill() {
  size_t n = std::fread(z_->in.data(), 1, z_->in.size(), file_);
  GS_CHECK(!std::ferror(file_), path_, ": read error");
  z_->zs.next_in = z_->in.data();
  z_->zs.avail_in = static_cast<uInt>(n);
  return n > 0;
}

size_t ByteReader::read(void* dst, size_t n) {
  if (n == 0) return 0;
  if (!gzip_) {
    size_t got = std::fread(dst, 1, n, file_);
    GS_CHECK(!std::ferror(file_), path_, ": read error");
    return got;
  }
  return inflateInto(static_cast<unsigned char*>(dst), n);
}

size_t ByteReader::inflateInto(unsigned char* dst, size_t n) {
  z_stream& zs = z_->zs;
  size_t done = 0;
  while (done < n) {
    if (streamEnded_) {
      // Another gzip member may follow (as `cat a.gz b.gz` produces); anything else is garbage.
      if (zs.avail_in == 0 && !refill()) return done;
      GS_CHECK(zs.next_in[0] == 0x1f, path_, ": trailing garbage after the gzip stream");
      GS_CHECK(inflateReset(&zs) == Z_OK, path_, ": zlib inflateReset failed");
      streamEnded_ = false;
    }
    if (zs.avail_in == 0 && !refill()) {
      GS_FAIL(path_, ": truncated gzip stream (compressed data ends before the gzip trailer)");
    }
    // zlib counts in uInt; chunk large requests.
    size_t chunk = std::min<size_t>(n - done, 1u << 30);
    zs.next_out = dst + done;
    zs.avail_out = static_cast<uInt>(chunk);
    int rc = inflate(&zs, Z_NO_FLUSH);
    done += chunk - zs.avail_out;
    if (rc == Z_STREAM_END) {
      streamEnded_ = true;
    } else if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
      GS_FAIL(path_, ": corrupt gzip data: ", zs.msg ? zs.msg : "invalid stream");
    } else if (rc == Z_MEM_ERROR) {
      GS_FAIL(path_, ": zlib out of memory");
    } else {
      // Z_OK or Z_BUF_ERROR (no progress possible): loop to refill input / continue output.
      GS_CHECK(rc == Z_OK || rc == Z_BUF_ERROR, path_, ": zlib inflate error ", rc);
    }
  }
  return done;
}

size_t ByteReader::skipToEnd() {
  std::vector<unsigned char> buf(1 << 16);
  size_t total = 0;
  for (;;) {
    size_t got = read(buf.data(), buf.size());
    total += got;
    if (got < buf.size()) return total;
  }
}

std::string gzipCompress(std::string_view data, int level) {
  GS_CHECK(data.size() < (1ull << 32), "gzip: input of ", data.size(), " bytes is too large");
  z_stream zs{};
  GS_CHECK(deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK,
           "gzip: deflateInit2 failed");
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  deflateEnd(&zs);
  GS_CHECK(rc == Z_STREAM_END, "gzip: deflate failed (", rc, ")");
  out.resize(zs.total_out);
  return out;
}

}  // namespace gs

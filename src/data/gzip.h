// Sequential byte reader that transparently inflates gzip files (zlib), plus a gzip writer for
// tests.
#pragma once
#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

namespace gs {

/// Reads a file front to back. If the file starts with the gzip magic (1f 8b) it is inflated
/// on the fly (concatenated gzip members are read as one stream); otherwise bytes are passed
/// through. Errors are gs::Error naming the file: cannot open, corrupt gzip data, a gzip stream
/// that ends before its trailer ("truncated gzip stream"), or garbage after the last member.
class ByteReader {
 public:
  explicit ByteReader(const std::string& path);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  /// Reads up to n bytes into dst; returns fewer than n only at the end of the (inflated) data.
  size_t read(void* dst, size_t n);
  /// Reads and discards everything left; returns the number of bytes skipped.
  size_t skipToEnd();
  /// True if the file is gzip-compressed.
  bool compressed() const { return gzip_; }
  const std::string& path() const { return path_; }

 private:
  size_t inflateInto(unsigned char* dst, size_t n);
  bool refill();

  std::string path_;
  std::FILE* file_ = nullptr;
  bool gzip_ = false;
  bool streamEnded_ = false;  // the current gzip member reached its trailer
  struct Zlib;
  std::unique_ptr<Zlib> z_;
};

/// Compresses `data` into a single gzip member (used to write fixtures and cached data).
std::string gzipCompress(std::string_view data, int level = 6);

}  // namespace gs

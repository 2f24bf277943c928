// File helpers implementation.
#include "support/file_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <fcntl.h>
#include <unistd.h>

#include "support/error.h"

namespace gs {

std::string readFile(const std::string& path) {
  std::error_code ec;
  GS_CHECK(!std::filesystem::is_directory(path, ec), path, ": is a directory, expected a file");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  GS_CHECK(f, path, ": cannot open: ", std::strerror(errno));
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) data.append(buf, n);
  bool err = std::ferror(f);
  std::fclose(f);
  GS_CHECK(!err, path, ": read error");
  return data;
}

StagedFile::StagedFile(std::string path) : path_(std::move(path)) {
  std::random_device rd;
  tmp_ = path_ + ".tmp" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 100000);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  GS_CHECK(fd_ >= 0, path_, ": cannot write: ", std::strerror(errno));
}

StagedFile::~StagedFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) std::remove(tmp_.c_str());
}

void StagedFile::write(const std::function<bool(int fd)>& write) {
  GS_ASSERT(fd_ >= 0 && !written_);
  bool ok = write(fd_);  // if it throws, the destructor removes the temp file
  int e = errno;
  ok = (::close(fd_) == 0) && ok;
  fd_ = -1;
  GS_CHECK(ok, path_, ": write failed: ", std::strerror(e ? e : errno));
  written_ = true;
}

void StagedFile::commit() {
  GS_ASSERT(written_ && !committed_);
  GS_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, path_,
           ": cannot rename temp file into place: ", std::strerror(errno));
  committed_ = true;
}

void writeFileAtomic(const std::string& path, const std::function<bool(int fd)>& write) {
  StagedFile f(path);
  f.write(write);
  f.commit();
}

bool writeAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t k = ::write(fd, c, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    c += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

void writeFileAtomic(const std::string& path, std::string_view data) {
  writeFileAtomic(path, [&](int fd) { return writeAll(fd, data.data(), data.size()); });
}

}  // namespace gs

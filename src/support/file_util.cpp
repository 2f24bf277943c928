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

void writeFileAtomic(const std::string& path, const std::function<bool(int fd)>& write) {
  std::random_device rd;
  std::string tmp = path + ".tmp" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 100000);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  GS_CHECK(fd >= 0, path, ": cannot write: ", std::strerror(errno));
  bool ok = false;
  try {
    ok = write(fd);
  } catch (...) {  // the writer failed with an error of its own: no temp file is left behind
    ::close(fd);
    std::remove(tmp.c_str());
    throw;
  }
  int e = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    GS_FAIL(path, ": write failed: ", std::strerror(e ? e : errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    e = errno;
    std::remove(tmp.c_str());
    GS_FAIL(path, ": cannot rename temp file into place: ", std::strerror(e));
  }
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

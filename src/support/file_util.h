// File helpers: whole-file read with clear errors, atomic write (temp file + rename).
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace gs {

/// Reads a whole file; throws gs::Error naming the path if it cannot be read.
std::string readFile(const std::string& path);

/// Writes all `n` bytes at `p` to `fd` (retrying short writes and EINTR); false on an I/O error,
/// with errno set.
bool writeAll(int fd, const void* p, size_t n);

/// Writes `data` to `path` atomically: a temp file in the same folder, then rename.
/// On failure nothing is left at `path` (an existing file is untouched).
void writeFileAtomic(const std::string& path, std::string_view data);

/// Same, with the content streamed by `write` into the temp file's descriptor (returns false on
/// failure, with errno set): for outputs too big to hold a second copy of in memory. If `write`
/// throws, the temp file is removed and the exception propagates.
void writeFileAtomic(const std::string& path, const std::function<bool(int fd)>& write);

/// One output file written under a temp name in its destination folder and renamed into place by
/// commit(); destroyed uncommitted (an error, an exception), it removes the temp file. An output
/// made of several files (a model and its external data) writes them all, then commits them all,
/// so a failed write leaves every existing file untouched and never pairs a new file with an old.
class StagedFile {
 public:
  /// Creates the temp file; throws gs::Error naming `path` if it cannot.
  explicit StagedFile(std::string path);
  ~StagedFile();
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  /// Streams the content with `write` (false on failure, with errno set) and closes the temp
  /// file; throws gs::Error naming the path on failure. Call once.
  void write(const std::function<bool(int fd)>& write);
  /// Renames the written temp file to the path; throws gs::Error naming the path on failure.
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool written_ = false, committed_ = false;
};

}  // namespace gs

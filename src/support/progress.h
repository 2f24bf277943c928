// Progress reporting: a redrawn bar with rate and ETA on a TTY, periodic plain lines otherwise.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>

namespace gs {

/// Progress options; every field has a usable default.
struct ProgressOptions {
  std::ostream* out = nullptr;     ///< destination; nullptr = std::cerr
  std::optional<bool> tty;         ///< bar mode; default: isatty(stderr) when out is std::cerr
  std::function<double()> clock;   ///< seconds on a monotonic clock; default steady_clock
  double logInterval = 10.0;       ///< plain mode: seconds between lines
  double redrawInterval = 0.1;     ///< bar mode: seconds between redraws
  std::string unit = "img";        ///< item unit in the rate ("img/s")
  int barWidth = 24;
};

/// Reports progress of `total` steps. Plain mode prints
///   "<label>: step 12/100 <status> | 1234.5 img/s | ETA 0:12"
/// at most every logInterval seconds (and the final line from finish()); bar mode redraws
///   "<label> [#####.....] 12/100 <status> | 1234.5 img/s | ETA 0:12"
/// in place with '\r'. Rate = items / elapsed; ETA = elapsed / done * (total - done).
class Progress {
 public:
  Progress(std::string label, int64_t total, ProgressOptions opts = {});
  /// `done` steps of `total` are complete and `items` items (e.g. images) processed so far.
  void update(int64_t done, int64_t items, const std::string& status = "");
  /// Prints the final line: "<label>: step n/n <status> | rate | 0:45 elapsed" (+ newline).
  void finish(const std::string& status = "");

  /// Items per second since construction (0 before any time has passed).
  double rate() const;
  /// Seconds remaining by linear extrapolation (0 when done or nothing done yet).
  double eta() const;
  double elapsed() const;
  bool isTty() const { return tty_; }

  /// "m:ss" below an hour, "h:mm:ss" above; negative or non-finite -> "?".
  static std::string formatDuration(double seconds);
  /// One report line (without '\r' or newline), as printed in plain mode.
  std::string line(const std::string& status) const;

 private:
  std::string label_;
  int64_t total_;
  ProgressOptions o_;
  std::ostream* out_;
  bool tty_ = false;
  double start_ = 0, last_print_ = -1e300;
  int64_t done_ = 0, items_ = 0;
  bool finished_ = false;
};

}  // namespace gs

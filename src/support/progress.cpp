// Progress implementation.
#include "support/progress.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace gs {

Progress::Progress(std::string label, int64_t total, ProgressOptions opts)
    : label_(std::move(label)), total_(total), o_(std::move(opts)) {
  out_ = o_.out ? o_.out : &std::cerr;
  if (o_.tty) tty_ = *o_.tty;
  else tty_ = out_ == &std::cerr && ::isatty(STDERR_FILENO);
  if (!o_.clock)
    o_.clock = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
  start_ = o_.clock();
}

double Progress::elapsed() const { return o_.clock() - start_; }

double Progress::rate() const {
  double e = elapsed();
  return e > 0 ? static_cast<double>(items_) / e : 0.0;
}

double Progress::eta() const {
  if (done_ <= 0 || done_ >= total_) return 0.0;
  return elapsed() / static_cast<double>(done_) * static_cast<double>(total_ - done_);
}

std::string Progress::formatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  auto t = static_cast<int64_t>(std::llround(s));
  char buf[48];
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                  static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  else
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", static_cast<long long>(t / 60),
                  static_cast<long long>(t % 60));
  return buf;
}

std::string Progress::line(const std::string& status) const {
  char rate[64];
  std::snprintf(rate, sizeof(rate), "%.1f %s/s", this->rate(), o_.unit.c_str());
  std::string s = label_ + ": step " + std::to_string(done_) + "/" + std::to_string(total_);
  if (!status.empty()) s += " " + status;
  s += std::string(" | ") + rate + " | ETA " + formatDuration(eta());
  return s;
}

void Progress::update(int64_t done, int64_t items, const std::string& status) {
  done_ = done;
  items_ = items;
  double now = o_.clock();
  if (tty_) {
    if (now - last_print_ < o_.redrawInterval && done < total_) return;
    last_print_ = now;
    int filled = total_ > 0 ? static_cast<int>(o_.barWidth * std::min(done, total_) / total_) : 0;
    std::string bar = "[" + std::string(filled, '#') + std::string(o_.barWidth - filled, '.') + "]";
    std::string l = line(status);
    // Bar mode: "<label> [###...] k/n ..." (the "step" word is dropped for width).
    std::string rest = l.substr(label_.size() + 7);  // after "<label>: step "
    *out_ << '\r' << label_ << ' ' << bar << ' ' << rest << "\x1b[K" << std::flush;
    return;
  }
  if (now - last_print_ < o_.logInterval) return;
  last_print_ = now;
  *out_ << line(status) << '\n' << std::flush;
}

void Progress::finish(const std::string& status) {
  if (finished_) return;
  finished_ = true;
  char rate[64];
  std::snprintf(rate, sizeof(rate), "%.1f %s/s", this->rate(), o_.unit.c_str());
  std::string s = label_ + ": step " + std::to_string(done_) + "/" + std::to_string(total_);
  if (!status.empty()) s += " " + status;
  s += std::string(" | ") + rate + " | " + formatDuration(elapsed()) + " elapsed";
  if (tty_) *out_ << '\r' << s << "\x1b[K\n" << std::flush;
  else *out_ << s << '\n' << std::flush;
}

}  // namespace gs

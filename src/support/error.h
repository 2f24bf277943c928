// Error reporting: GS_CHECK for user input (throws gs::Error), GS_ASSERT for internal invariants.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace gs {

/// The one exception type gstick throws for bad input or failed operations.
/// The message is a single line that names the file / node / op involved.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
inline void appendAll(std::ostringstream&) {}
template <typename T, typename... Rest>
void appendAll(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  appendAll(os, rest...);
}
/// Builds the message only when a check fails.
template <typename... Args>
[[noreturn]] void fail(const char* prefix, const Args&... args) {
  std::ostringstream os;
  os << prefix;
  appendAll(os, args...);
  throw Error(os.str());
}
}  // namespace detail

}  // namespace gs

/// Check a condition on user-provided input; throw gs::Error with the streamed message otherwise.
#define GS_CHECK(cond, ...)                      \
  do {                                           \
    if (!(cond)) ::gs::detail::fail("", __VA_ARGS__); \
  } while (0)

/// Unconditional user-facing failure.
#define GS_FAIL(...) ::gs::detail::fail("", __VA_ARGS__)

/// Internal invariant; failure is a gstick bug (still throws, never aborts).
#define GS_ASSERT(cond, ...)                                                              \
  do {                                                                                    \
    if (!(cond))                                                                          \
      ::gs::detail::fail("internal error (" __FILE__ ":" GS_STRINGIFY(__LINE__) "): " #cond " ", \
                         ##__VA_ARGS__);                                                  \
  } while (0)

#define GS_STRINGIFY_(x) #x
#define GS_STRINGIFY(x) GS_STRINGIFY_(x)

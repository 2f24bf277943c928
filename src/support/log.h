// Minimal leveled logging to stderr (GS_LOG_LEVEL env: error|warn|info|debug).
#pragma once
#include <string>

namespace gs {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

/// Current threshold; initialised from the GS_LOG_LEVEL environment variable (default warn).
LogLevel logLevel();
void setLogLevel(LogLevel level);
/// Writes "[gstick level] msg" to stderr when level <= threshold.
void logMessage(LogLevel level, const std::string& msg);

}  // namespace gs

#define GS_LOG(level, expr)                                       \
  do {                                                            \
    if (::gs::LogLevel::level <= ::gs::logLevel()) {              \
      std::ostringstream gs_log_os_;                              \
      gs_log_os_ << expr;                                         \
      ::gs::logMessage(::gs::LogLevel::level, gs_log_os_.str());  \
    }                                                             \
  } while (0)

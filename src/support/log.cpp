// Leveled logging implementation.
#include "support/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace gs {
namespace {
LogLevel initialLevel() {
  const char* env = std::getenv("GS_LOG_LEVEL");
  if (!env) return LogLevel::Warn;
  if (!std::strcmp(env, "error")) return LogLevel::Error;
  if (!std::strcmp(env, "info")) return LogLevel::Info;
  if (!std::strcmp(env, "debug")) return LogLevel::Debug;
  return LogLevel::Warn;
}
LogLevel& levelRef() {
  static LogLevel level = initialLevel();
  return level;
}
}  // namespace

LogLevel logLevel() { return levelRef(); }
void setLogLevel(LogLevel level) { levelRef() = level; }

void logMessage(LogLevel level, const std::string& msg) {
  static const char* names[] = {"error", "warn", "info", "debug"};
  std::fprintf(stderr, "[gstick %s] %s\n", names[static_cast<int>(level)], msg.c_str());
}

}  // namespace gs

// Log: one line per event, "dscache[pid] level: message", to stderr or
// DSCACHE_LOG_FILE, filtered by DSCACHE_LOG (error, warn, info, debug).
#pragma once

#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"

namespace dscache {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3 };

// Reads DSCACHE_LOG and DSCACHE_LOG_FILE. A malformed level is an error naming
// the variable; the logger then stays at its default (warn, stderr).
Status log_configure(const Env& env);

// Keys and paths come from the store and from programs: a newline in one
// must not forge a log line, nor an escape sequence drive a terminal. Control
// characters become \xNN, and a backslash \\, so the text stays unambiguous.
std::string log_escape(std::string_view text);

bool log_enabled(LogLevel level) noexcept;
void log_line(LogLevel level, std::string_view message) noexcept;
void logf(LogLevel level, const char* format, ...) noexcept __attribute__((format(printf, 2, 3)));

#define DSCACHE_LOG(level, ...)                                            \
  do {                                                                     \
    if (::dscache::log_enabled(::dscache::LogLevel::level))                \
      ::dscache::logf(::dscache::LogLevel::level, __VA_ARGS__);            \
  } while (0)

}  // namespace dscache

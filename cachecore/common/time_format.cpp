#include "common/time_format.h"

#include <array>
#include <cctype>
#include <charconv>

namespace dscache {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;

bool parse_fixed(std::string_view text, size_t pos, size_t len, int& out) {
  if (pos + len > text.size()) return false;
  auto first = text.data() + pos;
  auto [ptr, ec] = std::from_chars(first, first + len, out);
  return ec == std::errc() && ptr == first + len;
}

bool fields_valid(const std::tm& tm) {
  return tm.tm_mon >= 0 && tm.tm_mon < 12 && tm.tm_mday >= 1 && tm.tm_mday <= 31 && tm.tm_hour >= 0 &&
         tm.tm_hour < 24 && tm.tm_min >= 0 && tm.tm_min < 60 && tm.tm_sec >= 0 && tm.tm_sec <= 60;
}

// seconds + frac_ns since the epoch in nanoseconds; nullopt outside what an
// int64_t of nanoseconds holds (1677-09-21 to 2262-04-11).
std::optional<int64_t> to_ns(std::time_t seconds, int64_t frac_ns) {
  constexpr int64_t kMax = INT64_MAX / kNsPerSecond, kMin = INT64_MIN / kNsPerSecond;
  if (seconds >= kMax || seconds <= kMin) return std::nullopt;
  return static_cast<int64_t>(seconds) * kNsPerSecond + frac_ns;
}

std::tm utc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

}  // namespace

std::optional<int64_t> parse_iso8601_ns(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fff...]Z
  std::tm tm{};
  int year = 0, month = 0;
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') ||
      text[13] != ':' || text[16] != ':')
    return std::nullopt;
  if (!parse_fixed(text, 0, 4, year) || !parse_fixed(text, 5, 2, month) || !parse_fixed(text, 8, 2, tm.tm_mday) ||
      !parse_fixed(text, 11, 2, tm.tm_hour) || !parse_fixed(text, 14, 2, tm.tm_min) ||
      !parse_fixed(text, 17, 2, tm.tm_sec))
    return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  if (!fields_valid(tm)) return std::nullopt;
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int64_t scale = kNsPerSecond / 10;
    size_t digits = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      frac_ns += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
      ++digits;
    }
    if (digits == 0) return std::nullopt;
  }
  if (pos + 1 != text.size() || (text[pos] != 'Z' && text[pos] != 'z')) return std::nullopt;
  return to_ns(timegm(&tm), frac_ns);
}

std::optional<int64_t> parse_http_date_ns(std::string_view text) {
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  static constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (text.size() != 29 || text[3] != ',' || text[4] != ' ' || text[7] != ' ' || text[11] != ' ' ||
      text[16] != ' ' || text[19] != ':' || text[22] != ':' || text.substr(25) != " GMT")
    return std::nullopt;
  std::tm tm{};
  int year = 0;
  tm.tm_mon = -1;
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (text.substr(8, 3) == kMonths[i]) tm.tm_mon = static_cast<int>(i);
  }
  if (!parse_fixed(text, 5, 2, tm.tm_mday) || !parse_fixed(text, 12, 4, year) ||
      !parse_fixed(text, 17, 2, tm.tm_hour) || !parse_fixed(text, 20, 2, tm.tm_min) ||
      !parse_fixed(text, 23, 2, tm.tm_sec))
    return std::nullopt;
  tm.tm_year = year - 1900;
  if (!fields_valid(tm)) return std::nullopt;
  return to_ns(timegm(&tm), 0);
}

std::optional<int64_t> parse_epoch_seconds_ns(std::string_view text) {
  size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  int64_t seconds = 0;
  auto [ptr, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
  if (whole.empty() || ec != std::errc() || ptr != whole.data() + whole.size()) return std::nullopt;
  if (seconds < 0 || seconds > int64_t{1} << 33) return std::nullopt;  // beyond year 2242: not a timestamp
  int64_t frac_ns = 0;
  if (dot != std::string_view::npos) {
    std::string_view frac = text.substr(dot + 1);
    if (frac.empty()) return std::nullopt;
    int64_t scale = kNsPerSecond / 10;
    for (char c : frac) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      frac_ns += (c - '0') * scale;
      scale /= 10;
    }
  }
  return seconds * kNsPerSecond + frac_ns;
}

std::string format_amz_date(std::time_t t) {
  std::tm tm = utc(t);
  std::array<char, 32> buf{};
  return std::string(buf.data(), std::strftime(buf.data(), buf.size(), "%Y%m%dT%H%M%SZ", &tm));
}

std::string format_amz_day(std::time_t t) {
  std::tm tm = utc(t);
  std::array<char, 32> buf{};
  return std::string(buf.data(), std::strftime(buf.data(), buf.size(), "%Y%m%d", &tm));
}

}  // namespace dscache

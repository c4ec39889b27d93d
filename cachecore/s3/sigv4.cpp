#include "s3/sigv4.h"

#include <algorithm>
#include <cctype>

#include "common/time_format.h"
#include "s3/crypto.h"

namespace dscache {
namespace {

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Header values are trimmed and inner runs of spaces collapse to one.
std::string canonical_header_value(std::string_view value) {
  std::string out;
  bool space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string uri_encode(std::string_view text, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 2);
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c) || (c == '/' && !encode_slash)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<std::string> uri_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string canonical_query_string(std::vector<QueryParam> params) {
  for (auto& p : params) {
    p.name = uri_encode(p.name, true);
    p.value = uri_encode(p.value, true);
  }
  std::sort(params.begin(), params.end(), [](const QueryParam& a, const QueryParam& b) {
    return a.name != b.name ? a.name < b.name : a.value < b.value;
  });
  std::string out;
  for (const auto& p : params) {
    if (!out.empty()) out.push_back('&');
    out.append(p.name).push_back('=');
    out.append(p.value);
  }
  return out;
}

SigningOutput sign_v4(const Credentials& credentials, const SigningInput& input) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [name, value] : input.headers) headers.emplace_back(lower(name), canonical_header_value(value));
  std::stable_sort(headers.begin(), headers.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  std::string canonical_headers, signed_headers;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && headers[i].first == headers[i - 1].first) {
      // Repeated header: values join with commas on one canonical line.
      canonical_headers.pop_back();
      canonical_headers.append(",").append(headers[i].second).push_back('\n');
      continue;
    }
    canonical_headers.append(headers[i].first).append(":").append(headers[i].second).push_back('\n');
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers.append(headers[i].first);
  }

  SigningOutput out;
  out.canonical_request.append(input.method).push_back('\n');
  out.canonical_request.append(input.canonical_uri).push_back('\n');
  out.canonical_request.append(input.canonical_query).push_back('\n');
  out.canonical_request.append(canonical_headers).push_back('\n');
  out.canonical_request.append(signed_headers).push_back('\n');
  out.canonical_request.append(input.payload_hash);

  const std::string day = format_amz_day(input.time);
  const std::string scope =
      day + "/" + std::string(input.region) + "/" + std::string(input.service) + "/aws4_request";
  out.string_to_sign = "AWS4-HMAC-SHA256\n" + format_amz_date(input.time) + "\n" + scope + "\n" +
                       to_hex(sha256(out.canonical_request));

  Sha256Digest key = hmac_sha256("AWS4" + credentials.secret_access_key, day);
  key = hmac_sha256(as_view(key), input.region);
  key = hmac_sha256(as_view(key), input.service);
  key = hmac_sha256(as_view(key), "aws4_request");
  out.signature = to_hex(hmac_sha256(as_view(key), out.string_to_sign));
  out.authorization = "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + scope +
                      ",SignedHeaders=" + signed_headers + ",Signature=" + out.signature;
  return out;
}

}  // namespace dscache

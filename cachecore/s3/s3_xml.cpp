#include "s3/s3_xml.h"

#include <charconv>
#include <pugixml.hpp>

#include "common/time_format.h"
#include "s3/sigv4.h"

namespace dscache {
namespace {

std::string text_of(const pugi::xml_node& node, const char* child) { return node.child(child).text().get(); }

std::string strip_quotes(std::string value) {
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
  return value;
}

Status malformed(std::string_view what) {
  return Status::error(EIO, "malformed ListObjectsV2 response: " + std::string(what));
}

}  // namespace

std::optional<S3Error> parse_s3_error(std::string_view body) {
  if (body.empty()) return std::nullopt;
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8)) return std::nullopt;
  pugi::xml_node error = doc.child("Error");
  if (!error) return std::nullopt;
  S3Error out;
  out.code = text_of(error, "Code");
  out.message = text_of(error, "Message");
  out.request_id = text_of(error, "RequestId");
  out.bucket_name = text_of(error, "BucketName");
  out.region = text_of(error, "Region");
  out.endpoint = text_of(error, "Endpoint");
  return out;
}

Result<ListPage> parse_list_objects_v2(std::string_view body, std::string_view root_prefix) {
  pugi::xml_document doc;
  pugi::xml_parse_result parsed = doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) return malformed(std::string(parsed.description()) + " at byte " + std::to_string(parsed.offset));
  pugi::xml_node result = doc.child("ListBucketResult");
  if (!result) return malformed("no ListBucketResult element");

  const bool url_encoded = text_of(result, "EncodingType") == "url";
  auto decode = [&](std::string value, std::string_view what) -> Result<std::string> {
    if (!url_encoded) return value;
    auto decoded = uri_decode(value, true);
    if (!decoded) return malformed("bad URL encoding in " + std::string(what) + " '" + value + "'");
    return *decoded;
  };
  auto relative = [&](std::string key, std::string_view what) -> Result<std::string> {
    if (!key.starts_with(root_prefix)) {
      return malformed(std::string(what) + " '" + key + "' lies outside the requested prefix '" +
                       std::string(root_prefix) + "'");
    }
    return key.substr(root_prefix.size());
  };

  ListPage page;
  std::string truncated = text_of(result, "IsTruncated");
  if (truncated != "true" && truncated != "false") return malformed("IsTruncated is '" + truncated + "'");
  page.truncated = truncated == "true";
  page.next_continuation = text_of(result, "NextContinuationToken");
  if (page.truncated && page.next_continuation.empty()) return malformed("truncated page without NextContinuationToken");

  for (pugi::xml_node contents : result.children("Contents")) {
    ObjectInfo info;
    pugi::xml_node key_node = contents.child("Key");
    if (!key_node) return malformed("Contents without Key");
    auto key = decode(key_node.text().get(), "Key");
    if (!key.ok()) return key.status();
    auto rel = relative(std::move(*key), "Key");
    if (!rel.ok()) return rel.status();
    info.key = std::move(*rel);

    std::string size = text_of(contents, "Size");
    auto [ptr, ec] = std::from_chars(size.data(), size.data() + size.size(), info.size);
    if (size.empty() || ec != std::errc() || ptr != size.data() + size.size()) {
      return malformed("Size '" + size + "' of '" + info.key + "'");
    }
    info.etag = strip_quotes(text_of(contents, "ETag"));
    std::string modified = text_of(contents, "LastModified");
    auto mtime = parse_iso8601_ns(modified);
    if (!mtime) return malformed("LastModified '" + modified + "' of '" + info.key + "'");
    info.last_modified_ns = *mtime;
    page.objects.push_back(std::move(info));
  }
  for (pugi::xml_node prefix_node : result.children("CommonPrefixes")) {
    pugi::xml_node prefix = prefix_node.child("Prefix");
    if (!prefix) return malformed("CommonPrefixes without Prefix");
    auto value = decode(prefix.text().get(), "Prefix");
    if (!value.ok()) return value.status();
    auto rel = relative(std::move(*value), "Prefix");
    if (!rel.ok()) return rel.status();
    page.common_prefixes.push_back(std::move(*rel));
  }
  return page;
}

}  // namespace dscache

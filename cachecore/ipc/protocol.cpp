// libc only: this file is also compiled into libdscache.so.
#include "ipc/protocol.h"

#include <cstring>

namespace dscache::ipc {

size_t encode_request(char* out, MessageType type, uint32_t request_id, uint64_t mount_id, const char* path,
                      size_t path_length, uint64_t offset, uint64_t length, uint32_t flags) {
  const size_t total = sizeof(MessageHeader) + sizeof(RequestBody) + path_length;
  if (total > kMaxMessage) return 0;
  MessageHeader header{kMagic, kVersion, static_cast<uint16_t>(type),
                       static_cast<uint32_t>(sizeof(RequestBody) + path_length), request_id};
  RequestBody body{mount_id, offset, length, flags, static_cast<uint32_t>(path_length)};
  std::memcpy(out, &header, sizeof header);
  std::memcpy(out + sizeof header, &body, sizeof body);
  if (path_length > 0) std::memcpy(out + sizeof header + sizeof body, path, path_length);
  return total;
}

size_t encode_reply(char* out, uint32_t request_id, int error, uint64_t value, const char* text, size_t text_length) {
  if (text_length > kMaxMessage - sizeof(MessageHeader) - sizeof(ReplyBody)) {
    text_length = kMaxMessage - sizeof(MessageHeader) - sizeof(ReplyBody);
  }
  MessageHeader header{kMagic, kVersion, static_cast<uint16_t>(MessageType::reply),
                       static_cast<uint32_t>(sizeof(ReplyBody) + text_length), request_id};
  ReplyBody body{error, static_cast<uint32_t>(text_length), value};
  std::memcpy(out, &header, sizeof header);
  std::memcpy(out + sizeof header, &body, sizeof body);
  if (text_length > 0) std::memcpy(out + sizeof header + sizeof body, text, text_length);
  return sizeof header + sizeof body + text_length;
}

bool header_valid(const MessageHeader& header) {
  return header.magic == kMagic && header.version == kVersion &&
         header.length <= kMaxMessage - sizeof(MessageHeader);
}

const char* decode_request(const MessageHeader& header, const char* body, RequestBody& request, const char** path) {
  if (header.length < sizeof(RequestBody)) return "request too short";
  std::memcpy(&request, body, sizeof request);
  if (sizeof request + request.path_length > header.length) return "request path overruns the message";
  *path = body + sizeof request;
  return nullptr;
}

bool reply_header_valid(const MessageHeader& header, uint32_t request_id) {
  return header_valid(header) && header.request_id == request_id &&
         header.type == static_cast<uint16_t>(MessageType::reply) && header.length >= sizeof(ReplyBody);
}

ReplyBody decode_reply(const MessageHeader& header, const char* body, char* text, size_t text_size) {
  ReplyBody reply{};
  std::memcpy(&reply, body, sizeof reply);
  if (text_size > 0) {
    size_t copy = reply.text_length < text_size - 1 ? reply.text_length : text_size - 1;
    if (copy > header.length - sizeof reply) copy = header.length - sizeof reply;
    std::memcpy(text, body + sizeof reply, copy);
    text[copy] = '\0';
  }
  return reply;
}

}  // namespace dscache::ipc

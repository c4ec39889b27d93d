// libFuzzer target: the daemon protocol's decoders (ipc/protocol.h), the
// code the daemon runs on what a client sends and a client runs on what the
// daemon answers.
//
// Input: the first byte picks the client's text buffer size; the rest is a
// byte stream read from a socket. It is cut into messages as the daemon's
// read loop cuts them (daemon_server.cpp: header_valid, then wait for
// header.length bytes); each message is decoded as a request
// (decode_request) and as a reply (reply_header_valid, decode_reply). Every
// body is a heap copy of exactly header.length bytes, so that ASan sees a read
// past it. A decoded message that fills its body exactly encodes back to the
// same bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/protocol.h"

namespace {

namespace ipc = dscache::ipc;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void as_request(const ipc::MessageHeader& header, const std::string_view message, const char* body) {
  const auto type = static_cast<ipc::MessageType>(header.type);
  if (type == ipc::MessageType::hello || type == ipc::MessageType::status) return;  // no body needed
  ipc::RequestBody request{};
  const char* path = nullptr;
  const char* why = ipc::decode_request(header, body, request, &path);
  if (why != nullptr) {
    check(why[0] != '\0');
    return;
  }
  check(path == body + sizeof request);
  check(sizeof request + request.path_length <= header.length);
  std::string owned(path, request.path_length);  // as the daemon copies it
  if (sizeof request + request.path_length == header.length) {
    char encoded[ipc::kMaxMessage];
    const size_t n = ipc::encode_request(encoded, type, header.request_id, request.mount_id, owned.data(),
                                         owned.size(), request.offset, request.length, request.flags);
    check(n == message.size() && std::memcmp(encoded, message.data(), n) == 0);
  }
}

void as_reply(const ipc::MessageHeader& header, const std::string_view message, const char* body, size_t text_size) {
  check(!ipc::reply_header_valid(header, header.request_id + 1));
  if (!ipc::reply_header_valid(header, header.request_id)) return;
  std::vector<char> text(text_size > 0 ? text_size : 1, 'x');
  const ipc::ReplyBody reply = ipc::decode_reply(header, body, text.data(), text_size);
  if (text_size == 0) {
    check(text[0] == 'x');
    return;
  }
  const void* nul = std::memchr(text.data(), '\0', text_size);
  check(nul != nullptr);
  const size_t room = header.length - sizeof reply;
  const size_t want = reply.text_length < room ? reply.text_length : room;
  const size_t copied = want < text_size - 1 ? want : text_size - 1;
  check(text[copied] == '\0' && std::memcmp(text.data(), body + sizeof reply, copied) == 0);
  if (reply.text_length == room && copied == room) {
    char encoded[ipc::kMaxMessage];
    const size_t n = ipc::encode_reply(encoded, header.request_id, reply.error, reply.value, text.data(), copied);
    check(n == message.size() && std::memcmp(encoded, message.data(), n) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr size_t kTextSizes[] = {512, 0, 1, 2, 16, ipc::kMaxMessage};  // 512: the shim's
  const size_t text_size = kTextSizes[data[0] % (sizeof kTextSizes / sizeof kTextSizes[0])];
  const std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);

  size_t pos = 0;
  while (in.size() - pos >= sizeof(ipc::MessageHeader)) {
    ipc::MessageHeader header{};
    std::memcpy(&header, in.data() + pos, sizeof header);
    if (!ipc::header_valid(header)) {
      check(header.magic != ipc::kMagic || header.version != ipc::kVersion ||
            header.length > ipc::kMaxMessage - sizeof header);
      break;  // the daemon closes the connection; the client disconnects
    }
    if (in.size() - pos < sizeof header + header.length) break;  // waits for more
    const std::string_view message(in.data() + pos, sizeof header + header.length);
    const std::vector<char> body(in.begin() + static_cast<std::ptrdiff_t>(pos + sizeof header),
                                 in.begin() + static_cast<std::ptrdiff_t>(pos + sizeof header + header.length));
    pos += sizeof header + header.length;
    as_request(header, message, body.data());
    as_reply(header, message, body.data(), text_size);
  }
  return 0;
}

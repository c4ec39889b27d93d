// The daemon protocol: versioned, length-prefixed binary messages on a Unix
// stream socket. Plain data, libc only (the shim speaks it).
//
// Every request names what it needs and gets exactly one reply, sent when
// the data is published (or with an errno and a one-line message). A client
// that disconnects releases everything it held (pins).
#pragma once

#include <cstddef>
#include <cstdint>

#include "config/config.h"

namespace dscache::ipc {

inline constexpr uint32_t kMagic = 0x44534331;  // "DSC1"
inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kMaxMessage = 8192;
inline constexpr size_t kMaxReplyText = 1024;

enum class MessageType : uint16_t {
  hello = 1,          // -> value: the daemon's pid
  ensure_listed = 2,  // path: a directory ("" for the mount root); its listing is present and fresh
  fetch_object = 3,   // path: a file; it is complete (whole objects up to DSCACHE_WHOLE_FILE_MAX)
  fetch_range = 4,    // path, offset, length: those bytes of a large file are present; readahead hint in flags
  complete_file = 5,  // path: every byte of the file is present (mmap, sendfile, exec of a partial file)
  pin = 6,            // path: keep the (partial) file while this connection lives
  unpin = 7,
  status = 8,         // -> text: the daemon's state (for `dscache status`)
  evict = 9,          // path: a file; its cached bytes are dropped (it stays listed)
  verify = 10,        // fsck: every checksum is checked (kFlagRepair: bad data made absent) -> value: bad files
  reply = 100,
};

struct MessageHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t type;        // MessageType
  uint32_t length;      // bytes after this header
  uint32_t request_id;  // echoed in the reply
};
static_assert(sizeof(MessageHeader) == 16);

inline constexpr uint32_t kFlagSequential = 1;  // fetch_range: the reader is streaming: read ahead
inline constexpr uint32_t kFlagBackground = 2;  // warmup traffic: behind demand requests
inline constexpr uint32_t kFlagRepair = 4;      // verify: make what is bad absent (fetched again on use);
                                                // fetch_object: the reader found the complete file damaged
inline constexpr uint32_t kFlagHold = 8;        // fetch_range: read where the shim cannot check it afterwards
                                                // (POSIX aio): its blocks are not recycled for kAioHoldMs
inline constexpr uint32_t kAioHoldMs = 30'000;

struct RequestBody {
  uint64_t mount_id;
  uint64_t offset;
  uint64_t length;
  uint32_t flags;
  uint32_t path_length;  // followed by the path (relative to the mount), not NUL-terminated
};
static_assert(sizeof(RequestBody) == 32);

struct ReplyBody {
  int32_t error;  // 0 or an errno
  uint32_t text_length;  // followed by the text (an error message, or status output)
  uint64_t value;
};
static_assert(sizeof(ReplyBody) == 16);

// Encodes a request into `out` (capacity kMaxMessage); returns its length, or 0 if the path is too long.
size_t encode_request(char* out, MessageType type, uint32_t request_id, uint64_t mount_id, const char* path,
                      size_t path_length, uint64_t offset, uint64_t length, uint32_t flags);
size_t encode_reply(char* out, uint32_t request_id, int error, uint64_t value, const char* text, size_t text_length);

// Validates a header read from the wire (magic, version, length bound).
bool header_valid(const MessageHeader& header);

// The daemon's decoding of a request body (`header.length` bytes at `body`;
// hello and status carry none): the fixed part into `request`, and `path`
// pointing into `body` (request.path_length bytes). Null on success, else why
// the request is malformed ("request too short", "request path overruns the message").
const char* decode_request(const MessageHeader& header, const char* body, RequestBody& request, const char** path);

// The client's checks of a reply's header: valid, a reply, to request
// `request_id`, long enough for a ReplyBody.
bool reply_header_valid(const MessageHeader& header, uint32_t request_id);
// The client's decoding of a reply body (`header.length` bytes at `body`,
// reply_header_valid): returns the fixed part; with text_size > 0 copies its
// text into `text`, NUL-terminated and cut to text_size - 1 bytes and to the
// message.
ReplyBody decode_reply(const MessageHeader& header, const char* body, char* text, size_t text_size);

}  // namespace dscache::ipc

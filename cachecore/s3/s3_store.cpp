#include "s3/s3_store.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <condition_variable>
#include <mutex>

#include "common/log.h"
#include "common/time_format.h"
#include "s3/crypto.h"
#include "s3/s3_errors.h"
#include "s3/s3_xml.h"

namespace dscache {

struct S3Store::Context {
  Context(S3Settings settings, S3Location loc, FetchEngine* eng, S3StoreOptions opts)
      : endpoint(std::move(settings), loc.bucket),
        location(std::move(loc)),
        engine(eng),
        options(opts),
        url("s3://" + location.bucket + "/" + location.prefix) {}

  std::string full_key(std::string_view key) const { return location.prefix + std::string(key); }
  std::string describe(std::string_view key) const { return url + std::string(key); }

  S3Endpoint endpoint;
  const S3Location location;
  // Not owned: transfers hold the context and may be the last to let go of
  // it, on an engine thread, which must not be the one to destroy the engine.
  FetchEngine* const engine;
  const S3StoreOptions options;
  const std::string url;
};

namespace {

using Context = S3Store::Context;
constexpr size_t kMaxListBody = 64 << 20;

bool parse_u64(std::string_view text, uint64_t& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && ptr == text.data() + text.size();
}

std::string strip_quotes(std::string_view value) {
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
  return std::string(value);
}

// Identity of the version a HEAD or GET response describes. `size` is the
// whole object's size (the caller knows it from Content-Length or Content-Range).
ObjectInfo info_from_head(const HttpResponseHead& head, std::string_view key, uint64_t size) {
  ObjectInfo info;
  info.key = std::string(key);
  info.size = size;
  info.etag = strip_quotes(head.header("etag"));
  if (auto mtime = parse_http_date_ns(head.header("last-modified"))) info.last_modified_ns = *mtime;
  if (std::string_view meta = head.header("x-amz-meta-mtime"); !meta.empty()) {
    info.meta_mtime_ns = parse_epoch_seconds_ns(meta);
    if (!info.meta_mtime_ns) {
      DSCACHE_LOG(debug, "ignoring x-amz-meta-mtime '%.*s' of %.*s: not epoch seconds", static_cast<int>(meta.size()),
                  meta.data(), static_cast<int>(key.size()), key.data());
    }
  }
  return info;
}

// "bytes 0-9/443" -> {0, 9, 443}; "bytes */443" -> {npos, npos, 443}. Total may be '*'.
struct ContentRange {
  uint64_t first = ByteRange::kToEnd;
  uint64_t last = ByteRange::kToEnd;
  std::optional<uint64_t> total;
};

std::optional<ContentRange> parse_content_range(std::string_view text) {
  if (!text.starts_with("bytes ")) return std::nullopt;
  text.remove_prefix(6);
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  ContentRange out;
  std::string_view span = text.substr(0, slash), total = text.substr(slash + 1);
  if (total != "*") {
    uint64_t value = 0;
    if (!parse_u64(total, value)) return std::nullopt;
    out.total = value;
  }
  if (span != "*") {
    size_t dash = span.find('-');
    if (dash == std::string_view::npos || !parse_u64(span.substr(0, dash), out.first) ||
        !parse_u64(span.substr(dash + 1), out.last) || out.last < out.first)
      return std::nullopt;
  }
  return out;
}

// Common to every S3 request: signing per attempt, error classification,
// region redirects and clock-skew correction.
class S3Transfer : public HttpTransfer {
 public:
  S3Transfer(std::shared_ptr<const Context> context, std::string method, std::string key, std::string what)
      : context_(std::move(context)), method_(std::move(method)), key_(std::move(key)), what_(std::move(what)) {}

  Status prepare(HttpRequest& request, int) override {
    S3Endpoint::Headers headers;
    add_headers(headers);
    request = context_->endpoint.make_request(method_, key_, query_, headers, payload_hash_, &signed_region_,
                                              &signed_time_);
    request.body = body_;
    return {};
  }

  bool on_head(const HttpResponseHead&) override { return true; }
  bool on_body(std::span<const std::byte>) override { return true; }

  Verdict classify(const AttemptOutcome& outcome, Status& status, FailureKind& kind) override {
    if (outcome.transport == TransportError::aborted) {
      status = abort_status_.ok() ? Status::error(ECANCELED, what_ + ": cancelled") : abort_status_;
      return Verdict::done;
    }
    if (outcome.transport != TransportError::none) {
      kind = failure_kind(outcome.transport);
      status = transport_error_status(outcome, what_, context_->endpoint);
      return kind == FailureKind::fatal ? Verdict::done : Verdict::retry;
    }
    const HttpResponseHead& head = *outcome.head;
    if (head.status >= 200 && head.status < 300) return on_success(outcome, status, kind);
    if (auto verdict = on_error_response(outcome, status)) return *verdict;

    auto error = parse_s3_error(outcome.error_body);
    std::string code = error ? error->code : "";
    std::string hinted_region(head.header("x-amz-bucket-region"));
    if (hinted_region.empty() && error) hinted_region = error->region;
    status = s3_error_status(head.status, error, head.header("x-amz-request-id"), what_, context_->endpoint);
    // A wrong region or a skewed clock is corrected and the request re-sent
    // at once. Parallel requests signed before the correction see the same
    // answer, so the test is against what this request was signed with; the
    // engine bounds these free re-tries.
    if ((head.status == 301 || head.status == 307 || head.status == 400 || head.status == 403) &&
        !hinted_region.empty() && hinted_region != signed_region_) {
      context_->endpoint.adopt_region(hinted_region);
      return Verdict::retry_now;
    }
    const bool skew_code =
        code == "RequestTimeTooSkewed" || code == "RequestExpired" || code == "RequestTimeTooSkewedException";
    // A HEAD's 403 has no body to name the cause: a Date more than 5 minutes
    // from the signing time is taken as the cause (S3 allows 15).
    if (skew_code || (head.status == 403 && code.empty())) {
      if (auto server_ns = parse_http_date_ns(head.header("date"))) {
        auto server_now = static_cast<std::time_t>(*server_ns / 1'000'000'000);
        if (skew_code || std::abs(static_cast<int64_t>(server_now) - static_cast<int64_t>(signed_time_)) > 300) {
          context_->endpoint.adopt_server_time(server_now);
          return Verdict::retry_now;
        }
      }
    }
    kind = classify_s3_failure(head.status, code);
    return kind == FailureKind::fatal ? Verdict::done : Verdict::retry;
  }

 protected:
  virtual void add_headers(S3Endpoint::Headers&) {}
  // A 2xx response arrived whole (as far as the transport knows).
  virtual Verdict on_success(const AttemptOutcome&, Status&, FailureKind&) { return Verdict::done; }
  // A chance to treat an error status specially (GET: 416).
  virtual std::optional<Verdict> on_error_response(const AttemptOutcome&, Status&) { return std::nullopt; }
  // Stops the attempt from a callback with `status` as the outcome.
  bool abort(Status status) {
    abort_status_ = std::move(status);
    return false;
  }

  const std::shared_ptr<const Context> context_;
  const std::string method_;
  const std::string key_;   // the full key in the bucket
  const std::string what_;  // s3://bucket/prefix/key, for messages
  std::vector<QueryParam> query_;
  std::string payload_hash_ = std::string(kUnsignedPayload);
  std::string_view body_;
  Status abort_status_;
  std::string signed_region_;  // of the current attempt
  std::time_t signed_time_ = 0;
};

// A transfer the caller waits for.
template <class Base>
class Waitable : public Base {
 public:
  using Base::Base;

  void finish(Status status) override {
    std::lock_guard lock(mutex_);
    status_ = std::move(status);
    finished_ = true;
    cv_.notify_all();
  }
  Status wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return finished_; });
    return status_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool finished_ = false;
  Status status_;
};

class HeadTransfer : public S3Transfer {
 public:
  HeadTransfer(std::shared_ptr<const Context> context, std::string_view key)
      : S3Transfer(context, "HEAD", context->full_key(key), context->describe(key)), relative_key_(key) {}

  ObjectInfo info;

 protected:
  Verdict on_success(const AttemptOutcome& outcome, Status& status, FailureKind&) override {
    uint64_t size = 0;
    if (!parse_u64(outcome.head->header("content-length"), size)) {
      status = Status::error(EIO, what_ + ": HEAD response without a valid Content-Length");
      return Verdict::done;
    }
    info = info_from_head(*outcome.head, relative_key_, size);
    return Verdict::done;
  }

 private:
  std::string relative_key_;
};

class ListTransfer : public S3Transfer {
 public:
  ListTransfer(std::shared_ptr<const Context> context, const ListRequest& request)
      : S3Transfer(context, "GET", "", context->describe(request.prefix) + " (listing)") {
    query_.push_back({"list-type", "2"});
    query_.push_back({"encoding-type", "url"});
    query_.push_back({"max-keys", std::to_string(request.max_keys)});
    query_.push_back({"prefix", context->full_key(request.prefix)});
    if (!request.delimiter.empty()) query_.push_back({"delimiter", request.delimiter});
    if (!request.continuation.empty()) query_.push_back({"continuation-token", request.continuation});
    if (!request.start_after.empty()) query_.push_back({"start-after", context->full_key(request.start_after)});
  }

  ListPage page;

  bool on_body(std::span<const std::byte> data) override {
    if (body_text_.size() + data.size() > kMaxListBody) {
      return abort(Status::error(EIO, what_ + ": listing page larger than 64 MiB"));
    }
    body_text_.append(reinterpret_cast<const char*>(data.data()), data.size());
    return true;
  }

 protected:
  Status prepare(HttpRequest& request, int attempt) override {
    body_text_.clear();
    return S3Transfer::prepare(request, attempt);
  }
  Verdict on_success(const AttemptOutcome&, Status& status, FailureKind&) override {
    auto parsed = parse_list_objects_v2(body_text_, context_->location.prefix);
    if (!parsed.ok()) {
      status = parsed.status().with_context(what_);
      return Verdict::done;
    }
    page = std::move(*parsed);
    return Verdict::done;
  }

 private:
  std::string body_text_;
};

class PutTransfer : public S3Transfer {
 public:
  PutTransfer(std::shared_ptr<const Context> context, std::string_view key, std::string_view bytes,
              const std::map<std::string, std::string>& metadata)
      : S3Transfer(context, "PUT", context->full_key(key), context->describe(key)) {
    body_ = bytes;
    payload_hash_ = to_hex(sha256(bytes));
    for (const auto& [name, value] : metadata) headers_.emplace_back("x-amz-meta-" + name, value);
    headers_.emplace_back("Content-Type", "application/octet-stream");
  }

 protected:
  void add_headers(S3Endpoint::Headers& headers) override { headers = headers_; }

 private:
  S3Endpoint::Headers headers_;
};

// A read that delivers no bytes still reports the object's identity and
// checks its version: one HEAD. For zero-length reads, and reads whose every
// part found nothing (416) at or past the end.
class EmptyReadTransfer : public HeadTransfer {
 public:
  EmptyReadTransfer(std::shared_ptr<const Context> context, std::string_view key, std::string if_match,
                    uint64_t offset, ObjectStore::GetCallback done)
      : HeadTransfer(std::move(context), key), if_match_(std::move(if_match)), offset_(offset), done_(std::move(done)) {}

  void finish(Status status) override {
    if (!status.ok()) return done_(status);
    if (!if_match_.empty() && info.etag != if_match_) {
      return done_(Status::error(ESTALE, what_ + ": the object changed in the store (ETag " + info.etag +
                                             ", expected " + if_match_ + ")"));
    }
    done_(GetResult{info, offset_, 0});
  }

 private:
  const std::string if_match_;
  const uint64_t offset_;
  ObjectStore::GetCallback done_;
};

class GetPart;

// One get() call: splits the range into parts, runs up to `parallelism` of
// them at once, checks that every part saw the same object version, and
// completes the caller's callback once.
class GetOperation : public std::enable_shared_from_this<GetOperation> {
 public:
  GetOperation(std::shared_ptr<const Context> context, std::string_view key, const GetRequest& request,
               ByteSink& sink, Priority priority, ObjectStore::GetCallback done)
      : context_(std::move(context)),
        key_(key),
        request_(request),
        sink_(sink),
        priority_(priority),
        done_(std::move(done)),
        parallelism_(request.parallelism != 0 ? request.parallelism : context_->options.parallelism),
        etag_(request.if_match) {
    const ByteRange& range = request.range;
    begin_ = range.suffix ? 0 : range.offset;
    end_ = range.suffix || range.length > ByteRange::kToEnd - range.offset ? ByteRange::kToEnd
                                                                          : range.offset + range.length;
    next_ = begin_;
  }

  void start();
  // A part learnt the object's identity from its response; an error if it
  // contradicts what the other parts saw.
  Status learn(const HttpResponseHead& head, std::optional<uint64_t> total);
  void part_finished(const GetPart& part, const Status& status);
  bool failed() const {
    std::lock_guard lock(mutex_);
    return failed_;
  }
  std::string if_match() const {
    std::lock_guard lock(mutex_);
    return etag_;
  }
  std::optional<uint64_t> size() const {
    std::lock_guard lock(mutex_);
    return size_;
  }
  ByteSink& sink() { return sink_; }
  const std::shared_ptr<const Context>& context() const { return context_; }
  const std::string& key() const { return key_; }
  void set_suffix_start(uint64_t start) {
    std::lock_guard lock(mutex_);
    begin_ = start;
  }
  // A response of unknown length ended properly at `offset`: the object ends there.
  // Only for reads to the end, whose parts then run one at a time, so that
  // every byte before `offset` has been delivered.
  void learn_end(uint64_t offset) {
    std::lock_guard lock(mutex_);
    learn_end_locked(offset);
  }
  // A part was told (416) that nothing exists at or after `offset`.
  void unsatisfiable_at(uint64_t offset) {
    std::lock_guard lock(mutex_);
    unsatisfiable_from_ = std::min(unsatisfiable_from_, offset);
    learn_end_locked(offset);
  }

 private:
  std::vector<std::shared_ptr<GetPart>> plan_locked();
  void submit(std::vector<std::shared_ptr<GetPart>> parts);
  void learn_end_locked(uint64_t offset) {
    if (size_ || end_ != ByteRange::kToEnd) return;
    size_ = offset;
    end_ = std::max(offset, begin_);
  }

  const std::shared_ptr<const Context> context_;
  const std::string key_;  // relative to the store root
  const GetRequest request_;
  ByteSink& sink_;
  const Priority priority_;
  ObjectStore::GetCallback done_;
  const uint32_t parallelism_;

  mutable std::mutex mutex_;
  uint64_t begin_ = 0, end_ = 0, next_ = 0;  // end_ may be kToEnd until the size is known
  uint64_t part_length_ = 0;                  // bytes per part; 0 until planned
  std::optional<uint64_t> size_;
  std::string etag_;
  ObjectInfo info_;
  bool have_info_ = false;
  uint32_t in_flight_ = 0;
  uint64_t delivered_ = 0;
  uint64_t unsatisfiable_from_ = ByteRange::kToEnd;
  bool failed_ = false;
  bool completed_ = false;
  Status error_;
};

// One ranged GET of an operation: [begin, end), or the last N bytes.
class GetPart : public S3Transfer {
 public:
  GetPart(std::shared_ptr<GetOperation> op, uint64_t begin, uint64_t end, bool suffix, uint64_t suffix_length)
      : S3Transfer(op->context(), "GET", op->context()->full_key(op->key()), op->context()->describe(op->key())),
        op_(std::move(op)),
        begin_(begin),
        end_(end),
        suffix_(suffix),
        suffix_length_(suffix_length) {}

  uint64_t begin() const { return begin_; }
  uint64_t received() const { return received_; }

  bool on_head(const HttpResponseHead& head) override {
    skip_ = 0;
    if (head.status < 200 || head.status >= 300) return true;
    if (op_->failed()) return abort(Status::error(ECANCELED, what_ + ": cancelled"));
    std::optional<uint64_t> total;
    if (head.status == 206) {
      auto range = parse_content_range(head.header("content-range"));
      if (!range || range->first == ByteRange::kToEnd) {
        return abort(Status::error(EIO, what_ + ": bad Content-Range '" + std::string(head.header("content-range")) + "'"));
      }
      if (suffix_ && received_ == 0) {
        begin_ = range->first;
        op_->set_suffix_start(begin_);
      }
      if (range->first != begin_ + received_) {
        return abort(Status::error(EIO, what_ + ": the store answered a range starting at " +
                                            std::to_string(range->first) + " instead of " +
                                            std::to_string(begin_ + received_)));
      }
      total = range->total;
      // "bytes 0-99/*" for a request of 0-199: the server clipped the range
      // to the object, which therefore ends at 100.
      if (!total && !suffix_ && end_ != ByteRange::kToEnd && range->last + 1 < end_) total = range->last + 1;
    } else {
      // 200: the whole object (the store ignored Range): skip what we have.
      uint64_t length = 0;
      if (parse_u64(head.header("content-length"), length)) total = length;
      if (suffix_ && !total) {
        return abort(Status::error(EIO, what_ + ": the store ignored the suffix range and did not say the size"));
      }
      if (suffix_ && received_ == 0 && total) {
        begin_ = *total - std::min(*total, suffix_length_);
        op_->set_suffix_start(begin_);
      }
      skip_ = begin_ + received_;
    }
    if (Status s = op_->learn(head, total); !s.ok()) return abort(s);
    if (suffix_ && total) end_ = *total;
    return true;
  }

  bool on_body(std::span<const std::byte> data) override {
    if (skip_ > 0) {
      size_t drop = static_cast<size_t>(std::min<uint64_t>(skip_, data.size()));
      data = data.subspan(drop);
      skip_ -= drop;
    }
    uint64_t position = begin_ + received_;
    if (end_ != ByteRange::kToEnd) {
      uint64_t room = end_ > position ? end_ - position : 0;
      if (data.size() > room) data = data.first(static_cast<size_t>(room));
    }
    if (data.empty()) return true;
    if (op_->failed()) return abort(Status::error(ECANCELED, what_ + ": cancelled"));
    if (Status s = op_->sink().write_at(position, data); !s.ok()) return abort(s.with_context(what_));
    received_ += data.size();
    return true;
  }

  void finish(Status status) override { op_->part_finished(*this, status); }
  uint64_t progress() const override { return received_; }
  bool cancelled() const override { return op_->failed(); }

 protected:
  void add_headers(S3Endpoint::Headers& headers) override {
    if (suffix_ && received_ == 0) {
      headers.emplace_back("Range", "bytes=-" + std::to_string(suffix_length_));
    } else if (end_ == ByteRange::kToEnd) {
      headers.emplace_back("Range", "bytes=" + std::to_string(begin_ + received_) + "-");
    } else {
      headers.emplace_back("Range", "bytes=" + std::to_string(begin_ + received_) + "-" + std::to_string(end_ - 1));
    }
    std::string etag = op_->if_match();
    if (!etag.empty()) headers.emplace_back("If-Match", "\"" + etag + "\"");
  }

  Verdict on_success(const AttemptOutcome&, Status& status, FailureKind& kind) override {
    auto size = op_->size();
    if (!size) {
      // No response said the size, and this one ended properly (curl checks
      // Content-Length and chunked framing): short of the part's end, the
      // object ends where it did; otherwise the next part will tell.
      if (begin_ + received_ < end_) op_->learn_end(begin_ + received_);
      return Verdict::done;
    }
    uint64_t expected_end = std::min(end_, *size);
    if (expected_end != ByteRange::kToEnd && begin_ + received_ < expected_end) {
      // The body ended early without a transport error: resume from here.
      kind = FailureKind::transient;
      status = Status::error(EIO, what_ + ": response body ended at byte " + std::to_string(begin_ + received_) +
                                      " of " + std::to_string(expected_end));
      return Verdict::retry;
    }
    return Verdict::done;
  }

  std::optional<Verdict> on_error_response(const AttemptOutcome& outcome, Status& status) override {
    if (outcome.head->status != 416) return std::nullopt;
    // 416: no byte at or after our start exists (RFC 9110 15.5.17; If-Match
    // is evaluated first, so the version is still the one asked for). A read
    // past the end reads nothing; that is not an error. Stores may or may not
    // say the size ("bytes */N"; radosgw does not).
    std::optional<uint64_t> total;
    if (auto range = parse_content_range(outcome.head->header("content-range"))) total = range->total;
    if (Status s = op_->learn(*outcome.head, total); !s.ok()) status = s;
    op_->unsatisfiable_at(begin_ + received_);
    return Verdict::done;
  }

  Status prepare(HttpRequest& request, int attempt) override {
    if (op_->failed()) return Status::error(ECANCELED, what_ + ": cancelled");
    return S3Transfer::prepare(request, attempt);
  }

 private:
  const std::shared_ptr<GetOperation> op_;
  uint64_t begin_, end_;
  const bool suffix_;
  const uint64_t suffix_length_;
  uint64_t received_ = 0;  // bytes of [begin, end) delivered to the sink
  uint64_t skip_ = 0;      // bytes to drop from a 200 response's body
};

void GetOperation::start() {
  std::vector<std::shared_ptr<GetPart>> parts;
  {
    std::lock_guard lock(mutex_);
    if (request_.range.suffix) {
      in_flight_ = 1;
      next_ = end_;
      parts.push_back(
          std::make_shared<GetPart>(shared_from_this(), 0, ByteRange::kToEnd, true, request_.range.length));
    } else {
      parts = plan_locked();
    }
  }
  submit(std::move(parts));
}

std::vector<std::shared_ptr<GetPart>> GetOperation::plan_locked() {
  std::vector<std::shared_ptr<GetPart>> parts;
  while (!failed_ && in_flight_ < parallelism_ && next_ < end_) {
    const bool bounded = end_ != ByteRange::kToEnd;
    // A read to the end of an object of unknown size goes one part at a time:
    // the first response normally tells the size, and the rest is then split.
    if (!bounded && in_flight_ > 0) break;
    if (part_length_ == 0) {
      // Even parts, one per parallel slot, but none under the part size:
      // every request costs the store a round trip and some CPU.
      const uint64_t part_size = context_->options.part_size;
      part_length_ = bounded ? std::max(part_size, (end_ - next_ + parallelism_ - 1) / parallelism_) : part_size;
    }
    uint64_t part_end = end_ - next_ > part_length_ ? next_ + part_length_ : end_;
    parts.push_back(std::make_shared<GetPart>(shared_from_this(), next_, part_end, false, 0));
    next_ = part_end;
    ++in_flight_;
    if (!bounded) break;
  }
  return parts;
}

void GetOperation::submit(std::vector<std::shared_ptr<GetPart>> parts) {
  for (auto& part : parts) context_->engine->submit(std::move(part), priority_);
}

Status GetOperation::learn(const HttpResponseHead& head, std::optional<uint64_t> total) {
  std::vector<std::shared_ptr<GetPart>> more;
  {
    std::lock_guard lock(mutex_);
    std::string etag = strip_quotes(head.header("etag"));
    if (!etag.empty()) {
      if (etag_.empty()) {
        etag_ = etag;
      } else if (etag != etag_) {
        return Status::error(ESTALE, context_->describe(key_) + ": the object changed in the store while it was "
                                                               "being read (ETag " + etag_ + ", then " + etag + ")");
      }
    }
    if (total && !size_) {
      size_ = total;
      if (end_ == ByteRange::kToEnd) part_length_ = 0;  // split what is left now that it is known
      if (end_ > *total) end_ = std::max(*total, begin_);
      more = plan_locked();
    }
    if (!have_info_ && head.status >= 200 && head.status < 300 && !etag.empty()) {
      info_ = info_from_head(head, key_, size_.value_or(0));
      have_info_ = true;
    }
  }
  submit(std::move(more));
  return {};
}

void GetOperation::part_finished(const GetPart& part, const Status& status) {
  std::vector<std::shared_ptr<GetPart>> more;
  std::optional<Result<GetResult>> result;
  bool head_instead = false;
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
    delivered_ += part.received();
    if (!status.ok() && !failed_) {
      failed_ = true;
      error_ = status;
    }
    if (!failed_) more = plan_locked();
    if (in_flight_ == 0 && more.empty() && !completed_) {
      completed_ = true;
      if (!failed_ && size_ && unsatisfiable_from_ < *size_) {
        // One part saw the object end before another part's size said it
        // would: it was replaced by a shorter version mid-read.
        failed_ = true;
        error_ = Status::error(ESTALE, context_->describe(key_) +
                                           ": the object changed in the store while it was being read (its size "
                                           "changed)");
      }
      if (failed_) {
        result.emplace(error_);
      } else if (!have_info_) {
        head_instead = true;  // nothing but 416s: no response said which version this is
      } else {
        GetResult r;
        r.info = info_;
        r.info.key = key_;
        if (size_) r.info.size = *size_;
        if (r.info.etag.empty()) r.info.etag = etag_;
        r.offset = begin_;
        r.length = delivered_;
        result.emplace(std::move(r));
      }
    }
  }
  submit(std::move(more));
  if (head_instead) {
    context_->engine->submit(std::make_shared<EmptyReadTransfer>(context_, key_, etag_, begin_, std::move(done_)),
                             priority_);
  } else if (result) {
    ObjectStore::GetCallback done = std::move(done_);
    done(std::move(*result));
  }
}

}  // namespace

Result<std::unique_ptr<S3Store>> S3Store::open(std::string_view url, S3Settings settings,
                                               std::shared_ptr<FetchEngine> engine, S3StoreOptions options) {
  auto location = parse_s3_url(url);
  if (!location.ok()) return location.status();
  if (options.part_size < 64 * 1024) return Status::error(EINVAL, "S3 part size must be at least 64 KiB");
  if (options.parallelism == 0) options.parallelism = 1;
  auto context = std::make_shared<Context>(std::move(settings), std::move(*location), engine.get(), options);
  return std::unique_ptr<S3Store>(new S3Store(std::move(context), std::move(engine)));
}

S3Store::S3Store(std::shared_ptr<Context> context, std::shared_ptr<FetchEngine> engine)
    : ObjectStore(context->url), context_(std::move(context)), engine_(std::move(engine)) {}
S3Store::~S3Store() = default;

const S3Endpoint& S3Store::endpoint() const { return context_->endpoint; }
FetchEngine& S3Store::engine() const { return *context_->engine; }

Result<ObjectInfo> S3Store::head_impl(std::string_view key) {
  auto transfer = std::make_shared<Waitable<HeadTransfer>>(context_, key);
  context_->engine->submit(transfer);
  if (Status s = transfer->wait(); !s.ok()) return s;
  return std::move(transfer->info);
}

std::vector<Result<ObjectInfo>> S3Store::head_many_impl(const std::vector<std::string>& keys, size_t in_flight) {
  // A window of transfers on the engine at once, waited for in order.
  std::vector<Result<ObjectInfo>> out;
  out.reserve(keys.size());
  std::vector<std::shared_ptr<Waitable<HeadTransfer>>> window;
  size_t next = 0;
  auto submit = [&] {
    if (Status s = validate_key(keys[next]); !s.ok()) {
      window.push_back(nullptr);
    } else {
      window.push_back(std::make_shared<Waitable<HeadTransfer>>(context_, keys[next]));
      context_->engine->submit(window.back());
    }
    ++next;
  };
  while (next < keys.size() && window.size() < in_flight) submit();
  for (size_t done = 0; done < keys.size(); ++done) {
    auto& transfer = window[done];
    if (transfer == nullptr) {
      out.push_back(validate_key(keys[done]).with_context(describe(keys[done])));
    } else if (Status s = transfer->wait(); !s.ok()) {
      out.push_back(s);
    } else {
      out.push_back(std::move(transfer->info));
    }
    transfer.reset();
    if (next < keys.size()) submit();
  }
  return out;
}

Result<ListPage> S3Store::list_impl(const ListRequest& request) {
  auto transfer = std::make_shared<Waitable<ListTransfer>>(context_, request);
  context_->engine->submit(transfer);
  if (Status s = transfer->wait(); !s.ok()) return s;
  return std::move(transfer->page);
}

Status S3Store::put(std::string_view key, std::string_view bytes, const std::map<std::string, std::string>& metadata) {
  if (Status s = validate_key(key); !s.ok()) return s;
  auto transfer = std::make_shared<Waitable<PutTransfer>>(context_, key, bytes, metadata);
  context_->engine->submit(transfer);
  return transfer->wait();
}

void S3Store::get_async_impl(std::string_view key, const GetRequest& request, ByteSink& sink, Priority priority,
                             GetCallback done) {
  if (!request.range.suffix && request.range.length == 0) {
    context_->engine->submit(
        std::make_shared<EmptyReadTransfer>(context_, key, request.if_match, request.range.offset, std::move(done)),
        priority);
    return;
  }
  auto op = std::make_shared<GetOperation>(context_, key, request, sink, priority, std::move(done));
  op->start();
}

}  // namespace dscache

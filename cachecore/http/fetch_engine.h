// FetchEngine: many HTTP transfers in flight on libcurl's multi interface.
//
// One or more worker threads each own a curl multi handle; transfers are
// bounded (at most max_in_flight at once, the rest wait in two priority
// queues: demand before background), connections are kept alive and reused,
// DNS results and TLS sessions are shared between workers. Each transfer is
// an HttpTransfer that signs its request per attempt and decides, per attempt,
// whether to finish or retry; the engine applies backoff and the retry budget.
// Bytes go straight from curl's buffer to the transfer: the engine keeps no
// copies, so memory stays bounded however large the objects are.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"
#include "http/retry.h"
#include "store/object_store.h"

namespace dscache {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD or PUT
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string_view body;             // PUT only; must outlive the transfer
};

struct HttpResponseHead {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased

  // The value of a header (lower-case name), or empty.
  std::string_view header(std::string_view name) const;
};

enum class TransportError : uint8_t {
  none,
  connect,   // could not resolve or connect
  timeout,   // connect or transfer timeout, stalled below the low-speed limit
  reset,     // connection reset/closed mid-request, short body
  tls,       // certificate or TLS handshake failure
  aborted,   // the transfer's own callback stopped it
  other,
};

// What one attempt came to.
struct AttemptOutcome {
  TransportError transport = TransportError::none;
  std::string transport_message;  // curl's description when transport != none
  const HttpResponseHead* head = nullptr;  // status 0 if no response arrived
  std::string_view error_body;    // body of a non-2xx response (first 64 KiB)
  uint64_t body_bytes = 0;        // 2xx body bytes passed to on_body in this attempt
};

enum class Verdict : uint8_t {
  done,       // finish with the status classify() set
  retry,      // retry after backoff; the FailureKind says what it costs
  retry_now,  // retry at once, free (the transfer learnt something: region, clock)
};

class HttpTransfer {
 public:
  virtual ~HttpTransfer() = default;

  // Fills `request` for attempt number `attempt` (1-based; called again for
  // every retry, so signatures and ranges are fresh). An error finishes the transfer.
  virtual Status prepare(HttpRequest& request, int attempt) = 0;
  // The status line and headers arrived. false stops the attempt (aborted).
  virtual bool on_head(const HttpResponseHead& head) = 0;
  // Body bytes of a 2xx response. false stops the attempt (aborted).
  virtual bool on_body(std::span<const std::byte> data) = 0;
  // The attempt ended. Return done (setting `status`) or a retry verdict
  // (setting `kind` for retry, and `status` to the error to report if no
  // retry is left).
  virtual Verdict classify(const AttemptOutcome& outcome, Status& status, FailureKind& kind) = 0;
  // Called exactly once, on a worker thread, with the final status. It may
  // submit more transfers, but must not wait for one: with one worker thread
  // that would wait for itself.
  virtual void finish(Status status) = 0;

  // Useful progress so far (a resumable download's bytes received). An
  // attempt that advanced it does not count towards max_attempts; the retry
  // budget still bounds the total.
  virtual uint64_t progress() const { return 0; }
  // True once the result is no longer wanted: a retry waiting out its backoff
  // starts at once, so that prepare() can fail it without delay.
  virtual bool cancelled() const { return false; }
};

struct FetchEngineOptions {
  int threads = 1;
  int max_in_flight = 64;  // transfers at once, over all threads
  RetryPolicy retry;
  std::chrono::milliseconds connect_timeout{5'000};
  // A transfer slower than this for low_speed_time is cut and retried (a
  // store that accepts and never answers is cut after low_speed_time).
  long low_speed_bytes_per_second = 1024;
  std::chrono::seconds low_speed_time{20};
  // No retry starts later than this after the request began or last made
  // progress: a dead store fails a request within about this long.
  std::chrono::milliseconds request_timeout{60'000};
  std::string ca_bundle;        // CA file for https; empty: the system's
  long receive_buffer = 512 * 1024;
};

struct FetchEngineStats {
  uint64_t requests = 0;     // attempts started
  uint64_t retries = 0;
  uint64_t connections = 0;  // new connections opened (the rest reused one)
  uint64_t bytes_received = 0;
  uint64_t failed = 0;       // transfers that finished with an error
  uint64_t budget_exhausted = 0;
};

class FetchEngine {
 public:
  explicit FetchEngine(FetchEngineOptions options = {});
  // Unfinished transfers finish with ECANCELED, and so do transfers submitted
  // while it runs. May run on a worker thread (the last owner let go in a
  // completion callback): the workers are then reaped by a helper thread.
  ~FetchEngine();
  FetchEngine(const FetchEngine&) = delete;
  FetchEngine& operator=(const FetchEngine&) = delete;

  void submit(std::shared_ptr<HttpTransfer> transfer, Priority priority = Priority::demand);
  FetchEngineStats stats() const;
  const FetchEngineOptions& options() const { return options_; }

 private:
  class Worker;
  struct Shared;

  FetchEngineOptions options_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

// The retry class of a transport failure.
FailureKind failure_kind(TransportError error);

}  // namespace dscache

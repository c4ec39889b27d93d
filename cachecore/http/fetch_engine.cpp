#include "http/fetch_engine.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

#include "common/log.h"

namespace dscache {
namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;
const Status kCancelled = Status::error(ECANCELED, "fetch engine shut down before the request finished");
constexpr int kMaxFreeRetries = 4;  // retry_now verdicts per transfer

using Clock = std::chrono::steady_clock;

bool is_success(long status) { return status >= 200 && status < 300; }

TransportError transport_error_of(CURLcode code, bool aborted) {
  switch (code) {
    case CURLE_OK: return TransportError::none;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK: return aborted ? TransportError::aborted : TransportError::other;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR: return TransportError::connect;
    case CURLE_OPERATION_TIMEDOUT: return TransportError::timeout;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SEND_FAIL_REWIND:
    case CURLE_WEIRD_SERVER_REPLY: return TransportError::reset;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM: return TransportError::tls;
    default: return TransportError::other;
  }
}

void curl_global_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::string_view HttpResponseHead::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return {};
}

FailureKind failure_kind(TransportError error) {
  switch (error) {
    case TransportError::none: return FailureKind::none;
    case TransportError::connect:
    case TransportError::reset: return FailureKind::transient;
    case TransportError::timeout: return FailureKind::timeout;
    case TransportError::tls:
    case TransportError::aborted:
    case TransportError::other: return FailureKind::fatal;
  }
  return FailureKind::fatal;
}

// State every worker shares: the curl share handle (DNS cache, TLS sessions),
// the retry budget and the counters.
struct FetchEngine::Shared {
  explicit Shared(const FetchEngineOptions& opts) : options(opts) {
    share = curl_share_init();
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Shared::lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Shared::unlock);
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  ~Shared() { curl_share_cleanup(share); }

  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
    static_cast<Shared*>(self)->locks[static_cast<size_t>(data) % kLocks].lock();
  }
  static void unlock(CURL*, curl_lock_data data, void* self) {
    static_cast<Shared*>(self)->locks[static_cast<size_t>(data) % kLocks].unlock();
  }

  static constexpr size_t kLocks = 16;
  const FetchEngineOptions options;
  CURLSH* share = nullptr;
  std::array<std::mutex, kLocks> locks;
  RetryBudget budget;
  std::atomic<uint64_t> requests{0}, retries{0}, connections{0}, bytes_received{0}, failed{0},
      budget_exhausted{0};
};

class FetchEngine::Worker {
 public:
  Worker(Shared& shared, int max_in_flight, uint64_t seed)
      : shared_(shared), max_in_flight_(std::max(1, max_in_flight)), rng_(seed) {
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(max_in_flight_));
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(max_in_flight_));
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    thread_ = std::thread([this] { run(); });
  }

  ~Worker() {
    stop();
    for (CURL* easy : idle_handles_) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);
  }

  // Finishes every transfer with ECANCELED and ends the thread. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_);
    if (thread_.joinable()) thread_.join();
  }

  void submit(std::shared_ptr<HttpTransfer> transfer, Priority priority) {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        load_.fetch_add(1, std::memory_order_relaxed);
        incoming_.push_back(Job{std::move(transfer), priority});
        incoming_.back().since = Clock::now();
      }
    }
    if (transfer) return transfer->finish(kCancelled);  // stopping: nothing will run it
    curl_multi_wakeup(multi_);
  }

  int load() const { return load_.load(std::memory_order_relaxed); }
  bool is_current_thread() const { return thread_.get_id() == std::this_thread::get_id(); }

 private:
  struct Job {
    std::shared_ptr<HttpTransfer> transfer;
    Priority priority = Priority::demand;
    int attempt = 0;      // attempts started so far
    int failures = 0;     // consecutive failed attempts that made no progress
    int retry_cost = 0;   // budget tokens this transfer's retries took
    int free_retries = 0;
    uint64_t progress_before = 0;  // transfer->progress() when the attempt started
    Clock::time_point since{};     // when it was submitted, or last made progress (request_timeout)
  };

  // One attempt on the wire.
  struct Active {
    Job job;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    HttpRequest request;
    HttpResponseHead head;
    bool head_done = false;
    bool aborted = false;
    std::string error_body;
    uint64_t body_bytes = 0;
    size_t upload_offset = 0;
    char error_buffer[CURL_ERROR_SIZE] = {};
  };

  void run() {
    while (true) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) break;
        for (Job& job : incoming_) queues_[static_cast<int>(job.priority)].push_back(std::move(job));
        incoming_.clear();
      }
      auto now = Clock::now();
      for (auto it = timers_.begin(); it != timers_.end();) {
        // Due, or no longer wanted (its prepare() will fail it at once).
        if (it->first <= now || it->second.transfer->cancelled()) {
          queues_[static_cast<int>(it->second.priority)].push_front(std::move(it->second));
          it = timers_.erase(it);
        } else {
          ++it;
        }
      }
      // Demand first; background transfers (warmup) keep to a small share
      // of the budget while demand is about (in flight, or in the last
      // second), so that demand requests do not queue behind them at the
      // server either.
      now = Clock::now();
      const bool demand_about = active_ > active_background_ || now - last_demand_ < kDemandWindow;
      const int background_limit = demand_about ? std::max(2, max_in_flight_ / 8) : max_in_flight_;
      while (active_ < max_in_flight_) {
        const bool demand = !queues_[0].empty();
        if (!demand && (queues_[1].empty() || active_background_ >= background_limit)) break;
        auto& queue = queues_[demand ? 0 : 1];
        Job job = std::move(queue.front());
        queue.pop_front();
        start(std::move(job));
      }

      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Active* active = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &active);
        complete(active, msg->data.result);
      }

      int timeout_ms = 1000;
      if (!timers_.empty()) {
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(timers_.begin()->first - Clock::now());
        timeout_ms = static_cast<int>(std::clamp<int64_t>(wait.count(), 0, timeout_ms));
      }
      if (active_ < max_in_flight_ && !queues_[0].empty()) timeout_ms = 0;
      if (active_ < max_in_flight_ && !queues_[1].empty()) {
        // Background work held back by recent demand: look again when the window ends.
        if (active_background_ < background_limit) {
          timeout_ms = 0;
        } else if (active_ == active_background_) {
          auto until = std::chrono::duration_cast<std::chrono::milliseconds>(last_demand_ + kDemandWindow - Clock::now());
          timeout_ms = static_cast<int>(std::clamp<int64_t>(until.count() + 1, 0, timeout_ms));
        }
      }
      curl_multi_poll(multi_, nullptr, 0, timeout_ms, nullptr);
    }
    cancel_everything();
  }

  // stopping_ is set, so nothing more lands in incoming_.
  void cancel_everything() {
    const Status& cancelled = kCancelled;
    for (Active* active : actives_) {
      curl_multi_remove_handle(multi_, active->easy);
      Job job = release(active);
      job.transfer->finish(cancelled);
    }
    actives_.clear();
    std::vector<Job> rest;
    {
      std::lock_guard lock(mutex_);
      rest = std::move(incoming_);
    }
    for (auto& queue : queues_) {
      for (Job& job : queue) rest.push_back(std::move(job));
    }
    for (auto& [when, job] : timers_) rest.push_back(std::move(job));
    for (Job& job : rest) job.transfer->finish(cancelled);
  }

  void start(Job job) {
    ++job.attempt;
    job.progress_before = job.transfer->progress();
    auto active = std::make_unique<Active>();
    active->job = std::move(job);
    if (Status s = active->job.transfer->prepare(active->request, active->job.attempt); !s.ok()) {
      finish(std::move(active->job), s);
      return;
    }
    CURL* easy = idle_handles_.empty() ? curl_easy_init() : idle_handles_.back();
    if (!idle_handles_.empty()) idle_handles_.pop_back();
    active->easy = easy;
    for (const std::string& header : active->request.headers) {
      active->headers = curl_slist_append(active->headers, header.c_str());
    }
    const FetchEngineOptions& opt = shared_.options;
    curl_easy_setopt(easy, CURLOPT_URL, active->request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);  // signed paths keep "//", "." and ".."
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, active->headers);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Worker::on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, active.get());
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Worker::on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, active.get());
    curl_easy_setopt(easy, CURLOPT_PRIVATE, active.get());
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, active->error_buffer);
    curl_easy_setopt(easy, CURLOPT_SHARE, shared_.share);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout.count()));
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, opt.low_speed_bytes_per_second);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, static_cast<long>(opt.low_speed_time.count()));
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, opt.receive_buffer);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    // A proxy's "200 Connection established" is not the store's answer.
    curl_easy_setopt(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    if (!opt.ca_bundle.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, opt.ca_bundle.c_str());
    if (active->request.method == "HEAD") {
      curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (active->request.method == "PUT") {
      curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(easy, CURLOPT_READFUNCTION, &Worker::on_read);
      curl_easy_setopt(easy, CURLOPT_READDATA, active.get());
      curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, &Worker::on_seek);  // re-send on a dead kept-alive connection
      curl_easy_setopt(easy, CURLOPT_SEEKDATA, active.get());
      curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(active->request.body.size()));
    } else if (active->request.method != "GET") {
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, active->request.method.c_str());
    }
    shared_.requests.fetch_add(1, std::memory_order_relaxed);
    ++active_;
    if (active->job.priority == Priority::background) {
      ++active_background_;
    } else {
      last_demand_ = Clock::now();
    }
    Active* raw = active.release();
    actives_.push_back(raw);
    curl_multi_add_handle(multi_, easy);
  }

  // Detaches an attempt from its easy handle (kept for reuse) and frees it.
  Job release(Active* active) {
    Job job = std::move(active->job);
    curl_slist_free_all(active->headers);
    curl_easy_reset(active->easy);
    idle_handles_.push_back(active->easy);
    delete active;
    return job;
  }

  void complete(Active* active, CURLcode code) {
    curl_multi_remove_handle(multi_, active->easy);
    actives_.erase(std::find(actives_.begin(), actives_.end(), active));
    --active_;
    if (active->job.priority == Priority::background) --active_background_;
    long connects = 0;
    curl_easy_getinfo(active->easy, CURLINFO_NUM_CONNECTS, &connects);
    shared_.connections.fetch_add(static_cast<uint64_t>(connects), std::memory_order_relaxed);

    AttemptOutcome outcome;
    outcome.transport = transport_error_of(code, active->aborted);
    if (outcome.transport != TransportError::none) {
      outcome.transport_message = active->error_buffer[0] != '\0' ? active->error_buffer : curl_easy_strerror(code);
    }
    if (!active->head_done) active->head.status = 0;
    outcome.head = &active->head;
    outcome.error_body = active->error_body;
    outcome.body_bytes = active->body_bytes;

    Status status;
    FailureKind kind = FailureKind::fatal;
    Job& job = active->job;
    Verdict verdict = job.transfer->classify(outcome, status, kind);
    shared_.bytes_received.fetch_add(active->body_bytes, std::memory_order_relaxed);
    Job next = release(active);

    if (verdict == Verdict::retry_now && next.free_retries < kMaxFreeRetries) {
      ++next.free_retries;
      queues_[static_cast<int>(next.priority)].push_front(std::move(next));
      return;
    }
    if (verdict != Verdict::retry) {
      // A retry_now past its allowance finishes with the error it carried.
      if (verdict == Verdict::retry_now && status.ok()) status = Status::error(EIO, "too many immediate re-tries");
      if (status.ok()) shared_.budget.release(next.retry_cost);
      finish(std::move(next), status);
      return;
    }
    const bool progressed = next.transfer->progress() > next.progress_before;
    next.failures = progressed ? 1 : next.failures + 1;
    if (progressed) next.since = Clock::now();
    if (next.failures >= shared_.options.retry.max_attempts) {
      finish(std::move(next), Status::error(status.code(), status.message() + " (gave up after " +
                                                                std::to_string(next.attempt) + " attempts)"));
      return;
    }
    auto delay = backoff_delay(shared_.options.retry, next.failures, rng_);
    if (Clock::now() + delay - next.since > shared_.options.request_timeout) {
      const auto waited = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - next.since).count();
      finish(std::move(next), Status::error(status.code(), status.message() + " (gave up after " +
                                                                std::to_string(next.attempt) + " attempts in " +
                                                                std::to_string(waited) + " s)"));
      return;
    }
    if (!shared_.budget.acquire(kind)) {
      shared_.budget_exhausted.fetch_add(1, std::memory_order_relaxed);
      finish(std::move(next), Status::error(status.code(), status.message() + " (retry budget exhausted)"));
      return;
    }
    next.retry_cost += RetryBudget::cost(kind);
    shared_.retries.fetch_add(1, std::memory_order_relaxed);
    DSCACHE_LOG(info, "retrying in %lld ms (attempt %d): %s", static_cast<long long>(delay.count()),
                next.attempt + 1, status.message().c_str());
    timers_.emplace(Clock::now() + delay, std::move(next));
  }

  void finish(Job job, const Status& status) {
    if (!status.ok()) shared_.failed.fetch_add(1, std::memory_order_relaxed);
    load_.fetch_sub(1, std::memory_order_relaxed);
    job.transfer->finish(status);
  }

  static size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto* active = static_cast<Active*>(user);
    size_t n = size * count;
    std::string_view line(data, n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (line.starts_with("HTTP/")) {
      // A new status line (after 100 Continue, or the first one).
      active->head = HttpResponseHead{};
      active->head_done = false;
      size_t space = line.find(' ');
      if (space != std::string_view::npos) active->head.status = std::strtol(line.data() + space + 1, nullptr, 10);
      return n;
    }
    if (line.empty()) {
      if (active->head.status >= 100 && active->head.status < 200) return n;  // interim response
      active->head_done = true;
      if (!active->job.transfer->on_head(active->head)) {
        active->aborted = true;
        return 0;
      }
      return n;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return n;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    active->head.headers.emplace_back(std::move(name), std::string(value));
    return n;
  }

  static size_t on_write(char* data, size_t size, size_t count, void* user) {
    auto* active = static_cast<Active*>(user);
    size_t n = size * count;
    if (!active->head_done) return 0;
    if (!is_success(active->head.status)) {
      size_t keep = std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, active->error_body.size()));
      active->error_body.append(data, keep);
      return n;
    }
    active->body_bytes += n;
    if (!active->job.transfer->on_body(std::as_bytes(std::span(data, n)))) {
      active->aborted = true;
      return 0;
    }
    return n;
  }

  static size_t on_read(char* buffer, size_t size, size_t count, void* user) {
    auto* active = static_cast<Active*>(user);
    std::string_view body = active->request.body;
    size_t n = std::min(size * count, body.size() - active->upload_offset);
    std::memcpy(buffer, body.data() + active->upload_offset, n);
    active->upload_offset += n;
    return n;
  }

  static int on_seek(void* user, curl_off_t offset, int origin) {
    auto* active = static_cast<Active*>(user);
    if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > active->request.body.size()) {
      return CURL_SEEKFUNC_FAIL;
    }
    active->upload_offset = static_cast<size_t>(offset);
    return CURL_SEEKFUNC_OK;
  }

  Shared& shared_;
  const int max_in_flight_;
  CURLM* multi_ = nullptr;
  std::vector<CURL*> idle_handles_;
  std::vector<Active*> actives_;
  int active_ = 0;
  int active_background_ = 0;
  Clock::time_point last_demand_{};
  static constexpr std::chrono::seconds kDemandWindow{1};

  std::mutex mutex_;
  std::vector<Job> incoming_;
  bool stopping_ = false;

  std::deque<Job> queues_[2];  // indexed by Priority
  std::multimap<Clock::time_point, Job> timers_;
  std::atomic<int> load_{0};
  std::mt19937_64 rng_;
  std::thread thread_;
};

FetchEngine::FetchEngine(FetchEngineOptions options) : options_(std::move(options)) {
  curl_global_once();
  options_.threads = std::max(1, options_.threads);
  options_.max_in_flight = std::max(options_.threads, options_.max_in_flight);
  shared_ = std::make_unique<Shared>(options_);
  std::random_device seed;
  for (int i = 0; i < options_.threads; ++i) {
    int share = options_.max_in_flight / options_.threads + (i < options_.max_in_flight % options_.threads ? 1 : 0);
    workers_.push_back(std::make_unique<Worker>(*shared_, share, (uint64_t{seed()} << 32) | seed()));
  }
}

FetchEngine::~FetchEngine() {
  stopping_ = true;
  bool on_worker = false;
  for (auto& worker : workers_) on_worker = on_worker || worker->is_current_thread();
  if (on_worker) {
    // This worker is inside a completion callback and cannot join itself: a
    // helper thread stops every worker (this one once the callback returns)
    // and frees them, then the shared state they use.
    std::thread([workers = std::move(workers_), shared = std::move(shared_)]() mutable {
      for (auto& worker : workers) worker->stop();
      workers.clear();
      shared.reset();
    }).detach();
    return;
  }
  // Stop all before freeing any: a completion on one worker may submit to another.
  for (auto& worker : workers_) worker->stop();
  workers_.clear();
}

void FetchEngine::submit(std::shared_ptr<HttpTransfer> transfer, Priority priority) {
  if (stopping_.load()) return transfer->finish(kCancelled);
  Worker* best = workers_.front().get();
  for (auto& worker : workers_) {
    if (worker->load() < best->load()) best = worker.get();
  }
  best->submit(std::move(transfer), priority);
}

FetchEngineStats FetchEngine::stats() const {
  FetchEngineStats s;
  s.requests = shared_->requests.load(std::memory_order_relaxed);
  s.retries = shared_->retries.load(std::memory_order_relaxed);
  s.connections = shared_->connections.load(std::memory_order_relaxed);
  s.bytes_received = shared_->bytes_received.load(std::memory_order_relaxed);
  s.failed = shared_->failed.load(std::memory_order_relaxed);
  s.budget_exhausted = shared_->budget_exhausted.load(std::memory_order_relaxed);
  return s;
}

}  // namespace dscache

// Retry policy in the manner of the AWS SDKs' "standard" mode: a bounded
// number of attempts, full-jitter exponential backoff with a cap, and a retry
// budget (token bucket) so that an outage does not multiply the load on a
// struggling store.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>

namespace dscache {

// What kind of failure an attempt had, as far as retrying is concerned.
enum class FailureKind : uint8_t {
  none,       // success
  fatal,      // retrying cannot help (404, 403, 412, bad request)
  transient,  // 500/502/503/504, InternalError, connection reset
  throttle,   // 429, SlowDown, Throttling
  timeout,    // connect/transfer timeout, RequestTimeout
};

struct RetryPolicy {
  int max_attempts = 5;  // consecutive failed attempts without progress
  std::chrono::milliseconds base_delay{100};
  std::chrono::milliseconds max_delay{20'000};
};

// Random in [0, min(max_delay, base_delay * 2^(failures - 1))].
std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int failures, std::mt19937_64& rng);

// AWS standard-mode retry quota: 500 tokens; a retry costs 5 (10 after a
// timeout); a success returns what its retries took, or 1 when it needed none.
class RetryBudget {
 public:
  static constexpr int kCapacity = 500;
  static constexpr int kRetryCost = 5;
  static constexpr int kTimeoutCost = 10;

  // Takes the cost of one retry; false when the budget is spent.
  bool acquire(FailureKind kind);
  // A request succeeded after `retry_cost` tokens of retries (0: first try).
  void release(int retry_cost);
  int available() const { return tokens_.load(std::memory_order_relaxed); }

  static int cost(FailureKind kind) { return kind == FailureKind::timeout ? kTimeoutCost : kRetryCost; }

 private:
  std::atomic<int> tokens_{kCapacity};
};

}  // namespace dscache

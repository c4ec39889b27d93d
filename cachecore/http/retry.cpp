#include "http/retry.h"

#include <algorithm>

namespace dscache {

std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int failures, std::mt19937_64& rng) {
  int exponent = std::clamp(failures - 1, 0, 30);
  int64_t ceiling = std::min<int64_t>(policy.max_delay.count(), policy.base_delay.count() << std::min(exponent, 20));
  ceiling = std::max<int64_t>(ceiling, 0);
  return std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(0, ceiling)(rng));
}

bool RetryBudget::acquire(FailureKind kind) {
  int need = cost(kind);
  int have = tokens_.load(std::memory_order_relaxed);
  while (have >= need) {
    if (tokens_.compare_exchange_weak(have, have - need, std::memory_order_relaxed)) return true;
  }
  return false;
}

void RetryBudget::release(int retry_cost) {
  int give = retry_cost > 0 ? retry_cost : 1;
  int have = tokens_.load(std::memory_order_relaxed);
  while (have < kCapacity) {
    if (tokens_.compare_exchange_weak(have, std::min(kCapacity, have + give), std::memory_order_relaxed)) return;
  }
}

}  // namespace dscache

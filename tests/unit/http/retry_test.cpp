#include <doctest/doctest.h>

#include "http/fetch_engine.h"
#include "http/retry.h"
#include "s3/s3_errors.h"

using namespace dscache;

TEST_CASE("S3 errors are classified as the AWS SDK standard mode does") {
  CHECK(classify_s3_failure(503, "SlowDown") == FailureKind::throttle);
  CHECK(classify_s3_failure(400, "Throttling") == FailureKind::throttle);
  CHECK(classify_s3_failure(429, "") == FailureKind::throttle);
  CHECK(classify_s3_failure(400, "RequestTimeout") == FailureKind::timeout);
  CHECK(classify_s3_failure(500, "InternalError") == FailureKind::transient);
  CHECK(classify_s3_failure(502, "") == FailureKind::transient);
  CHECK(classify_s3_failure(503, "") == FailureKind::transient);
  CHECK(classify_s3_failure(504, "") == FailureKind::transient);
  CHECK(classify_s3_failure(404, "NoSuchKey") == FailureKind::fatal);
  CHECK(classify_s3_failure(403, "AccessDenied") == FailureKind::fatal);
  CHECK(classify_s3_failure(403, "SignatureDoesNotMatch") == FailureKind::fatal);
  CHECK(classify_s3_failure(412, "PreconditionFailed") == FailureKind::fatal);
  CHECK(classify_s3_failure(400, "InvalidArgument") == FailureKind::fatal);
}

TEST_CASE("transport failures: connection trouble is retried, TLS trust is not") {
  CHECK(failure_kind(TransportError::connect) == FailureKind::transient);
  CHECK(failure_kind(TransportError::reset) == FailureKind::transient);
  CHECK(failure_kind(TransportError::timeout) == FailureKind::timeout);
  CHECK(failure_kind(TransportError::tls) == FailureKind::fatal);
  CHECK(failure_kind(TransportError::aborted) == FailureKind::fatal);
}

TEST_CASE("backoff: full jitter under an exponential ceiling, capped") {
  RetryPolicy policy;
  policy.base_delay = std::chrono::milliseconds(100);
  policy.max_delay = std::chrono::milliseconds(1000);
  std::mt19937_64 rng(42);
  for (int failures = 1; failures <= 12; ++failures) {
    int64_t ceiling = std::min<int64_t>(1000, int64_t{100} << (failures - 1));
    int64_t largest = 0;
    for (int i = 0; i < 500; ++i) {
      auto d = backoff_delay(policy, failures, rng).count();
      CHECK(d >= 0);
      CHECK(d <= ceiling);
      largest = std::max(largest, d);
    }
    CHECK(largest > ceiling / 2);  // jitter spreads over the whole window
  }
}

TEST_CASE("retry budget: retries cost tokens, successes return them") {
  RetryBudget budget;
  CHECK(budget.available() == RetryBudget::kCapacity);
  int retries = 0;
  while (budget.acquire(FailureKind::transient)) ++retries;
  CHECK(retries == RetryBudget::kCapacity / RetryBudget::kRetryCost);
  CHECK_FALSE(budget.acquire(FailureKind::timeout));
  budget.release(RetryBudget::kTimeoutCost);
  CHECK(budget.available() == RetryBudget::kTimeoutCost);
  CHECK(budget.acquire(FailureKind::timeout));
  budget.release(0);  // a first-try success earns one token
  CHECK(budget.available() == 1);
  for (int i = 0; i < 1000; ++i) budget.release(5);
  CHECK(budget.available() == RetryBudget::kCapacity);
}

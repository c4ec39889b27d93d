#include "s3/s3_errors.h"

#include <array>

namespace dscache {
namespace {

constexpr std::array<std::string_view, 14> kThrottleCodes = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown",
    "PriorRequestNotComplete", "EC2ThrottledException"};

constexpr std::array<std::string_view, 4> kTransientCodes = {"InternalError", "ServiceUnavailable",
                                                             "RequestTimeoutException", "IDPCommunicationError"};

template <size_t N>
bool contains(const std::array<std::string_view, N>& list, std::string_view code) {
  for (std::string_view item : list) {
    if (item == code) return true;
  }
  return false;
}

std::string suffix_of(long status, std::string_view code, std::string_view request_id) {
  std::string out = " (";
  if (!code.empty()) out.append(code).append(", ");
  out.append("HTTP ").append(std::to_string(status));
  if (!request_id.empty()) out.append(", request id ").append(request_id);
  out.push_back(')');
  return out;
}

}  // namespace

FailureKind classify_s3_failure(long http_status, std::string_view code) {
  if (contains(kThrottleCodes, code) || http_status == 429) return FailureKind::throttle;
  if (code == "RequestTimeout") return FailureKind::timeout;
  if (contains(kTransientCodes, code)) return FailureKind::transient;
  if (http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504) {
    return FailureKind::transient;
  }
  return FailureKind::fatal;
}

Status s3_error_status(long http_status, const std::optional<S3Error>& error, std::string_view request_id,
                       std::string_view what, const S3Endpoint& endpoint) {
  std::string code = error ? error->code : "";
  if (error && !error->request_id.empty()) request_id = error->request_id;
  const std::string suffix = suffix_of(http_status, code, request_id);
  const std::string w(what);
  const std::string& key_id = endpoint.settings().credentials.access_key_id;
  const std::string bucket = "bucket '" + endpoint.bucket() + "'";

  if (code == "NoSuchBucket") {
    return Status::error(ENOENT, bucket + " does not exist at " + endpoint.endpoint_url() + suffix);
  }
  if (code == "NoSuchKey" || (http_status == 404 && code.empty())) {
    return Status::error(ENOENT, w + ": no such key" + suffix);
  }
  if (code == "SignatureDoesNotMatch") {
    return Status::error(EACCES, w + ": the store rejected the request signature: the secret key does not match "
                                     "access key id " + key_id + " (from " +
                                     endpoint.settings().credentials_source + ")" + suffix);
  }
  if (code == "InvalidAccessKeyId") {
    return Status::error(EACCES, w + ": access key id " + key_id + " (from " +
                                     endpoint.settings().credentials_source + ") is not known to the store" + suffix);
  }
  if (code == "ExpiredToken" || code == "TokenRefreshRequired" || code == "InvalidToken") {
    return Status::error(EACCES, w + ": the session token (AWS_SESSION_TOKEN) is expired or invalid" + suffix);
  }
  if (code == "AccessDenied" || code == "AllAccessDisabled" || code == "AccountProblem" || http_status == 403) {
    std::string who = endpoint.settings().anonymous ? "anonymous requests (DSCACHE_S3_ANONYMOUS)"
                                                     : "access key id " + key_id;
    return Status::error(EACCES, w + ": access denied for " + who + suffix);
  }
  if (code == "PreconditionFailed" || http_status == 412) {
    return Status::error(ESTALE, w + ": the object changed in the store while it was being read" + suffix);
  }
  if (http_status == 301 || http_status == 307 || code == "PermanentRedirect" ||
      code == "AuthorizationHeaderMalformed") {
    return Status::error(EIO, bucket + " is not served by " + endpoint.endpoint_url() +
                                  " in region " + endpoint.region() +
                                  (error && !error->endpoint.empty() ? " (the store points to " + error->endpoint + ")" : "") +
                                  ": set AWS_REGION or AWS_ENDPOINT_URL" + suffix);
  }
  std::string message = error && !error->message.empty() ? ": " + error->message : "";
  return Status::error(EIO, w + ": S3 request failed" + suffix + message);
}

Status transport_error_status(const AttemptOutcome& outcome, std::string_view what, const S3Endpoint& endpoint) {
  std::string w(what);
  switch (outcome.transport) {
    case TransportError::tls:
      return Status::error(EIO, w + ": TLS failure talking to " + endpoint.endpoint_url() + ": " +
                                    outcome.transport_message + " (AWS_CA_BUNDLE names a CA file)");
    case TransportError::timeout:
      return Status::error(EIO, w + ": timed out talking to " + endpoint.endpoint_url() + ": " +
                                    outcome.transport_message);
    default:
      return Status::error(EIO, w + ": cannot talk to " + endpoint.endpoint_url() + ": " + outcome.transport_message);
  }
}

}  // namespace dscache

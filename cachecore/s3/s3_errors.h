// What a failed S3 request means: whether to retry it, and which errno and
// one-line message a user sees. Messages name the object, the S3 error code
// and the request id; they never contain a secret.
#pragma once

#include <optional>
#include <string_view>

#include "common/status.h"
#include "http/fetch_engine.h"
#include "http/retry.h"
#include "s3/s3_endpoint.h"
#include "s3/s3_xml.h"

namespace dscache {

// The retry class of an S3 error response (HTTP status and error code).
FailureKind classify_s3_failure(long http_status, std::string_view code);

// The final status for an S3 error response. `what` names the object or
// listing ("s3://bucket/key").
Status s3_error_status(long http_status, const std::optional<S3Error>& error, std::string_view request_id,
                       std::string_view what, const S3Endpoint& endpoint);

// The final status for a request that got no usable response.
Status transport_error_status(const AttemptOutcome& outcome, std::string_view what, const S3Endpoint& endpoint);

}  // namespace dscache

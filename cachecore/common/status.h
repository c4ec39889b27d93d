// Status and Result<T>: how every layer below the command line reports failure.
//
// A Status is an errno value plus a one-line message that names the cause
// ("s3://bucket/key: no such key"). errno is the common currency because the
// shim hands these errors to unmodified programs. The OK path never allocates.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dscache {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status error(int code, std::string message) {
    Status s;
    s.code_ = code != 0 ? code : EIO;
    s.message_ = std::move(message);
    return s;
  }

  bool ok() const noexcept { return code_ == 0; }
  explicit operator bool() const noexcept { return ok(); }
  // The errno value this failure maps to (0 when ok).
  int code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  // Prepends context to the message: "warming s3://b/k: <message>".
  Status with_context(std::string_view context) const {
    if (ok()) return *this;
    return error(code_, std::string(context) + ": " + message_);
  }

 private:
  int code_ = 0;
  std::string message_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status::error(EINVAL, "internal error: Result built from an OK status");
  }

  bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  const Status& status() const noexcept { return status_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

// errno name for messages ("ENOENT"), or a number when unknown.
std::string errno_name(int code);

}  // namespace dscache

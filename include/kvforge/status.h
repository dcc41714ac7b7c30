// Status and Result<T>: how kvforge reports failures of the environment and of
// input (I/O, corrupt files, bad configuration, bad requests).
//
// Programmer errors are not Statuses: they abort through KVF_CHECK. Expected
// outcomes ("no free block") are ordinary return values, not errors.
// A Status is a small value type; Result<T> holds either a T or a non-ok Status.
// Both are [[nodiscard]]; propagate with KVF_RETURN_IF_ERROR / KVF_ASSIGN_OR_RETURN.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kvforge {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller passed something unusable (flag, config, request)
  kNotFound,           // a file, key or tensor that should exist does not
  kCorrupt,            // a file's bytes contradict its own format
  kUnsupported,        // well-formed, but a feature we do not implement
  kIoError,            // the operating system refused (open, read, mmap, write)
  kOutOfRange,         // a value or size beyond what is allowed (e.g. prompt > context)
  kResourceExhausted,  // a memory budget was too small
  kInternal,           // a bug surfaced as an error rather than an abort
};

[[nodiscard]] std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }

  [[nodiscard]] bool ok() const { return code_ == StatusCode::kOk; }
  [[nodiscard]] StatusCode code() const { return code_; }
  [[nodiscard]] const std::string& message() const { return message_; }
  // "corrupt: tensor 'x' extends past end of file"
  [[nodiscard]] std::string to_string() const;

  // Returns a copy whose message is prefixed with `context: `.
  [[nodiscard]] Status with_context(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status not_found(std::string m) {
  return {StatusCode::kNotFound, std::move(m)};
}
inline Status corrupt(std::string m) {
  return {StatusCode::kCorrupt, std::move(m)};
}
inline Status unsupported(std::string m) {
  return {StatusCode::kUnsupported, std::move(m)};
}
inline Status io_error(std::string m) {
  return {StatusCode::kIoError, std::move(m)};
}
inline Status out_of_range(std::string m) {
  return {StatusCode::kOutOfRange, std::move(m)};
}
inline Status resource_exhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status internal_error(std::string m) {
  return {StatusCode::kInternal, std::move(m)};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must be non-ok

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  [[nodiscard]] const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

// Always-on assertion for programmer errors: prints file:line and aborts.
[[noreturn]] void check_failed(const char* file, int line, const char* expr);

}  // namespace kvforge

#define KVF_CHECK(cond)                                              \
  do {                                                               \
    if (!(cond)) ::kvforge::check_failed(__FILE__, __LINE__, #cond); \
  } while (0)

#define KVF_CONCAT_INNER_(a, b) a##b
#define KVF_CONCAT_(a, b) KVF_CONCAT_INNER_(a, b)

#define KVF_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::kvforge::Status kvf_status_ = (expr);    \
    if (!kvf_status_.ok()) return kvf_status_; \
  } while (0)

#define KVF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define KVF_ASSIGN_OR_RETURN(lhs, expr) \
  KVF_ASSIGN_OR_RETURN_IMPL_(KVF_CONCAT_(kvf_result_, __LINE__), lhs, expr)

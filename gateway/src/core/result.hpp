// Result<T>: a value or an error, for code paths that must not throw (style habit 3). An error
// carries a message for people and, where a caller must decide what to do, a cause as a value
// (style habit 14): callers branch on cause(), never on the message's text.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace citygate {

// What a caller can do about a failure. Unspecified: no decision depends on it.
enum class ErrorCause : std::uint8_t {
  Unspecified,
  NotConnected,  // the link is down: try again once it is back
  Unreachable,   // network, name resolution, TLS handshake: try again later, with backoff
  Refused,       // the peer said no (credentials, authorisation, a refused subscription)
  Invalid,       // the request itself can never succeed (bad topic, too large): do not retry it
  Timeout,       // no answer within the deadline
  Cancelled,     // stopped on our side (shutdown)
};

struct Error {
  std::string message;
  ErrorCause cause = ErrorCause::Unspecified;
};

inline const char* errorCauseName(ErrorCause cause) {
  switch (cause) {
    case ErrorCause::Unspecified:
      return "unspecified";
    case ErrorCause::NotConnected:
      return "not connected";
    case ErrorCause::Unreachable:
      return "unreachable";
    case ErrorCause::Refused:
      return "refused";
    case ErrorCause::Invalid:
      return "invalid";
    case ErrorCause::Timeout:
      return "timeout";
    case ErrorCause::Cancelled:
      return "cancelled";
  }
  return "unspecified";
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const std::string& error() const { return std::get<1>(v_).message; }
  ErrorCause cause() const { return ok() ? ErrorCause::Unspecified : std::get<1>(v_).cause; }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

}  // namespace citygate

// ApiError: a request the server refuses, as OpenAI's API reports it — an
// HTTP status and an error object naming the offending field:
//
//   {"error": {"message": "...", "type": "invalid_request_error",
//              "param": "max_tokens", "code": "integer_below_min_value"}}
//
// Plain data; openai_response.h writes the body. An empty param or code is
// written as null.
#pragma once

#include <string>
#include <utility>

namespace kvforge::server {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the request field at fault ("messages[1].role"), empty: none
  std::string code;   // a machine-readable reason, empty: none
};

// 400 invalid_request_error naming `param`.
inline ApiError invalid_request(std::string param, std::string message, std::string code = "") {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param),
                  std::move(code)};
}

}  // namespace kvforge::server

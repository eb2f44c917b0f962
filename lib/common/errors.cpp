#include "common/errors.hpp"

namespace causalattn::detail {
namespace {
thread_local std::string g_last_error;
}  // namespace

int report(causalattn_status status, std::string message) {
  g_last_error = std::move(message);
  return status;
}

const char* last_error() { return g_last_error.c_str(); }

}  // namespace causalattn::detail

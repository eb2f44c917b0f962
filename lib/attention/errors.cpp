#include "attention/errors.hpp"

namespace causalattn::detail {
namespace {
thread_local std::string g_last_error;
}  // namespace

int report(causalattn_status status, std::string message) {
  g_last_error = std::move(message);
  return status;
}

}  // namespace causalattn::detail

extern "C" const char* causalattn_last_error(void) { return causalattn::detail::g_last_error.c_str(); }

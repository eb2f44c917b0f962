// How the C entry points fail: a status, and a message for causalattn_last_error() (per thread).
#pragma once

#include <exception>
#include <new>
#include <string>

#include "causalattn/causalattn.h"

namespace causalattn::detail {

// Sets this thread's last error and returns the status.
int report(causalattn_status status, std::string message);

// This thread's last error (causalattn_last_error).
const char* last_error();

// Runs an entry point's body; an exception becomes CAUSALATTN_ERROR_INTERNAL, never a crash
// across the C ABI.
template <class Body>
int guarded(Body&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return report(CAUSALATTN_ERROR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return report(CAUSALATTN_ERROR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return report(CAUSALATTN_ERROR_INTERNAL, "internal error");
  }
}

}  // namespace causalattn::detail

/* Calls only a C caller can make: C lets an enum object or argument hold any int, so a C engine
 * may pass a dtype code the library does not know (the C++ tests cannot form one without
 * undefined behaviour). */
#include "causalattn/causalattn.h"

int convert_with_dtype_codes(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n) {
  return causalattn_convert(src, (causalattn_dtype)src_dtype, dst, (causalattn_dtype)dst_dtype, n);
}

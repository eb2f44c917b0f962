/* Builds against the installed C header as C99: a causal call and a rejected one. */
#include <causalattn/causalattn.h>

#include <math.h>
#include <stdio.h>

int main(void) {
  enum { T = 4, D = 3 };
  float q[T * D], k[T * D], v[T * D], out[T * D];
  causalattn_shape shape = {1, 1, 1, T, T, D};
  causalattn_layout layout = {T * D, T * D, D};
  int i;
  for (i = 0; i < T * D; ++i) {
    q[i] = 0.5f;
    k[i] = 0.5f;
    v[i] = (float)(i / D); /* V row j holds j */
  }
  if (causalattn_forward_f32(&shape, q, layout, k, layout, v, layout, out, layout, NULL) != CAUSALATTN_OK) {
    fprintf(stderr, "%s\n", causalattn_last_error());
    return 1;
  }
  /* Equal scores: row i averages V rows 0..i, i.e. i/2. */
  for (i = 0; i < T; ++i) {
    if (fabsf(out[i * D] - 0.5f * (float)i) > 1e-6f) return 1;
  }
  shape.q_len = T + 1;
  if (causalattn_forward_f32(&shape, q, layout, k, layout, v, layout, out, layout, NULL) == CAUSALATTN_OK) return 1;
  printf("C consumer: ok (%s, rejected: %s)\n", causalattn_isa(), causalattn_last_error());
  return 0;
}

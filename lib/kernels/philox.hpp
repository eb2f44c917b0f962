// Dropout's random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC'11), a counter-based generator. The keep decision of an attention weight is a
// pure function of (seed, sequence, head, query, key), so the dropped set does not depend on
// tiling, thread count or ISA.
#pragma once

#include <cstdint>

namespace causalattn::kernels {

struct Philox4x32 {
  uint32_t v[4];
};

// Philox4x32-10 of counter `ctr` under key `key`. A template (instantiated per caller's tag) so
// that per-ISA objects never share an out-of-line copy.
template <class Tag>
inline Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t key0, uint32_t key1) {
  constexpr uint64_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = kM0 * ctr.v[0];
    const uint64_t p1 = kM1 * ctr.v[2];
    ctr = {{static_cast<uint32_t>(p1 >> 32) ^ ctr.v[1] ^ key0, static_cast<uint32_t>(p1),
            static_cast<uint32_t>(p0 >> 32) ^ ctr.v[3] ^ key1, static_cast<uint32_t>(p0)}};
    key0 += kW0;
    key1 += kW1;
  }
  return ctr;
}

// The dropout rule: the weight of (query, key) in (sequence, head) is kept iff word key % 4 of
// Philox4x32-10({key / 4, query, head, sequence}, seed) is at least `threshold` (p · 2^32).
// One call decides four consecutive keys.
template <class Tag>
inline Philox4x32 dropout_words(uint64_t seed, uint32_t sequence, uint32_t head, uint32_t query, uint32_t key_quad) {
  return philox4x32_10<Tag>({{key_quad, query, head, sequence}}, static_cast<uint32_t>(seed),
                            static_cast<uint32_t>(seed >> 32));
}

}  // namespace causalattn::kernels

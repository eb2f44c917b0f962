// The batch-invariant mode's row groups (CAUSALATTN_BATCH_INVARIANT; docs/batch-invariance.md is
// the specification): a group's row blocks run split by split over the key splits of
// CAUSALATTN_INVARIANT_SPLIT_KEYS keys at fixed positions, and each row's partial results are
// folded in split order by RunningMerge, as the decode units' splits, computed in parallel by the
// mode's decode kernel, are folded after them (run_decode_merge).
#pragma once

#include <cstddef>

#include "attention/plan.hpp"
#include "kernels/kernel_table.hpp"

namespace causalattn::attention {

// Floats a slot holds after the kernel's and the group's workspaces: a row group's split
// partials and running merges.
std::size_t invariant_merge_floats(const Call& c);

// A row group's `count` blocks (built as the default mode builds them) of sequence q, split by
// split, then merged into their outputs. group_workspace: the kernel's group workspace, then
// invariant_merge_floats(c) floats.
void run_invariant_blocks(const Call& c, const Sequence& q, const kernels::RowBlockArgs* blocks, int count,
                          float* group_workspace);

}  // namespace causalattn::attention

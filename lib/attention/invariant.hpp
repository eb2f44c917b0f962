// The batch-invariant mode's tasks (CAUSALATTN_BATCH_INVARIANT; docs/batch-invariance.md is the
// specification): every query goes through the row-block kernel, over the key splits of
// CAUSALATTN_INVARIANT_SPLIT_KEYS keys at fixed positions, and the splits' partial results are
// folded in split order by RunningMerge, whether one task computed them one after another (a row
// group) or tasks computed them in parallel (a unit of a decode-shaped sequence).
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

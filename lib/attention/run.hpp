// Runs a plan on oneTBB: phase 1 (row groups and decode chunks) then phase 2 (the decode merges),
// each task's kernel workspace in the caller's workspace or in its thread's own buffer. The only
// threaded layer of attention; the kernels below it are single-threaded.
#pragma once

#include <cstddef>

#include "attention/plan.hpp"

namespace causalattn::attention {

// The bytes a caller's workspace needs for this call and plan: a kernel slot per thread, the
// decode partials, room to align.
std::size_t workspace_bytes(const Call& c, const Plan& plan);

// The call's tasks. user_workspace: nullptr, or workspace_bytes(c, plan) bytes.
void run(const Call& c, const Plan& plan, void* user_workspace);

}  // namespace causalattn::attention

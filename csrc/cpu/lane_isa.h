// Whether this build has the lane kernels (lane_kernels.h), and what their translation units include before
// they switch the instruction set (nothing after the switch may come from a shared header: an inline function
// compiled there for AVX-512 could be the copy the linker keeps for every caller).
//
// Only x86-64 with GCC or Clang, and only where the baseline has no FMA: the scalar solver is then compiled
// without contracting a * b + c, and the lanes, built with contraction turned off, round every operation as it
// does. A build for a baseline with FMA (-march=native, aarch64) would let the compiler contract the scalar
// code at its own choice, so the lanes could not promise its bits; there the scalar solver runs alone.
#pragma once

#if (defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__FMA__) && !defined(_MSC_VER))
#define NEURALNMF_LANES 1
#else
#define NEURALNMF_LANES 0
#endif

#include <float.h>
#include <math.h>
#include <stdint.h>

#include "../common/column_solver.h"  // kPivotRtol
#include "lane_group.h"

// KVFORGE_SIMD_TARGET for the Google Benchmark programs (benchmark_main
// provides main): applied before any benchmark runs, with the target that
// runs recorded in the report's context as "simd_target".
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>

#include "kernels/simd_target_select.h"
#include "kvforge/status.h"

namespace kvforge::bench {

// Exits with status 2 and a message naming `program` when the variable
// names no target this CPU runs.
inline bool apply_simd_target_from_env(const char* program) {
  const Status s = kernels::restrict_simd_targets_from_env();
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", program, s.message().c_str());
    std::exit(2);
  }
  benchmark::AddCustomContext("simd_target", kernels::matmul_simd_target_name());
  return true;
}

}  // namespace kvforge::bench

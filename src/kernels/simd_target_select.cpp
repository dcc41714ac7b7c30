#include "kernels/simd_target_select.h"

// The matmul files' target set (with AVX3_DL), so that HWY_TARGETS below
// lists the targets they are compiled for.
#define KVFORGE_SIMD_WITH_AVX3_DL
#include "kernels/simd_targets.h"
// clang-format off
#include "hwy/targets.h"
// clang-format on

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "kernels/amx.h"
#include "kernels/matmul_internal.h"

namespace kvforge::kernels {
namespace {

// What the CPU supports, ignoring any restriction in force.
int64_t cpu_targets() {
  const int64_t current = hwy::SupportedTargets();
  hwy::SetSupportedTargetsForTest(0);
  const int64_t all = hwy::SupportedTargets();
  // Put a restriction back as it was (SupportedTargets returned it).
  if (current != all) hwy::SetSupportedTargetsForTest(current);
  return all;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::vector<int64_t> matmul_simd_targets() {
  const int64_t cpu = cpu_targets();
  std::vector<int64_t> out;
  if (amx_available()) out.push_back(kAmxTarget);
  for (int64_t bits = cpu & HWY_TARGETS; bits != 0; bits &= bits - 1) {
    out.push_back(bits & -bits);
  }
  return out;  // lowest bit first = best first
}

void restrict_simd_targets(int64_t target) {
  allow_amx(target == 0 || target == kAmxTarget);
  if (target == 0 || target == kAmxTarget) {
    hwy::SetSupportedTargetsForTest(0);
    return;
  }
  // Every supported target from `target` downwards: worse targets have
  // higher bits.
  hwy::SetSupportedTargetsForTest(cpu_targets() & ~(target - 1));
}

Result<int64_t> parse_simd_target(std::string_view name) {
  const int64_t cpu = cpu_targets();
  std::string names;
  if (amx_available()) {
    if (lower(name) == "amx") return kAmxTarget;
    names = "amx";
  }
  for (int64_t bits = cpu; bits != 0; bits &= bits - 1) {
    const int64_t t = bits & -bits;
    const std::string n = lower(hwy::TargetName(t));
    if (n == lower(name)) return t;
    names += (names.empty() ? "" : ", ") + n;
  }
  return invalid_argument("unknown or unsupported SIMD target '" + std::string(name) +
                          "' (this CPU: " + names + ")");
}

Status restrict_simd_targets_from_env() {
  const char* value = std::getenv(kSimdTargetEnv);
  if (value == nullptr || *value == '\0') return Status();
  Result<int64_t> target = parse_simd_target(value);
  if (!target.ok()) {
    return invalid_argument(std::string(kSimdTargetEnv) + ": " + target.status().message());
  }
  restrict_simd_targets(*target);
  return Status();
}

std::string simd_target_name(int64_t target) {
  return target == kAmxTarget ? "AMX" : hwy::TargetName(target);
}

std::string matmul_simd_target_name() {
  return std::string(matmul_simd_target()) + (amx_enabled() ? "+AMX" : "");
}

}  // namespace kvforge::kernels

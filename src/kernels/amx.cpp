#include "kernels/amx.h"

#include <atomic>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace kvforge::kernels {
namespace {

#if defined(__x86_64__) && defined(__linux__)
// CPUID leaf 7 EDX: AMX-TILE and AMX-INT8; XCR0 bits 17 (XTILECFG) and 18
// (XTILEDATA): the operating system saves the tile state. Linux also wants
// each process to ask for XTILEDATA before its first tile instruction
// (Documentation/arch/x86/xstate.rst); without it the first one faults.
constexpr unsigned kAmxTileBit = 1u << 24;
constexpr unsigned kAmxInt8Bit = 1u << 25;
constexpr unsigned kXcr0TileBits = (1u << 17) | (1u << 18);
constexpr long kArchReqXcompPerm = 0x1023;
constexpr long kXfeatureXtiledata = 18;

bool probe_amx() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  if ((edx & (kAmxTileBit | kAmxInt8Bit)) != (kAmxTileBit | kAmxInt8Bit)) return false;
  __cpuid(1, eax, ebx, ecx, edx);
  if ((ecx & bit_OSXSAVE) == 0) return false;
  unsigned xcr0_low = 0, xcr0_high = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  if ((xcr0_low & kXcr0TileBits) != kXcr0TileBits) return false;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}
#else
bool probe_amx() {
  return false;
}
#endif

std::atomic<bool> g_allowed{true};

}  // namespace

bool amx_available() {
  static const bool available = probe_amx();
  return available;
}

bool amx_enabled() {
  return g_allowed.load(std::memory_order_relaxed) && amx_available();
}

void allow_amx(bool allowed) {
  g_allowed.store(allowed, std::memory_order_relaxed);
}

}  // namespace kvforge::kernels

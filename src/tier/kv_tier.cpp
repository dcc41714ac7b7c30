#include "tier/kv_tier.h"

#include <fmt/format.h>

namespace kvforge {

std::string TierKey::to_string() const {
  return fmt::format("{}{:016x}{:016x}", kind == TierRecordKind::kBlock ? 'b' : 'w', hash.high,
                     hash.low);
}

const char* tier_outcome_name(TierOutcome outcome) {
  switch (outcome) {
    case TierOutcome::kOk:
      return "ok";
    case TierOutcome::kMiss:
      return "miss";
    case TierOutcome::kRejected:
      return "rejected";
    case TierOutcome::kError:
      return "error";
  }
  return "?";
}

}  // namespace kvforge

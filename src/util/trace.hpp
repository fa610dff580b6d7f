// Phase timings on stderr when TREESNAP_TRACE is set: where a snapshot or restore spends its time,
// without a profiler.
#pragma once

#include <cstdint>
#include <string_view>

namespace treesnap {

class PhaseTimer {
 public:
  explicit PhaseTimer(std::string_view operation);
  void phase(std::string_view name);  // ends the running phase, starting the next
  ~PhaseTimer();

 private:
  std::string_view m_operation;
  std::int64_t m_start = 0;
  bool m_enabled = false;
};

}  // namespace treesnap

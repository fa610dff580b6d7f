#include "util/trace.hpp"

#include <cstdio>
#include <cstdlib>

#include "util/posix.hpp"

namespace treesnap {

PhaseTimer::PhaseTimer(std::string_view operation)
    : m_operation(operation), m_start(now_ns()), m_enabled(std::getenv("TREESNAP_TRACE") != nullptr) {}

void PhaseTimer::phase(std::string_view name) {
  if (!m_enabled) return;
  std::int64_t now = now_ns();
  std::fprintf(stderr, "trace: %.*s %.*s %.3f s\n", static_cast<int>(m_operation.size()), m_operation.data(),
               static_cast<int>(name.size()), name.data(), static_cast<double>(now - m_start) / 1e9);
  m_start = now;
}

PhaseTimer::~PhaseTimer() { phase("end"); }

}  // namespace treesnap

// Runs `task(i)` for i in [0, count) on `threads` threads, handing out indices in batches so that
// neighbouring items (siblings in one directory) go to the same thread. Stops handing out work
// after the first failure and returns that failure.
#pragma once

#include <cstddef>
#include <functional>

#include "treesnap/result.hpp"

namespace treesnap {

unsigned default_thread_count();

Result<void> parallel_for(std::size_t count, unsigned threads, std::size_t batch,
                          const std::function<Result<void>(std::size_t)>& task);

}  // namespace treesnap

#include "util/thread_pool.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace treesnap {

unsigned default_thread_count() { return std::max(1u, std::thread::hardware_concurrency()); }

Result<void> parallel_for(std::size_t count, unsigned threads, std::size_t batch,
                          const std::function<Result<void>(std::size_t)>& task) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::optional<Error> first_error;

  auto worker = [&] {
    while (!failed.load(std::memory_order_relaxed)) {
      std::size_t begin = next.fetch_add(batch);
      if (begin >= count) return;
      std::size_t end = std::min(count, begin + batch);
      for (std::size_t i = begin; i < end; ++i) {
        auto result = task(i);
        if (!result) {
          std::lock_guard lock(error_mutex);
          if (!first_error) first_error = std::move(result).error();
          failed = true;
          return;
        }
      }
    }
  };

  threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>((count + batch - 1) / std::max<std::size_t>(batch, 1))));
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::jthread> pool;
    pool.reserve(threads - 1);
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
  }
  if (first_error) return std::unexpected(*first_error);
  return {};
}

}  // namespace treesnap

// The public Store API from several threads at once, as store.hpp promises it may be used: four
// threads with a Store handle each and two threads sharing one handle snapshot overlapping trees,
// restore, remove and re-snapshot, while a collector thread runs gc, eviction dry runs, du and
// verify --fast. Built under ThreadSanitizer by scripts/test.sh, which is where races show.
// Afterwards every snapshot still listed restores to the files it was taken from, verify is clean
// and a final gc leaves no orphan.
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "store_fixture.hpp"

namespace treesnap {
namespace {

using test::ok;
namespace fs = std::filesystem;
using Files = std::map<std::string, std::string>;  // relative path -> content

constexpr int k_rounds = 4;
constexpr int k_shared = 24;

std::string content(const std::string& seed, std::size_t len) {
  std::string s(len, '\0');
  std::uint64_t x = std::hash<std::string>{}(seed) | 1;
  for (auto& c : s) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

Files read_tree(const fs::path& root) {
  Files out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) out[e.path().lexically_relative(root).string()] = test::read_file(e.path());
  return out;
}

class ConcurrencyTest : public test::StoreTest {
 protected:
  // What each snapshot was taken from, by name: written by the thread that took it.
  void remember(const std::string& name, Files files) {
    std::lock_guard lock(m_mutex);
    m_taken[name] = std::move(files);
  }
  Files taken(const std::string& name) {
    std::lock_guard lock(m_mutex);
    return m_taken.at(name);
  }

  // One worker: each round writes a tree of shared files (the same content in every worker's
  // tree, so objects are deduplicated across threads) and its own, snapshots it, restores the
  // previous round's snapshot and compares, and removes the one before that. Its own snapshots
  // are never removed by anyone else, so every restore of them must succeed.
  void work(const Store& handle, int id) {
    std::mt19937 random(static_cast<unsigned>(id));
    for (int round = 0; round < k_rounds; ++round) {
      const fs::path tree = dir() / fmt::format("tree{}", id);
      test::force_remove(tree);
      test::make_dir(tree);
      test::make_dir(tree / "own");
      Files files;
      for (int i = 0; i < 10; ++i) {
        const int s = static_cast<int>(random() % k_shared);
        files[fmt::format("s{}", s)] = content(fmt::format("shared{}", s), 700 + 97 * s);
      }
      for (int i = 0; i < 6; ++i)
        files[fmt::format("own/f{}", i)] = content(fmt::format("own{}-{}-{}", id, round, i), random() % 5000);
      for (const auto& [rel, data] : files) test::write_file(tree / rel, data);

      const std::string name = fmt::format("t{}r{}", id, round);
      auto snap = handle.snapshot(tree, {.name = name});
      ASSERT_TRUE(ok(snap)) << name;
      remember(name, std::move(files));

      if (round >= 1) {
        const std::string previous = fmt::format("t{}r{}", id, round - 1);
        const fs::path target = dir() / fmt::format("out{}-{}", id, round);
        const Strategy strategy = round % 2 ? Strategy::hardlink : Strategy::copy;
        auto restored = handle.restore(previous, target, {.strategy = strategy});
        ASSERT_TRUE(ok(restored)) << previous;
        EXPECT_EQ(read_tree(target), taken(previous)) << previous;
      }
      if (round >= 2) EXPECT_TRUE(ok(handle.remove(fmt::format("t{}r{}", id, round - 2))));
    }
  }

  void collect(const Store& handle, const std::atomic<bool>& stop) {
    while (!stop.load()) {
      EXPECT_TRUE(ok(handle.gc({})));
      EXPECT_TRUE(ok(handle.gc({.dry_run = true, .max_size = 1})));
      EXPECT_TRUE(ok(handle.usage({})));
      auto verified = handle.verify({.fast = true});
      ASSERT_TRUE(ok(verified));
      EXPECT_TRUE(verified->clean()) << verified->bad.size() << " bad, " << verified->fixed.size() << " fixed";
    }
  }

 private:
  std::mutex m_mutex;
  std::map<std::string, Files> m_taken;
};

TEST_F(ConcurrencyTest, SnapshotRestoreRemoveAndGcFromManyThreads) {
  std::vector<Store> handles;
  for (int i = 0; i < 4; ++i) {
    auto opened = Store::open(store_dir(), {.threads = 2});
    ASSERT_TRUE(ok(opened));
    handles.push_back(std::move(*opened));
  }
  std::atomic<bool> stop{false};
  std::thread collector([&] { collect(store(), stop); });
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back([&, i] { work(handles[static_cast<std::size_t>(i)], i); });
  // Two workers share the fixture's handle (and with it the collector's).
  for (int i = 4; i < 6; ++i) workers.emplace_back([&, i] { work(store(), i); });
  for (auto& t : workers) t.join();
  stop = true;
  collector.join();
  if (HasFatalFailure()) return;

  auto listed = store().list();
  ASSERT_TRUE(ok(listed));
  EXPECT_EQ(listed->size(), 6u * 2);  // each worker keeps its last two rounds
  for (const auto& s : *listed) {
    const std::string name = s.name.substr(0, s.name.find(':'));
    const fs::path target = dir() / ("final-" + name);
    ASSERT_TRUE(ok(store().restore(name, target, {.strategy = Strategy::copy})));
    EXPECT_EQ(read_tree(target), taken(name)) << name;
  }
  auto verified = store().verify({});
  ASSERT_TRUE(ok(verified));
  EXPECT_TRUE(verified->clean());
  ASSERT_TRUE(ok(store().gc({})));
  auto usage = store().usage({});
  ASSERT_TRUE(ok(usage));
  EXPECT_EQ(usage->orphan_objects, 0u);
  auto full = store().gc({.dry_run = true, .full = true});
  ASSERT_TRUE(ok(full));
  EXPECT_EQ(full->objects_removed + full->unrecorded_removed, 0u);
}

}  // namespace
}  // namespace treesnap

// treesnap_gen_store: writes a large synthetic store for bench/gc_scale.sh, through the same
// ObjectStore and Database code a snapshot uses, without walking or hashing a source tree.
//
//   treesnap_gen_store STORE OBJECTS SNAPSHOTS ENTRIES BIG BIG_ENTRIES
//   treesnap_gen_store --tree DIR FIRST COUNT     (the same objects as files, for ostree)
//   treesnap_gen_store --unlink-floor DIR COUNT THREADS
//   treesnap_gen_store --unlink-list OBJECTS_DIR LIST THREADS
//
// --unlink-floor is the floor gc cannot beat: it writes COUNT files of the same sizes as the
// objects into 256 shard directories under DIR, named like objects (64 hex digits), syncs, then
// times a bare loop of one unlinkat per file (THREADS threads, each taking whole shards) and
// prints the seconds. No database, no stat, no process start.
//
// --unlink-list times the same loop over existing files: the objects named in LIST (one hex digest
// per line) under a store's objects/ directory. Files the generator wrote with the store are as
// cold or warm in the caches as the ones gc removes; fresh ones are hotter, so the floor from
// --unlink-floor is lower than what the same calls cost on the store's own files.
//
// Object i is 16-64 bytes of content no other index gives. BIG snapshots "big1".."bigN" hold
// BIG_ENTRIES objects each that nothing else references (the last BIG*BIG_ENTRIES objects); the
// other SNAPSHOTS-BIG snapshots "s0000"... hold windows of ENTRIES consecutive objects sliding over
// the rest of the pool, like successive versions of one tree: each object is in ~ENTRIES/step
// snapshots. Each snapshot also references a small manifest object of its own (its bytes are not
// a real manifest: gc and du never read one). Older snapshots were used longer ago.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "meta/database.hpp"
#include "store/layout.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"
#include "util/posix.hpp"

namespace treesnap {
namespace {

std::string object_content(std::uint64_t i) {
  std::string s = fmt::format("o{:09}", i);
  const std::size_t len = 16 + i % 49;
  std::uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;
  while (s.size() < len) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    s.push_back(static_cast<char>('a' + x % 26));
  }
  return s;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "treesnap_gen_store: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T check(Result<T> r, const char* what) {
  if (!r) die(fmt::format("{}: {}", what, r.error().message()));
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

int write_tree(const std::string& dir, std::uint64_t first, std::uint64_t count) {
  for (std::uint64_t i = first; i < first + count; ++i) {
    const std::string sub = fmt::format("{}/{:03}", dir, i % 256);
    ::mkdir(sub.c_str(), 0755);
    const std::string path = fmt::format("{}/f{}", sub, i);
    const std::string data = object_content(i);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) die("write " + path);
    ::close(fd);
  }
  return 0;
}

int generate(const std::string& root, std::uint64_t objects, std::uint64_t snapshots, std::uint64_t entries,
             std::uint64_t big, std::uint64_t big_entries) {
  if (big >= snapshots || big * big_entries + entries > objects) die("the snapshots do not fit in the pool");
  check(Store::open(root, {.sync = SyncPolicy::none}), "create the store");
  auto store = check(ObjectStore::open(root, DigestAlgorithm::sha256, SyncPolicy::none, false), "open objects");
  auto db = check(Database::open(layout::store_path(root, layout::k_database), false), "open the database");

  // 1. Objects, on every core: one file each, staged and published as a snapshot would.
  std::vector<std::string> digests(objects);
  std::atomic<std::uint64_t> next{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < std::max(2u, std::thread::hardware_concurrency()); ++t)
    threads.emplace_back([&] {
      for (std::uint64_t i; (i = next.fetch_add(1)) < objects;) digests[i] = check(store.put_bytes(object_content(i)), "put");
    });
  for (auto& t : threads) t.join();
  std::fprintf(stderr, "%llu objects written\n", static_cast<unsigned long long>(objects));

  // 2. Snapshots, oldest first, through commit_snapshot and its refcount updates, k_per_commit to a
  // transaction: one commit per snapshot wrote most of the objects B-tree each time (997 commits,
  // ~20 min of the 1M store's 24 min generation).
  constexpr std::uint64_t k_per_commit = 50;
  const std::uint64_t windows = snapshots - big, pool = objects - big * big_entries;
  const std::uint64_t step = windows > 1 ? (pool - entries) / (windows - 1) : 0;
  const std::int64_t t0 = now_ns() - static_cast<std::int64_t>(snapshots) * 1'000'000'000;
  for (std::uint64_t s = 0; s < snapshots; ++s) {
    const bool is_big = s >= windows;
    const std::uint64_t first = is_big ? pool + (s - windows) * big_entries : s * step;
    const std::uint64_t count = is_big ? big_entries : entries;
    SnapshotRecord record;
    record.name = is_big ? fmt::format("big{}", s - windows + 1) : fmt::format("s{:04}", s);
    record.tag = "v1";
    const std::string manifest = fmt::format("manifest of {} ({} entries from {})", record.name, count, first);
    record.manifest = check(store.put_bytes(manifest), "put manifest");
    record.created_ns = record.last_used_ns = t0 + static_cast<std::int64_t>(s) * 1'000'000'000;
    record.entries = record.files = count;
    for (std::uint64_t i = first; i < first + count; ++i) record.bytes += 16 + i % 49;
    auto row = [&](std::size_t i) {
      if (i == count) return ObjectRecord{record.manifest, manifest.size(), 4096, std::nullopt, {}};
      const std::uint64_t o = first + i;
      return ObjectRecord{digests[o], 16 + o % 49, 4096, std::nullopt, {}};
    };
    if (s % k_per_commit == 0) check(db.begin_write(), "begin");
    check(db.commit_snapshot(record, count + 1, row, 0, [](std::size_t) { return StatRecord{}; }, false), "commit");
    if (s % k_per_commit == k_per_commit - 1 || s + 1 == snapshots) check(db.end_write(), "commit the batch");
    if (s % 100 == 99) std::fprintf(stderr, "%llu snapshots\n", static_cast<unsigned long long>(s + 1));
  }
  return 0;
}

// One unlinkat per name on `threads` threads, each taking whole shards; prints the seconds.
void time_unlinks(const std::vector<int>& shards, const std::vector<std::vector<std::string>>& names, unsigned threads) {
  const auto start = std::chrono::steady_clock::now();
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::max(1u, threads); ++t)
    pool.emplace_back([&] {
      for (int s; (s = next.fetch_add(1)) < 256;)
        for (const auto& n : names[s])
          if (::unlinkat(shards[s], n.c_str(), 0) != 0) die("unlink " + n);
    });
  for (auto& t : pool) t.join();
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("%.4f\n", took.count());
}

int unlink_list(const std::string& objects, const std::string& list, unsigned threads) {
  std::vector<int> shards(256);
  for (int s = 0; s < 256; ++s) {
    const std::string sub = fmt::format("{}/{:02x}", objects, s);
    shards[s] = ::open(sub.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (shards[s] < 0) die("open " + sub);
  }
  std::vector<std::vector<std::string>> names(256);
  FILE* in = std::fopen(list.c_str(), "r");
  if (!in) die("open " + list);
  char line[256];
  while (std::fgets(line, sizeof line, in)) {
    std::string hex(line);
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r')) hex.pop_back();
    if (hex.size() < 3) continue;
    names[std::stoi(hex.substr(0, 2), nullptr, 16)].push_back(hex);
  }
  std::fclose(in);
  time_unlinks(shards, names, threads);
  for (int fd : shards) ::close(fd);
  return 0;
}

int unlink_floor(const std::string& dir, std::uint64_t count, unsigned threads) {
  ::mkdir(dir.c_str(), 0755);
  std::vector<int> shards(256);
  for (int s = 0; s < 256; ++s) {
    const std::string sub = fmt::format("{}/{:02x}", dir, s);
    ::mkdir(sub.c_str(), 0755);
    shards[s] = ::open(sub.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (shards[s] < 0) die("open " + sub);
  }
  // Names as digests are: uniformly spread over the shards, 62 more hex digits after the shard's 2.
  std::vector<std::vector<std::string>> names(256);
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;
    std::string name;
    for (int k = 0; k < 4; ++k) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      name += fmt::format("{:016x}", x);
    }
    const int shard = static_cast<int>(i % 256);
    name.resize(62);
    const std::string data = object_content(i);
    int fd = ::openat(shards[shard], name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
    if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) die("write " + name);
    ::close(fd);
    names[shard].push_back(std::move(name));
  }
  ::sync();
  time_unlinks(shards, names, threads);
  for (int fd : shards) ::close(fd);
  return 0;
}

std::uint64_t number(const char* text) { return std::strtoull(text, nullptr, 10); }

}  // namespace
}  // namespace treesnap

int main(int argc, char** argv) {
  using namespace treesnap;
  if (argc == 5 && std::string(argv[1]) == "--unlink-floor")
    return unlink_floor(argv[2], number(argv[3]), static_cast<unsigned>(number(argv[4])));
  if (argc == 5 && std::string(argv[1]) == "--unlink-list")
    return unlink_list(argv[2], argv[3], static_cast<unsigned>(number(argv[4])));
  if (argc == 5 && std::string(argv[1]) == "--tree") return write_tree(argv[2], number(argv[3]), number(argv[4]));
  if (argc != 7) {
    std::fprintf(stderr, "usage: treesnap_gen_store STORE OBJECTS SNAPSHOTS ENTRIES BIG BIG_ENTRIES\n"
                         "       treesnap_gen_store --tree DIR FIRST COUNT\n"
                         "       treesnap_gen_store --unlink-floor DIR COUNT THREADS\n"
                         "       treesnap_gen_store --unlink-list OBJECTS_DIR LIST THREADS\n");
    return 2;
  }
  return generate(argv[1], number(argv[2]), number(argv[3]), number(argv[4]), number(argv[5]), number(argv[6]));
}

// What push and pull share: a pool of registry connections for worker threads, progress
// reporting, the distinct objects of a manifest, and the summary's transport figures.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/manifest.hpp"
#include "remote/registry.hpp"
#include "treesnap/transfer.hpp"

namespace treesnap::transfer {

// One clone of the client per worker: a task takes one and gives it back when done.
class ClientPool {
 public:
  explicit ClientPool(const remote::RegistryClient& client) : m_client(client) {}
  class Lease {
   public:
    Lease(ClientPool& pool, remote::RegistryClient client) : m_pool(pool), m_client(std::move(client)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      std::lock_guard lock(m_pool.m_mutex);
      m_pool.m_idle.push_back(std::move(m_client));
    }
    remote::RegistryClient* operator->() { return &m_client; }
    remote::RegistryClient& operator*() { return m_client; }

   private:
    ClientPool& m_pool;
    remote::RegistryClient m_client;
  };
  Lease take() {
    std::lock_guard lock(m_mutex);
    if (m_idle.empty()) return Lease(*this, m_client.clone());
    auto client = std::move(m_idle.back());
    m_idle.pop_back();
    return Lease(*this, std::move(client));
  }

 private:
  const remote::RegistryClient& m_client;
  std::mutex m_mutex;
  std::vector<remote::RegistryClient> m_idle;
};

// Counts objects and bytes as workers finish them and calls the user's callback at most ten
// times a second (and once from finish()), one call at a time.
class ProgressMeter {
 public:
  ProgressMeter(std::function<void(const TransferProgress&)> callback, std::uint64_t objects, std::uint64_t bytes)
      : m_callback(std::move(callback)) {
    m_state.objects_total = objects;
    m_state.bytes_total = bytes;
  }
  void add(std::uint64_t objects, std::uint64_t bytes) {
    if (!m_callback) return;
    std::lock_guard lock(m_mutex);
    m_state.objects_done += objects;
    m_state.bytes_done += bytes;
    auto now = std::chrono::steady_clock::now();
    if (now - m_last < std::chrono::milliseconds(100)) return;
    m_last = now;
    m_callback(m_state);
  }
  void finish() {
    if (!m_callback) return;
    std::lock_guard lock(m_mutex);
    m_callback(m_state);
  }

 private:
  std::function<void(const TransferProgress&)> m_callback;
  std::mutex m_mutex;
  TransferProgress m_state;
  std::chrono::steady_clock::time_point m_last{};
};

// One content object. On the registry every object is named by its sha256; in a store of
// another algorithm (xxh3-128) it has a second name, its store digest.
struct ObjectRef {
  std::string digest;  // raw, in the store's algorithm; empty while unknown (pull into xxh3-128)
  std::string sha256;  // raw; empty while unknown (push from xxh3-128, before hashing)
  std::uint64_t size = 0;
  // Of the first entry with this content: a pulled object gets them, as a snapshotted one does.
  std::uint32_t mode = 0444;
  std::int64_t mtime_ns = 0;
};

// The distinct content objects of a manifest's files, in manifest order of first appearance,
// with `digest` set (and `sha256` too when the manifest's algorithm is sha256).
std::vector<ObjectRef> distinct_objects(const Manifest& manifest);

// `manifest` as a store of `algorithm` names it: each file's digest looked up in `digests` (raw
// old → raw new). corrupt when one is missing (the caller's bug or a registry that lies).
Result<Manifest> translate_manifest(Manifest manifest, DigestAlgorithm algorithm,
                                    const std::unordered_map<std::string, std::string>& digests);

// Copies the client's counters into the summary and sets its duration.
void fill_transport(TransferSummary& summary, const remote::TransferStats& stats, std::chrono::steady_clock::time_point start);

// "sha256:<hex>" of a raw sha256 digest, and back (invalid unless a sha256 digest).
std::string oci_text(std::string_view raw);
Result<std::string> raw_from_oci(std::string_view text);

}  // namespace treesnap::transfer

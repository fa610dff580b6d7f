// Objects on disk: staging, hashing, atomic publication, link variants. Knows nothing of
// snapshots or of the database; callers decide what is already stored.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "store/file_clone.hpp"
#include "treesnap/entry.hpp"
#include "treesnap/options.hpp"
#include "util/posix.hpp"

namespace treesnap {

class ObjectStore {
 public:
  // Opens the directories of a store, creating them (mode 0700: objects may hold secrets) when
  // `create` is set.
  static Result<ObjectStore> open(const std::string& root, DigestAlgorithm algorithm,
                                  SyncPolicy sync, bool create);

  DigestAlgorithm algorithm() const { return m_algorithm; }
  int root_fd() const { return m_root.get(); }
  int objects_fd() const { return m_objects.get(); }
  int variants_fd() const { return m_variants.get(); }
  int staging_fd() const { return m_staging.get(); }
  int quarantine_fd() const { return m_quarantine.get(); }

  // What ingest learned about one file.
  struct Ingested {
    std::string digest;
    bool published = false;          // this call added the object to the store
    std::vector<DataRange> ranges;   // data ranges when the file has holes, else empty
    std::uint64_t disk_bytes = 0;    // st_blocks * 512 of the published inode (when published)
    FileStamp stamp;                 // its stat once published (when published): its fingerprint
  };
  // Returns true when the caller should store this digest (nobody has it yet); false when the
  // store already holds it or another writer in this run has claimed it.
  using ClaimFn = std::function<bool(const std::string& digest)>;
  // Shown every data range of a file as ingest or hash_fd reads it (offset, bytes), in order;
  // holes are skipped. Lets a caller look at the bytes without reading the file a second time.
  using ReadObserver = std::function<void(std::uint64_t offset, std::string_view bytes)>;

  // Reads `src_fd` once (size bytes, holes as zeros), hashes it, and stores it under its digest
  // unless `claim` says it is already there. Clones instead of copying when `try_reflink`. The
  // object's mode is `mode` without write and set-id bits and its mtime is `mtime_ns`, so that a
  // read-only entry with the same metadata can be hardlinked to the object itself.
  Result<Ingested> ingest(int src_fd, std::uint64_t size, bool maybe_sparse, std::uint32_t mode,
                          std::int64_t mtime_ns, bool try_reflink, std::string_view what,
                          const ClaimFn& claim, const ReadObserver& observe = nullptr) const;

  // Stores `data` and returns its digest.
  Result<std::string> put_bytes(std::string_view data) const;

  // Stores the bytes `produce` passes, piece by piece, to the writer it is given, hashing them on
  // the way, so content made in pieces (a manifest) never has to exist whole in memory. Returns
  // the digest and size; an error of `produce` or the writer is returned and nothing published.
  using ByteWriter = std::function<Result<void>(std::string_view bytes)>;
  struct Stored {
    std::string digest;
    std::uint64_t size = 0;
    FileStamp stamp;  // the published (or already present and re-hashed) inode's stat
  };
  // `before_publish`, when given, is called with the digest once it is known and before the
  // object is linked under its name; its error is returned and nothing published. A snapshot
  // holds the digest there (Lease::hold), so a gc cannot be unlinking an existing copy of the
  // same content while this one is found to be already present.
  using DigestFn = std::function<Result<void>(const std::string& digest)>;
  Result<Stored> put_stream(const std::function<Result<void>(const ByteWriter&)>& produce,
                            const DigestFn& before_publish = nullptr) const;
  // Stores fetched bytes that must hash to `expected` (a pulled object): as put_stream, but
  // `corrupt` and nothing published when the digest or `expected_size` differs. Aligned 4 KiB
  // blocks of zeros are left as holes, so a sparse file pulled stays sparse in the store. The
  // object gets `mode` (without write and set-id bits) and `mtime_ns`, as ingest gives it.
  Result<Stored> put_expected(std::string_view expected, std::uint64_t expected_size, std::uint32_t mode,
                              std::int64_t mtime_ns,
                              const std::function<Result<void>(const ByteWriter&)>& produce) const;
  // As put_expected, for bytes fetched under their sha256 (an OCI blob digest) into a store of
  // any algorithm: they must hash to `sha256` (raw) and, when `expected` is not empty, to it in
  // the store's algorithm. Returns the store digest they were published under.
  Result<Stored> put_fetched(std::string_view sha256, std::string_view expected, std::uint64_t expected_size,
                             std::uint32_t mode, std::int64_t mtime_ns,
                             const std::function<Result<void>(const ByteWriter&)>& produce) const;
  // True when object `digest` is present and its bytes hash to it (what an interrupted pull left).
  Result<bool> has_intact(std::string_view digest) const;
  // Reads a whole object and checks its digest: `corrupt` when it does not match.
  Result<std::string> read_verified(std::string_view digest) const;
  Result<UniqueFd> open_object(std::string_view digest) const;

  // The relative path under variants_fd() or objects_fd() of an inode whose content is `digest`,
  // whose mode, owner and xattrs equal `entry`'s (its mtime too when `exact_mtime`) and which can
  // take one more link, creating the variant on first need. A variant's mtime is that of the
  // entry that created it. Once an inode is one link short of the file system's limit, the next
  // generation takes over, so linking never meets EMLINK and no inode is left without a spare.
  struct LinkSource {
    int dir_fd;
    std::string name;
    std::string path;  // "objects/ab/<hex>" or "variants/ab/<name>": its fingerprint's name
    FileStamp before;  // its stat before the caller links it (fingerprints follow treesnap's links)
  };
  Result<LinkSource> link_source(const Entry& entry, bool exact_mtime) const;
  // The most names one inode may have on the store's file system (_PC_LINK_MAX).
  std::uint64_t link_max() const { return m_link_max; }

  // Copies the data `ranges` (empty: all of it) of object `digest` into `dst_fd`, leaving the
  // rest as holes, while hashing it; `corrupt` when the bytes do not match, so a damaged object
  // never restores silently. Used by restore's copy rung.
  Result<void> copy_verified(std::string_view digest, std::uint64_t size,
                             const std::vector<DataRange>& ranges, int dst_fd,
                             std::string_view what) const;

  // Publishes a copy of `src_fd` (its data `ranges`, empty: all) as object `digest` with `mode`
  // (write and set-id bits dropped) and `mtime_ns`, after checking the copy's digest: `corrupt`
  // when it differs. For an object whose file was lost (repair). Returns the published stat.
  Result<FileStamp> publish_copy(std::string_view digest, int src_fd, std::uint64_t size,
                                 const std::vector<DataRange>& ranges, std::uint32_t mode,
                                 std::int64_t mtime_ns) const;

  // Makes everything published so far durable, per the SyncPolicy.
  Result<void> sync() const;

  // Hashes the logical bytes of an open file (holes as zeros).
  Result<std::string> hash_fd(int fd, std::uint64_t size, std::string_view what,
                              const ReadObserver& observe = nullptr) const;

 private:
  ObjectStore() = default;
  Result<UniqueFd> stage() const;
  Result<void> create_variant(const Entry& entry, const std::string& name) const;
  // Returns the stat of the inode now under `name`.
  Result<FileStamp> publish(UniqueFd staged, int dir_fd, const std::string& name,
                            std::string_view digest) const;

  DigestAlgorithm m_algorithm = DigestAlgorithm::sha256;
  SyncPolicy m_sync = SyncPolicy::batch;
  UniqueFd m_root, m_objects, m_variants, m_staging, m_quarantine;
  std::uint64_t m_link_max = 0;
};

}  // namespace treesnap

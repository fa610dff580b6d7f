// Verify: check every object and link variant against its digest (all re-hashed, or with --fast
// only those whose stat differs from their fingerprint), quarantine the damaged ones and name
// everything that needs them. Rules and costs: docs/integrity.md.
#pragma once

#include <optional>
#include <set>

#include "core/manifest.hpp"
#include "meta/database.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"

namespace treesnap {

// `only`: when set, the digests to check (a snapshot's refs); their variants are checked too.
Result<VerifySummary> verify_store(const ObjectStore& store, Database& db, unsigned threads, bool fast,
                                   const std::optional<std::set<std::string>>& only);

// Reads a manifest object, checks its digest and decodes it: `corrupt` when damaged.
Result<Manifest> read_manifest(const ObjectStore& store, const std::string& digest);

// Who needs `digest`: snapshots ("name:tag"), their paths ("name:tag:path", or "(manifest)") and
// restored files ("target/path"); with `inode` set, only restored files linked to that inode.
// Answered for many digests at once (one read of refs, each manifest decoded once): out[i] is
// for queries[i].
struct ContentUsers {
  std::vector<std::string> snapshots, paths, trees;
};
struct ContentQuery {
  std::string digest;
  std::optional<std::uint64_t> inode;
};
Result<std::vector<ContentUsers>> users_of(const ObjectStore& store, Database& db, const std::vector<ContentQuery>& queries);

// Moves a damaged store file (`top` is objects/ or variants/, `name` "ab/<name>") to quarantine/
// and records it. Returns the path now holding it ("quarantine/<name>").
Result<std::string> quarantine_file(const ObjectStore& store, Database& db, std::string_view top,
                                    const std::string& name, const std::string& digest, std::uint64_t ino,
                                    const std::string& reason);

}  // namespace treesnap

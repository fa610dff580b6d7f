// The probe record of a (store, target) file system pair: read from the database, or made by
// trying the operations (store/fs_probe.hpp) and recorded there.
#pragma once

#include "meta/database.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"

namespace treesnap {

enum class ProbeMode {
  recorded,  // use the recorded result when there is one, else probe and record
  fresh,     // probe and record whatever is recorded
};

// `target_dir_fd` is a writable directory on the target's file system (a restore passes its
// temporary tree); the throwaway files are made there and in the store's tmp/.
Result<ProbeReport> pair_probe(Database& db, const ObjectStore& store, int target_dir_fd, ProbeMode mode);

}  // namespace treesnap

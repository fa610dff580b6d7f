#include "treesnap/entry.hpp"

namespace treesnap {
namespace {

const EntryExtras k_no_extras;

}  // namespace

const EntryExtras& Entry::extras() const noexcept { return m_extras ? *m_extras : k_no_extras; }

Entry& Entry::operator=(const Entry& other) {
  if (this == &other) return *this;
  path = other.path;
  type = other.type;
  mode = other.mode;
  uid = other.uid;
  gid = other.gid;
  mtime_ns = other.mtime_ns;
  size = other.size;
  digest = other.digest;
  link_index = other.link_index;
  m_extras = other.m_extras ? std::make_unique<EntryExtras>(*other.m_extras) : nullptr;
  return *this;
}

template <typename Change>
void Entry::change_extras(bool value_empty, Change change) {
  if (!m_extras) {
    if (value_empty) return;
    m_extras = std::make_unique<EntryExtras>();
  }
  change(*m_extras);
  if (m_extras->empty()) m_extras.reset();
}

void Entry::set_link_target(std::string target) {
  change_extras(target.empty(), [&](EntryExtras& x) { x.link_target = std::move(target); });
}
void Entry::set_rdev(std::uint64_t rdev) {
  change_extras(rdev == 0, [&](EntryExtras& x) { x.rdev = rdev; });
}
void Entry::set_xattrs(std::vector<Xattr> xattrs) {
  change_extras(xattrs.empty(), [&](EntryExtras& x) { x.xattrs = std::move(xattrs); });
}
void Entry::set_data_ranges(std::vector<DataRange> ranges) {
  change_extras(ranges.empty(), [&](EntryExtras& x) { x.data_ranges = std::move(ranges); });
}

bool Entry::operator==(const Entry& other) const {
  return path == other.path && type == other.type && mode == other.mode && uid == other.uid &&
         gid == other.gid && mtime_ns == other.mtime_ns && size == other.size &&
         digest == other.digest && link_index == other.link_index && extras() == other.extras();
}

}  // namespace treesnap

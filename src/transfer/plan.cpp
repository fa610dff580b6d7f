#include "transfer/plan.hpp"

#include <algorithm>

namespace treesnap::transfer {

Plan make_plan(const std::vector<ObjectRef>& all, const BaseIndex& base) {
  Plan plan;
  std::vector<bool> pack_used(base.packs.size(), false);
  std::vector<ObjectRef> small;
  for (const auto& o : all) {
    if (o.size >= k_standalone_threshold) {
      plan.standalone.push_back(o);
    } else if (auto it = base.objects.find(o.sha256); it != base.objects.end()) {
      pack_used[it->second] = true;
      plan.reused_objects += 1;
      plan.reused_bytes += o.size;
    } else {
      small.push_back(o);
    }
  }
  for (std::size_t i = 0; i < pack_used.size(); ++i)
    if (pack_used[i]) plan.reused_packs.push_back(i);
  // Keep the OCI manifest under k_max_layers: the smallest large objects join the packs. The
  // estimate of new packs is an upper bound (by bytes and by count, each rounded up).
  std::uint64_t small_bytes = 0;
  for (const auto& o : small) small_bytes += o.size;
  auto layers = [&] {
    const std::size_t packs = small_bytes / k_pack_target + small.size() / k_pack_max_objects + 1;
    return plan.standalone.size() + 2 * (plan.reused_packs.size() + packs);
  };
  if (layers() > k_max_layers) {
    std::stable_sort(plan.standalone.begin(), plan.standalone.end(),
                     [](const ObjectRef& a, const ObjectRef& b) { return a.size > b.size; });
    while (!plan.standalone.empty() && layers() > k_max_layers) {
      small_bytes += plan.standalone.back().size;
      small.push_back(std::move(plan.standalone.back()));
      plan.standalone.pop_back();
    }
  }
  std::uint64_t filled = 0;
  for (auto& o : small) {
    if (plan.new_packs.empty() || filled >= k_pack_target || plan.new_packs.back().size() >= k_pack_max_objects) {
      plan.new_packs.emplace_back();
      filled = 0;
    }
    filled += o.size;
    plan.new_packs.back().push_back(std::move(o));
  }
  return plan;
}

std::size_t layer_count(const Plan& plan) {
  return plan.standalone.size() + 2 * (plan.reused_packs.size() + plan.new_packs.size());
}

}  // namespace treesnap::transfer

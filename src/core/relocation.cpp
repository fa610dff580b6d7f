#include "core/relocation.hpp"

#include <string.h>  // memmem (GNU)

#include <algorithm>

#include <fmt/format.h>

#include "util/error.hpp"

namespace treesnap {
namespace {

// conda and git call a file binary when its head holds a NUL; 8 KiB is git's window. ELF files
// are binary even without one early (they always have one, but the magic is a cheap certainty).
constexpr std::uint64_t k_sniff_bytes = 8192;
constexpr std::string_view k_elf_magic = "\x7f" "ELF";

bool continues_name(int byte) {
  if (byte < 0) return false;
  auto c = static_cast<unsigned char>(byte);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

}  // namespace

const char* to_string(RelocationKind kind) noexcept { return kind == RelocationKind::binary ? "binary" : "text"; }

void PrefixScanner::check_candidate(std::uint64_t at, int next_byte) {
  if (continues_name(next_byte)) return;
  if (!m_offsets.empty() && at < m_offsets.back() + m_prefix.size()) return;  // overlaps the last one
  m_offsets.push_back(at);
}

void PrefixScanner::feed(std::uint64_t offset, std::string_view bytes) {
  const std::size_t p = m_prefix.size();
  if (offset != m_tail_end) {  // a hole (zeros) lies between: it ends any match and any straddle
    for (auto at : m_pending) check_candidate(at, 0);
    m_pending.clear();
    m_tail.clear();
  }
  if (bytes.empty()) return;
  if (m_sniffed < k_sniff_bytes && offset < k_sniff_bytes) {
    auto head = bytes.substr(0, static_cast<std::size_t>(k_sniff_bytes - offset));
    if (head.find('\0') != std::string_view::npos) m_binary = true;
    if (offset == 0 && head.starts_with(k_elf_magic)) m_binary = true;
    m_sniffed = offset + head.size();
  }
  for (auto at : m_pending) check_candidate(at, static_cast<unsigned char>(bytes[0]));
  m_pending.clear();
  // Occurrences that start in the previous piece and end in this one.
  const std::uint64_t tail_start = m_tail_end - m_tail.size();
  if (!m_tail.empty()) {
    std::string joined = m_tail;
    joined.append(bytes.substr(0, p - 1));
    for (std::size_t start = 0; start < m_tail.size(); ++start) {
      if (start + p > joined.size()) break;
      if (std::string_view(joined).substr(start, p) != m_prefix) continue;
      const std::size_t next = start + p - m_tail.size();  // index in `bytes` of the byte after
      if (next < bytes.size()) check_candidate(tail_start + start, static_cast<unsigned char>(bytes[next]));
      else m_pending.push_back(tail_start + start);
    }
  }
  // Occurrences inside this piece: memmem is glibc's two-way search, a few GB/s.
  for (std::size_t i = 0; i + p <= bytes.size();) {
    const void* hit = ::memmem(bytes.data() + i, bytes.size() - i, m_prefix.data(), p);
    if (!hit) break;
    const auto at = static_cast<std::size_t>(static_cast<const char*>(hit) - bytes.data());
    if (at + p < bytes.size()) check_candidate(offset + at, static_cast<unsigned char>(bytes[at + p]));
    else m_pending.push_back(offset + at);
    i = at + 1;
  }
  // Keep the last p - 1 bytes: enough for any occurrence that continues into the next piece.
  if (bytes.size() >= p - 1) {
    m_tail.assign(bytes.substr(bytes.size() - (p - 1)));
  } else {
    m_tail.append(bytes);
    if (m_tail.size() > p - 1) m_tail.erase(0, m_tail.size() - (p - 1));
  }
  m_tail_end = offset + bytes.size();
}

void PrefixScanner::finish() {
  for (auto at : m_pending) check_candidate(at, -1);
  m_pending.clear();
}

bool relocation_exempt(std::string_view path) noexcept { return path.ends_with(".pyc"); }

std::vector<std::uint64_t> unrelocatable(const std::vector<Relocation>& relocations, std::string_view old_root,
                                         std::string_view new_root) {
  std::vector<std::uint64_t> refused;
  if (new_root.size() <= old_root.size()) return refused;
  for (const auto& r : relocations)
    if (r.kind == RelocationKind::binary) refused.push_back(r.entry_index);
  return refused;
}

Result<std::string> relocate_bytes(std::string_view data, const Relocation& relocation, std::string_view old_root,
                                   std::string_view new_root) {
  const auto& offsets = relocation.offsets;
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    const bool ordered = i == 0 || offsets[i] >= offsets[i - 1] + old_root.size();
    if (!ordered || offsets[i] > data.size() || data.substr(offsets[i], old_root.size()) != old_root)
      return std::unexpected(make_error(ErrorCode::invalid,
                                        fmt::format("relocation offset {} does not hold the snapshot's path", offsets[i])));
  }
  std::string out;
  out.reserve(data.size() + offsets.size() * (new_root.size() > old_root.size() ? new_root.size() - old_root.size() : 0));
  std::size_t copied = 0;  // data[0, copied) is in `out`
  if (relocation.kind == RelocationKind::text) {
    for (auto o : offsets) {
      out.append(data.substr(copied, o - copied)).append(new_root);
      copied = o + old_root.size();
    }
    out.append(data.substr(copied));
    return out;
  }
  if (new_root.size() > old_root.size())
    return std::unexpected(make_error(ErrorCode::invalid, "a binary file cannot take a longer path"));
  // Binary: the occurrences in one NUL-terminated string are replaced together and the string is
  // padded with NULs to its old length, so no byte outside it moves (what conda does).
  for (std::size_t i = 0; i < offsets.size();) {
    std::size_t end = data.find('\0', offsets[i]);
    if (end == std::string_view::npos) end = data.size();
    out.append(data.substr(copied, offsets[i] - copied));
    const std::size_t string_start = out.size(), first = offsets[i];
    std::size_t at = first;
    for (; i < offsets.size() && offsets[i] < end; ++i) {
      out.append(data.substr(at, offsets[i] - at)).append(new_root);
      at = offsets[i] + old_root.size();
    }
    out.append(data.substr(at, end - at));
    out.append((end - first) - (out.size() - string_start), '\0');
    copied = end;
  }
  out.append(data.substr(copied));
  return out;
}

}  // namespace treesnap

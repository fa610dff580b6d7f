// Internal to meta/: a prepared SQLite statement with positional binding, and the one place where
// SQLite result codes become ErrorCodes.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "util/error.hpp"

namespace treesnap::sql {

inline Error db_error(sqlite3* db, std::string_view what) {
  int code = sqlite3_errcode(db);
  ErrorCode mapped = ErrorCode::io;
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) mapped = ErrorCode::busy;
  else if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) mapped = ErrorCode::corrupt;
  else if (code == SQLITE_FULL) mapped = ErrorCode::no_space;
  else if (code == SQLITE_CONSTRAINT) mapped = ErrorCode::exists;
  return make_error(mapped, fmt::format("database: {}: {}", what, sqlite3_errmsg(db)));
}

// A prepared statement with positional binding; finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : m_db(db) {
    m_ok = sqlite3_prepare_v2(db, sql, -1, &m_stmt, nullptr) == SQLITE_OK;
  }
  ~Statement() { sqlite3_finalize(m_stmt); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return m_ok; }
  Statement& bind(int i, std::int64_t v) { sqlite3_bind_int64(m_stmt, i, v); return *this; }
  Statement& bind(int i, std::uint64_t v) { return bind(i, static_cast<std::int64_t>(v)); }
  Statement& bind_text(int i, const std::string& v) {
    sqlite3_bind_text(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind_blob(int i, std::string_view v) {
    sqlite3_bind_blob(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // SQLITE_ROW -> true, SQLITE_DONE -> false.
  Result<bool> step() {
    if (!m_ok) return std::unexpected(db_error(m_db, "prepare"));
    int rc = sqlite3_step(m_stmt);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return std::unexpected(db_error(m_db, "step"));
  }
  Result<void> run() {
    TRY(auto row, step());
    (void)row;
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
    return {};
  }
  void reset() {
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
  }
  std::int64_t i64(int col) const { return sqlite3_column_int64(m_stmt, col); }
  std::uint64_t u64(int col) const { return static_cast<std::uint64_t>(i64(col)); }
  std::string blob(int col) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(m_stmt, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col))) : std::string();
  }
  // Views valid until the next step() or reset().
  std::string_view blob_view(int col) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(m_stmt, col));
    return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col))) : std::string_view();
  }
  std::string_view text_view(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, col));
    return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col))) : std::string_view();
  }
  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col))) : std::string();
  }

 private:
  sqlite3* m_db;
  sqlite3_stmt* m_stmt = nullptr;
  bool m_ok = false;
};

// Steps a bound statement to its end and returns make_row(statement) for each row, in order.
template <typename MakeRow>
auto collect_rows(Statement& s, MakeRow make_row)
    -> Result<std::vector<std::invoke_result_t<MakeRow&, const Statement&>>> {
  std::vector<std::invoke_result_t<MakeRow&, const Statement&>> out;
  for (;;) {
    TRY(auto row, s.step());
    if (!row) return out;
    out.push_back(make_row(std::as_const(s)));
  }
}

// Runs one or more statements without results.
inline Result<void> exec(sqlite3* db, const char* text) {
  char* message = nullptr;
  if (sqlite3_exec(db, text, nullptr, nullptr, &message) != SQLITE_OK) {
    Error error = db_error(db, message ? message : text);
    sqlite3_free(message);
    return std::unexpected(error);
  }
  return {};
}

// Turns triggers off for this connection while it lives. Statements prepared meanwhile run
// without them; changing the setting makes SQLite re-prepare every other statement on its next
// step, so the cached ones get their triggers back.
class TriggersOff {
 public:
  explicit TriggersOff(sqlite3* db) : m_db(db) { sqlite3_db_config(m_db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, nullptr); }
  ~TriggersOff() { sqlite3_db_config(m_db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, nullptr); }
  TriggersOff(const TriggersOff&) = delete;
  TriggersOff& operator=(const TriggersOff&) = delete;

 private:
  sqlite3* m_db;
};

}  // namespace treesnap::sql

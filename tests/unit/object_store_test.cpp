// store/object_store: ingest (small, streamed, sparse), idempotent publication, read-only objects,
// verified reads and copies, and link variants.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/digest.hpp"
#include "store/layout.hpp"
#include "store/object_store.hpp"
#include "test_util.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;
namespace fs = std::filesystem;

constexpr std::int64_t k_mtime = 1'600'000'000'123'456'789;

std::string pattern(std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 7 + i / 4096) % 251);
  return data;
}

class ObjectStoreTest : public test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    m_root = dir() / "store";
    auto opened = ObjectStore::open(m_root.string(), DigestAlgorithm::sha256, SyncPolicy::none, true);
    ASSERT_TRUE(ok(opened));
    m_store.emplace(std::move(*opened));
  }

  const ObjectStore& store() const { return *m_store; }
  fs::path object(std::string_view digest) const { return test::object_path(m_root, to_hex(digest)); }

  // Writes `content` to a source file and ingests it; `claim` defaults to "always store".
  Result<ObjectStore::Ingested> ingest(std::string_view content, std::uint32_t mode = 0644,
                                       const ObjectStore::ClaimFn& claim = [](const std::string&) { return true; }) {
    fs::path source = dir() / "source";
    test::write_file(source, content);
    return ingest_path(source, content.size(), false, mode, claim);
  }

  Result<ObjectStore::Ingested> ingest_path(const fs::path& source, std::uint64_t size, bool maybe_sparse,
                                            std::uint32_t mode = 0644,
                                            const ObjectStore::ClaimFn& claim = [](const std::string&) { return true; }) {
    UniqueFd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid()) << source;
    return store().ingest(fd.get(), size, maybe_sparse, mode, k_mtime, false, source.filename().string(), claim);
  }

  fs::path m_root;
  std::optional<ObjectStore> m_store;
};

TEST_F(ObjectStoreTest, OpenCreatesTheShardedLayout) {
  for (const char* sub : {"objects/00", "objects/ab", "objects/ff", "variants/00", "variants/ff", "tmp"}) {
    struct stat st = test::lstat_path(m_root / sub);
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << sub;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << sub << ": objects may hold secrets";
  }
  EXPECT_EQ(test::list_dir(m_root / "objects").size(), 256u);
  auto missing = ObjectStore::open((dir() / "nothing").string(), DigestAlgorithm::sha256, SyncPolicy::none, false);
  EXPECT_TRUE(fails_with(missing, ErrorCode::not_found));
}

TEST_F(ObjectStoreTest, IngestsASmallFile) {
  auto ingested = ingest("hello");
  ASSERT_TRUE(ok(ingested));
  EXPECT_EQ(to_hex(ingested->digest), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_TRUE(ingested->published);
  EXPECT_TRUE(ingested->ranges.empty());
  fs::path path = m_root / "objects/2c/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
  EXPECT_EQ(test::read_file(path), "hello");
  struct stat st = test::lstat_path(path);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_EQ(test::mtime_ns(st), k_mtime);
  EXPECT_TRUE(test::list_dir(m_root / "tmp").empty()) << "staging must leave nothing behind";
}

TEST_F(ObjectStoreTest, IngestsAFileLargerThanTheWholeReadLimit) {
  const std::string data = pattern((3 << 20) + 17);
  auto ingested = ingest(data);
  ASSERT_TRUE(ok(ingested));
  EXPECT_EQ(ingested->digest, hash_bytes(DigestAlgorithm::sha256, data));
  EXPECT_TRUE(ingested->published);
  EXPECT_TRUE(ingested->ranges.empty());
  EXPECT_TRUE(test::read_file(object(ingested->digest)) == data);
  EXPECT_EQ(test::lstat_path(object(ingested->digest)).st_mode & 07777, 0444u);
}

TEST_F(ObjectStoreTest, PublishedObjectsHaveNoWriteOrSetIdBits) {
  auto setuid = ingest("setuid program", 04755);
  ASSERT_TRUE(ok(setuid));
  EXPECT_EQ(test::lstat_path(object(setuid->digest)).st_mode & 07777, 0555u);
  auto writable = ingest("group writable", 02775);
  ASSERT_TRUE(ok(writable));
  EXPECT_EQ(test::lstat_path(object(writable->digest)).st_mode & 07777, 0555u);
}

TEST_F(ObjectStoreTest, IngestsASparseFileKeepingItsHoles) {
  constexpr std::uint64_t k_size = 16 << 20;
  fs::path source = dir() / "sparse";
  {
    UniqueFd fd(::open(source.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::ftruncate(fd.get(), k_size), 0);
    ASSERT_EQ(::pwrite(fd.get(), std::string(4096, 'X').data(), 4096, 4 << 20), 4096);
    ASSERT_EQ(::pwrite(fd.get(), std::string(8192, 'Y').data(), 8192, 12 << 20), 8192);
  }
  std::string logical(k_size, '\0');
  logical.replace(4 << 20, 4096, std::string(4096, 'X'));
  logical.replace(12 << 20, 8192, std::string(8192, 'Y'));

  auto ingested = ingest_path(source, k_size, true);
  ASSERT_TRUE(ok(ingested));
  EXPECT_EQ(ingested->digest, hash_bytes(DigestAlgorithm::sha256, logical));
  EXPECT_EQ(ingested->ranges, (std::vector<DataRange>{{4 << 20, 4096}, {12 << 20, 8192}}));
  struct stat st = test::lstat_path(object(ingested->digest));
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), k_size);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the object must keep the holes";
  EXPECT_TRUE(test::read_file(object(ingested->digest)) == logical);
  auto hashed = store().hash_fd(UniqueFd(::open(object(ingested->digest).c_str(), O_RDONLY)).get(), k_size, "object");
  ASSERT_TRUE(ok(hashed));
  EXPECT_EQ(*hashed, ingested->digest);

  // Restore's copy writes only the recorded ranges: the copy has the holes and the bytes.
  fs::path copy = dir() / "sparse-copy";
  {
    UniqueFd dst(::open(copy.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(ok(store().copy_verified(ingested->digest, k_size, ingested->ranges, dst.get(), "copy")));
  }
  struct stat copy_st = test::lstat_path(copy);
  EXPECT_EQ(static_cast<std::uint64_t>(copy_st.st_size), k_size) << "the trailing hole must be kept";
  EXPECT_LT(copy_st.st_blocks * 512, 1 << 20);
  EXPECT_TRUE(test::read_file(copy) == logical);
}

TEST_F(ObjectStoreTest, SecondIngestOfTheSameContentIsNotPublished) {
  std::set<std::string> known;
  auto claim = [&](const std::string& digest) { return known.insert(digest).second; };
  auto first = ingest("same bytes", 0644, claim);
  ASSERT_TRUE(ok(first));
  EXPECT_TRUE(first->published);
  ino_t inode = test::lstat_path(object(first->digest)).st_ino;
  auto second = ingest("same bytes", 0600, claim);
  ASSERT_TRUE(ok(second));
  EXPECT_FALSE(second->published);
  EXPECT_EQ(second->digest, first->digest);
  EXPECT_EQ(test::lstat_path(object(first->digest)).st_ino, inode);
}

// A claim that says "store it" for an object already on disk (e.g. the database lost its row)
// must still succeed and keep the intact object.
TEST_F(ObjectStoreTest, PublishOverAnIntactObjectKeepsIt) {
  for (std::size_t size : {std::size_t{100}, std::size_t{(1 << 20) + 1}}) {
    const std::string data = pattern(size);
    auto first = ingest(data);
    ASSERT_TRUE(ok(first));
    ino_t inode = test::lstat_path(object(first->digest)).st_ino;
    auto again = ingest(data);
    ASSERT_TRUE(ok(again)) << size;
    EXPECT_EQ(test::lstat_path(object(first->digest)).st_ino, inode) << size;
    EXPECT_TRUE(test::list_dir(m_root / "tmp").empty());
  }
}

TEST_F(ObjectStoreTest, PublishReplacesADamagedFileAtTheObjectPath) {
  for (std::size_t size : {std::size_t{100}, std::size_t{(1 << 20) + 1}}) {
    const std::string data = pattern(size);
    const std::string digest = hash_bytes(DigestAlgorithm::sha256, data);
    std::string wrong = data;
    wrong[size / 2] ^= 1;
    test::write_file(object(digest), wrong, 0444);  // a crash left unsynced garbage here

    auto ingested = ingest(data);
    ASSERT_TRUE(ok(ingested)) << size;
    EXPECT_EQ(ingested->digest, digest);
    EXPECT_TRUE(test::read_file(object(digest)) == data) << size;
    EXPECT_TRUE(test::list_dir(m_root / "tmp").empty()) << "the replacement temp name must be gone";
  }
}

TEST_F(ObjectStoreTest, IngestOfAShrunkenSourceFailsWithIo) {
  test::write_file(dir() / "short", "only 16 bytes...");
  auto small = ingest_path(dir() / "short", 200, false);
  EXPECT_TRUE(fails_with(small, ErrorCode::io));
  test::write_file(dir() / "long", pattern(2 << 20));
  auto large = ingest_path(dir() / "long", 3 << 20, false);
  EXPECT_TRUE(fails_with(large, ErrorCode::io));
}

TEST_F(ObjectStoreTest, PutBytesRoundTrip) {
  const std::string data("manifest \0 bytes\xff", 17);
  auto digest = store().put_bytes(data);
  ASSERT_TRUE(ok(digest));
  EXPECT_EQ(*digest, hash_bytes(DigestAlgorithm::sha256, data));
  auto again = store().put_bytes(data);
  ASSERT_TRUE(ok(again));
  EXPECT_EQ(*again, *digest);
  auto read = store().read_verified(*digest);
  ASSERT_TRUE(ok(read));
  EXPECT_EQ(*read, data);
  EXPECT_EQ(test::lstat_path(object(*digest)).st_mode & 0222, 0u);
}

TEST_F(ObjectStoreTest, PutStreamStoresThePiecesAsOneObject) {
  const std::vector<std::string> pieces = {"manifest ", std::string("\0 bytes", 7), "\xff end"};
  std::string whole;
  for (const auto& p : pieces) whole += p;
  auto produce = [&](const ObjectStore::ByteWriter& write) -> Result<void> {
    for (const auto& p : pieces) TRY_VOID(write(p));
    return {};
  };
  auto stored = store().put_stream(produce);
  ASSERT_TRUE(ok(stored));
  EXPECT_EQ(stored->digest, hash_bytes(DigestAlgorithm::sha256, whole));
  EXPECT_EQ(stored->size, whole.size());
  ASSERT_TRUE(ok(store().put_stream(produce))) << "storing the same bytes again is success";
  auto read = store().read_verified(stored->digest);
  ASSERT_TRUE(ok(read));
  EXPECT_EQ(*read, whole);
}

TEST_F(ObjectStoreTest, PutStreamPublishesNothingWhenTheProducerFails) {
  auto stored = store().put_stream([](const ObjectStore::ByteWriter& write) -> Result<void> {
    TRY_VOID(write("half a manifest"));
    return std::unexpected(make_error(ErrorCode::io, "producer failed"));
  });
  EXPECT_TRUE(fails_with(stored, ErrorCode::io));
  EXPECT_FALSE(test::exists_nofollow(object(hash_bytes(DigestAlgorithm::sha256, "half a manifest"))));
}

TEST_F(ObjectStoreTest, ReadVerifiedDetectsAFlippedByteAndPutBytesRepairsIt) {
  const std::string data = "a manifest worth keeping";
  auto digest = store().put_bytes(data);
  ASSERT_TRUE(ok(digest));
  test::flip_byte(object(*digest), 3);
  EXPECT_TRUE(fails_with(store().read_verified(*digest), ErrorCode::corrupt));
  ASSERT_TRUE(ok(store().put_bytes(data)));
  auto read = store().read_verified(*digest);
  ASSERT_TRUE(ok(read));
  EXPECT_EQ(*read, data);
}

TEST_F(ObjectStoreTest, MissingObjectsAreCorrupt) {
  const std::string digest = hash_bytes(DigestAlgorithm::sha256, "never stored");
  auto read = store().read_verified(digest);
  ASSERT_TRUE(fails_with(read, ErrorCode::corrupt));
  EXPECT_NE(read.error().context.find(to_hex(digest)), std::string::npos) << read.error().message();
  EXPECT_TRUE(fails_with(store().open_object(digest), ErrorCode::corrupt));
}

TEST_F(ObjectStoreTest, CopyVerifiedCopiesIntactAndRefusesDamagedObjects) {
  const std::string data = pattern(300'000);
  auto ingested = ingest(data);
  ASSERT_TRUE(ok(ingested));
  {
    UniqueFd dst(::open((dir() / "copy").c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(ok(store().copy_verified(ingested->digest, data.size(), {}, dst.get(), "copy")));
  }
  EXPECT_TRUE(test::read_file(dir() / "copy") == data);

  test::flip_byte(object(ingested->digest), 299'999);
  UniqueFd dst(::open((dir() / "copy2").c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  auto copied = store().copy_verified(ingested->digest, data.size(), {}, dst.get(), "copy2");
  ASSERT_TRUE(fails_with(copied, ErrorCode::corrupt));
  EXPECT_NE(copied.error().context.find("copy2"), std::string::npos) << copied.error().message();
  // A size that disagrees with the object is damage too.
  auto wrong_size = store().copy_verified(ingested->digest, data.size() + 1, {}, dst.get(), "copy2");
  EXPECT_TRUE(fails_with(wrong_size, ErrorCode::corrupt));
}

Entry entry_for(const ObjectStore::Ingested& ingested, std::uint64_t size, std::uint32_t mode) {
  Entry e;
  e.path = "some/file";
  e.type = EntryType::file;
  e.mode = mode;
  e.uid = ::geteuid();
  e.gid = ::getegid();
  e.mtime_ns = k_mtime;
  e.size = size;
  e.digest = ingested.digest;
  return e;
}

TEST_F(ObjectStoreTest, LinkSourceIsTheObjectWhenMetadataMatches) {
  auto ingested = ingest("read-only content", 0444);
  ASSERT_TRUE(ok(ingested));
  auto source = store().link_source(entry_for(*ingested, 17, 0444), false);
  ASSERT_TRUE(ok(source));
  EXPECT_EQ(source->dir_fd, store().objects_fd());
  EXPECT_EQ(source->name, to_hex(ingested->digest).substr(0, 2) + "/" + to_hex(ingested->digest));
  EXPECT_TRUE(test::list_dir(m_root / "variants" / to_hex(ingested->digest).substr(0, 2)).empty());
}

TEST_F(ObjectStoreTest, LinkSourceMakesAVariantWithTheEntrysMetadata) {
  const std::string data = "content with other metadata";
  auto ingested = ingest(data, 0444);
  ASSERT_TRUE(ok(ingested));
  Entry e = entry_for(*ingested, data.size(), 0640);
  e.uid = 1234;  // tests run as root, so the variant can be chowned
  e.gid = 5678;
  e.mtime_ns = k_mtime + 1;
  e.set_xattrs({{"user.a", std::string("1\0x", 3)}, {"user.b", "two"}});

  auto source = store().link_source(e, false);
  ASSERT_TRUE(ok(source));
  EXPECT_EQ(source->dir_fd, store().variants_fd());
  EXPECT_EQ(source->name, layout::variant_name(e.digest, e, false, 0));
  EXPECT_TRUE(source->name.starts_with(to_hex(e.digest).substr(0, 2) + "/" + to_hex(e.digest) + "."));
  fs::path variant = m_root / "variants" / source->name;
  struct stat st = test::lstat_path(variant);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(test::mtime_ns(st), e.mtime_ns);
  EXPECT_EQ(test::list_xattrs(variant), e.xattrs());
  EXPECT_EQ(test::read_file(variant), data);
  EXPECT_NE(st.st_ino, test::lstat_path(object(e.digest.str())).st_ino);

  auto again = store().link_source(e, false);
  ASSERT_TRUE(ok(again));
  EXPECT_EQ(again->name, source->name);
  EXPECT_EQ(test::lstat_path(variant).st_ino, st.st_ino) << "a second request reuses the variant";
}

TEST_F(ObjectStoreTest, LinkSourceUsesAVariantWhenOnlyXattrsDiffer) {
  auto ingested = ingest("xattr content", 0444);
  ASSERT_TRUE(ok(ingested));
  Entry e = entry_for(*ingested, 13, 0444);
  e.set_xattrs({{"user.only", "here"}});
  auto source = store().link_source(e, false);
  ASSERT_TRUE(ok(source));
  EXPECT_EQ(source->dir_fd, store().variants_fd());
  EXPECT_EQ(test::list_xattrs(m_root / "variants" / source->name), e.xattrs());
  EXPECT_TRUE(test::list_xattrs(object(e.digest.str())).empty()) << "the shared object must stay untouched";
}

TEST_F(ObjectStoreTest, OnlyStrictMetadataMakesAVariantForAnotherMtime) {
  auto ingested = ingest("same content, other mtime", 0444);
  ASSERT_TRUE(ok(ingested));
  Entry e = entry_for(*ingested, 25, 0444);
  e.mtime_ns = k_mtime + 42;
  auto relaxed = store().link_source(e, false);
  ASSERT_TRUE(ok(relaxed));
  EXPECT_EQ(relaxed->dir_fd, store().objects_fd()) << "by default a linked file takes its inode's mtime";

  auto strict = store().link_source(e, true);
  ASSERT_TRUE(ok(strict));
  EXPECT_EQ(strict->dir_fd, store().variants_fd());
  EXPECT_EQ(strict->name, layout::variant_name(e.digest, e, true, 0));
  EXPECT_EQ(test::mtime_ns(test::lstat_path(m_root / "variants" / strict->name)), e.mtime_ns);
}

TEST_F(ObjectStoreTest, LinkSourceKeepsASpareLinkAndMovesToTheNextGeneration) {
  const std::uint64_t link_max = store().link_max();
  if (link_max > 100'000) GTEST_SKIP() << "this file system allows " << link_max << " links per inode";
  auto ingested = ingest("linked many times", 0444);
  ASSERT_TRUE(ok(ingested));
  Entry e = entry_for(*ingested, 17, 0444);
  // Fill the object up to one link short of the limit, the way restores would.
  const fs::path links = dir() / "links";
  test::make_dir(links);
  auto first = store().link_source(e, false);
  ASSERT_TRUE(ok(first));
  ASSERT_EQ(first->dir_fd, store().objects_fd());
  for (std::uint64_t n = test::lstat_path(object(e.digest)).st_nlink; n + 2 <= link_max; ++n)
    ASSERT_EQ(::link(object(e.digest).c_str(), (links / std::to_string(n)).c_str()), 0) << n;
  ASSERT_EQ(test::lstat_path(object(e.digest)).st_nlink, link_max - 1);

  auto next = store().link_source(e, false);
  ASSERT_TRUE(ok(next));
  EXPECT_EQ(next->dir_fd, store().variants_fd()) << "the object's last link stays free";
  EXPECT_EQ(next->name, layout::variant_name(e.digest, e, false, 0));
  EXPECT_EQ(test::read_file(m_root / "variants" / next->name), "linked many times");
}

}  // namespace
}  // namespace treesnap

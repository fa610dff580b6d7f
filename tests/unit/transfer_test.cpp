// push, pull and restore oci://… against real servers on loopback: docker-registry for the
// round trips, skopeo as an independent reader, fake_registry.py for a registry that lies or
// fails, an htpasswd registry for Basic auth, and tinyproxy standing in for Dragonfly's dfdaemon.
#include <gtest/gtest.h>

#include <thread>

#include <zstd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/digest.hpp"
#include "core/manifest.hpp"
#include "registry_fixture.hpp"
#include "remote/registry.hpp"
#include "store_fixture.hpp"
#include "transfer/common.hpp"
#include "transfer/oci_format.hpp"
#include "transfer/plan.hpp"

namespace treesnap::test {
namespace {

namespace fs = std::filesystem;

std::uint64_t tree_bytes(const fs::path& root) {
  std::uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

std::size_t file_count(const fs::path& root) {
  std::size_t n = 0;
  if (!fs::exists(root)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) n += 1;
  return n;
}

// Two stores (a: pushes, b: pulls) and a source tree in the test's directory.
class TransferTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    make_dir(dir() / "src");
    m_a.emplace(open_store("a"));
    m_b.emplace(open_store("b"));
  }

  Store open_store(const std::string& name) {
    auto s = Store::open(dir() / name, {});
    if (!s) throw std::runtime_error(s.error().message());
    write_file(dir() / name / "treesnap.toml", "[gc]\nhigh_watermark = 100\nlow_watermark = 99\n" + m_extra_config);
    return std::move(*s);
  }

  fs::path src(const std::string& rel = "") const { return rel.empty() ? dir() / "src" : dir() / "src" / rel; }
  std::string ref(std::uint16_t port, const std::string& repo_tag) const {
    return "oci://127.0.0.1:" + std::to_string(port) + "/" + repo_tag;
  }
  static PullOptions one_job() {
    PullOptions o;
    o.access.jobs = 1;
    return o;
  }

  std::string m_extra_config;
  std::optional<Store> m_a, m_b;
};

class RealRegistryTest : public TransferTest {
 protected:
  void SetUp() override {
    TransferTest::SetUp();
    if (auto why = DockerRegistry::missing(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(m_registry.start(dir()));
  }
  std::string ref(const std::string& repo_tag) const { return TransferTest::ref(m_registry.port, repo_tag); }
  std::uint64_t registry_bytes() const { return tree_bytes(dir() / "data"); }
  DockerRegistry m_registry;
};

TEST_F(RealRegistryTest, PushPullRestoreReproducesEveryEntry) {
  build_full_tree(src());
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "full:v1"})));
  auto pushed = m_a->push("full:v1", ref("team/full:v1"), {});
  ASSERT_TRUE(ok(pushed));
  EXPECT_EQ(pushed->standalone_objects, 2u);  // "big" (3 MiB) and "sparse" (8 MiB logical)
  EXPECT_EQ(pushed->objects_moved, pushed->objects);
  EXPECT_EQ(pushed->packs_new, 1u);

  auto pulled = m_b->pull(ref("team/full:v1"), {});
  ASSERT_TRUE(ok(pulled));
  EXPECT_EQ(pulled->name, "team/full:v1");
  EXPECT_EQ(pulled->id, pushed->id) << "the snapshot's identity survives the registry";
  EXPECT_EQ(pulled->objects_moved, pulled->objects);
  EXPECT_EQ(pulled->reference, pushed->reference);

  auto restored = m_b->restore("team/full:v1", dir() / "out", {});
  ASSERT_TRUE(ok(restored));
  expect_same_tree(src(), dir() / "out");
  const auto after = scan(dir() / "out");
  EXPECT_EQ(after.at("h1").ino, after.at("d/h2").ino) << "in-tree hardlinks must share an inode";
  EXPECT_LT(after.at("sparse").blocks * 512, 1 << 20) << "holes must survive push and pull";

  // A second pull finds everything in the store and fetches nothing but the manifests.
  auto again = m_b->pull(ref("team/full:v1"), {});
  ASSERT_TRUE(ok(again));
  EXPECT_EQ(again->objects_moved, 0u);
  EXPECT_EQ(again->objects_skipped, again->objects);
  EXPECT_LE(again->requests, 3u);
}

TEST_F(RealRegistryTest, SkopeoReadsThePushedManifest) {
  if (find_program("skopeo").empty()) GTEST_SKIP() << "skopeo not installed (scripts/install-deps.sh)";
  write_file(src("a"), "alpha");
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "s"})));
  auto pushed = m_a->push("s", ref("team/s:v1"), {});
  ASSERT_TRUE(ok(pushed));
  ServerProcess skopeo;
  skopeo.start({find_program("skopeo"), "inspect", "--raw", "--tls-verify=false",
                "docker://127.0.0.1:" + std::to_string(m_registry.port) + "/team/s:v1"},
               dir() / "skopeo.out");
  while (skopeo.running()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string raw = skopeo.log();
  EXPECT_EQ(remote::oci_digest(raw), pushed->oci_digest) << raw;
  EXPECT_NE(raw.find("\"artifactType\":\"application/vnd.treesnap.snapshot.v1\""), std::string::npos) << raw;
}

TEST_F(RealRegistryTest, IncrementalPushAndPullMoveAboutTheChangedFile) {
  for (int i = 0; i < 300; ++i) write_file(src("f" + std::to_string(i)), random_bytes(4096, 100 + i));
  write_file(src("large1"), random_bytes(2 << 20, 1));
  write_file(src("large2"), random_bytes(3 << 20, 2));
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "env:v1"})));
  auto first = m_a->push("env:v1", ref("team/env:latest"), {});
  ASSERT_TRUE(ok(first));
  ASSERT_TRUE(ok(m_b->pull(ref("team/env:latest"), {})));
  const std::uint64_t before = registry_bytes();

  write_file(src("f7"), random_bytes(10'000, 7777));
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "env:v2"})));
  auto second = m_a->push("env:v2", ref("team/env:latest"), {});
  ASSERT_TRUE(ok(second));
  EXPECT_EQ(second->objects_moved, 1u);
  EXPECT_EQ(second->bytes_moved, 10'000u);
  EXPECT_EQ(second->packs_new, 1u);
  EXPECT_EQ(second->packs_reused, 1u);
  EXPECT_EQ(second->blobs_skipped, 2u) << "the large files are already there";
  const std::uint64_t growth = registry_bytes() - before;
  // The new pack (10 kB), its index, the snapshot manifest (~9 kB here) and the OCI manifest.
  EXPECT_LT(growth, 10'000u + 24'000u) << "registry grew by " << growth;
  EXPECT_LT(second->http_bytes_sent, 10'000u + 24'000u);

  PullOptions replace;
  replace.replace = true;
  auto pulled = m_b->pull(ref("team/env:latest"), replace);
  ASSERT_TRUE(ok(pulled));
  EXPECT_EQ(pulled->objects_moved, 1u);
  EXPECT_LT(pulled->http_bytes_received, 10'000u + 24'000u);
  ASSERT_TRUE(ok(m_b->restore("team/env:latest", dir() / "out", {})));
  expect_same_tree(src(), dir() / "out");

  // Without --force, a local name that points elsewhere is not moved.
  EXPECT_TRUE(fails_with(m_b->pull(first->reference, {.access = {}, .name = "team/env:latest", .replace = false, .progress = {}}),
                         ErrorCode::exists));
}

// Pushes an OCI manifest whose snapshot manifest holds `entries` as they are.
std::string push_raw_snapshot(std::uint16_t port, const std::string& repo, const Manifest& manifest) {
  remote::Reference r;
  r.host = "127.0.0.1";
  r.port = port;
  r.repository = repo;
  auto client = remote::RegistryClient::open(r, {});
  if (!client) throw std::runtime_error(client.error().message());
  std::string config = encode_manifest(manifest);
  transfer::OciSnapshot oci;
  oci.config = {std::string(transfer::k_config_type), remote::oci_digest(config), config.size()};
  if (!client->put_blob(oci.config.digest, config.size(), remote::read_memory(config))) throw std::runtime_error("put");
  oci.name = "hostile";
  auto digest = client->put_manifest("v1", transfer::k_oci_manifest_type, transfer::encode_oci_manifest(oci));
  if (!digest) throw std::runtime_error(digest.error().message());
  return "oci://127.0.0.1:" + std::to_string(port) + "/" + repo + ":v1";
}

TEST_F(RealRegistryTest, HostilePathsAreRefusedBeforeAnythingIsWritten) {
  for (const std::string bad : {"../escape", "/etc/evil", "a/../../b"}) {
    Manifest m;
    Entry root;
    root.type = EntryType::directory;
    root.mode = 0755;
    m.entries.push_back(root);
    Entry evil;
    evil.path = bad;
    evil.type = EntryType::file;
    evil.mode = 0644;
    m.entries.push_back(evil);
    const std::string reference = push_raw_snapshot(m_registry.port, "team/hostile", m);
    EXPECT_TRUE(fails_with(m_b->pull(reference, {}), ErrorCode::invalid)) << bad;
    auto listed = m_b->list();
    ASSERT_TRUE(ok(listed));
    EXPECT_TRUE(listed->empty());
    EXPECT_EQ(file_count(dir() / "b" / "objects"), 0u) << "nothing may be published for " << bad;
    EXPECT_FALSE(fs::exists(dir() / "escape"));
  }
}

TEST_F(RealRegistryTest, ReferencesWithoutTagsAreRefusedClearly) {
  write_file(src("a"), "alpha");
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "s"})));
  EXPECT_TRUE(fails_with(m_a->push("s", ref("team/s"), {}), ErrorCode::invalid));
}

Store open_xxh3(const fs::path& path) {
  auto s = Store::open(path, {.create = true, .digest = DigestAlgorithm::xxh3_128, .sync = SyncPolicy::batch, .threads = 0});
  if (!s) throw std::runtime_error(s.error().message());
  return std::move(*s);
}

// The OCI manifest of `reference` as JSON.
nlohmann::json oci_manifest_of(std::uint16_t port, const std::string& repo, const std::string& tag) {
  remote::Reference r;
  r.host = "127.0.0.1";
  r.port = port;
  r.repository = repo;
  auto client = remote::RegistryClient::open(r, {});
  if (!client) throw std::runtime_error(client.error().message());
  const std::vector<std::string> accept{std::string(transfer::k_oci_manifest_type)};
  auto fetched = client->get_manifest(tag, accept);
  if (!fetched) throw std::runtime_error(fetched.error().message());
  return nlohmann::json::parse(fetched->bytes);
}

TEST_F(RealRegistryTest, Xxh3StoresPushAndPullInBothDirections) {
  build_full_tree(src());
  Store x = open_xxh3(dir() / "x");
  ASSERT_TRUE(ok(x.snapshot(src(), {.name = "full:v1"})));
  auto pushed = x.push("full:v1", ref("team/x:v1"), {});
  ASSERT_TRUE(ok(pushed)) << pushed.error().message();
  EXPECT_EQ(pushed->standalone_objects, 2u);
  EXPECT_EQ(pushed->objects_moved, pushed->objects);

  // On the registry every name is a sha256, the xxh3-128 digests ride along (format 2).
  const auto oci = oci_manifest_of(m_registry.port, "team/x", "v1");
  EXPECT_EQ(oci["annotations"]["dev.treesnap.format"], "2");
  std::size_t annotated = 0;
  for (const auto& layer : oci["layers"]) {
    EXPECT_TRUE(layer["digest"].get<std::string>().starts_with("sha256:"));
    if (layer["mediaType"] == transfer::k_object_type) {
      EXPECT_TRUE(layer["annotations"]["dev.treesnap.store-digest"].get<std::string>().starts_with("xxh3-128:")) << layer;
      annotated += 1;
    }
  }
  EXPECT_EQ(annotated, 2u);

  // xxh3-128 → xxh3-128: the same snapshot id, the same tree.
  Store x2 = open_xxh3(dir() / "x2");
  auto pulled = x2.pull(ref("team/x:v1"), {});
  ASSERT_TRUE(ok(pulled)) << pulled.error().message();
  EXPECT_EQ(pulled->id, pushed->id) << "the xxh3-128 manifest is rebuilt byte for byte";
  EXPECT_EQ(pulled->objects_moved, pulled->objects);
  ASSERT_TRUE(ok(x2.restore("team/x:v1", dir() / "out-xx", {})));
  expect_same_tree(src(), dir() / "out-xx");
  auto verified = x2.verify({});
  ASSERT_TRUE(ok(verified));
  EXPECT_TRUE(verified->clean()) << "every pulled object lies under its xxh3-128 name";

  // A second pull knows every object by its store digest: nothing is fetched.
  auto again = x2.pull(ref("team/x:v1"), {});
  ASSERT_TRUE(ok(again));
  EXPECT_EQ(again->objects_moved, 0u);
  EXPECT_EQ(again->objects_skipped, again->objects);

  // xxh3-128 → sha256: the config is the sha256 manifest, so its digest is the snapshot's id.
  auto into_sha = m_b->pull(ref("team/x:v1"), {});
  ASSERT_TRUE(ok(into_sha)) << into_sha.error().message();
  EXPECT_EQ("sha256:" + into_sha->id, oci["config"]["digest"].get<std::string>());
  ASSERT_TRUE(ok(m_b->restore("team/x:v1", dir() / "out-xs", {})));
  expect_same_tree(src(), dir() / "out-xs");

  // sha256 → xxh3-128 (format 1: no store digests, so every object is fetched and hashed both ways).
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "full:v1"})));
  ASSERT_TRUE(ok(m_a->push("full:v1", ref("team/s:v1"), {})));
  EXPECT_EQ(oci_manifest_of(m_registry.port, "team/s", "v1")["annotations"]["dev.treesnap.format"], "1");
  Store x3 = open_xxh3(dir() / "x3");
  auto from_sha = x3.pull(ref("team/s:v1"), {});
  ASSERT_TRUE(ok(from_sha)) << from_sha.error().message();
  EXPECT_EQ(from_sha->id, pushed->id) << "the same tree in an xxh3-128 store has the same id";
  ASSERT_TRUE(ok(x3.restore("team/s:v1", dir() / "out-sx", {})));
  expect_same_tree(src(), dir() / "out-sx");
}

TEST_F(RealRegistryTest, Xxh3IncrementalPushAndPullMoveAboutTheChangedFile) {
  for (int i = 0; i < 200; ++i) write_file(src("f" + std::to_string(i)), random_bytes(4096, 400 + i));
  write_file(src("large"), random_bytes(2 << 20, 41));
  Store x = open_xxh3(dir() / "x");
  Store y = open_xxh3(dir() / "y");
  ASSERT_TRUE(ok(x.snapshot(src(), {.name = "env:v1"})));
  ASSERT_TRUE(ok(x.push("env:v1", ref("team/xenv:latest"), {})));
  ASSERT_TRUE(ok(y.pull(ref("team/xenv:latest"), {})));
  const std::uint64_t before = registry_bytes();

  write_file(src("f9"), random_bytes(9'000, 9999));
  ASSERT_TRUE(ok(x.snapshot(src(), {.name = "env:v2"})));
  auto second = x.push("env:v2", ref("team/xenv:latest"), {});
  ASSERT_TRUE(ok(second));
  EXPECT_EQ(second->objects_moved, 1u);
  EXPECT_EQ(second->bytes_moved, 9'000u);
  EXPECT_EQ(second->packs_new, 1u);
  EXPECT_EQ(second->packs_reused, 1u);
  EXPECT_EQ(second->blobs_skipped, 1u) << "the large file is already there";
  EXPECT_LT(registry_bytes() - before, 9'000u + 24'000u);

  PullOptions replace;
  replace.replace = true;
  auto pulled = y.pull(ref("team/xenv:latest"), replace);
  ASSERT_TRUE(ok(pulled));
  EXPECT_EQ(pulled->objects_moved, 1u) << "store digests on the registry name what y already has";
  EXPECT_LT(pulled->http_bytes_received, 9'000u + 24'000u);
  ASSERT_TRUE(ok(y.restore("team/xenv:latest", dir() / "out", {})));
  expect_same_tree(src(), dir() / "out");
}

// ---------------------------------------------------------------------------------------------
// A registry that lies or fails (tests/tools/fake_registry.py)

class FaultyRegistryTest : public TransferTest {
 protected:
  void SetUp() override {
    TransferTest::SetUp();
    if (auto why = FakeRegistry::missing(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(m_registry.start(dir()));
  }
  std::string ref(const std::string& repo_tag) const { return TransferTest::ref(m_registry.port, repo_tag); }
  FakeRegistry m_registry;
};

TEST_F(FaultyRegistryTest, BytesThatDoNotMatchAreCorruptAndNothingIsPublished) {
  const std::string data = random_bytes(2 << 20, 9);
  write_file(src("one"), data);
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "s"})));
  ASSERT_TRUE(ok(m_a->push("s", ref("r/s:v1"), {})));
  // The config (snapshot manifest) comes through, then the large object comes back altered.
  m_registry.set_faults(R"({"blob_get": ["ok", "wrong", "wrong", "wrong", "wrong"]})");
  EXPECT_TRUE(fails_with(m_b->pull(ref("r/s:v1"), one_job()), ErrorCode::corrupt));
  EXPECT_EQ(file_count(dir() / "b" / "objects"), 0u);
  EXPECT_EQ(file_count(dir() / "b" / "tmp"), 0u);
  ASSERT_TRUE(m_b->list().has_value());
  EXPECT_TRUE(m_b->list()->empty());

  // A declared size far above the object's is refused before its body is read.
  m_registry.set_faults(R"({"blob_get": ["ok", "huge", "huge", "huge", "huge"]})");
  EXPECT_TRUE(fails_with(m_b->pull(ref("r/s:v1"), one_job()), ErrorCode::corrupt));
  EXPECT_EQ(file_count(dir() / "b" / "objects"), 0u);

  m_registry.set_faults(R"({"blob_get": []})");
  ASSERT_TRUE(ok(m_b->pull(ref("r/s:v1"), one_job())));
  ASSERT_TRUE(ok(m_b->restore("r/s:v1", dir() / "out", {})));
  EXPECT_TRUE(read_file(dir() / "out" / "one") == data);
}

TEST_F(FaultyRegistryTest, AnXxh3StoreChecksEveryPulledByteAgainstItsSha256) {
  for (int i = 0; i < 30; ++i) write_file(src("f" + std::to_string(i)), random_bytes(10'000, 500 + i));
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "s"})));
  ASSERT_TRUE(ok(m_a->push("s", ref("r/s:v1"), {})));
  Store x = open_xxh3(dir() / "x");
  // Config, pack index, then the pack's range altered: only the sha256 of each object (checked
  // as it is written, before publication) can tell, since a range has no digest of its own.
  m_registry.set_faults(R"({"blob_get": ["ok", "ok", "wrong"]})");
  EXPECT_TRUE(fails_with(x.pull(ref("r/s:v1"), one_job()), ErrorCode::corrupt));
  EXPECT_EQ(file_count(dir() / "x" / "objects"), 0u);
  EXPECT_TRUE(x.list()->empty());
  m_registry.set_faults(R"({"blob_get": []})");
  ASSERT_TRUE(ok(x.pull(ref("r/s:v1"), one_job())));
  ASSERT_TRUE(ok(x.restore("r/s:v1", dir() / "out", {})));
  expect_same_tree(src(), dir() / "out");
}

TEST_F(FaultyRegistryTest, AnInterruptedPullResumesFromWhatWasVerified) {
  for (int i = 0; i < 4; ++i) write_file(src("large" + std::to_string(i)), random_bytes(3 << 19, 50 + i));
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "s"})));
  ASSERT_TRUE(ok(m_a->push("s", ref("r/s:v1"), {})));
  // Config, two objects, then a registry that keeps failing the third until the retries run out.
  m_registry.set_faults(R"({"blob_get": ["ok", "ok", "ok", "503", "503", "503", "503", "503"]})");
  auto failed = m_b->pull(ref("r/s:v1"), one_job());
  ASSERT_TRUE(fails_with(failed, ErrorCode::io));
  EXPECT_TRUE(m_b->list()->empty()) << "no snapshot until every object is in";

  m_registry.set_faults(R"({"blob_get": []})");
  auto resumed = m_b->pull(ref("r/s:v1"), one_job());
  ASSERT_TRUE(ok(resumed));
  EXPECT_EQ(resumed->objects_resumed, 2u);
  EXPECT_EQ(resumed->objects_moved, 2u);
  EXPECT_LT(resumed->http_bytes_received, 4u * (3 << 19) * 3 / 4) << "the verified half is not fetched again";
  ASSERT_TRUE(ok(m_b->restore("r/s:v1", dir() / "out", {})));
  expect_same_tree(src(), dir() / "out");
}

TEST_F(FaultyRegistryTest, ResetsMidPackAreResumedByRangeAndStillVerified) {
  for (int i = 0; i < 50; ++i) write_file(src("f" + std::to_string(i)), random_bytes(20'000, 200 + i));
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "s"})));
  ASSERT_TRUE(ok(m_a->push("s", ref("r/s:v1"), {})));
  // Config, pack index, then the pack's range is reset half-way once.
  m_registry.set_faults(R"({"blob_get": ["ok", "ok", "reset"]})");
  auto pulled = m_b->pull(ref("r/s:v1"), one_job());
  ASSERT_TRUE(ok(pulled));
  EXPECT_GE(pulled->retries, 1u);
  EXPECT_EQ(pulled->objects_moved, 50u);
  ASSERT_TRUE(ok(m_b->restore("r/s:v1", dir() / "out", {})));
  expect_same_tree(src(), dir() / "out");
}

// ---------------------------------------------------------------------------------------------
// Basic auth and the Dragonfly path

TEST_F(TransferTest, BasicAuthRegistryWithCredentialsFromTheEnvironment) {
  if (auto why = DockerRegistry::missing(); !why.empty()) GTEST_SKIP() << why;
  if (find_program("htpasswd").empty()) GTEST_SKIP() << "htpasswd not installed (apache2-utils)";
  ServerProcess htpasswd;
  htpasswd.start({find_program("htpasswd"), "-Bbn", "user", "pass"}, dir() / "htpasswd.out");
  while (htpasswd.running()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::string line = htpasswd.log();
  write_file(dir() / "htpasswd", line.substr(0, line.find('\n')) + "\n");
  DockerRegistry registry;
  ASSERT_TRUE(registry.start(dir(), (dir() / "htpasswd").string()));
  ScopedEnv env;
  env.set("DOCKER_CONFIG", (dir() / "nodocker").string());
  env.set("TREESNAP_REGISTRY_USER", std::nullopt);
  env.set("TREESNAP_REGISTRY_PASSWORD", std::nullopt);

  write_file(src("a"), "alpha");
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "s"})));
  EXPECT_TRUE(fails_with(m_a->push("s", ref(registry.port, "private/s:v1"), {}), ErrorCode::permission));
  env.set("TREESNAP_REGISTRY_USER", "user");
  env.set("TREESNAP_REGISTRY_PASSWORD", "pass");
  ASSERT_TRUE(ok(m_a->push("s", ref(registry.port, "private/s:v1"), {})));
  ASSERT_TRUE(ok(m_b->pull(ref(registry.port, "private/s:v1"), {})));
  ASSERT_TRUE(ok(m_b->restore("private/s:v1", dir() / "out", {})));
  expect_same_tree(src(), dir() / "out");
}

TEST_F(TransferTest, DownloadsGoThroughTheProxyNamedInTheStoreConfig) {
  if (auto why = DockerRegistry::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = Tinyproxy::missing(); !why.empty()) GTEST_SKIP() << why;
  DockerRegistry registry;
  ASSERT_TRUE(registry.start(dir()));
  Tinyproxy proxy;
  ASSERT_TRUE(proxy.start(dir()));
  const std::string host = "127.0.0.1:" + std::to_string(registry.port);
  write_file(dir() / "b" / "treesnap.toml",
             "[gc]\nhigh_watermark = 100\nlow_watermark = 99\n[registry.\"" + host + "\"]\nproxy = \"" + proxy.url() +
                 "\"\nheaders = [\"X-Dragonfly-Use-P2P: true\", \"X-Dragonfly-Application: treesnap\"]\n");

  for (int i = 0; i < 20; ++i) write_file(src("f" + std::to_string(i)), random_bytes(5000, 300 + i));
  write_file(src("large"), random_bytes(2 << 20, 3));
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "s"})));
  ASSERT_TRUE(ok(m_a->push("s", ref(registry.port, "team/p:v1"), {})));
  ASSERT_TRUE(ok(m_b->pull(ref(registry.port, "team/p:v1"), {})));
  ASSERT_TRUE(ok(m_b->restore("team/p:v1", dir() / "out", {})));
  expect_same_tree(src(), dir() / "out");

  const std::string log = proxy.log();
  const std::string blobs = "GET http://" + host + "/v2/team/p/blobs/sha256:";
  std::size_t gets = 0;
  for (std::size_t at = log.find(blobs); at != std::string::npos; at = log.find(blobs, at + 1)) gets += 1;
  // The config, the pack index, the pack (one range) and the large object.
  EXPECT_EQ(gets, 4u) << "tinyproxy log:\n" << log;
  EXPECT_EQ(log.find("/manifests/"), std::string::npos) << "manifests go direct";

  write_file(dir() / "b" / "treesnap.toml", "[registry.\"" + host + "\"]\nproxi = \"x\"\n");
  EXPECT_TRUE(fails_with(m_b->pull(ref(registry.port, "team/p:v1"), {}), ErrorCode::invalid)) << "a typo is an error";
}

// Dragonfly's dfdaemon sees the headers only if the proxy passes them on: fake_registry.py
// records what each blob GET arrived with, behind tinyproxy.
TEST_F(TransferTest, DragonflyHeadersReachTheRegistryThroughTheProxy) {
  if (auto why = FakeRegistry::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = Tinyproxy::missing(); !why.empty()) GTEST_SKIP() << why;
  FakeRegistry registry;
  ASSERT_TRUE(registry.start(dir()));
  Tinyproxy proxy;
  ASSERT_TRUE(proxy.start(dir()));
  const std::string host = "127.0.0.1:" + std::to_string(registry.port);
  write_file(dir() / "b" / "treesnap.toml",
             "[registry.\"" + host + "\"]\nproxy = \"" + proxy.url() +
                 "\"\nheaders = [\"X-Dragonfly-Use-P2P: true\", \"X-Dragonfly-Tag: team\", "
                 "\"X-Dragonfly-Application: treesnap\"]\n");
  for (int i = 0; i < 10; ++i) write_file(src("f" + std::to_string(i)), random_bytes(3000, 600 + i));
  write_file(src("large"), random_bytes(3 << 19, 61));
  ASSERT_TRUE(ok(m_a->snapshot(src(), {.name = "s"})));
  ASSERT_TRUE(ok(m_a->push("s", ref(registry.port, "team/d:v1"), {})));
  const auto pushed = nlohmann::json::parse(registry.stats());
  ASSERT_TRUE(ok(m_b->pull(ref(registry.port, "team/d:v1"), {})));
  ASSERT_TRUE(ok(m_b->restore("team/d:v1", dir() / "out", {})));
  expect_same_tree(src(), dir() / "out");

  const auto stats = nlohmann::json::parse(registry.stats());
  const auto& seen = stats["dragonfly"];
  // The push's own GETs (none: it reads no index on a new tag) came without the headers.
  const std::size_t before = pushed["dragonfly"].size();
  ASSERT_EQ(seen.size() - before, 4u) << "config, pack index, pack range, large object: " << stats.dump();
  for (std::size_t i = before; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].value("X-Dragonfly-Use-P2P", ""), "true") << seen[i];
    EXPECT_EQ(seen[i].value("X-Dragonfly-Tag", ""), "team") << seen[i];
    EXPECT_EQ(seen[i].value("X-Dragonfly-Application", ""), "treesnap") << seen[i];
  }
  const std::string log = proxy.log();
  const std::string blobs = "GET http://" + host + "/v2/team/d/blobs/sha256:";
  std::size_t proxied = 0;
  for (std::size_t at = log.find(blobs); at != std::string::npos; at = log.find(blobs, at + 1)) proxied += 1;
  EXPECT_EQ(proxied, 4u) << "tinyproxy log:\n" << log;
}

// ---------------------------------------------------------------------------------------------
// The on-registry format without a registry

TEST(OciFormat, PackIndexCarriesStoreDigestsInVersion2) {
  transfer::PackIndex index;
  index.pack_digest = remote::oci_digest("pack");
  index.pack_size = 300;
  for (int i = 0; i < 3; ++i)
    index.objects.push_back({hash_bytes(DigestAlgorithm::sha256, std::to_string(i)), {}, std::uint64_t(i) * 100, 90, 90,
                             transfer::Codec::raw});
  auto v1 = transfer::decode_pack_index(transfer::encode_pack_index(index));
  ASSERT_TRUE(ok(v1));
  EXPECT_FALSE(v1->store_algorithm.has_value());
  EXPECT_EQ(v1->objects.at(2).digest, index.objects.at(2).digest);
  EXPECT_TRUE(v1->objects.at(2).store_digest.empty());

  index.store_algorithm = DigestAlgorithm::xxh3_128;
  for (int i = 0; i < 3; ++i) index.objects[i].store_digest = hash_bytes(DigestAlgorithm::xxh3_128, std::to_string(i));
  const std::string bytes = transfer::encode_pack_index(index);
  auto v2 = transfer::decode_pack_index(bytes);
  ASSERT_TRUE(ok(v2));
  EXPECT_EQ(v2->store_algorithm, DigestAlgorithm::xxh3_128);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(v2->objects[i].digest, index.objects[i].digest);
    EXPECT_EQ(v2->objects[i].store_digest, index.objects[i].store_digest);
    EXPECT_EQ(v2->objects[i].offset, index.objects[i].offset);
  }
  // Cut short by one byte (re-framed so zstd itself does not object): corrupt.
  std::string raw(ZSTD_getFrameContentSize(bytes.data(), bytes.size()), '\0');
  ASSERT_EQ(ZSTD_decompress(raw.data(), raw.size(), bytes.data(), bytes.size()), raw.size());
  raw.pop_back();
  std::string cut(ZSTD_compressBound(raw.size()), '\0');
  cut.resize(ZSTD_compress(cut.data(), cut.size(), raw.data(), raw.size(), 1));
  EXPECT_TRUE(fails_with(transfer::decode_pack_index(cut), ErrorCode::corrupt));
}

TEST(OciFormat, StoreDigestAnnotationsRoundTripAndBadOnesAreRefused) {
  transfer::OciSnapshot oci;
  oci.config = {std::string(transfer::k_config_type), remote::oci_digest("config"), 6, {}};
  oci.objects.push_back({std::string(transfer::k_object_type), remote::oci_digest("o"), 1 << 20,
                         digest_text(DigestAlgorithm::xxh3_128, hash_bytes(DigestAlgorithm::xxh3_128, "o"))});
  oci.name = "n";
  std::string json = transfer::encode_oci_manifest(oci);
  auto back = transfer::decode_oci_manifest(json);
  ASSERT_TRUE(ok(back));
  EXPECT_TRUE(back->store_digests);
  EXPECT_EQ(back->objects.at(0).store_digest, oci.objects[0].store_digest);

  oci.objects[0].store_digest.clear();
  auto plain = transfer::decode_oci_manifest(transfer::encode_oci_manifest(oci));
  ASSERT_TRUE(ok(plain));
  EXPECT_FALSE(plain->store_digests) << "without store digests a push stays format 1";

  auto j = nlohmann::json::parse(json);
  j["layers"][0]["annotations"]["dev.treesnap.store-digest"] = "xxh3-128:zz";
  EXPECT_TRUE(fails_with(transfer::decode_oci_manifest(j.dump()), ErrorCode::invalid));
  j = nlohmann::json::parse(json);
  j["annotations"]["dev.treesnap.format"] = "3";
  EXPECT_TRUE(fails_with(transfer::decode_oci_manifest(j.dump()), ErrorCode::unsupported));
}

// The issue's limit: a 1M-file tree's OCI manifest stays under the 4 MB registries accept, the
// per-object index living in pack index blobs. Built from a synthetic 1M-entry manifest (no
// files: planning and encoding do no I/O), with the worst case for the manifest: an xxh3-128
// store (every object layer annotated) and 30,000 distinct files of at least 1 MiB, more than
// the layer budget; and the worst case for the indexes: 970,000 tiny files.
TEST(OciFormat, AMillionFileTreeKeepsTheManifestUnder4MBAndSplitsTheIndex) {
  Manifest manifest;
  manifest.algorithm = DigestAlgorithm::xxh3_128;
  Entry root;
  root.type = EntryType::directory;
  root.mode = 0755;
  manifest.entries.push_back(root);
  constexpr std::size_t k_files = 1'000'000, k_large = 30'000;
  for (std::size_t i = 0; i < k_files; ++i) {
    Entry e;
    e.path = fmt::format("d{:03}/f{:07}", i / 1000, i);
    e.type = EntryType::file;
    e.mode = 0644;
    // Tiny files of 1..64 bytes, then large ones of 1..2 MiB.
    e.size = i < k_files - k_large ? 1 + i % 64 : (1 << 20) + (i % 1024) * 1024;
    e.digest = hash_bytes(DigestAlgorithm::xxh3_128, std::to_string(i));
    manifest.entries.push_back(std::move(e));
  }
  auto all = transfer::distinct_objects(manifest);
  ASSERT_EQ(all.size(), k_files);
  for (std::size_t i = 0; i < all.size(); ++i) all[i].sha256 = hash_bytes(DigestAlgorithm::sha256, std::to_string(i));

  const auto plan = transfer::make_plan(all, {});
  EXPECT_LE(transfer::layer_count(plan), transfer::k_max_layers);
  EXPECT_LT(plan.standalone.size(), k_large) << "the smallest large files went into packs";
  EXPECT_GE(plan.new_packs.size(), 16u) << "the index is split into one blob per pack";

  // The OCI manifest as push writes it: a pack index and a pack per new pack, then the objects.
  transfer::OciSnapshot oci;
  oci.config = {std::string(transfer::k_config_type), remote::oci_digest("config"), 40'000'000, {}};
  oci.store_digests = true;
  std::size_t largest_index = 0, largest_count = 0;
  for (std::size_t p = 0; p < plan.new_packs.size(); ++p) {
    const auto& members = plan.new_packs[p];
    EXPECT_LE(members.size(), transfer::k_pack_max_objects);
    transfer::PackIndex index;
    index.store_algorithm = DigestAlgorithm::xxh3_128;
    std::uint64_t offset = 0;
    for (const auto& o : members) {
      index.objects.push_back({o.sha256, o.digest, offset, o.size, o.size, transfer::Codec::raw});
      offset += o.size;
    }
    index.pack_digest = remote::oci_digest("pack" + std::to_string(p));
    index.pack_size = offset;
    const std::string bytes = transfer::encode_pack_index(index);
    if (members.size() > largest_count) {
      largest_count = members.size();
      // The largest index decodes within the reader's limits.
      auto decoded = transfer::decode_pack_index(bytes);
      ASSERT_TRUE(ok(decoded)) << decoded.error().message();
      EXPECT_EQ(decoded->objects.size(), members.size());
    }
    largest_index = std::max(largest_index, bytes.size());
    oci.packs.push_back({{std::string(transfer::k_pack_index_type), remote::oci_digest(bytes), bytes.size(), {}},
                         {std::string(transfer::k_pack_type), index.pack_digest, index.pack_size, {}}});
  }
  for (const auto& o : plan.standalone)
    oci.objects.push_back({std::string(transfer::k_object_type), "sha256:" + to_hex(o.sha256), o.size,
                           digest_text(DigestAlgorithm::xxh3_128, o.digest)});
  oci.name = "million:v1";
  oci.created = "2026-12-03T10:00:00Z";
  const std::string json = transfer::encode_oci_manifest(oci);
  EXPECT_LT(json.size(), 4'000'000u) << "OCI manifest of " << transfer::layer_count(plan) << " layers";
  EXPECT_LT(largest_index, 8u << 20) << "one pack index blob";
  auto decoded = transfer::decode_oci_manifest(json);
  ASSERT_TRUE(ok(decoded));
  EXPECT_EQ(decoded->packs.size(), plan.new_packs.size());
  EXPECT_EQ(decoded->objects.size(), plan.standalone.size());
  std::printf("1M files: %zu layers, OCI manifest %zu bytes, %zu packs, largest index %zu bytes (%zu objects)\n",
              transfer::layer_count(plan), json.size(), plan.new_packs.size(), largest_index, largest_count);
}

}  // namespace
}  // namespace treesnap::test

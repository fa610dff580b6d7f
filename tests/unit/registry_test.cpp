// The registry transport against real servers on loopback: docker-registry for the protocol,
// skopeo as an independent reader, tinyproxy for the proxy path, and fake_registry.py for the
// faults and the Bearer token flow that no Debian server provides.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <random>

#include <nlohmann/json.hpp>

#include "remote/auth.hpp"
#include "remote/reference.hpp"
#include "remote/registry.hpp"
#include "registry_fixture.hpp"
#include "util/posix.hpp"

namespace treesnap::test {
namespace {

using remote::BlobGetOptions;
using remote::PutBlobResult;
using remote::RegistryClient;
using remote::RegistryOptions;

// Collects a download in memory.
struct Collect {
  std::string bytes;
  remote::BodySink sink() {
    return [this](std::string_view chunk) -> Result<void> {
      bytes.append(chunk);
      return {};
    };
  }
};



// Client options for tests: short waits so retries cost milliseconds.
RegistryOptions fast_options() {
  RegistryOptions options;
  options.retry.initial_backoff = std::chrono::milliseconds(10);
  options.retry.max_backoff = std::chrono::milliseconds(50);
  return options;
}

remote::Reference ref_for(std::uint16_t port, const std::string& repository) {
  remote::Reference ref;
  ref.host = "127.0.0.1";
  ref.port = port;
  ref.repository = repository;
  return ref;
}

// ---------------------------------------------------------------------------------------------
// References and parsing, no server

TEST(ReferenceTest, ParsesGoodReferences) {
  auto r = remote::parse_reference("oci://127.0.0.1:5000/snap/demo:v1");
  ASSERT_TRUE(ok(r));
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 5000);
  EXPECT_EQ(r->repository, "snap/demo");
  EXPECT_EQ(r->tag, "v1");
  EXPECT_TRUE(r->loopback());
  EXPECT_EQ(r->to_string(), "oci://127.0.0.1:5000/snap/demo:v1");

  std::string digest = "sha256:" + std::string(64, 'a');
  auto d = remote::parse_reference("oci://registry.example.com/team/a.b_c__d-e/x@" + digest);
  ASSERT_TRUE(ok(d));
  EXPECT_EQ(d->host, "registry.example.com");
  EXPECT_EQ(d->port, 0);
  EXPECT_EQ(d->repository, "team/a.b_c__d-e/x");
  EXPECT_EQ(d->digest, digest);
  EXPECT_TRUE(d->tag.empty());
  EXPECT_FALSE(d->loopback());

  auto v6 = remote::parse_reference("oci://[::1]:5001/r");
  ASSERT_TRUE(ok(v6));
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->registry(), "[::1]:5001");
  EXPECT_TRUE(v6->loopback());
  EXPECT_TRUE(v6->reference().empty());

  auto local = remote::parse_reference("oci://localhost/r:latest");
  ASSERT_TRUE(ok(local));
  EXPECT_TRUE(local->loopback());
  EXPECT_EQ(local->reference(), "latest");
}

TEST(ReferenceTest, RejectsBadReferences) {
  for (const std::string& bad : std::vector<std::string>{"127.0.0.1:5000/snap", "oci://", "oci://host", "oci://host/", "oci://host/Upper",
                          "oci://host/a//b", "oci://host/a/", "oci://host:0/a", "oci://host:70000/a", "oci://host:/a",
                          "oci://host:x/a", "oci://user:pw@host/a", "oci://host/a:-bad", "oci://host/a:" + std::string(129, 't'),
                          "oci://host/a@sha256:abc", "oci://host/a@md5:" + std::string(32, '0'), "oci://[::1/a",
                          "oci://ho st/a", "oci://host/a--/b"}) {
    auto r = remote::parse_reference(bad);
    EXPECT_TRUE(fails_with(r, ErrorCode::invalid)) << bad;
    if (!r) EXPECT_NE(r.error().context.find("bad OCI reference"), std::string::npos) << r.error().context;
  }
}

TEST(ReferenceTest, ParsesChallengesAndBase64) {
  auto c = remote::parse_challenge(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->realm, "https://auth.example/token");
  EXPECT_EQ(c->service, "registry.example");
  EXPECT_EQ(c->scope, "repository:a/b:pull,push");
  EXPECT_EQ(remote::parse_challenge(R"(Basic realm="test")")->scheme, "basic");
  EXPECT_EQ(remote::base64_encode("user:pass"), "dXNlcjpwYXNz");
  EXPECT_EQ(remote::base64_decode("dXNlcjpwYXNz").value(), "user:pass");
  EXPECT_EQ(remote::base64_decode("YQ==").value(), "a");
  EXPECT_FALSE(remote::base64_decode("abc"));
}

class CredentialsTest : public TempDirTest {};

TEST_F(CredentialsTest, EnvironmentFirstThenDockerConfig) {
  ScopedEnv env;
  env.set("DOCKER_CONFIG", dir().string());
  env.set("TREESNAP_REGISTRY_USER", std::nullopt);
  env.set("TREESNAP_REGISTRY_PASSWORD", std::nullopt);
  write_file(dir() / "config.json", R"({"auths": {"http://reg.example:5000/v1/": {"auth": "dXNlcjpwYXNz"},
                                        "other.example": {"username": "u2", "password": "p2"}}})");
  auto a = remote::find_credentials("reg.example:5000");
  ASSERT_TRUE(ok(a));
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->username, "user");
  EXPECT_EQ((*a)->password, "pass");
  auto b = remote::find_credentials("other.example");
  ASSERT_TRUE(ok(b) && b->has_value());
  EXPECT_EQ((*b)->username, "u2");
  auto none = remote::find_credentials("nowhere.example");
  ASSERT_TRUE(ok(none));
  EXPECT_FALSE(none->has_value());

  env.set("TREESNAP_REGISTRY_USER", "envuser");
  env.set("TREESNAP_REGISTRY_PASSWORD", "envpass");
  auto e = remote::find_credentials("reg.example:5000");
  ASSERT_TRUE(ok(e) && e->has_value());
  EXPECT_EQ((*e)->username, "envuser");
  EXPECT_EQ((*e)->source, "environment");

  env.set("TREESNAP_REGISTRY_USER", std::nullopt);
  write_file(dir() / "config.json", "{not json");
  EXPECT_TRUE(fails_with(remote::find_credentials("reg.example:5000"), ErrorCode::invalid));
}

// ---------------------------------------------------------------------------------------------
// docker-registry

class RegistryTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (auto why = DockerRegistry::missing(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(m_registry.start(dir()));
  }

  RegistryClient client(const std::string& repository = "snap/demo", RegistryOptions options = fast_options()) {
    auto c = RegistryClient::open(ref_for(m_registry.port, repository), std::move(options));
    if (!c) throw std::runtime_error(c.error().message());
    return std::move(*c);
  }

  DockerRegistry m_registry;
};

TEST_F(RegistryTest, PingAndMissingBlob) {
  auto c = client();
  EXPECT_EQ(c.base_url(), "http://127.0.0.1:" + std::to_string(m_registry.port));
  ASSERT_TRUE(ok(c.ping()));
  std::string digest = remote::oci_digest("absent");
  auto exists = c.blob_exists(digest);
  ASSERT_TRUE(ok(exists));
  EXPECT_FALSE(exists->has_value());
  Collect sink;
  auto got = c.get_blob(digest, sink.sink());
  ASSERT_TRUE(fails_with(got, ErrorCode::not_found));
  EXPECT_NE(got.error().context.find("/v2/snap/demo/blobs/" + digest), std::string::npos) << got.error().context;
  EXPECT_NE(got.error().context.find("HTTP 404"), std::string::npos) << got.error().context;
  EXPECT_TRUE(fails_with(c.list_tags(), ErrorCode::not_found));
}

TEST_F(RegistryTest, SmallBlobRoundTripAndSkip) {
  auto c = client();
  std::string data = random_bytes(100'000, 1);
  std::string digest = remote::oci_digest(data);
  auto put = c.put_blob(digest, data.size(), remote::read_memory(data));
  ASSERT_TRUE(ok(put));
  EXPECT_EQ(*put, PutBlobResult::uploaded);
  auto exists = c.blob_exists(digest);
  ASSERT_TRUE(ok(exists));
  EXPECT_EQ(exists->value_or(0), data.size());

  auto again = c.put_blob(digest, data.size(), remote::read_memory(data));
  ASSERT_TRUE(ok(again));
  EXPECT_EQ(*again, PutBlobResult::skipped);

  Collect sink;
  auto got = c.get_blob(digest, sink.sink(), BlobGetOptions{data.size(), std::nullopt});
  ASSERT_TRUE(ok(got));
  EXPECT_EQ(*got, data.size());
  EXPECT_TRUE(sink.bytes == data);

  auto stats = c.stats();
  EXPECT_EQ(stats.blobs_uploaded, 1u);
  EXPECT_EQ(stats.blobs_skipped, 1u);
  EXPECT_GE(stats.bytes_sent, data.size());
  EXPECT_GE(stats.bytes_received, data.size());
  EXPECT_EQ(stats.retries, 0u);

  // A wrong digest for the bytes is refused by the registry.
  auto wrong = c.put_blob(remote::oci_digest("other"), data.size(), remote::read_memory(data));
  EXPECT_TRUE(fails_with(wrong, ErrorCode::invalid));
}

TEST_F(RegistryTest, LargeBlobGoesInChunksFromAFile) {
  auto options = fast_options();
  options.chunk_size = 8 << 20;
  auto c = client("snap/large", options);
  std::string data = random_bytes(40 << 20, 2);
  std::string digest = remote::oci_digest(data);
  write_file(dir() / "blob", data);
  UniqueFd fd(::open((dir() / "blob").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  auto put = c.put_blob(digest, data.size(), remote::read_fd(fd.get()));
  ASSERT_TRUE(ok(put));
  EXPECT_EQ(*put, PutBlobResult::uploaded);
  EXPECT_GE(c.stats().requests, 1u + 1 + 5 + 1);  // HEAD, POST, five PATCHes, PUT

  // A clone shares the counters and works on its own connection.
  auto reader = c.clone();
  Collect sink;
  auto got = reader.get_blob(digest, sink.sink(), BlobGetOptions{data.size(), std::nullopt});
  ASSERT_TRUE(ok(got));
  EXPECT_TRUE(sink.bytes == data);
  EXPECT_GE(c.stats().bytes_received, data.size());
}

TEST_F(RegistryTest, CrossRepositoryMount) {
  auto a = client("snap/a");
  std::string data = random_bytes(5000, 3);
  std::string digest = remote::oci_digest(data);
  ASSERT_TRUE(ok(a.put_blob(digest, data.size(), remote::read_memory(data))));
  auto b = a.for_repository("snap/b");
  ASSERT_TRUE(ok(b));
  auto mounted = b->put_blob(digest, data.size(), remote::read_memory(data), "snap/a");
  ASSERT_TRUE(ok(mounted));
  EXPECT_EQ(*mounted, PutBlobResult::mounted);
  EXPECT_EQ(b->stats().blobs_mounted, 1u);
  auto exists = b->blob_exists(digest);
  ASSERT_TRUE(ok(exists));
  EXPECT_EQ(exists->value_or(0), data.size());

  // A mount from a repository without the blob falls back to an upload.
  std::string other = random_bytes(3000, 4);
  auto c = a.for_repository("snap/c");
  auto uploaded = c->put_blob(remote::oci_digest(other), other.size(), remote::read_memory(other), "snap/a");
  ASSERT_TRUE(ok(uploaded));
  EXPECT_EQ(*uploaded, PutBlobResult::uploaded);

  // The mount alone, for a caller without the bytes: refused (202) where the source lacks the
  // blob, mounted where it has it, present where the destination has it already.
  auto d = a.for_repository("snap/d");
  ASSERT_TRUE(ok(d));
  const auto before = d->stats();
  auto refused = d->mount_blob(remote::oci_digest(other), other.size(), "snap/a");
  ASSERT_TRUE(ok(refused));
  EXPECT_EQ(*refused, remote::MountResult::refused);
  auto absent = d->blob_exists(remote::oci_digest(other));
  ASSERT_TRUE(ok(absent));
  EXPECT_FALSE(absent->has_value()) << "a refused mount must leave nothing behind";
  auto mounted_alone = d->mount_blob(digest, data.size(), "snap/a");
  ASSERT_TRUE(ok(mounted_alone));
  EXPECT_EQ(*mounted_alone, remote::MountResult::mounted);
  auto again = d->mount_blob(digest, data.size(), "snap/a");
  ASSERT_TRUE(ok(again));
  EXPECT_EQ(*again, remote::MountResult::present);
  const auto after = d->stats();
  EXPECT_EQ(after.blobs_mounted - before.blobs_mounted, 1u);
  EXPECT_EQ(after.blobs_skipped - before.blobs_skipped, 1u);
  EXPECT_EQ(after.blobs_uploaded, before.blobs_uploaded);
}

TEST_F(RegistryTest, RangeGet) {
  auto c = client();
  std::string data = random_bytes(20'000, 5);
  std::string digest = remote::oci_digest(data);
  ASSERT_TRUE(ok(c.put_blob(digest, data.size(), remote::read_memory(data))));
  Collect sink;
  auto got = c.get_blob(digest, sink.sink(), BlobGetOptions{std::nullopt, remote::ByteRange{1000, 5000}});
  ASSERT_TRUE(ok(got));
  EXPECT_EQ(*got, 5000u);
  EXPECT_TRUE(sink.bytes == data.substr(1000, 5000));
}

// An OCI 1.1 artifact manifest with a custom config type, as push will write.
std::string artifact_manifest(RegistryClient& c, std::string* config_digest) {
  std::string config = R"({"treesnap":"test"})";
  std::string layer = random_bytes(4096, 6);
  *config_digest = remote::oci_digest(config);
  EXPECT_TRUE(ok(c.put_blob(*config_digest, config.size(), remote::read_memory(config))));
  EXPECT_TRUE(ok(c.put_blob(remote::oci_digest(layer), layer.size(), remote::read_memory(layer))));
  nlohmann::json m = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"artifactType", "application/vnd.treesnap.snapshot.v1"},
      {"config",
       {{"mediaType", "application/vnd.treesnap.snapshot.config.v1+json"}, {"digest", *config_digest},
        {"size", config.size()}}},
      {"layers",
       {{{"mediaType", "application/vnd.treesnap.pack.v1"}, {"digest", remote::oci_digest(layer)},
         {"size", layer.size()}}}},
      {"annotations", {{"org.opencontainers.image.title", "test"}}}};
  return m.dump();
}

TEST_F(RegistryTest, ManifestRoundTrip) {
  auto c = client();
  std::string config_digest;
  std::string manifest = artifact_manifest(c, &config_digest);
  const std::string type = "application/vnd.oci.image.manifest.v1+json";
  auto digest = c.put_manifest("v1", type, manifest);
  ASSERT_TRUE(ok(digest));
  EXPECT_EQ(*digest, remote::oci_digest(manifest));

  std::vector<std::string> accept{type};
  auto by_tag = c.get_manifest("v1", accept);
  ASSERT_TRUE(ok(by_tag));
  EXPECT_EQ(by_tag->bytes, manifest);
  EXPECT_EQ(by_tag->media_type, type);
  EXPECT_EQ(by_tag->digest, *digest);
  auto by_digest = c.get_manifest(*digest, accept);
  ASSERT_TRUE(ok(by_digest));
  EXPECT_EQ(by_digest->bytes, manifest);

  ASSERT_TRUE(ok(c.put_manifest("v2", type, manifest)));
  auto tags = c.list_tags();
  ASSERT_TRUE(ok(tags));
  EXPECT_EQ(*tags, (std::vector<std::string>{"v1", "v2"}));

  EXPECT_TRUE(fails_with(c.get_manifest("nope", accept), ErrorCode::not_found));
  EXPECT_TRUE(fails_with(c.put_manifest("sha256:" + std::string(64, '0'), type, manifest), ErrorCode::invalid));
  std::string huge(5 << 20, ' ');
  EXPECT_TRUE(fails_with(c.put_manifest("big", type, huge), ErrorCode::invalid));
}

TEST_F(RegistryTest, SkopeoReadsOurManifest) {
  if (find_program("skopeo").empty()) GTEST_SKIP() << "skopeo not installed (scripts/install-deps.sh)";
  auto c = client();
  std::string config_digest;
  std::string manifest = artifact_manifest(c, &config_digest);
  ASSERT_TRUE(ok(c.put_manifest("v1", "application/vnd.oci.image.manifest.v1+json", manifest)));
  ServerProcess skopeo;
  skopeo.start({find_program("skopeo"), "inspect", "--raw", "--tls-verify=false",
                "docker://127.0.0.1:" + std::to_string(m_registry.port) + "/snap/demo:v1"},
               dir() / "skopeo.out");
  while (skopeo.running()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(skopeo.log(), manifest);
}

TEST_F(RegistryTest, BlobDownloadsGoThroughTheProxyWithDragonflyHeaders) {
  if (auto why = Tinyproxy::missing(); !why.empty()) GTEST_SKIP() << why;
  Tinyproxy proxy;
  ASSERT_TRUE(proxy.start(dir()));
  auto options = fast_options();
  options.blob_proxy = proxy.url();
  options.blob_headers = {"X-Dragonfly-Use-P2P: true", "X-Dragonfly-Tag: treesnap",
                          "X-Dragonfly-Application: treesnap"};
  auto c = client("snap/proxied", options);
  std::string data = random_bytes(300'000, 7);
  std::string digest = remote::oci_digest(data);
  ASSERT_TRUE(ok(c.put_blob(digest, data.size(), remote::read_memory(data))));
  Collect sink;
  ASSERT_TRUE(ok(c.get_blob(digest, sink.sink(), BlobGetOptions{data.size(), std::nullopt})));
  EXPECT_TRUE(sink.bytes == data);

  std::string log = proxy.log();
  std::string blob_url = "GET http://127.0.0.1:" + std::to_string(m_registry.port) + "/v2/snap/proxied/blobs/" + digest;
  EXPECT_NE(log.find(blob_url), std::string::npos) << "tinyproxy log:\n" << log;
  // Uploads and HEADs go straight to the registry.
  EXPECT_EQ(log.find("uploads"), std::string::npos) << log;
  EXPECT_EQ(log.find("HEAD "), std::string::npos) << log;
}

// ---------------------------------------------------------------------------------------------
// docker-registry with Basic auth (htpasswd)

class BasicAuthTest : public RegistryTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (auto why = DockerRegistry::missing(); !why.empty()) GTEST_SKIP() << why;
    if (find_program("htpasswd").empty()) GTEST_SKIP() << "htpasswd not installed (apache2-utils)";
    ServerProcess htpasswd;
    htpasswd.start({find_program("htpasswd"), "-Bbn", "user", "pass"}, dir() / "htpasswd.out");
    while (htpasswd.running()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::string line = htpasswd.log();
    ASSERT_EQ(line.rfind("user:", 0), 0u) << line;
    write_file(dir() / "htpasswd", line.substr(0, line.find('\n')) + "\n");
    ASSERT_TRUE(m_registry.start(dir(), (dir() / "htpasswd").string()));
    m_env.set("DOCKER_CONFIG", (dir() / "docker").string());
    m_env.set("TREESNAP_REGISTRY_USER", std::nullopt);
    m_env.set("TREESNAP_REGISTRY_PASSWORD", std::nullopt);
    make_dir(dir() / "docker");
  }

  // A client that looks its credentials up itself.
  Result<RegistryClient> open_client() {
    auto options = fast_options();
    return RegistryClient::open(ref_for(m_registry.port, "snap/private"), options);
  }

  void write_config(const std::string& user, const std::string& pass) {
    write_file(dir() / "docker/config.json",
               nlohmann::json{{"auths", {{"127.0.0.1:" + std::to_string(m_registry.port),
                                          {{"auth", remote::base64_encode(user + ":" + pass)}}}}}}
                   .dump());
  }

  ScopedEnv m_env;
};

void round_trip(RegistryClient& c) {
  ASSERT_TRUE(ok(c.ping()));
  std::string data = random_bytes(2000, 8);
  std::string digest = remote::oci_digest(data);
  ASSERT_TRUE(ok(c.put_blob(digest, data.size(), remote::read_memory(data))));
  Collect sink;
  ASSERT_TRUE(ok(c.get_blob(digest, sink.sink())));
  EXPECT_TRUE(sink.bytes == data);
}

TEST_F(BasicAuthTest, CredentialsFromDockerConfig) {
  write_config("user", "pass");
  auto c = open_client();
  ASSERT_TRUE(ok(c));
  round_trip(*c);
}

TEST_F(BasicAuthTest, EnvironmentWinsOverDockerConfig) {
  write_config("user", "wrong");
  m_env.set("TREESNAP_REGISTRY_USER", "user");
  m_env.set("TREESNAP_REGISTRY_PASSWORD", "pass");
  auto c = open_client();
  ASSERT_TRUE(ok(c));
  round_trip(*c);
}

TEST_F(BasicAuthTest, WrongOrNoCredentialsArePermissionErrors) {
  write_config("user", "wrong");
  auto c = open_client();
  ASSERT_TRUE(ok(c));
  auto ping = c->ping();
  ASSERT_TRUE(fails_with(ping, ErrorCode::permission));
  EXPECT_NE(ping.error().context.find("GET http://127.0.0.1:" + std::to_string(m_registry.port) + "/v2/"),
            std::string::npos) << ping.error().context;
  EXPECT_NE(ping.error().context.find("HTTP 401"), std::string::npos) << ping.error().context;
  EXPECT_EQ(ping.error().context.find("wrong"), std::string::npos) << "a secret in the message";

  ::unlink((dir() / "docker/config.json").c_str());
  auto anonymous = open_client();
  ASSERT_TRUE(ok(anonymous));
  EXPECT_TRUE(fails_with(anonymous->ping(), ErrorCode::permission));
}

// ---------------------------------------------------------------------------------------------
// fake_registry.py: faults

class FaultTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (auto why = FakeRegistry::missing(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(m_fake.start(dir(), extra_args()));
  }
  virtual std::vector<std::string> extra_args() { return {}; }

  RegistryClient client(RegistryOptions options = fast_options()) {
    auto c = RegistryClient::open(ref_for(m_fake.port, "fault/test"), std::move(options));
    if (!c) throw std::runtime_error(c.error().message());
    return std::move(*c);
  }

  // Uploads `data` and returns its digest.
  std::string seed(RegistryClient& c, const std::string& data) {
    std::string digest = remote::oci_digest(data);
    auto put = c.put_blob(digest, data.size(), remote::read_memory(data));
    if (!put) throw std::runtime_error(put.error().message());
    return digest;
  }

  nlohmann::json stats() { return nlohmann::json::parse(m_fake.stats()); }

  FakeRegistry m_fake;
};

TEST_F(FaultTest, DigestMismatchIsCorrupt) {
  auto c = client();
  std::string data = random_bytes(10'000, 9);
  std::string digest = seed(c, data);
  m_fake.set_faults(R"({"blob_get": ["wrong"]})");
  Collect sink;
  auto got = c.get_blob(digest, sink.sink(), BlobGetOptions{data.size(), std::nullopt});
  ASSERT_TRUE(fails_with(got, ErrorCode::corrupt));
  EXPECT_NE(got.error().context.find("hash to"), std::string::npos) << got.error().context;
}

TEST_F(FaultTest, TruncatedBodyIsResumedOnceAndCorruptWhenItPersists) {
  auto c = client();
  std::string data = random_bytes(64'000, 10);
  std::string digest = seed(c, data);
  m_fake.set_faults(R"({"blob_get": ["truncate"]})");
  Collect sink;
  ASSERT_TRUE(ok(c.get_blob(digest, sink.sink(), BlobGetOptions{data.size(), std::nullopt})));
  EXPECT_TRUE(sink.bytes == data);
  EXPECT_EQ(c.stats().retries, 1u);
  auto ranges = stats()["ranges"];
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[1], "bytes=32000-") << "the retry resumes after the bytes already delivered";

  m_fake.set_faults(R"({"blob_get": ["truncate", "truncate", "truncate", "truncate"]})");
  Collect again;
  auto got = c.get_blob(digest, again.sink(), BlobGetOptions{data.size(), std::nullopt});
  ASSERT_TRUE(fails_with(got, ErrorCode::corrupt));
  EXPECT_NE(got.error().context.find("truncated"), std::string::npos) << got.error().context;
  EXPECT_NE(got.error().context.find("after 4 attempts"), std::string::npos) << got.error().context;
}

TEST_F(FaultTest, StallTimesOutIsRetriedAndSaysSo) {
  auto options = fast_options();
  // curl averages the speed over the last few seconds, so a small body and a high limit make the
  // stall after the first half show within a second or two.
  options.http.low_speed_bytes = 100'000;
  options.http.low_speed_seconds = 1;
  options.retry.max_attempts = 2;
  auto c = client(options);
  std::string data = random_bytes(4000, 11);
  std::string digest = seed(c, data);
  m_fake.set_faults(R"({"blob_get": ["stall", "stall"]})");
  auto start = std::chrono::steady_clock::now();
  Collect sink;
  auto got = c.get_blob(digest, sink.sink());
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(fails_with(got, ErrorCode::io));
  EXPECT_NE(got.error().context.find("timed out or stalled"), std::string::npos) << got.error().context;
  EXPECT_NE(got.error().context.find("after 2 attempts"), std::string::npos) << got.error().context;
  EXPECT_EQ(c.stats().retries, 1u);
  EXPECT_LT(seconds, 10.0);
}

TEST_F(FaultTest, ConnectionResetIsRetriedAndResumed) {
  auto c = client();
  std::string data = random_bytes(200'000, 12);
  std::string digest = seed(c, data);
  m_fake.set_faults(R"({"blob_get": ["reset"]})");
  Collect sink;
  ASSERT_TRUE(ok(c.get_blob(digest, sink.sink(), BlobGetOptions{data.size(), std::nullopt})));
  EXPECT_TRUE(sink.bytes == data);
  EXPECT_EQ(c.stats().retries, 1u);
  auto ranges = stats()["ranges"];
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0], "");
  EXPECT_TRUE(ranges[1].get<std::string>().starts_with("bytes=")) << ranges.dump();
}

TEST_F(FaultTest, ServerErrorThenSuccessCountsARetry) {
  auto c = client();
  std::string data = random_bytes(1000, 13);
  std::string digest = seed(c, data);
  m_fake.set_faults(R"({"blob_get": ["503", "503"]})");
  Collect sink;
  ASSERT_TRUE(ok(c.get_blob(digest, sink.sink())));
  EXPECT_TRUE(sink.bytes == data);
  EXPECT_EQ(c.stats().retries, 2u);

  // A 4xx is never retried.
  Collect none;
  EXPECT_TRUE(fails_with(c.get_blob(remote::oci_digest("x"), none.sink()), ErrorCode::not_found));
  EXPECT_EQ(c.stats().retries, 2u);
}

TEST_F(FaultTest, HugeDeclaredLengthIsRefusedBeforeReading) {
  auto c = client();
  std::string data = random_bytes(1000, 14);
  std::string digest = seed(c, data);
  m_fake.set_faults(R"({"blob_get": ["huge"]})");
  Collect sink;
  auto got = c.get_blob(digest, sink.sink(), BlobGetOptions{data.size(), std::nullopt});
  ASSERT_TRUE(fails_with(got, ErrorCode::corrupt));
  EXPECT_NE(got.error().context.find("exceeds the limit"), std::string::npos) << got.error().context;
  EXPECT_TRUE(sink.bytes.empty());
  EXPECT_EQ(c.stats().retries, 0u);
}

TEST_F(FaultTest, FailedChunkResumesFromTheRegistrysRange) {
  auto options = fast_options();
  options.chunk_size = 1 << 20;
  auto c = client(options);
  std::string data = random_bytes((7 << 20) / 2, 15);  // 3.5 chunks
  std::string digest = remote::oci_digest(data);
  // The second PATCH keeps half its chunk and answers 500.
  m_fake.set_faults(R"({"patch": ["ok", "500-half"]})");
  auto put = c.put_blob(digest, data.size(), remote::read_memory(data));
  ASSERT_TRUE(ok(put));
  EXPECT_EQ(*put, PutBlobResult::uploaded);
  auto s = stats();
  EXPECT_EQ(s["upload_status"], 1) << s.dump();
  // 1 MiB, the failed one, then 2 MiB from 1.5 MiB on in two chunks: nothing sent twice but the
  // half the registry dropped.
  EXPECT_EQ(s["patches"], 4) << s.dump();
  EXPECT_EQ(c.stats().retries, 1u);
  Collect sink;
  ASSERT_TRUE(ok(c.get_blob(digest, sink.sink(), BlobGetOptions{data.size(), std::nullopt})));
  EXPECT_TRUE(sink.bytes == data);
}

// ---------------------------------------------------------------------------------------------
// fake_registry.py: Bearer tokens

class BearerTest : public FaultTest {
 protected:
  std::vector<std::string> extra_args() override {
    return {"--bearer", "--token-uses", "3", "--user", "robot", "--password", "s3cret"};
  }
  RegistryOptions with_credentials(const std::string& password) {
    auto options = fast_options();
    options.credentials = remote::Credentials{"robot", password, "test"};
    return options;
  }
};

TEST_F(BearerTest, TokenIsFetchedAndRefreshedWhenItExpires) {
  auto c = client(with_credentials("s3cret"));
  ASSERT_TRUE(ok(c.ping()));
  EXPECT_EQ(c.stats().token_fetches, 1u);
  // Each token is good for three requests: the fourth is refused, a new token is fetched once
  // and the request is tried again.
  std::string data = random_bytes(5000, 16);
  std::string digest = seed(c, data);  // HEAD, POST, PUT
  auto clone = c.clone();
  Collect sink;
  ASSERT_TRUE(ok(clone.get_blob(digest, sink.sink())));
  EXPECT_TRUE(sink.bytes == data);
  ASSERT_TRUE(ok(c.blob_exists(digest)));
  auto s = stats();
  EXPECT_EQ(c.stats().token_fetches, 2u);
  EXPECT_EQ(s["token_requests"], 2) << s.dump();
  EXPECT_EQ(s["unauthorized"], 2) << s.dump();  // the first request, and the expired token
  EXPECT_EQ(c.stats().retries, 0u);
}

TEST_F(BearerTest, WrongCredentialsForTheTokenAreAPermissionError) {
  auto c = client(with_credentials("nope"));
  auto ping = c.ping();
  ASSERT_TRUE(fails_with(ping, ErrorCode::permission));
  EXPECT_NE(ping.error().context.find("token request"), std::string::npos) << ping.error().context;
  EXPECT_NE(ping.error().context.find("/token?service=fake"), std::string::npos) << ping.error().context;
  EXPECT_EQ(ping.error().context.find("nope"), std::string::npos) << "a secret in the message";
}

}  // namespace
}  // namespace treesnap::test

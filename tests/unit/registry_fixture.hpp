// Real servers on loopback for the registry transport tests (STYLE 16): Debian's docker-registry
// (distribution 2.8.2), the fault-injecting tests/tools/fake_registry.py, and tinyproxy as a
// stand-in for Dragonfly's dfdaemon. Each runs in the test's temp directory, logs there, and is
// killed when the test ends. A missing program makes the test SKIP with the reason.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "remote/http.hpp"
#include "test_util.hpp"

extern char** environ;

namespace treesnap::test {

// The full path of `program` on $PATH, or empty.
inline std::string find_program(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

// A port nobody listened on a moment ago. The server binds it a little later, so a collision is
// possible; start() reports one as a failed start with the server's log.
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw_errno("bind a free port");
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool port_accepts(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A child process with stdout and stderr in `log`; SIGKILLed and reaped on destruction.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() { stop(); }

  void start(const std::vector<std::string>& argv, const fs::path& log) {
    m_log = log;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = ::posix_spawn(&m_pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      errno = rc;
      throw_errno("spawn " + argv[0]);
    }
  }

  bool running() {
    if (m_pid <= 0) return false;
    int status = 0;
    if (::waitpid(m_pid, &status, WNOHANG) == 0) return true;
    m_pid = -1;
    return false;
  }

  void stop() {
    if (m_pid <= 0) return;
    ::kill(m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
    m_pid = -1;
  }

  std::string log() const { return exists_nofollow(m_log) ? read_file(m_log) : std::string(); }

 private:
  pid_t m_pid = -1;
  fs::path m_log;
};

// Polls `ready` every 50 ms for up to 15 s while the process runs; false with the log otherwise.
template <typename Ready>
::testing::AssertionResult wait_until(ServerProcess& process, Ready ready, const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return ::testing::AssertionSuccess();
    if (!process.running()) return ::testing::AssertionFailure() << what << " exited:\n" << process.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ::testing::AssertionFailure() << what << " not ready after 15 s:\n" << process.log();
}

inline long http_status(const std::string& url) {
  remote::HttpSession session({}, std::make_shared<remote::TransferCounters>());
  remote::HttpRequest request;
  request.url = url;
  return session.perform(request).status;
}

// docker-registry serve on 127.0.0.1 with its storage in `dir`; Basic auth when `htpasswd` is set.
struct DockerRegistry {
  ServerProcess process;
  std::uint16_t port = 0;

  static std::string missing() {
    return find_program("docker-registry").empty() ? "docker-registry not installed (scripts/install-deps.sh)" : "";
  }

  ::testing::AssertionResult start(const fs::path& dir, const std::string& htpasswd = {}) {
    port = free_port();
    std::string config = "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: " +
                         (dir / "data").string() +
                         "\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\nhttp:\n"
                         "  addr: 127.0.0.1:" + std::to_string(port) +
                         "\nhealth:\n  storagedriver:\n    enabled: false\n";
    if (!htpasswd.empty()) config += "auth:\n  htpasswd:\n    realm: test\n    path: " + htpasswd + "\n";
    write_file(dir / "config.yml", config);
    process.start({find_program("docker-registry"), "serve", (dir / "config.yml").string()}, dir / "registry.log");
    std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v2/";
    return wait_until(process, [&] { long s = http_status(url); return s == 200 || s == 401; }, "docker-registry");
  }
};

// Deterministic incompressible bytes.
inline std::string random_bytes(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (std::size_t i = 0; i + 8 <= size; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  return out;
}

// Sets or unsets environment variables for one test and puts the old values back.
class ScopedEnv {
 public:
  void set(const std::string& name, const std::optional<std::string>& value) {
    const char* old = std::getenv(name.c_str());
    m_saved.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (value) ::setenv(name.c_str(), value->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
  ~ScopedEnv() {
    for (auto it = m_saved.rbegin(); it != m_saved.rend(); ++it) {
      if (it->second) ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else ::unsetenv(it->first.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> m_saved;
};

// tests/tools/fake_registry.py on a kernel-chosen port.
struct FakeRegistry {
  ServerProcess process;
  std::uint16_t port = 0;
  fs::path log_path;

  static std::string missing() { return find_program("python3").empty() ? "python3 not installed" : ""; }

  ::testing::AssertionResult start(const fs::path& dir, std::vector<std::string> args = {}) {
    log_path = dir / "fake_registry.log";
    std::vector<std::string> argv{find_program("python3"), TREESNAP_FAKE_REGISTRY};
    argv.insert(argv.end(), args.begin(), args.end());
    process.start(argv, log_path);
    return wait_until(process, [&] {
      std::string text = process.log();
      std::size_t at = text.find("PORT ");
      if (at == std::string::npos || text.find('\n', at) == std::string::npos) return false;
      port = static_cast<std::uint16_t>(std::stoi(text.substr(at + 5)));
      return true;
    }, "fake_registry.py");
  }

  std::string base() const { return "http://127.0.0.1:" + std::to_string(port); }

  // POST /__faults with `json`, e.g. {"blob_get": ["reset"]}.
  void set_faults(const std::string& json) {
    remote::HttpSession session({}, std::make_shared<remote::TransferCounters>());
    remote::HttpRequest request;
    request.method = "POST";
    request.url = base() + "/__faults";
    request.body = json;
    auto response = session.perform(request);
    if (response.status != 200) throw std::runtime_error("set faults: HTTP " + std::to_string(response.status));
  }

  // GET /__stats as raw JSON text.
  std::string stats() {
    remote::HttpSession session({}, std::make_shared<remote::TransferCounters>());
    remote::HttpRequest request;
    request.url = base() + "/__stats";
    return session.perform(request).body;
  }
};

// tinyproxy on 127.0.0.1, logging every request to `dir`/tinyproxy.log.
struct Tinyproxy {
  ServerProcess process;
  std::uint16_t port = 0;
  fs::path log_path;

  static std::string missing() {
    return find_program("tinyproxy").empty() ? "tinyproxy not installed (scripts/install-deps.sh)" : "";
  }

  ::testing::AssertionResult start(const fs::path& dir) {
    port = free_port();
    log_path = dir / "tinyproxy.log";
    write_file(dir / "tinyproxy.conf", "Port " + std::to_string(port) +
                                           "\nListen 127.0.0.1\nAllow 127.0.0.1\nLogLevel Info\nLogFile \"" +
                                           log_path.string() + "\"\nDisableViaHeader Yes\nTimeout 60\n");
    process.start({find_program("tinyproxy"), "-d", "-c", (dir / "tinyproxy.conf").string()}, dir / "tinyproxy.out");
    return wait_until(process, [&] { return port_accepts(port); }, "tinyproxy");
  }

  std::string log() const { return exists_nofollow(log_path) ? read_file(log_path) : std::string(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

}  // namespace treesnap::test

#include "train/dist/tcp_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

#include "core/error.h"

namespace mtl::train {

namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

constexpr uint32_t kMagic = 0x6d746c53;  // "mtlS"
constexpr uint64_t kMaxMessage = 1ull << 30;
enum : uint8_t { kOk = 0, kFailed = 1 };

std::string errno_text() { return std::strerror(errno); }

std::string seconds(double s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

// Writes all of `n` bytes; false when the peer is gone.
bool send_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool send_frame(int fd, const std::string& bytes) {
  const uint64_t n = bytes.size();
  return send_all(fd, &n, sizeof n) && send_all(fd, bytes.data(), bytes.size());
}

// Reads exactly `n` bytes before `deadline`. 0: done, 1: the peer closed, 2: out of time.
int recv_all(int fd, void* data, size_t n, Clock::time_point deadline) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 2;
    pollfd pf{fd, POLLIN, 0};
    const int r = ::poll(&pf, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    const ssize_t k = ::recv(fd, p, n, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k <= 0) return 1;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return 0;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

// Rank 0's server thread: accepts the world's connections (each introduces itself with its
// rank), then serves rounds of all-gathers until every rank has closed its connection or one
// has failed.
class TcpStore::Server {
 public:
  Server(int port, int world) : world_(world) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    MTL_CHECK(listen_fd_ >= 0, "the TCP store cannot make a socket: ", errno_text());
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, world) != 0) {
      const std::string why = errno_text();
      close_fd(listen_fd_);
      throw Error("rank 0 cannot listen on port " + std::to_string(port) + " for the TCP store (MASTER_PORT): " + why);
    }
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    MTL_CHECK(::pipe(wake_) == 0, "the TCP store cannot make a pipe: ", errno_text());
    thread_ = std::thread([this] { run(); });
  }

  ~Server() {
    const char c = 0;
    [[maybe_unused]] const ssize_t k = ::write(wake_[1], &c, 1);
    thread_.join();
    close_fd(listen_fd_);
    close_fd(wake_[0]);
    close_fd(wake_[1]);
  }

  int port() const { return port_; }

 private:
  struct Client {
    int fd = -1;
    std::string in;     // bytes of the current frame read so far (after the length)
    uint64_t need = 0;  // the frame's length, once its header has arrived
    char header[8];
    size_t header_got = 0;
    bool ready = false;  // its message of this round is complete
  };

  void run() {
    std::vector<Client> clients(static_cast<size_t>(world_));
    if (accept_all(clients)) serve(clients);
    for (Client& c : clients) close_fd(c.fd);
  }

  // False when told to stop first.
  bool accept_all(std::vector<Client>& clients) {
    int joined = 0;
    while (joined < world_) {
      pollfd pf[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(pf, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      if (pf[1].revents) return false;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      uint32_t hello[3];
      if (recv_all(fd, hello, sizeof hello, Clock::now() + std::chrono::seconds(30)) != 0 || hello[0] != kMagic) {
        ::close(fd);  // not one of ours
        continue;
      }
      const int rank = static_cast<int>(hello[1]), world = static_cast<int>(hello[2]);
      std::string problem;
      if (world != world_)
        problem = "rank " + std::to_string(rank) + " was started for a world of " + std::to_string(world) +
                  " processes, rank 0 for " + std::to_string(world_);
      else if (rank < 0 || rank >= world_)
        problem = "rank " + std::to_string(rank) + " is outside the world of " + std::to_string(world_);
      else if (clients[static_cast<size_t>(rank)].fd >= 0)
        problem = "two processes both claim rank " + std::to_string(rank);
      if (!problem.empty()) {
        fail_one(fd, problem);
        ::close(fd);
        continue;
      }
      clients[static_cast<size_t>(rank)].fd = fd;
      ++joined;
    }
    return true;
  }

  static void fail_one(int fd, const std::string& why) {
    const uint8_t s = kFailed;
    send_all(fd, &s, 1) && send_frame(fd, why);
  }

  void fail_all(std::vector<Client>& clients, const std::string& why) {
    for (Client& c : clients)
      if (c.fd >= 0) fail_one(c.fd, why);
  }

  void serve(std::vector<Client>& clients) {
    std::vector<pollfd> pf(clients.size() + 1);
    while (true) {
      for (size_t r = 0; r < clients.size(); ++r) pf[r] = {clients[r].ready ? -1 : clients[r].fd, POLLIN, 0};
      pf.back() = {wake_[0], POLLIN, 0};
      if (::poll(pf.data(), pf.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (pf.back().revents) return;
      for (size_t r = 0; r < clients.size(); ++r) {
        if (!pf[r].revents) continue;
        if (!read_some(clients[r])) {
          // A closed connection ends the store: the ranks still connected learn which one left, so
          // that a collective they are in, or enter later, fails at once.
          close_fd(clients[r].fd);
          fail_all(clients,
                   "rank " + std::to_string(r) + " closed its connection to the TCP store: it has ended or failed");
          drain(clients);
          return;
        }
      }
      bool all = true;
      for (const Client& c : clients) all = all && c.ready;
      if (!all) continue;
      std::string reply(1, static_cast<char>(kOk));
      for (Client& c : clients) {
        const uint64_t n = c.in.size();
        reply.append(reinterpret_cast<const char*>(&n), sizeof n).append(c.in);
      }
      for (Client& c : clients) {
        send_all(c.fd, reply.data(), reply.size());
        const int fd = c.fd;
        c = Client();
        c.fd = fd;
      }
    }
  }

  // After fail_all: closing a socket whose peer's next message is still unread sends a reset,
  // which can overtake the failure message on its way, so that the peer sees only a lost
  // connection. Reads and drops what the ranks still send until they close (they do on reading
  // the failure) or a few seconds pass.
  void drain(std::vector<Client>& clients) {
    for (Client& c : clients)
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_WR);
    const auto end = after(5);
    while (Clock::now() < end) {
      std::vector<pollfd> pf;
      for (const Client& c : clients)
        if (c.fd >= 0) pf.push_back({c.fd, POLLIN, 0});
      if (pf.empty()) return;
      pf.push_back({wake_[0], POLLIN, 0});
      if (::poll(pf.data(), pf.size(), 100) < 0 && errno != EINTR) return;
      if (pf.back().revents) return;
      for (size_t i = 0; i + 1 < pf.size(); ++i) {
        if (!pf[i].revents) continue;
        char buf[4096];
        if (::recv(pf[i].fd, buf, sizeof buf, 0) > 0) continue;
        for (Client& c : clients)
          if (c.fd == pf[i].fd) close_fd(c.fd);
      }
    }
  }

  // Reads what has arrived; false when the connection closed or sent garbage.
  static bool read_some(Client& c) {
    char buf[65536];
    const ssize_t k = ::recv(c.fd, buf, sizeof buf, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (k <= 0) return false;
    size_t at = 0;
    const size_t got = static_cast<size_t>(k);
    while (at < got) {
      if (c.header_got < sizeof c.header) {
        const size_t take = std::min(sizeof c.header - c.header_got, got - at);
        std::memcpy(c.header + c.header_got, buf + at, take);
        c.header_got += take;
        at += take;
        if (c.header_got < sizeof c.header) break;
        std::memcpy(&c.need, c.header, sizeof c.need);
        if (c.need > kMaxMessage) return false;
      }
      const size_t take = std::min<size_t>(c.need - c.in.size(), got - at);
      c.in.append(buf + at, take);
      at += take;
      if (c.in.size() == c.need) {
        c.ready = true;
        // A rank sends its next message only after this round's reply, so nothing follows.
        return at == got;
      }
    }
    return true;
  }

  int world_;
  int listen_fd_ = -1, port_ = 0;
  int wake_[2] = {-1, -1};
  std::thread thread_;
};

TcpStore::TcpStore(const std::string& host, int port, int rank, int world_size, double timeout_s)
    : rank_(rank), world_(world_size), port_(port), timeout_s_(timeout_s) {
  MTL_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "TCP store: rank ", rank, " of ", world_size);
  if (rank == 0) {
    server_ = std::make_unique<Server>(port, world_size);
    port_ = server_->port();
  }
  // Rank 0 reaches its own server locally, whatever MASTER_ADDR resolves to there.
  const std::string connect_to = rank == 0 ? "127.0.0.1" : host;
  where_ = host + ":" + std::to_string(port_);
  const auto deadline = after(timeout_s);
  std::string last_error = "no attempt";
  while (fd_ < 0) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    const int g = ::getaddrinfo(connect_to.c_str(), std::to_string(port_).c_str(), &hints, &res);
    if (g != 0) {
      last_error = std::string("cannot resolve '") + connect_to + "': " + gai_strerror(g);
    } else {
      for (addrinfo* a = res; a && fd_ < 0; a = a->ai_next) {
        int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
          fd_ = fd;
        } else {
          last_error = errno_text();
          ::close(fd);
        }
      }
      ::freeaddrinfo(res);
    }
    if (fd_ >= 0) break;
    MTL_CHECK(Clock::now() < deadline, "rank ", rank, " could not reach rank 0's TCP store at ", where_, " within ",
              timeout_s, " s (runtime.dist_timeout): ", last_error,
              " (are MASTER_ADDR and MASTER_PORT right, and has rank 0 started?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const uint32_t hello[3] = {kMagic, static_cast<uint32_t>(rank), static_cast<uint32_t>(world_size)};
  MTL_CHECK(send_all(fd_, hello, sizeof hello), "rank ", rank, ": the TCP store at ", where_, " closed the connection");
}

TcpStore::~TcpStore() {
  close_fd(fd_);
  server_.reset();
}

void TcpStore::abort() {
  ::shutdown(fd_, SHUT_RDWR);
  close_fd(fd_);
  server_.reset();
}

std::vector<std::string> TcpStore::all_gather_bytes(const std::string& bytes, const std::string& what) {
  MTL_CHECK(fd_ >= 0, "the TCP store connection of rank ", rank_, " is closed");
  const auto deadline = after(timeout_s_);
  auto lost = [&](const std::string& why) {
    close_fd(fd_);
    return Error("all-gather of " + what + " through the TCP store at " + where_ + " failed: " + why);
  };
  if (!send_frame(fd_, bytes)) throw lost("the connection to rank 0 closed (rank 0 has ended or failed)");
  auto read = [&](void* p, size_t n) {
    const int r = recv_all(fd_, p, n, deadline);
    if (r == 1) throw lost("the connection to rank 0 closed (rank 0 has ended or failed)");
    if (r == 2)
      throw lost("it did not complete within " + seconds(timeout_s_) +
                 " s (runtime.dist_timeout): another rank has died, stalled or left the collective");
  };
  uint8_t status = 0;
  read(&status, 1);
  std::vector<std::string> out;
  const int frames = status == kOk ? world_ : 1;
  for (int r = 0; r < frames; ++r) {
    uint64_t n = 0;
    read(&n, sizeof n);
    if (n > kMaxMessage) throw lost("a reply of " + std::to_string(n) + " bytes");
    std::string s(n, '\0');
    if (n) read(s.data(), n);
    out.push_back(std::move(s));
  }
  if (status != kOk) throw lost(out.front());
  return out;
}

}  // namespace mtl::train

#include "support/http_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <stdexcept>

namespace dscache::test {
namespace {

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void reset_connection(int fd) {
  struct linger lg {1, 0};  // close() now sends RST
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 412: return "Precondition Failed";
    case 416: return "Requested Range Not Satisfiable";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Reads from `fd` into `buffer` until it holds "\r\n\r\n"; false on EOF/error.
bool read_head(int fd, std::string& buffer, size_t& head_end) {
  while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    char chunk[65536];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  head_end += 4;
  return true;
}

}  // namespace

std::string TestRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return {};
}

std::string TestRequest::signing_region() const {
  // Credential=AKID/20130524/us-east-1/s3/aws4_request
  std::string auth = header("authorization");
  size_t cred = auth.find("Credential=");
  if (cred == std::string::npos) return {};
  size_t first = auth.find('/', cred);
  size_t second = first == std::string::npos ? first : auth.find('/', first + 1);
  size_t third = second == std::string::npos ? second : auth.find('/', second + 1);
  if (third == std::string::npos) return {};
  return auth.substr(second + 1, third - second - 1);
}

TestResponse TestResponse::s3_error(int status, std::string_view code, std::string_view extra_xml) {
  TestResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/xml");
  r.headers.emplace_back("x-amz-request-id", "test-request-id");
  r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + std::string(code) +
           "</Code><Message>injected</Message>" + std::string(extra_xml) +
           "<RequestId>test-request-id</RequestId></Error>";
  return r;
}

HttpTestServer::HttpTestServer(Handler handler, std::string upstream_host, int upstream_port)
    : handler_(std::move(handler)), upstream_host_(std::move(upstream_host)), upstream_port_(upstream_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 128) != 0) {
    throw std::runtime_error("HttpTestServer: cannot listen on 127.0.0.1");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

HttpTestServer::~HttpTestServer() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  ::close(listen_fd_);
  acceptor_.join();
  {
    std::lock_guard lock(mutex_);
    for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : workers_) t.join();
}

void HttpTestServer::set_handler(Handler handler) {
  std::lock_guard lock(mutex_);
  handler_ = std::move(handler);
}

std::vector<TestRequest> HttpTestServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

void HttpTestServer::clear_requests() {
  std::lock_guard lock(mutex_);
  requests_.clear();
}

void HttpTestServer::accept_loop() {
  while (!stopping_) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ++connections_;
    std::lock_guard lock(mutex_);
    client_fds_.push_back(fd);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void HttpTestServer::serve(int fd) {
  std::string buffer;
  while (!stopping_) {
    size_t head_end = 0;
    if (!read_head(fd, buffer, head_end)) break;
    TestRequest request;
    std::string_view head(buffer.data(), head_end - 4);
    size_t line_end = head.find("\r\n");
    std::string_view request_line = head.substr(0, line_end);
    size_t sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
    request.method = std::string(request_line.substr(0, sp1));
    request.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
    size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string_view::npos) end = head.size();
      std::string_view line = head.substr(pos, end - pos);
      size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        request.headers.emplace_back(lower(line.substr(0, colon)), std::string(value));
      }
      pos = end + 2;
    }
    size_t body_length = 0;
    if (std::string cl = request.header("content-length"); !cl.empty()) body_length = std::stoul(cl);
    while (buffer.size() < head_end + body_length) {
      char chunk[65536];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
    }
    request.body = buffer.substr(head_end, body_length);
    buffer.erase(0, head_end + body_length);

    Handler handler;
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(request);
      handler = handler_;
    }
    TestResponse response = handler(request);
    if (response.fault == TestResponse::Fault::reset_before_response) {
      close_client(fd, true);
      return;
    }
    if (response.forward) {
      relay(fd, request, response);
      // The upstream closed its side (Connection: close); so do we.
      close_client(fd, response.fault == TestResponse::Fault::reset_after_body);
      return;
    }
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + reason(response.status) + "\r\n";
    for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
    out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n\r\n";
    if (request.method != "HEAD") {
      if (response.fault != TestResponse::Fault::none) {
        out += response.body.substr(0, response.fault_after);
        send_all(fd, out);
        close_client(fd, response.fault == TestResponse::Fault::reset_after_body);
        return;
      }
      out += response.body;
    }
    if (!send_all(fd, out)) break;
  }
  close_client(fd, false);
}

void HttpTestServer::close_client(int fd, bool reset) {
  {
    std::lock_guard lock(mutex_);
    std::erase(client_fds_, fd);
  }
  if (reset) {
    reset_connection(fd);
  } else {
    ::close(fd);
  }
}

void HttpTestServer::relay(int client, const TestRequest& request, const TestResponse& response) {
  int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  ::inet_pton(AF_INET, upstream_host_.c_str(), &addr.sin_addr);
  if (::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(up);
    return;
  }
  std::string out = request.method + " " + request.target + " HTTP/1.1\r\n";
  for (const auto& [name, value] : request.headers) {
    if (name != "connection") out += name + ": " + value + "\r\n";
  }
  out += "Connection: close\r\n\r\n" + request.body;
  send_all(up, out);

  std::string answer;
  size_t head_end = 0;
  if (!read_head(up, answer, head_end)) {
    ::close(up);
    return;
  }
  // Relay the head and as much body as the fault allows, streaming.
  uint64_t limit = response.fault == TestResponse::Fault::none ? UINT64_MAX : response.fault_after;
  uint64_t body_sent = 0;
  auto forward_body = [&](std::string_view body) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(body.size(), limit - body_sent));
    bool ok = send_all(client, body.substr(0, n));
    body_sent += n;
    return ok;
  };
  bool ok = send_all(client, std::string_view(answer).substr(0, head_end)) &&
            forward_body(std::string_view(answer).substr(head_end));
  while (ok && body_sent < limit) {
    char chunk[65536];
    ssize_t n = ::recv(up, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    ok = forward_body(std::string_view(chunk, static_cast<size_t>(n)));
  }
  ::close(up);
}

}  // namespace dscache::test

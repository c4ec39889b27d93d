// HttpTestServer: a small HTTP/1.1 server on 127.0.0.1 for tests. A handler
// answers each request with a scripted response, or forwards it to an
// upstream server (a real radosgw) and relays the answer, optionally cutting
// the connection partway: a fault-injecting proxy.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace dscache::test {

struct TestRequest {
  std::string method;
  std::string target;  // path and query as sent
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::string header(std::string_view name) const;
  std::string path() const { return target.substr(0, target.find('?')); }
  // The region in the Authorization header's credential scope, or "".
  std::string signing_region() const;
};

struct TestResponse {
  enum class Fault : uint8_t {
    none,
    reset_before_response,  // read the request, then reset the connection
    reset_after_body,       // send headers and reset_after bytes of body, then reset
    close_after_body,       // same, then a clean close (short body)
  };

  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool forward = false;  // relay to the upstream instead of using status/headers/body
  Fault fault = Fault::none;
  uint64_t fault_after = 0;  // body bytes sent before the fault

  static TestResponse forwarded() {
    TestResponse r;
    r.forward = true;
    return r;
  }
  static TestResponse s3_error(int status, std::string_view code, std::string_view extra_xml = {});
};

class HttpTestServer {
 public:
  using Handler = std::function<TestResponse(const TestRequest&)>;

  // Forwarded requests go to upstream_host:upstream_port (0: no upstream).
  explicit HttpTestServer(Handler handler, std::string upstream_host = "127.0.0.1", int upstream_port = 0);
  ~HttpTestServer();

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void set_handler(Handler handler);

  std::vector<TestRequest> requests() const;  // every request received so far
  void clear_requests();
  int connections() const { return connections_.load(); }

 private:
  void accept_loop();
  void serve(int fd);
  void relay(int client, const TestRequest& request, const TestResponse& response);
  void close_client(int fd, bool reset);

  mutable std::mutex mutex_;
  Handler handler_;
  std::vector<TestRequest> requests_;
  std::string upstream_host_;
  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  std::vector<int> client_fds_;
};

}  // namespace dscache::test

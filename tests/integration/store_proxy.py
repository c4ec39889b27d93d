"""A proxy in front of the test S3 server that counts and delays requests
(shared by the integration tests)."""
import http.client
import http.server
import random
import threading
import time


class CountingProxy:
    """Forwards HTTP to the real store and records each GET's path and Range,
    and for ranged GETs when each arrived and when its answer was written
    (`ranged`: [Range, arrived, answered]). With `delay`, each ranged GET waits
    that long before it is forwarded; with `jitter`, a further random share of
    it, so that ranges arrive out of order. stop() makes every later request
    fail, also on connections kept alive from before."""

    def __init__(self, upstream, delay=0.0, jitter=0.0):
        host, port = upstream.split("//")[1].split(":")
        self.gets = {}
        self.lock = threading.Lock()
        self.ranged = []
        self.dead = False
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                if proxy.dead:
                    self.close_connection = True
                    return
                ranged = self.command == "GET" and "Range" in self.headers
                if self.command == "GET":
                    with proxy.lock:
                        path = self.path.split("?")[0]
                        proxy.gets.setdefault(path, []).append(self.headers.get("Range", ""))
                if ranged:
                    event = [self.headers["Range"], time.monotonic(), None]
                    with proxy.lock:
                        proxy.ranged.append(event)
                    time.sleep(delay + random.uniform(0, jitter))
                self.relay()
                if ranged:
                    event[2] = time.monotonic()

            def relay(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                # A HEAD's length is the object's, not its (empty) body's.
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.dead = True
        self.server.shutdown()
        self.server.server_close()

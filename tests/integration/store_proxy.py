"""A proxy in front of the test S3 server that counts and delays requests
(shared by the integration tests)."""
import http.client
import http.server
import random
import threading
import time


def fetch(handler, host, port, body):
    """The real store's answer to the request `handler` holds: (response, body)."""
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request(handler.command, handler.path, body=body, headers=dict(handler.headers))
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def send_head(handler, resp, data):
    """The status line and headers of `resp`, with a Content-Length that fits
    `data` (a HEAD's is the object's, not its empty body's)."""
    handler.send_response(resp.status)
    for k, v in resp.getheaders():
        if k.lower() not in ("content-length", "connection", "transfer-encoding"):
            handler.send_header(k, v)
    length = resp.getheader("Content-Length") if handler.command == "HEAD" else None
    handler.send_header("Content-Length", length or str(len(data)))
    handler.end_headers()


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
                resp, data = fetch(self, host, port, self.rfile.read(length) if length else None)
                send_head(self, resp, data)
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.dead = True
        self.server.shutdown()
        self.server.server_close()


class FaultProxy:
    """Forwards HTTP to the real store, but answers a share (`rate`) of the
    requests with a fault, chosen at random: a 503 SlowDown, a reset (the
    connection closed with no answer), a stall (`stall` seconds of silence,
    then the answer) or a truncated body (the headers say the full length,
    half the body comes, then the connection closes). `counts` tallies
    requests and each kind of fault."""

    KINDS = ("503", "reset", "stall", "truncated")

    def __init__(self, upstream, rate=0.3, stall=5.0, seed=1):
        host, port = upstream.split("//")[1].split(":")
        self.counts = {"requests": 0, **{k: 0 for k in self.KINDS}}
        self.lock = threading.Lock()
        rng = random.Random(seed)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                with proxy.lock:
                    proxy.counts["requests"] += 1
                    fault = rng.choice(FaultProxy.KINDS) if rng.random() < rate else None
                    if fault:
                        proxy.counts[fault] += 1
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else None
                if fault == "reset":
                    self.close_connection = True
                    return
                if fault == "503":
                    payload = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                               b'<Message>Please reduce your request rate.</Message></Error>')
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault == "stall":
                    time.sleep(stall)
                resp, data = fetch(self, host, port, body)
                send_head(self, resp, data)
                if self.command == "HEAD":
                    return
                if fault == "truncated" and len(data) > 1:
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # clients that cut a stall (as they should)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

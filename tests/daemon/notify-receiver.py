#!/usr/bin/env python3
"""notify-receiver.py LOG PORTFILE: a loopback receiver for binderyd's
notifications (tests/daemon/notifications.sh). Answers every POST with 200
and appends one JSON line per request to LOG: {"path", "headers", "body"}.
Writes the port it listens on to PORTFILE. Exits after 120 s at most."""
import http.server
import json
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(min(n, 1 << 20)).decode("utf-8", "replace")
        with open(sys.argv[1], "a") as f:
            f.write(json.dumps({"path": self.path, "headers": dict(self.headers), "body": body}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
threading.Timer(120, lambda: os._exit(0)).start()
srv.serve_forever()

#!/usr/bin/env python3
"""A slow notification receiver for bench/notifications.sh: answers every
POST with 200 after DELAY_MS, counting requests. Listens on 127.0.0.1:PORT.

Usage: slow_receiver.py PORT DELAY_MS
"""

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Slow(BaseHTTPRequestHandler):
    delay = 0.0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    Slow.delay = int(sys.argv[2]) / 1000
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench_push's discarding HTTP sink: answers the two requests an upload makes (POST
/data/JSESSION, POST /data/services/import) and throws the body away as fast as it reads it,
so an upload's time against it is the client's own cost (reading files, CRCs, writing the
socket), not the XNAT side's ingest. Not an XNAT: no parsing, no storage, no checks.

Usage: http_sink.py PORT   (prints "ready" once listening)
"""

import http.server
import sys
from urllib.parse import parse_qs, urlparse

CHUNK = 1 << 20


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, body, status=200):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        if self.path.startswith("/data/JSESSION"):
            self.send_header("Set-Cookie", "JSESSIONID=SINK0001; Path=/")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            got = self.rfile.read(min(CHUNK, left))
            if not got:
                return
            left -= len(got)
        url = urlparse(self.path)
        if url.path == "/data/JSESSION":
            return self._reply("SINK0001")
        if url.path == "/data/services/import":
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            return self._reply("/data/archive/projects/%s/subjects/%s/experiments/%s\n" % (
                q.get("PROJECT_ID", "P"), q.get("SUBJECT_ID", "S"), q.get("EXPT_LABEL", "E")))
        self._reply("not here", 404)


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

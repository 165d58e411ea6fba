#!/usr/bin/env python3
"""A loopback stand-in for a site's Keystone, for ci/bench.sh only: answers the OIDC
federation exchange (201 + X-Subject-Token; 401 for any other bearer than the monitor's),
the project list, the scoped token with a catalog, and its validation, so one full
check_token_auth run can be timed without network noise.

Usage: keystone_stub.py PORTFILE TOKENFILE   (binds 127.0.0.1:0, writes the port to PORTFILE)
"""
import http.server
import json
import sys

PROJECTS = json.dumps({"projects": [{"id": "p-ops", "name": "ops", "enabled": True}]}).encode()
def endpoint(kind, url):
    return {"type": kind, "endpoints": [{"interface": "public", "region": "RegionOne",
                                         "region_id": "RegionOne", "url": url}]}


SCOPED = json.dumps({"token": {
    "expires_at": "2999-01-01T00:00:00.000000Z",
    "project": {"id": "p-ops", "name": "ops"},
    "catalog": [endpoint("compute", "https://compute.bench.invalid/v2.1"),
                endpoint("image", "https://image.bench.invalid"),
                endpoint("identity", "https://keystone.bench.invalid/v3"),
                endpoint("network", "https://network.bench.invalid"),
                endpoint("volumev3", "https://volume.bench.invalid/v3/p-ops")]}}).encode()
TOKEN = ""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, delayed ACKs add 40 ms.
    disable_nagle_algorithm = True

    def _send(self, status, body, token=None):
        self.send_response(status)
        if token:
            self.send_header("X-Subject-Token", token)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if "/OS-FEDERATION/" in self.path and self.path.endswith("/auth"):
            if self.headers.get("Authorization") != "Bearer " + TOKEN:
                self._send(401, b'{"error": {"code": 401, "title": "Unauthorized"}}')
                return
            self._send(201, b'{"token": {"methods": ["openid"]}}', "bench-unscoped-token-0000000001")
        elif self.path.endswith("/v3/auth/tokens"):
            self._send(201, SCOPED, "bench-scoped-token-00000000002")
        else:
            self._send(404, b'{"error": "not found"}')

    def do_GET(self):
        if self.path.endswith("/v3/auth/projects"):
            self._send(200, PROJECTS)
        elif self.path.endswith("/v3/auth/tokens"):
            self._send(200, SCOPED, "bench-scoped-token-00000000002")
        else:
            self._send(404, b'{"error": "not found"}')

    def log_message(self, *args):
        pass


def main():
    global TOKEN
    with open(sys.argv[2]) as f:
        TOKEN = f.read().strip()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()

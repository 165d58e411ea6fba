"""Minimal read-only Neutron v2.0 stub (fallback when real neutron is unwanted: FEDPROBE_NEUTRON_STUB=1).
Answers every list with an empty list so nova-api can render servers booted with networks=none."""
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class H(BaseHTTPRequestHandler):
    def _send(self, code, body):
        b = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        p = self.path.split("?")[0].rstrip("/")
        m = re.match(r"^/v2\.0/([a-z_-]+)(\.json)?$", p)
        if p in ("", "/"):
            return self._send(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": []}]})
        if m:
            return self._send(200, {m.group(1).replace("-", "_"): []})
        self._send(404, {"NeutronError": {"type": "NotFound", "message": p, "detail": ""}})

    def do_DELETE(self):
        self._send(204, {})

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9696), H).serve_forever()

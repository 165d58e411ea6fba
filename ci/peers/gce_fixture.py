#!/usr/bin/env python3
"""A Google Compute Engine fixture for fedprobe's GCE backend, bound to 127.0.0.1.

Every route, parameter and answer shape comes from Google's discovery documents bundled in the
installed google-api-python-client (compute v1, storage v1, sts v1, iamcredentials v1): a request
is matched against the document's method paths, its parameters and body are validated against
the method's parameters and request schema, and every answer is checked against the method's
response schema before it is sent (a fixture answer the document does not allow is a 500, so the
fixture cannot drift from the API unnoticed). Errors use Google's error shape.

Served (one host, paths as on the real services):
  /compute/v1/...                    instances, disks, images, zone/global operations, machineTypes, zones
  /storage/v1/..., /upload/storage/v1/b/{bucket}/o   objects (the image archive staging area)
  /token                             OAuth2 JWT-bearer grant (service-account key, RS256, checked)
  /v1/token                          Security Token Service (workload identity federation)
  /v1/projects/-/serviceAccounts/{sa}:generateAccessToken   impersonation (iamcredentials)

Faults, by the project id a request names (so one server serves every test):
  *stuck*       instances stay PROVISIONING
  *terminated*  instances go TERMINATED with a statusMessage
  *nodelete*    delete operations never finish; the instance stays STOPPING
  *throttle*    every compute call: 403 rateLimitExceeded (*throttle429*: 429 RESOURCE_EXHAUSTED)
  *garbage*     compute answers are not JSON
STS refuses (400 invalid_grant) an audience containing "refused" and an expired subject token.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import googleapiclient
from google.auth import crypt, jwt

DOCS = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents")


def load(name):
    with open(os.path.join(DOCS, name)) as f:
        return json.load(f)


COMPUTE = load("compute.v1.json")
STORAGE = load("storage.v1.json")
STS = load("sts.v1.json")
IAMCRED = load("iamcredentials.v1.json")


class ApiError(Exception):
    def __init__(self, code, reason, message, status=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.status = code, reason, message, status


def google_error(e):
    """Google's JSON error shape (as googleapiclient.errors.HttpError reads it)."""
    status = e.status or {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                          404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED"}.get(e.code, "INTERNAL")
    return {"error": {"code": e.code, "message": e.message, "status": status,
                      "errors": [{"domain": "global" if e.code != 403 else "usageLimits",
                                  "reason": e.reason, "message": e.message}]}}


# ---- the discovery documents: routes, parameters, schemas ---------------------------------------

def methods(doc, prefix):
    """(http method, regex, method description, doc) for every method of a discovery doc."""
    out = []

    def walk(res):
        for r in res.get("resources", {}).values():
            for m in r.get("methods", {}).values():
                path = m.get("flatPath", m["path"])
                rx = re.sub(r"\{\+?([A-Za-z_]+)\}", lambda g: "(?P<%s>[^/]+)" % g.group(1), re.escape(path).replace(r"\{", "{").replace(r"\}", "}"))
                out.append((m["httpMethod"], re.compile("^" + prefix + rx + "$"), m, doc))
                up = m.get("mediaUpload", {}).get("protocols", {}).get("simple", {}).get("path")
                if up:
                    urx = re.sub(r"\{([A-Za-z_]+)\}", lambda g: "(?P<%s>[^/]+)" % g.group(1), up)
                    out.append((m["httpMethod"], re.compile("^" + urx + "$"), m, doc))
            walk(r)
    walk(doc)
    return out


ROUTES = (methods(COMPUTE, "/" + COMPUTE["servicePath"]) + methods(STORAGE, "/" + STORAGE["servicePath"])
          + methods(STS, "/") + methods(IAMCRED, "/"))


def check_params(m, doc, path_params, query):
    known = dict(doc.get("parameters", {}))
    known.update(m.get("parameters", {}))
    for k, vals in query.items():
        if k not in known:
            raise ApiError(400, "invalid", "Invalid JSON payload received. Unknown name \"%s\": Cannot bind query parameter." % k)
        typ = known[k].get("type")
        for v in vals:
            if typ == "integer" and not re.fullmatch(r"-?\d+", v):
                raise ApiError(400, "invalid", "Invalid value for %s: %r is not an integer" % (k, v))
            if typ == "boolean" and v not in ("true", "false"):
                raise ApiError(400, "invalid", "Invalid value for %s: %r is not a boolean" % (k, v))
            enum = known[k].get("enum")
            if enum and v not in enum:
                raise ApiError(400, "invalid", "Invalid value for %s: %r not in %s" % (k, v, enum))
    for k, p in m.get("parameters", {}).items():
        if p.get("required") and p.get("location") == "query" and k not in query:
            raise ApiError(400, "required", "Required parameter %s is missing" % k)
        if p.get("location") == "path" and k in path_params and p.get("pattern"):
            if not re.fullmatch(p["pattern"], urllib.parse.unquote(path_params[k])):
                raise ApiError(400, "invalid", "Invalid value for field '%s': '%s'. Must match regex '%s'" % (k, path_params[k], p["pattern"]))


def conform(value, schema, doc, where):
    """Raise ValueError when value is not what schema (a discovery JSON schema) allows."""
    if "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    if value is None:
        return  # JSON null is "not set" (proto3 JSON mapping; google-auth sends "delegates": null)
    typ = schema.get("type")
    if typ == "object":
        if not isinstance(value, dict):
            raise ValueError("%s: expected an object" % where)
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                conform(v, props[k], doc, where + "." + k)
            elif extra is not None:
                conform(v, extra, doc, where + "." + k)
            else:
                raise ValueError("%s: unknown field %r" % (where, k))
    elif typ == "array":
        if not isinstance(value, list):
            raise ValueError("%s: expected an array" % where)
        for i, v in enumerate(value):
            conform(v, schema["items"], doc, "%s[%d]" % (where, i))
    elif typ == "string":
        # int64/uint64 travel as strings; byte strings are base64
        if not isinstance(value, str):
            raise ValueError("%s: expected a string" % where)
        if schema.get("enum") and value not in schema["enum"]:
            raise ValueError("%s: %r not in %s" % (where, value, schema["enum"]))
    elif typ == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("%s: expected an integer" % where)
    elif typ == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError("%s: expected a number" % where)
    elif typ == "boolean":
        if not isinstance(value, bool):
            raise ValueError("%s: expected a boolean" % where)


def rfc3339(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03d-00:00" % int((t % 1) * 1000)


# ---- state ----------------------------------------------------------------------------------------

MACHINE_TYPES = [("e2-micro", 2, 1024), ("e2-small", 2, 2048), ("n1-standard-1", 1, 3840)]
LABEL_RX = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
STEPS = 2  # GETs an instance spends in PROVISIONING and STAGING each
# the audience google-auth (and Google) use for the JWT-bearer grant, whatever token_uri says
GOOGLE_AUD = "https://oauth2.googleapis.com/token"


class State:
    def __init__(self, key):
        self.lock = threading.Lock()
        self.instances = {}  # (project, zone, name) -> dict
        self.disks = {}
        self.images = {}  # (project, name)
        self.ops = {}  # (project, scope, name) -> dict
        self.objects = {}  # (bucket, name) -> (bytes, meta)
        self.tokens = {}  # token -> expiry
        self.key = key
        self.next_id = 1000

    def new_id(self):
        self.next_id += 1
        return str(self.next_id * 7919)


def base(h):
    return "http://%s/" % h.headers.get("Host", "127.0.0.1")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set in main

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def send(self, code, body, ctype="application/json; charset=UTF-8", extra=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, verb):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            if url.path == "/healthz":
                return self.send(200, {"ok": True})
            if url.path == "/fixture/state":
                # for tests: what a project still holds (leftovers), outside Google's API
                return self.send(200, self.inventory((query.get("project") or [""])[0]))
            if url.path == "/token" and verb == "POST":
                return self.send(200, self.oauth_token(raw))
            route = None
            for (mv, rx, m, doc) in ROUTES:
                g = rx.match(url.path)
                if g and mv == verb:
                    route = (m, doc, g.groupdict())
                    break
            if route is None:
                raise ApiError(404, "notFound", "The requested URL %s was not found on this server." % url.path)
            m, doc, pp = route
            check_params(m, doc, pp, query)
            pp = {k: urllib.parse.unquote(v) for k, v in pp.items()}
            body = None
            is_media = url.path.startswith("/upload/")
            if m.get("request") and not is_media:
                try:
                    if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                        # STS as google-auth calls it: the request's fields, form-encoded in snake case
                        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
                        body = {re.sub(r"_([a-z])", lambda g: g.group(1).upper(), k): v[0] for k, v in form.items()}
                    else:
                        body = json.loads(raw or b"{}")
                    conform(body, m["request"], doc, m["request"]["$ref"])
                except (ValueError, json.JSONDecodeError) as e:
                    raise ApiError(400, "invalid", "Invalid JSON payload received. %s" % e)
            mid = m["id"]
            if doc is COMPUTE or doc is STORAGE:
                self.authorize()
            if doc is COMPUTE:
                fault = self.fault(pp.get("project", ""))
                if fault == "garbage":
                    return self.send(200, b"<html><body>Service Unavailable (upstream)</body></html>", "text/html")
            out = self.dispatch(mid, pp, query, body, raw)
            if isinstance(out, tuple) and out[0] == "media":
                return self.send(200, out[1], "application/octet-stream")
            if m.get("response"):
                try:
                    conform(out, m["response"], doc, m["response"]["$ref"])
                except ValueError as e:
                    raise ApiError(500, "backendError", "fixture answer breaks %s: %s" % (mid, e))
            return self.send(200, out if out is not None else {})
        except ApiError as e:
            extra = [("Retry-After", "2")] if e.code == 429 else []
            if url.path in ("/v1/token", "/token") and e.code == 400:
                return self.send(400, {"error": e.reason, "error_description": e.message})
            return self.send(e.code, google_error(e), extra=extra)

    def inventory(self, p):
        S = self.state
        with S.lock:
            return {"instances": sorted(k[2] for k in S.instances if k[0] == p),
                    "disks": sorted(k[2] for k in S.disks if k[0] == p),
                    "images": sorted(k[1] for k in S.images if k[0] == p),
                    "objects": sorted("%s/%s" % k for k in S.objects),
                    "instance_metadata": {k[2]: v["inst"].get("metadata") for k, v in S.instances.items() if k[0] == p}}

    # -- auth
    def authorize(self):
        h = self.headers.get("Authorization", "")
        tok = h[7:] if h.startswith("Bearer ") else None
        with self.state.lock:
            exp = self.state.tokens.get(tok)
        if not tok or not exp or exp < time.time():
            raise ApiError(401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                           "UNAUTHENTICATED")

    def issue(self, life=3600):
        tok = "ya29.fixture-" + secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.tokens[tok] = time.time() + life
        return tok

    def oauth_token(self, raw):
        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            raise ApiError(400, "unsupported_grant_type", "Invalid grant_type")
        assertion = (form.get("assertion") or [""])[0]
        key = self.state.key
        try:
            claims = jwt.decode(assertion, certs={key["private_key_id"]: key["certificate"]},
                                audience=[GOOGLE_AUD, key["token_uri"], base(self) + "token"], clock_skew_in_seconds=30)
        except Exception as e:  # google.auth raises ValueError / MalformedError
            raise ApiError(400, "invalid_grant", "Invalid JWT Signature. (%s)" % str(e)[:120])
        if claims.get("iss") != key["client_email"] or not claims.get("scope"):
            raise ApiError(400, "invalid_grant", "Invalid JWT: iss or scope")
        return {"access_token": self.issue(), "expires_in": 3599, "token_type": "Bearer"}

    def sts(self, body):
        aud = body.get("audience", "")
        if "refused" in aud:
            raise ApiError(400, "invalid_grant", "The audience in ID Token [%s] does not match the expected audience." % aud)
        if body.get("grantType") != "urn:ietf:params:oauth:grant-type:token-exchange":
            raise ApiError(400, "invalid_request", "Invalid grant_type")
        if not aud.startswith("//iam.googleapis.com/"):
            raise ApiError(400, "invalid_request", "Invalid audience")
        parts = body.get("subjectToken", "").split(".")
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except Exception:
            raise ApiError(400, "invalid_grant", "Unable to parse the ID Token.")
        if claims.get("exp", 0) < time.time():
            raise ApiError(400, "invalid_grant", "The ID Token has expired.")
        return {"access_token": self.issue(), "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer", "expires_in": 3600}

    def fault(self, project):
        for f in ("throttle429", "throttle", "garbage", "stuck", "terminated", "nodelete"):
            if f in project:
                if f == "throttle429":
                    raise ApiError(429, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries' of service 'compute.googleapis.com'.")
                if f == "throttle":
                    raise ApiError(403, "rateLimitExceeded", "Rate Limit Exceeded")
                return f
        return None

    # -- methods
    def dispatch(self, mid, pp, q, body, raw):
        S, b = self.state, base(self)
        cb = b + "compute/v1/"
        p, z = pp.get("project"), pp.get("zone")
        if mid == "sts.token":
            return self.sts(body)
        if mid == "iamcredentials.projects.serviceAccounts.generateAccessToken":
            return {"accessToken": self.issue(), "expireTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))}
        if mid == "compute.zones.get":
            return {"kind": "compute#zone", "name": z, "status": "UP", "id": "2231",
                    "selfLink": cb + "projects/%s/zones/%s" % (p, z)}
        if mid == "compute.machineTypes.list":
            return {"kind": "compute#machineTypeList", "id": "projects/%s/zones/%s/machineTypes" % (p, z),
                    "items": [self.mtype(cb, p, z, *m) for m in MACHINE_TYPES],
                    "selfLink": cb + "projects/%s/zones/%s/machineTypes" % (p, z)}
        if mid == "compute.machineTypes.get":
            for m in MACHINE_TYPES:
                if m[0] == pp["machineType"]:
                    return self.mtype(cb, p, z, *m)
            raise ApiError(404, "notFound", "The resource 'projects/%s/zones/%s/machineTypes/%s' was not found" % (p, z, pp["machineType"]))
        with S.lock:
            return self.dispatch_locked(mid, pp, q, body, raw, cb, b, p, z)

    def mtype(self, cb, p, z, name, cpus, mem):
        return {"kind": "compute#machineType", "name": name, "guestCpus": cpus, "memoryMb": mem,
                "zone": z, "id": str(abs(hash(name)) % 10**9), "maximumPersistentDisks": 128,
                "selfLink": cb + "projects/%s/zones/%s/machineTypes/%s" % (p, z, name)}

    def op(self, cb, p, z, kind, target_link, target_id, on_done=None, never=False):
        S = self.state
        name = "operation-%d-%s" % (int(time.time() * 1000), secrets.token_hex(4))
        scope = ("zones/" + z) if z else "global"
        o = {"kind": "compute#operation", "id": S.new_id(), "name": name, "operationType": kind,
             "targetLink": target_link, "targetId": target_id, "status": "RUNNING", "progress": 0,
             "insertTime": rfc3339(), "startTime": rfc3339(), "user": "fedprobe@fixture",
             "selfLink": cb + "projects/%s/%s/operations/%s" % (p, scope, name)}
        if z:
            o["zone"] = cb + "projects/%s/zones/%s" % (p, z)
        S.ops[(p, scope, name)] = {"op": o, "polls": 0, "on_done": on_done, "never": never}
        return dict(o)

    def progress(self):
        """Operations run on their own, as on GCE: whatever was started by an
        earlier request is DONE by the next one (except a *nodelete* delete)."""
        for rec in self.state.ops.values():
            o = rec["op"]
            if o["status"] == "DONE" or rec["never"]:
                continue
            o["status"], o["progress"], o["endTime"] = "DONE", 100, rfc3339()
            if rec["on_done"]:
                err = rec["on_done"]()
                if err:
                    o["error"] = {"errors": [err]}
                    o["httpErrorStatusCode"], o["httpErrorMessage"] = 400, "BAD REQUEST"

    def poll_op(self, p, scope, name):
        rec = self.state.ops.get((p, scope, name))
        if rec is None:
            raise ApiError(404, "notFound", "The resource 'projects/%s/%s/operations/%s' was not found" % (p, scope, name))
        rec["polls"] += 1
        return dict(rec["op"])

    def labels(self, body):
        for k, v in (body.get("labels") or {}).items():
            if not LABEL_RX.match(k) or not re.fullmatch(r"[a-z0-9_-]{0,63}", v):
                raise ApiError(400, "invalid", "Invalid value for field 'resource.labels': '%s'. Label keys and values must be lowercase" % k)

    def instance_view(self, p, z, rec):
        inst = rec["inst"]
        fault = self.fault(p)
        if inst["status"] in ("PROVISIONING", "STAGING") and fault != "stuck":
            rec["polls"] += 1
            if rec["polls"] > STEPS:
                inst["status"] = "STAGING"
            if rec["polls"] > 2 * STEPS:
                if fault == "terminated":
                    inst["status"] = "TERMINATED"
                    inst["statusMessage"] = "ZONE_RESOURCE_POOL_EXHAUSTED: The zone 'projects/%s/zones/%s' does not have enough resources available to fulfill the request." % (p, z)
                else:
                    inst["status"] = "RUNNING"
                    inst["lastStartTimestamp"] = rfc3339()
        return dict(inst)

    def dispatch_locked(self, mid, pp, q, body, raw, cb, b, p, z):
        S = self.state
        self.progress()
        zl = cb + "projects/%s/zones/%s" % (p, z)
        if mid == "compute.zoneOperations.get":
            return self.poll_op(p, "zones/" + z, pp["operation"])
        if mid == "compute.globalOperations.get":
            return self.poll_op(p, "global", pp["operation"])
        # instances
        if mid == "compute.instances.insert":
            name = body.get("name", "")
            if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
                raise ApiError(400, "invalid", "Invalid value for field 'resource.name': '%s'." % name)
            if (p, z, name) in S.instances:
                raise ApiError(409, "alreadyExists", "The resource 'projects/%s/zones/%s/instances/%s' already exists" % (p, z, name))
            self.labels(body)
            if not body.get("machineType") or not body.get("disks"):
                raise ApiError(400, "invalid", "Invalid value for field 'resource.machineType' or 'resource.disks'")
            inst = dict(body)
            inst.update({"kind": "compute#instance", "id": S.new_id(), "status": "PROVISIONING",
                         "creationTimestamp": rfc3339(), "zone": zl, "selfLink": zl + "/instances/" + name})
            inst["disks"] = [dict(d, kind="compute#attachedDisk", boot=True, index=0, deviceName="persistent-disk-0")
                             for d in body["disks"][:1]]
            S.instances[(p, z, name)] = {"inst": inst, "polls": 0}
            return self.op(cb, p, z, "insert", inst["selfLink"], inst["id"])
        if mid in ("compute.instances.get", "compute.instances.delete", "compute.instances.attachDisk", "compute.instances.detachDisk"):
            rec = S.instances.get((p, z, pp["instance"]))
            if rec is None:
                raise ApiError(404, "notFound", "The resource 'projects/%s/zones/%s/instances/%s' was not found" % (p, z, pp["instance"]))
            inst = rec["inst"]
            if mid == "compute.instances.get":
                return self.instance_view(p, z, rec)
            if mid == "compute.instances.delete":
                never = self.fault(p) == "nodelete"
                inst["status"] = "STOPPING"
                key = (p, z, pp["instance"])

                def gone():
                    S.instances.pop(key, None)
                    for d in inst.get("disks", [])[1:]:
                        dk = (p, z, d["source"].rsplit("/", 1)[-1])
                        if dk in S.disks:
                            S.disks[dk]["users"] = []
                return self.op(cb, p, z, "delete", inst["selfLink"], inst["id"], gone, never)
            if mid == "compute.instances.attachDisk":
                src = body.get("source", "")
                dname = src.rsplit("/", 1)[-1]
                disk = S.disks.get((p, z, dname))
                if disk is None:
                    raise ApiError(404, "notFound", "The resource '%s' was not found" % src)
                if disk.get("users"):
                    raise ApiError(400, "resourceInUseByAnotherResource", "The disk resource '%s' is already being used by '%s'" % (disk["selfLink"], disk["users"][0]))
                dev = body.get("deviceName") or dname
                disk["users"] = [inst["selfLink"]]
                inst["disks"].append({"kind": "compute#attachedDisk", "source": disk["selfLink"], "deviceName": dev,
                                      "index": len(inst["disks"]), "boot": False, "mode": body.get("mode", "READ_WRITE"),
                                      "type": "PERSISTENT"})
                return self.op(cb, p, z, "attachDisk", inst["selfLink"], inst["id"])
            dev = q["deviceName"][0]
            att = [d for d in inst["disks"] if d.get("deviceName") == dev and not d.get("boot")]
            if not att:
                raise ApiError(400, "invalid", "Invalid value for field 'deviceName': '%s'. No attached disk found with this device name." % dev)
            inst["disks"].remove(att[0])
            dk = (p, z, att[0]["source"].rsplit("/", 1)[-1])
            if dk in S.disks:
                S.disks[dk]["users"] = []
            return self.op(cb, p, z, "detachDisk", inst["selfLink"], inst["id"])
        if mid == "compute.instances.list":
            items = [self.instance_view(p, z, r) for (pp_, zz, _), r in sorted(S.instances.items()) if pp_ == p and zz == z]
            items = filter_items(items, q)
            out = {"kind": "compute#instanceList", "id": "projects/%s/zones/%s/instances" % (p, z), "selfLink": zl + "/instances"}
            if items:
                out["items"] = items
            return out
        # disks
        if mid == "compute.disks.insert":
            name = body.get("name", "")
            if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
                raise ApiError(400, "invalid", "Invalid value for field 'resource.name': '%s'." % name)
            if (p, z, name) in S.disks:
                raise ApiError(409, "alreadyExists", "The resource 'projects/%s/zones/%s/disks/%s' already exists" % (p, z, name))
            self.labels(body)
            d = dict(body)
            d.update({"kind": "compute#disk", "id": S.new_id(), "status": "CREATING", "zone": zl,
                      "creationTimestamp": rfc3339(), "selfLink": zl + "/disks/" + name,
                      "sizeGb": str(body.get("sizeGb") or "10"), "type": zl + "/diskTypes/pd-standard"})
            S.disks[(p, z, name)] = d

            def ready():
                d["status"] = "READY"
            return self.op(cb, p, z, "insert", d["selfLink"], d["id"], ready)
        if mid in ("compute.disks.get", "compute.disks.delete"):
            d = S.disks.get((p, z, pp["disk"]))
            if d is None:
                raise ApiError(404, "notFound", "The resource 'projects/%s/zones/%s/disks/%s' was not found" % (p, z, pp["disk"]))
            if mid == "compute.disks.get":
                return dict(d)
            if d.get("users"):
                raise ApiError(400, "resourceInUseByAnotherResource", "The disk resource '%s' is already being used by '%s'" % (d["selfLink"], d["users"][0]))
            d["status"] = "DELETING"
            key = (p, z, pp["disk"])
            return self.op(cb, p, z, "delete", d["selfLink"], d["id"], lambda: S.disks.pop(key, None) and None)
        if mid == "compute.disks.list":
            items = filter_items([dict(d) for (pp_, zz, _), d in sorted(S.disks.items()) if pp_ == p and zz == z], q)
            out = {"kind": "compute#diskList", "id": "projects/%s/zones/%s/disks" % (p, z), "selfLink": zl + "/disks"}
            if items:
                out["items"] = items
            return out
        # images
        gl = cb + "projects/%s/global/images/" % p
        if mid == "compute.images.insert":
            name = body.get("name", "")
            if (p, name) in S.images:
                raise ApiError(409, "alreadyExists", "The resource 'projects/%s/global/images/%s' already exists" % (p, name))
            self.labels(body)
            src = (body.get("rawDisk") or {}).get("source", "")
            m = re.match(r"^https://storage\.googleapis\.com/([^/]+)/(.+)$", src)
            if not m or (m.group(1), m.group(2)) not in S.objects:
                raise ApiError(400, "invalid", "Invalid value for field 'resource.rawDisk.source': '%s'. The source must be an existing Cloud Storage object" % src)
            data, meta = S.objects[(m.group(1), m.group(2))]
            img = dict(body)
            img.update({"kind": "compute#image", "id": S.new_id(), "status": "PENDING", "creationTimestamp": rfc3339(),
                        "selfLink": gl + name, "archiveSizeBytes": str(len(data)), "diskSizeGb": "10",
                        "sourceType": "RAW"})
            S.images[(p, name)] = img

            def ready():
                img["status"] = "READY"
            return self.op(cb, p, None, "insert", img["selfLink"], img["id"], ready)
        if mid in ("compute.images.get", "compute.images.delete"):
            img = S.images.get((p, pp["image"]))
            if img is None and mid == "compute.images.get" and pp["image"].startswith("debian"):
                return {"kind": "compute#image", "id": "640", "name": pp["image"], "status": "READY", "family": "debian-12",
                        "diskSizeGb": "10", "selfLink": gl + pp["image"], "creationTimestamp": rfc3339(0)}
            if img is None:
                raise ApiError(404, "notFound", "The resource 'projects/%s/global/images/%s' was not found" % (p, pp["image"]))
            if mid == "compute.images.get":
                return dict(img)
            img["status"] = "DELETING"
            key = (p, pp["image"])
            return self.op(cb, p, None, "delete", img["selfLink"], img["id"], lambda: S.images.pop(key, None) and None)
        if mid == "compute.images.list":
            items = filter_items([dict(i) for (pp_, _), i in sorted(S.images.items()) if pp_ == p], q)
            out = {"kind": "compute#imageList", "id": "projects/%s/global/images" % p, "selfLink": gl.rstrip("/")}
            if items:
                out["items"] = items
            return out
        # storage objects (staging of image archives)
        if mid == "storage.objects.insert":
            name = (q.get("name") or [""])[0]
            if q.get("uploadType") != ["media"] or not name:
                raise ApiError(400, "invalid", "Upload requests must include an uploadType URL parameter and a URL.")
            S.objects[(pp["bucket"], name)] = (raw, {})
            return self.object_view(b, pp["bucket"], name)
        if mid in ("storage.objects.get", "storage.objects.delete"):
            key = (pp["bucket"], pp["object"])
            if key not in S.objects:
                raise ApiError(404, "notFound", "No such object: %s/%s" % key)
            if mid == "storage.objects.delete":
                del S.objects[key]
                return None
            if q.get("alt") == ["media"]:
                return ("media", S.objects[key][0])
            return self.object_view(b, *key)
        raise ApiError(400, "invalid", "method %s is not served by this fixture" % mid)

    def object_view(self, b, bucket, name):
        data = self.state.objects[(bucket, name)][0]
        return {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(len(data)),
                "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
                "id": "%s/%s/1" % (bucket, name), "generation": "1", "timeCreated": rfc3339(),
                "selfLink": b + "storage/v1/b/%s/o/%s" % (bucket, urllib.parse.quote(name, safe=""))}


def filter_items(items, q):
    """The `filter` parameter's `labels.KEY:*` form (what the probe asks)."""
    f = (q.get("filter") or [""])[0].strip()
    if not f:
        return items
    m = re.fullmatch(r"labels\.([a-z0-9_-]+)\s*:\s*\*", f)
    if not m:
        raise ApiError(400, "invalid", "Invalid list filter expression '%s'." % f)
    return [i for i in items if m.group(1) in (i.get("labels") or {})]


def make_key(path, token_uri):
    """A service-account key file in Google's JSON layout, with a self-signed certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    import datetime
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "fedprobe@fedprobe-ci.iam.gserviceaccount.com"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, email)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650)).sign(k, hashes.SHA256()))
    key = {"type": "service_account", "project_id": "fedprobe-ci", "private_key_id": secrets.token_hex(20),
           "private_key": k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()).decode(),
           "client_email": email, "client_id": "1049", "token_uri": token_uri,
           "auth_uri": "https://accounts.google.com/o/oauth2/auth"}
    with open(path, "w") as f:
        json.dump(key, f)
    with open(path + ".crt", "w") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM).decode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", help="service-account key file whose signatures /token accepts")
    ap.add_argument("--make-key", metavar="PATH")
    ap.add_argument("--token-uri", default="http://127.0.0.1:15080/token")
    a = ap.parse_args()
    if a.make_key:
        make_key(a.make_key, a.token_uri)
        return
    with open(a.key) as f:
        key = json.load(f)
    with open(a.key + ".crt") as f:
        key["certificate"] = f.read()
    Handler.state = State(key)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print("listening 127.0.0.1:%d compute %s storage %s" % (srv.server_port, COMPUTE["revision"], STORAGE["revision"]), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Azure fixture: Entra ID token endpoint + ARM Microsoft.Compute (virtualMachines, disks,
images, vmSizes) + the blob data plane a disk's SAS URL points to. Stdlib only.

Routes, parameters, api-versions, long-running-operation flags and answer shapes come from
the REST API specification files in testdata/azure-spec/ (see its README.md): a request
the spec does not describe is answered 404/400 the way ARM answers; a body is checked
against the operation's schema (required properties, types, enums); every answer is checked
against the response schema before it is sent. 127.0.0.1 only.

    azure_fixture.py [--port N] [--tls-cert CHAIN --tls-key KEY] [--fault NAME]...
                     [--port-file F] [--pid-file F]

Faults (also POST /fedprobe-fixture/faults {"faults": [...]}; GET /fedprobe-fixture/state):
  vm-stuck          a VM stays provisioningState Creating
  vm-failed         a VM ends Failed, with ARM's AllocationFailed status and message
  delete-stuck      a VM's delete LRO never finishes (InProgress, VM stays Deleting)
  throttle:N        the next N ARM requests get 429 TooManyRequests with Retry-After: 1
  refuse-federated  the token endpoint refuses client assertions (AADSTS700213)
  refuse-secret     the token endpoint refuses client secrets (AADSTS7000215)
  garbage           GET of a VM answers a non-JSON body
"""
import argparse
import json
import os
import re
import ssl
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit, unquote

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_DIR = os.environ.get("AZURE_SPEC_DIR") or os.path.join(HERE, "..", "..", "testdata", "azure-spec")
SPEC_FILES = ["compute-2024-07-01.json", "disk-2024-03-02.json"]
TENANT = os.environ.get("AZURE_FIXTURE_TENANT", "fedprobe-tenant")
CLIENT_ID = os.environ.get("AZURE_FIXTURE_CLIENT_ID", "fedprobe-app")
CLIENT_SECRET = os.environ.get("AZURE_FIXTURE_CLIENT_SECRET", "fixture-secret")
LOCATION = "westeurope"
# The Linux images a probe can boot, as ARM ids (marketplace-like, seeded)
SEED_IMAGE = "egi-monitoring"
SIZES = [
    {"name": "Standard_B1s", "numberOfCores": 1, "osDiskSizeInMB": 1047552, "resourceDiskSizeInMB": 4096, "memoryInMB": 1024, "maxDataDiskCount": 2},
    {"name": "Standard_B2s", "numberOfCores": 2, "osDiskSizeInMB": 1047552, "resourceDiskSizeInMB": 8192, "memoryInMB": 4096, "maxDataDiskCount": 4},
    {"name": "Standard_D2s_v3", "numberOfCores": 2, "osDiskSizeInMB": 1047552, "resourceDiskSizeInMB": 16384, "memoryInMB": 8192, "maxDataDiskCount": 4},
]
RETRY_AFTER = os.environ.get("AZURE_FIXTURE_RETRY_AFTER", "1")  # what ARM says while an LRO runs
SETTLE = float(os.environ.get("AZURE_FIXTURE_SETTLE", "0.3"))  # seconds an LRO runs


def now_iso(t=None):
    return datetime.fromtimestamp(t or time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0+00:00")


# ------------------------------------------------------------------ the spec
class Spec:
    """The operations of the vendored spec files, as regexes over the path."""

    def __init__(self, files):
        self.ops = []  # (method, regex, names, op, doc)
        self.versions = {}
        for f in files:
            doc = json.load(open(os.path.join(SPEC_DIR, f)))
            version = doc["info"]["version"]
            for path, item in doc["paths"].items():
                names = re.findall(r"{(\w+)}", path)
                rx = "^" + re.sub(r"{\w+}", "([^/]+)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "$"
                for method, op in item.items():
                    self.ops.append((method.upper(), re.compile(rx, re.I), names, op, doc))
                    self.versions[op["operationId"]] = version

    def match(self, method, path):
        allowed = False
        for m, rx, names, op, doc in self.ops:
            g = rx.match(path)
            if g:
                allowed = True
                if m == method:
                    return op, doc, dict(zip(names, [unquote(x) for x in g.groups()]))
        return None, None, allowed


def resolve(doc, ref):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def schema_errors(doc, schema, value, where, request):
    """Check `value` against a swagger schema: types, required, enums, readOnly (requests)."""
    errs = []
    if "$ref" in schema:
        return schema_errors(doc, resolve(doc, schema["$ref"]), value, where, request)
    for part in schema.get("allOf", []):
        errs += schema_errors(doc, part, value, where, request)
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return errs + [f"{where}: expected an object"]
        for r in schema.get("required", []):
            if r not in value:
                errs.append(f"{where}: required property '{r}' missing")
        props = dict(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            props.update(resolve(doc, part["$ref"]).get("properties", {}) if "$ref" in part else part.get("properties", {}))
        for k, v in value.items():
            if k in props:
                p = props[k]
                p_res = resolve(doc, p["$ref"]) if "$ref" in p else p
                if request and (p.get("readOnly") or p_res.get("readOnly")) and k not in ("id", "name", "type"):
                    continue  # ARM ignores read-only properties in requests
                errs += schema_errors(doc, p, v, f"{where}.{k}", request)
            elif isinstance(schema.get("additionalProperties"), dict):
                errs += schema_errors(doc, schema["additionalProperties"], v, f"{where}.{k}", request)
    elif t == "array":
        if not isinstance(value, list):
            return errs + [f"{where}: expected an array"]
        for i, v in enumerate(value):
            errs += schema_errors(doc, schema.get("items", {}), v, f"{where}[{i}]", request)
    elif t == "string":
        if not isinstance(value, str):
            errs.append(f"{where}: expected a string")
        elif "enum" in schema and value not in schema["enum"] and not request:
            errs.append(f"{where}: {value!r} not in {schema['enum']}")
    elif t == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            errs.append(f"{where}: expected an integer")
    elif t == "boolean":
        if not isinstance(value, bool):
            errs.append(f"{where}: expected a boolean")
    return errs


# ------------------------------------------------------------------ state
class State:
    def __init__(self, faults):
        self.lock = threading.Lock()
        self.faults = set()
        self.throttle = 0
        self.set_faults(faults)
        self.tokens = {}  # access token -> (how, expiry)
        self.vms, self.disks, self.images, self.ops, self.blobs, self.sas = {}, {}, {}, {}, {}, {}
        self.requests = []  # (method, path, operationId)

    def set_faults(self, faults):
        self.faults = set()
        self.throttle = 0
        for f in faults:
            if f.startswith("throttle:"):
                self.throttle = int(f.split(":", 1)[1])
            else:
                self.faults.add(f)


def arm_error(code, message, status):
    return status, {"error": {"code": code, "message": message}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azure-fixture"

    def log_message(self, fmt, *a):
        sys.stderr.write("[azure-fixture] %s\n" % (fmt % a))

    # --- plumbing
    def body_bytes(self):
        return self._body

    def read_body(self):
        # Read whatever was sent before any answer: a body left unread on a
        # keep-alive connection would be taken for the next request line.
        n = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(n) if n else b""

    def send(self, status, body=None, headers=None, raw=None, ctype="application/json; charset=utf-8"):
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        if data or raw is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def base(self):
        scheme = "https" if self.server.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def do_GET(self):
        self.route("GET")

    def do_PUT(self):
        self.route("PUT")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def do_HEAD(self):
        self.route("HEAD")

    def route(self, method):
        self.read_body()
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        st = self.server.state
        try:
            if u.path.startswith("/fedprobe-fixture/"):
                return self.admin(method, u.path, q)
            if u.path.startswith(f"/{TENANT}/") or u.path.startswith("/common/"):
                return self.entra(method, u.path)
            if u.path.startswith("/blob/"):
                return self.blob(method, u.path, q)
            return self.arm(method, u.path, q)
        except Exception as e:  # a fixture bug must show, not hang the client
            self.log_message("error: %r", e)
            st.requests.append((method, u.path, f"fixture error {e!r}"))
            self.send(500, {"error": {"code": "FixtureError", "message": repr(e)}})

    # --- admin
    def admin(self, method, path, q):
        st = self.server.state
        if path == "/fedprobe-fixture/faults" and method == "POST":
            with st.lock:
                st.set_faults(json.loads(self.body_bytes() or b"{}").get("faults", []))
            return self.send(200, {"faults": sorted(st.faults), "throttle": st.throttle})
        if path == "/fedprobe-fixture/state" and method == "GET":
            with st.lock:
                return self.send(200, {
                    "vms": {"/".join(k): v["properties"]["provisioningState"] for k, v in st.vms.items()},
                    "disks": {"/".join(k): v["properties"]["diskState"] for k, v in st.disks.items()},
                    "images": sorted("/".join(k) for k in st.images), "requests": st.requests[-400:],
                })
        return self.send(404, {"error": {"code": "NotFound", "message": path}})

    # --- Entra ID (v2.0 endpoints)
    def entra(self, method, path):
        st = self.server.state
        tenant = path.split("/")[1]
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            b = self.base()
            return self.send(200, {
                "token_endpoint": f"{b}/{tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{b}/{tenant}/oauth2/v2.0/authorize",
                "issuer": f"{b}/{tenant}/v2.0", "jwks_uri": f"{b}/{tenant}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "tenant_region_scope": "EU",
            })
        if not path.endswith("/oauth2/v2.0/token") or method != "POST":
            return self.send(404, {"error": "not_found", "error_description": path})
        form = {k: v[-1] for k, v in parse_qs(self.body_bytes().decode()).items()}

        def aad(status, error, code, desc):
            return self.send(status, {
                "error": error, "error_description": f"AADSTS{code}: {desc} Trace ID: {uuid.uuid4()} "
                f"Correlation ID: {uuid.uuid4()} Timestamp: {now_iso()}",
                "error_codes": [code], "timestamp": now_iso(), "trace_id": str(uuid.uuid4()),
                "correlation_id": str(uuid.uuid4()), "error_uri": f"{self.base()}/error?code={code}"})
        if tenant != TENANT:
            return aad(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return aad(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if form.get("client_id") != CLIENT_ID:
            return aad(400, "unauthorized_client", 700016,
                       f"Application with identifier '{form.get('client_id')}' was not found in the directory '{tenant}'.")
        if not form.get("scope", "").endswith("/.default"):
            return aad(400, "invalid_scope", 1002012, "The provided value for scope is not valid.")
        if "client_assertion" in form:
            if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                return aad(400, "invalid_request", 90014, "The required field 'client_assertion_type' is missing.")
            if "refuse-federated" in st.faults:
                return aad(400, "invalid_client", 700213,
                           "No matching federated identity record found for presented assertion subject. "
                           "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.")
            if form["client_assertion"].count(".") != 2:
                return aad(400, "invalid_client", 50027, "JWT token is invalid or malformed.")
            how = "federated"
        elif "client_secret" in form:
            if "refuse-secret" in st.faults or form["client_secret"] != CLIENT_SECRET:
                return aad(401, "invalid_client", 7000215,
                           "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
                           "not the client secret ID, for a secret added to app '" + CLIENT_ID + "'.")
            how = "secret"
        else:
            return aad(400, "invalid_client", 7000218,
                       "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
        tok = "eyJ0eXAiOiJKV1QifQ." + uuid.uuid4().hex + "." + uuid.uuid4().hex
        with st.lock:
            st.tokens[tok] = (how, time.time() + 3599)
        return self.send(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})

    # --- blob data plane (the SAS URL of a disk)
    def blob(self, method, path, q):
        st = self.server.state
        disk = path.split("/", 2)[2]
        access = st.sas.get(q.get("sig", ""))
        if not access or access[0] != disk:
            return self.send(403, raw=b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code>"
                             b"<Message>Server failed to authenticate the request.</Message></Error>", ctype="application/xml")
        if method == "PUT" and q.get("comp") == "page":
            if access[1] != "Write":
                return self.send(403, raw=b"<Error><Code>AuthorizationPermissionMismatch</Code></Error>", ctype="application/xml")
            rng = self.headers.get("x-ms-range") or self.headers.get("Range") or ""
            m = re.match(r"bytes=(\d+)-(\d+)$", rng)
            data = self.body_bytes()
            if not m or self.headers.get("x-ms-page-write") != "update":
                return self.send(400, raw=b"<Error><Code>InvalidHeaderValue</Code></Error>", ctype="application/xml")
            a, b = int(m.group(1)), int(m.group(2))
            if a % 512 or (b + 1) % 512 or b - a + 1 != len(data) or len(data) > 4 * 1024 * 1024:
                return self.send(416, raw=b"<Error><Code>InvalidPageRange</Code></Error>", ctype="application/xml")
            with st.lock:
                buf = st.blobs.setdefault(disk, bytearray())
                if len(buf) < b + 1:
                    buf.extend(b"\0" * (b + 1 - len(buf)))
                buf[a:b + 1] = data
            return self.send(201, headers={"x-ms-request-server-encrypted": "true"})
        if method in ("GET", "HEAD"):
            data = bytes(st.blobs.get(disk, b""))
            return self.send(200, raw=data, ctype="application/octet-stream",
                             headers={"x-ms-blob-type": "PageBlob"})
        return self.send(405, raw=b"<Error><Code>UnsupportedHttpVerb</Code></Error>", ctype="application/xml")

    # --- ARM
    def arm(self, method, path, q):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else None
        if not tok:
            return self.send(401, {"error": {"code": "AuthenticationFailed", "message": "Authentication failed. The 'Authorization' header is missing."}},
                             headers={"WWW-Authenticate": f'Bearer authorization_uri="{self.base()}/{TENANT}", error="invalid_token"'})
        if tok not in st.tokens or st.tokens[tok][1] < time.time():
            return self.send(401, {"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}})
        with st.lock:
            if st.throttle > 0:
                st.throttle -= 1
                st.requests.append((method, path, "throttled"))
                return self.send(429, {"error": {"code": "TooManyRequests", "message":
                                 "The request is being throttled as the limit has been reached for operation type - Read_30Min."}},
                                 headers={"Retry-After": "1", "x-ms-ratelimit-remaining-resource": "Microsoft.Compute/HighCostGet3Min;0"})
        with st.lock:  # what is due happens whether or not its operation is polled
            due = [o for o in st.ops.values() if not o["fired"] and o["done_at"] is not None and time.time() >= o["done_at"]]
            for o in due:
                o["fired"] = True
                if o["on_done"]:
                    o["on_done"]()
        # operation status of an LRO
        m = re.match(r"^/subscriptions/[^/]+/providers/Microsoft\.Compute/locations/[^/]+/operations/([^/]+)$", path, re.I)
        if m and method == "GET":
            return self.op_status(m.group(1), q)
        op, doc, params = self.server.spec.match(method, path)
        if op is None:
            if params:
                return self.send(*arm_error("MethodNotAllowed", f"The requested resource does not support http method '{method}'.", 405))
            return self.send(*arm_error("InvalidResourceType", f"The resource type could not be found in the namespace 'Microsoft.Compute' ({path}).", 404))
        opid = op["operationId"]
        st.requests.append((method, path, opid))
        version = doc["info"]["version"]
        if q.get("api-version") != version:
            return self.send(*arm_error("NoRegisteredProviderFound" if "api-version" in q else "MissingApiVersionParameter",
                             f"The api-version '{q.get('api-version')}' is not served here for {opid}; this fixture serves {version}.", 400))
        body = None
        for p in op["parameters"]:
            p = resolve(doc, p["$ref"]) if "$ref" in p else p
            if p["in"] == "query" and p.get("required") and p["name"] not in q:
                return self.send(*arm_error("InvalidParameter", f"Required query parameter '{p['name']}' missing.", 400))
            if p["in"] == "query" and p["name"] in q and "enum" in p and q[p["name"]] not in p["enum"]:
                return self.send(*arm_error("InvalidParameter", f"The value of parameter {p['name']} is invalid.", 400))
            if p["in"] == "body":
                raw = self.body_bytes()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    return self.send(*arm_error("InvalidRequestContent", "The request content was invalid and could not be deserialized.", 400))
                if body is None and p.get("required"):
                    return self.send(*arm_error("InvalidRequestContent", "The request content is missing.", 400))
                errs = schema_errors(doc, p["schema"], body, p["name"], True) if body is not None else []
                if errs:
                    return self.send(*arm_error("InvalidRequestContent", "; ".join(errs[:5]), 400))
        sub, rg = params.get("subscriptionId"), params.get("resourceGroupName")
        handler = getattr(self, "op_" + opid)
        status, answer, headers = handler(params, q, body, sub, rg)
        # Every answer is checked against the spec before it goes out.
        if 200 <= status < 300 and answer is not None and not isinstance(answer, bytes):
            schema = op["responses"].get(str(status), {}).get("schema")
            if schema is None:
                raise AssertionError(f"{opid}: status {status} with a body the spec does not describe")
            errs = schema_errors(doc, schema, answer, "response", False)
            if errs:
                raise AssertionError(f"{opid}: answer breaks the spec: {errs[:3]}")
        elif 200 <= status < 300 and str(status) not in op["responses"]:
            raise AssertionError(f"{opid}: status {status} not in the spec")
        if isinstance(answer, bytes):
            return self.send(status, raw=answer, headers=headers, ctype="text/html")
        return self.send(status, answer, headers)

    # LRO bookkeeping
    def start_op(self, version, done_at, on_done=None, result=None, via=None):
        st = self.server.state
        oid = str(uuid.uuid4())
        st.ops[oid] = {"start": time.time(), "done_at": done_at, "on_done": on_done, "result": result, "fired": False}
        url = f"{self.base()}/subscriptions/sub/providers/Microsoft.Compute/locations/{LOCATION}/operations/{oid}?api-version={version}"
        h = {"Azure-AsyncOperation": url, "Retry-After": RETRY_AFTER}
        if via == "location":
            h = {"Location": url + "&monitor=true", "Retry-After": RETRY_AFTER}
        return oid, h

    def op_status(self, oid, q):
        st = self.server.state
        o = st.ops.get(oid)
        if not o:
            return self.send(*arm_error("OperationNotFound", f"Operation {oid} not found.", 404))
        done = o["done_at"] is not None and time.time() >= o["done_at"]
        if done and not o["fired"]:
            o["fired"] = True
            if o["on_done"]:
                o["on_done"]()
        status = "Succeeded" if done else "InProgress"
        if done and isinstance(o["result"], dict) and "error" in o["result"]:
            status = "Failed"
        if "monitor" in q:  # Location polling: 202 until done, then the result
            if not done:
                return self.send(202, headers={"Location": self.base() + self.path, "Retry-After": RETRY_AFTER})
            return self.send(200, o["result"] if isinstance(o["result"], dict) and "error" not in (o["result"] or {}) else None)
        ans = {"name": oid, "status": status, "startTime": now_iso(o["start"])}
        if not done:
            return self.send(200, ans, headers={"Retry-After": RETRY_AFTER})
        if done:
            ans["endTime"] = now_iso(o["done_at"])
            if status == "Failed":
                ans["error"] = o["result"]["error"]
        return self.send(200, ans)

    def rid(self, sub, rg, kind, name):
        return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}"

    # --- virtual machines
    def vm_view(self, vm, expand):
        v = json.loads(json.dumps(vm))
        ps = v["properties"]["provisioningState"]
        if expand == "instanceView":
            statuses = [{"code": f"ProvisioningState/{ps.lower()}", "level": "Info", "displayStatus": f"Provisioning {ps.lower()}",
                         "time": v["properties"]["timeCreated"]}]
            if ps == "Succeeded":
                statuses.append({"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"})
            if ps == "Failed":
                statuses = [{"code": "ProvisioningState/failed/AllocationFailed", "level": "Error", "displayStatus": "Provisioning failed",
                             "message": "Allocation failed. We do not have sufficient capacity for the requested VM size in this region.",
                             "time": now_iso()}]
            v["properties"]["instanceView"] = {"statuses": statuses}
        return v

    def op_VirtualMachines_List(self, p, q, body, sub, rg):
        vms = [self.vm_view(v, q.get("$expand")) for k, v in sorted(self.server.state.vms.items()) if k[0] == rg]
        return 200, {"value": vms}, {}

    def op_VirtualMachines_Get(self, p, q, body, sub, rg):
        st = self.server.state
        vm = st.vms.get((rg, p["vmName"]))
        if not vm:
            return arm_error("ResourceNotFound", f"The Resource 'Microsoft.Compute/virtualMachines/{p['vmName']}' under resource group '{rg}' was not found.", 404) + ({},)
        if "garbage" in st.faults:
            return 200, b"<html><body>upstream gateway garbage \x00\x01</body></html>", {}
        return 200, self.vm_view(vm, q.get("$expand")), {}

    def op_VirtualMachines_CreateOrUpdate(self, p, q, body, sub, rg):
        st = self.server.state
        name = p["vmName"]
        props = body.get("properties") or {}
        size = (props.get("hardwareProfile") or {}).get("vmSize")
        if size not in [s["name"] for s in SIZES]:
            return arm_error("InvalidParameter", f"The value {size} provided for the VM size is not valid.", 400) + ({},)
        ref = ((props.get("storageProfile") or {}).get("imageReference") or {}).get("id", "")
        img = ref.rsplit("/", 1)[-1]
        if not ref or (img != SEED_IMAGE and (rg, img) not in st.images):
            return arm_error("InvalidParameter", f"The Image '{ref}' cannot be found in '{LOCATION}' region.", 400) + ({},)
        if body.get("location") != LOCATION:
            return arm_error("LocationNotAvailableForResourceType", f"The provided location '{body.get('location')}' is not available.", 400) + ({},)
        existing = (rg, name) in st.vms
        vm = {"id": self.rid(sub, rg, "virtualMachines", name), "name": name, "type": "Microsoft.Compute/virtualMachines",
              "location": LOCATION, "tags": body.get("tags") or {},
              "properties": dict(props, provisioningState="Creating", vmId=str(uuid.uuid4()), timeCreated=now_iso())}
        vm["properties"]["storageProfile"] = dict(vm["properties"].get("storageProfile") or {}, dataDisks=[])
        st.vms[(rg, name)] = vm

        def finish():
            if "vm-failed" in st.faults:
                vm["properties"]["provisioningState"] = "Failed"
            else:
                vm["properties"]["provisioningState"] = "Succeeded"
        stuck = "vm-stuck" in st.faults
        failed = {"error": {"code": "AllocationFailed", "message": "Allocation failed. We do not have sufficient capacity for the requested VM size in this region."}}
        _, h = self.start_op("2024-07-01", None if stuck else time.time() + SETTLE, finish,
                             failed if "vm-failed" in st.faults else None)
        return (200 if existing else 201), vm, h

    def op_VirtualMachines_Delete(self, p, q, body, sub, rg):
        st = self.server.state
        key = (rg, p["vmName"])
        vm = st.vms.get(key)
        if not vm:
            return 204, None, {}
        vm["properties"]["provisioningState"] = "Deleting"
        stuck = "delete-stuck" in st.faults

        def gone():
            st.vms.pop(key, None)
            for d in st.disks.values():
                if d.get("managedBy") == vm["id"]:
                    d.pop("managedBy", None)
                    d["properties"]["diskState"] = "Unattached"
        _, h = self.start_op("2024-07-01", None if stuck else time.time() + SETTLE, gone)
        return 202, None, h

    def op_VirtualMachines_AttachDetachDataDisks(self, p, q, body, sub, rg):
        st = self.server.state
        vm = st.vms.get((rg, p["vmName"]))
        if not vm:
            return arm_error("ResourceNotFound", f"VM {p['vmName']} not found.", 404) + ({},)
        data = vm["properties"]["storageProfile"].setdefault("dataDisks", [])
        for a in body.get("dataDisksToAttach") or []:
            dname = a["diskId"].rsplit("/", 1)[-1]
            d = st.disks.get((rg, dname))
            if not d:
                return arm_error("NotFound", f"Disk {a['diskId']} not found.", 404) + ({},)
            if d.get("managedBy"):
                return arm_error("OperationNotAllowed", f"Disk {dname} is attached to {d['managedBy']}.", 409) + ({},)
            lun = a.get("lun", len(data))
            data.append({"lun": lun, "name": dname, "createOption": "Attach", "managedDisk": {"id": d["id"]}})
            d["managedBy"] = vm["id"]
            d["properties"]["diskState"] = "Attached"
        for x in body.get("dataDisksToDetach") or []:
            dname = x["diskId"].rsplit("/", 1)[-1]
            data[:] = [e for e in data if e["name"] != dname]
            d = st.disks.get((rg, dname))
            if d:
                d.pop("managedBy", None)
                d["properties"]["diskState"] = "Unattached"
        _, h = self.start_op("2024-07-01", time.time() + SETTLE, None, {"dataDisks": data}, via="location")
        return 202, None, h

    def op_VirtualMachineSizes_List(self, p, q, body, sub, rg):
        if p["location"] != LOCATION:
            return 200, {"value": []}, {}
        return 200, {"value": SIZES}, {}

    # --- images
    def image_doc(self, sub, rg, name):
        if name == SEED_IMAGE:
            return {"id": self.rid(sub, rg, "images", name), "name": name, "type": "Microsoft.Compute/images", "location": LOCATION,
                    "tags": {"eu.egi.cloud.image_ref": "registry.egi.eu/egi_vm_images/monitoring:1.0", "ad:appid": "1017"},
                    "properties": {"storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized", "diskSizeGB": 8}},
                                   "provisioningState": "Succeeded"}}
        return self.server.state.images.get((rg, name))

    def op_Images_ListByResourceGroup(self, p, q, body, sub, rg):
        mine = [v for k, v in sorted(self.server.state.images.items()) if k[0] == rg]
        return 200, {"value": [self.image_doc(sub, rg, SEED_IMAGE)] + mine}, {}

    def op_Images_Get(self, p, q, body, sub, rg):
        img = self.image_doc(sub, rg, p["imageName"])
        if not img:
            return arm_error("NotFound", f"The Resource 'Microsoft.Compute/images/{p['imageName']}' under resource group '{rg}' was not found.", 404) + ({},)
        return 200, img, {}

    def op_Images_CreateOrUpdate(self, p, q, body, sub, rg):
        st = self.server.state
        name = p["imageName"]
        osd = (((body.get("properties") or {}).get("storageProfile") or {}).get("osDisk") or {})
        src = (osd.get("managedDisk") or {}).get("id", "")
        d = st.disks.get((rg, src.rsplit("/", 1)[-1]))
        if not d:
            return arm_error("InvalidParameter", f"Source disk '{src}' not found.", 400) + ({},)
        img = {"id": self.rid(sub, rg, "images", name), "name": name, "type": "Microsoft.Compute/images", "location": body["location"],
               "tags": body.get("tags") or {},
               "properties": {"storageProfile": {"osDisk": dict(osd, diskSizeGB=d["properties"]["diskSizeGB"])}, "provisioningState": "Creating"}}
        st.images[(rg, name)] = img

        def done():
            img["properties"]["provisioningState"] = "Succeeded"
        _, h = self.start_op("2024-07-01", time.time() + SETTLE, done)
        return 201, img, h

    def op_Images_Delete(self, p, q, body, sub, rg):
        st = self.server.state
        key = (rg, p["imageName"])
        if key not in st.images:
            return 204, None, {}
        st.images[key]["properties"]["provisioningState"] = "Deleting"
        _, h = self.start_op("2024-07-01", time.time() + SETTLE, lambda: st.images.pop(key, None))
        return 202, None, h

    # --- disks
    def op_Disks_ListByResourceGroup(self, p, q, body, sub, rg):
        return 200, {"value": [v for k, v in sorted(self.server.state.disks.items()) if k[0] == rg]}, {}

    def op_Disks_Get(self, p, q, body, sub, rg):
        d = self.server.state.disks.get((rg, p["diskName"]))
        if not d:
            return arm_error("ResourceNotFound", f"The Resource 'Microsoft.Compute/disks/{p['diskName']}' under resource group '{rg}' was not found.", 404) + ({},)
        return 200, d, {}

    def op_Disks_CreateOrUpdate(self, p, q, body, sub, rg):
        st = self.server.state
        name = p["diskName"]
        props = body.get("properties") or {}
        cd = props.get("creationData") or {}
        opt = cd.get("createOption")
        if opt == "Upload":
            n = cd.get("uploadSizeBytes") or 0
            if n % 512:
                return arm_error("InvalidParameter", "uploadSizeBytes must be a multiple of 512.", 400) + ({},)
            size_gb = max(1, -(-n // (1 << 30)))
            state = "ReadyToUpload"
        elif opt == "Empty":
            if not props.get("diskSizeGB"):
                return arm_error("InvalidParameter", "diskSizeGB is required for an empty disk.", 400) + ({},)
            size_gb, n, state = props["diskSizeGB"], props["diskSizeGB"] << 30, "Unattached"
        else:
            return arm_error("InvalidParameter", f"createOption {opt} is not offered by this fixture.", 400) + ({},)
        d = {"id": self.rid(sub, rg, "disks", name), "name": name, "type": "Microsoft.Compute/disks", "location": body["location"],
             "tags": body.get("tags") or {}, "sku": body.get("sku") or {"name": "Standard_LRS"},
             "properties": {"timeCreated": now_iso(), "creationData": cd, "diskSizeGB": size_gb, "diskSizeBytes": n,
                            "provisioningState": "Updating", "diskState": state}}
        st.disks[(rg, name)] = d

        def done():
            d["properties"]["provisioningState"] = "Succeeded"
        _, h = self.start_op("2024-03-02", time.time() + SETTLE, done)
        return 202, None, h

    def op_Disks_Delete(self, p, q, body, sub, rg):
        st = self.server.state
        key = (rg, p["diskName"])
        d = st.disks.get(key)
        if not d:
            return 204, None, {}
        if d.get("managedBy"):
            return arm_error("OperationNotAllowed", f"Disk {p['diskName']} is attached to VM {d['managedBy']}.", 409) + ({},)

        def gone():
            st.disks.pop(key, None)
            st.blobs.pop(p["diskName"], None)
        _, h = self.start_op("2024-03-02", time.time() + SETTLE, gone)
        return 202, None, h

    def op_Disks_GrantAccess(self, p, q, body, sub, rg):
        st = self.server.state
        d = st.disks.get((rg, p["diskName"]))
        if not d:
            return arm_error("ResourceNotFound", f"Disk {p['diskName']} not found.", 404) + ({},)
        sig = uuid.uuid4().hex
        st.sas[sig] = (p["diskName"], body["access"])
        d["properties"]["diskState"] = "ActiveUpload" if body["access"] == "Write" else "ActiveSAS"
        sas = f"{self.base()}/blob/{p['diskName']}?sv=2018-03-28&sr=b&si={uuid.uuid4()}&sig={sig}"
        _, h = self.start_op("2024-03-02", time.time() + SETTLE, None, {"accessSAS": sas}, via="location")
        return 202, None, h

    def op_Disks_RevokeAccess(self, p, q, body, sub, rg):
        st = self.server.state
        d = st.disks.get((rg, p["diskName"]))
        if not d:
            return arm_error("ResourceNotFound", f"Disk {p['diskName']} not found.", 404) + ({},)
        for k in [k for k, v in st.sas.items() if v[0] == p["diskName"]]:
            del st.sas[k]
        d["properties"]["diskState"] = "Attached" if d.get("managedBy") else "Unattached"
        _, h = self.start_op("2024-03-02", time.time() + SETTLE, None, None, via="location")
        return 202, None, h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--port-file")
    ap.add_argument("--pid-file")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.spec = Spec(SPEC_FILES)
    srv.state = State(a.fault)
    srv.tls = bool(a.tls_cert)
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port = srv.server_address[1]
    if a.port_file:
        open(a.port_file, "w").write(f"{port}\n")
    if a.pid_file:
        open(a.pid_file, "w").write(f"{os.getpid()}\n")
    print(f"azure-fixture listening on 127.0.0.1:{port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Google's own clients against the GCE fixture: google-api-python-client (discovery from the
compute v1 / storage v1 documents it bundles, root URL pointed at the fixture) and google-auth
(service-account JWT grant, workload identity federation at STS with impersonation) make the
calls fedprobe's GCE backend makes. A fixture that drifts from what Google's clients send or
accept fails here.   usage: gce_client_check.py ROOT_URL KEY_FILE
"""
import importlib.metadata
import json
import os
import sys
import tempfile
import time
import base64

import googleapiclient
from googleapiclient import discovery, http as ghttp
from googleapiclient.errors import HttpError
from google.oauth2 import service_account
from google.auth import identity_pool
import google.auth.transport.requests

ROOT, KEY = sys.argv[1].rstrip("/") + "/", sys.argv[2]
SCOPE = ["https://www.googleapis.com/auth/cloud-platform"]
P, Z = "fedprobe-ci", "europe-west1-b"
checks = 0


def ok(cond, what):
    global checks
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    checks += 1


def wait_op(c, op):
    for _ in range(50):
        if op["status"] == "DONE":
            ok("error" not in op, "operation %s has no error" % op["name"])
            return op
        if "zone" in op:
            op = c.zoneOperations().get(project=P, zone=Z, operation=op["name"]).execute()
        else:
            op = c.globalOperations().get(project=P, operation=op["name"]).execute()
    ok(False, "operation finished")


def build(name, creds):
    # the document google-api-python-client bundles, with its rootUrl pointed at the fixture
    # (client_options' api_endpoint would keep https for media uploads)
    docs = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents")
    with open(os.path.join(docs, "%s.v1.json" % name)) as f:
        doc = json.load(f)
    doc["rootUrl"] = ROOT
    doc["baseUrl"] = ROOT + doc["servicePath"]
    return discovery.build_from_document(doc, credentials=creds)


def run(creds, run_id):
    c = build("compute", creds)
    ok(c._rootDesc["revision"] == json.load(open(os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache/documents/compute.v1.json")))["revision"], "bundled compute document in use")
    ok(c.zones().get(project=P, zone=Z).execute()["status"] == "UP", "zone UP")
    mts = c.machineTypes().list(project=P, zone=Z).execute()["items"]
    ok(any(m["name"] == "e2-micro" for m in mts), "machine types listed")
    img = c.images().get(project=P, image="debian-12").execute()
    name = "fedprobe-" + run_id
    labels = {"fedprobe-run": run_id, "argo-mon-host": "ci_host"}
    body = {"name": name, "machineType": "zones/%s/machineTypes/e2-micro" % Z, "labels": labels,
            "metadata": {"items": [{"key": "argo-mon-host", "value": "ci.host.example"}]},
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": img["selfLink"]}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}
    wait_op(c, c.instances().insert(project=P, zone=Z, body=body).execute())
    for _ in range(20):
        inst = c.instances().get(project=P, zone=Z, instance=name).execute()
        if inst["status"] == "RUNNING":
            break
    ok(inst["status"] == "RUNNING", "instance RUNNING")
    listed = c.instances().list(project=P, zone=Z, filter="labels.fedprobe-run:*").execute()
    ok(any(i["name"] == name for i in listed.get("items", [])), "instance listed by label")
    d = name + "-vol"
    wait_op(c, c.disks().insert(project=P, zone=Z, body={"name": d, "sizeGb": "1", "labels": labels}).execute())
    ok(c.disks().get(project=P, zone=Z, disk=d).execute()["status"] == "READY", "disk READY")
    src = c.disks().get(project=P, zone=Z, disk=d).execute()["selfLink"]
    wait_op(c, c.instances().attachDisk(project=P, zone=Z, instance=name, body={"source": src, "deviceName": d}).execute())
    ok(c.disks().get(project=P, zone=Z, disk=d).execute().get("users"), "disk in use")
    wait_op(c, c.instances().detachDisk(project=P, zone=Z, instance=name, deviceName=d).execute())
    wait_op(c, c.disks().delete(project=P, zone=Z, disk=d).execute())
    wait_op(c, c.instances().delete(project=P, zone=Z, instance=name).execute())
    try:
        c.instances().get(project=P, zone=Z, instance=name).execute()
        ok(False, "instance gone")
    except HttpError as e:
        ok(e.resp.status == 404, "instance gone (404)")
    # image: stage the archive in Cloud Storage, insert from it, read back, delete
    s = build("storage", creds)
    data = os.urandom(4096)
    media = ghttp.MediaInMemoryUpload(data, mimetype="application/octet-stream", resumable=False)
    o = s.objects().insert(bucket="fedprobe-staging", name=name + ".tar.gz", media_body=media).execute()
    ok(o["size"] == "4096", "object stored")
    wait_op(c, c.images().insert(project=P, body={"name": name, "labels": labels, "rawDisk": {
        "source": "https://storage.googleapis.com/fedprobe-staging/%s.tar.gz" % name}}).execute())
    im = c.images().get(project=P, image=name).execute()
    ok(im["status"] == "READY" and im["archiveSizeBytes"] == "4096", "image READY")
    got = s.objects().get_media(bucket="fedprobe-staging", object=name + ".tar.gz").execute()
    ok(got == data, "archive read back")
    wait_op(c, c.images().delete(project=P, image=name).execute())
    s.objects().delete(bucket="fedprobe-staging", object=name + ".tar.gz").execute()
    # a throttled project answers Google's error shape
    try:
        c.instances().list(project="fedprobe-throttle", zone=Z).execute()
        ok(False, "throttled")
    except HttpError as e:
        ok(e.resp.status == 403 and e.error_details[0]["reason"] == "rateLimitExceeded", "rateLimitExceeded")


def main():
    with open(KEY) as f:
        info = json.load(f)
    info["token_uri"] = ROOT + "token"  # the key may name another port of the fixture
    sa = service_account.Credentials.from_service_account_info(info, scopes=SCOPE)
    run(sa, "py%d" % (time.time() % 100000))
    # the other direction: what the documents do not allow is refused, in Google's error shape
    s = google.auth.transport.requests.AuthorizedSession(sa)
    base = ROOT + "compute/v1/projects/%s/zones/%s/" % (P, Z)
    r = s.post(base + "disks", json={"name": "drift", "sizeGb": "1", "notAField": 1})
    ok(r.status_code == 400 and "notAField" in r.json()["error"]["message"], "unknown field refused")
    r = s.post(base + "disks", json={"name": "drift", "sizeGb": 1.5})
    ok(r.status_code == 400, "mistyped field refused")
    r = s.get(base + "instances", params={"maxResults": "x"})
    ok(r.status_code == 400, "mistyped parameter refused")
    r = s.get(base + "instances", params={"notAParam": "1"})
    ok(r.status_code == 400, "unknown parameter refused")
    r = s.post(base + "instances/x/detachDisk")
    ok(r.status_code == 400, "required parameter deviceName enforced")
    # workload identity federation: an OIDC token exchanged at STS, then impersonation
    b = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    tok = "%s.%s.sig" % (b({"alg": "RS256"}), b({"iss": "https://op.example", "sub": "probe", "exp": int(time.time()) + 600}))
    with tempfile.NamedTemporaryFile("w", suffix=".jwt", delete=False) as f:
        f.write(tok)
    aud = "//iam.googleapis.com/projects/1049/locations/global/workloadIdentityPools/egi/providers/checkin"
    info = {"type": "external_account", "audience": aud, "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": ROOT + "v1/token", "credential_source": {"file": f.name},
            "service_account_impersonation_url": ROOT + "v1/projects/-/serviceAccounts/fedprobe@fedprobe-ci.iam.gserviceaccount.com:generateAccessToken"}
    fed = identity_pool.Credentials.from_info(info, scopes=SCOPE)
    fed.refresh(google.auth.transport.requests.Request())
    ok(fed.token.startswith("ya29."), "federated token")
    run(fed, "wif%d" % (time.time() % 100000))
    refused = identity_pool.Credentials.from_info(dict(info, audience=aud + "-refused"), scopes=SCOPE)
    try:
        refused.refresh(google.auth.transport.requests.Request())
        ok(False, "refused audience")
    except Exception as e:
        ok("invalid_grant" in str(e), "refused audience: %s" % str(e)[:80])
    os.unlink(f.name)
    print("gce client check: %d checks passed (google-api-python-client %s)" % (checks, importlib.metadata.version("google-api-python-client")))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""An OpenNebula oned stand-in for fedprobe's tests: the XML-RPC methods the
probe uses (one.vm.*, one.image.*, one.vmpool.*, one.user.*), answering
[success, value, error code] like oned 7.4 and documents whose element names
and order are checked, at every answer, against pyone's bindings (generated
by OpenNebula from its XSDs): a document pyone does not know fails loudly.

usage: one_fixture.py [--port N] [--fault NAME] [--session-file F] [--unchecked]
prints "PORT n" once listening on 127.0.0.1. Faults: pending (VMs never
leave PENDING), failed (boot fails with an ERROR message), stuck-delete
(terminate never completes), auth (every call refused as oned refuses a bad
session), garbage (one.vm.info answers non-XML), throttle (one.vm.allocate
answers HTTP 429 as a fronting proxy would), template-gone (oned lists no VM
template: what cloud-info-provider published earlier is gone).
"""
import argparse
import hashlib
import inspect
import re
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from http.server import ThreadingHTTPServer
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCDispatcher
from xml.sax.saxutils import escape

try:
    import pyone.bindings as bindings
    import pyone.bindings.supbind as supbind
except ImportError:  # only --unchecked runs without pyone (main says so)
    bindings = supbind = None

AUTHENTICATION, NO_EXISTS, ACTION, RPC_API = 0x100, 0x400, 0x800, 0x1000
BOOT_SECS = 0.3
LOCK = threading.Lock()
VMS, IMAGES, TEMPLATES = {}, {}, {}
# the user's groups (primary first): "ops" is the VO's group, as a site maps a VO
GROUPS = {0: "oneadmin", 100: "ops"}
NEXT = {"vm": 0, "image": 100}
ARGS = None


# ---- documents, checked against pyone's XSD-generated bindings
def check_doc(xml):
    """Parse with pyone's bindings; every element (outside the free-form
    TEMPLATE/USER_TEMPLATE) must be one the binding class knows, in its order.
    --unchecked (fedprobe demo, python3 without pyone) answers unchecked."""
    if ARGS.unchecked:
        return xml
    obj = bindings.parseString(xml.encode())
    walk(ET.fromstring(xml), obj, ET.fromstring(xml).tag)
    return xml


def walk(elem, obj, path):
    params = [p for p in inspect.signature(type(obj).__init__).parameters
              if p not in ("self", "gds_collector_", "kwargs_")]
    last, seen = -1, {}
    for c in elem:
        if c.tag not in params:
            raise AssertionError(f"{path}/{c.tag}: not in pyone's {type(obj).__name__}")
        i = params.index(c.tag)
        if i < last:
            raise AssertionError(f"{path}/{c.tag}: out of the XSD's order")
        last = i
        val = getattr(obj, c.tag)
        if isinstance(val, list):
            val = val[seen.get(c.tag, 0)] if seen.get(c.tag, 0) < len(val) else None
        seen[c.tag] = seen.get(c.tag, 0) + 1
        if isinstance(val, supbind.GeneratedsSuper):
            walk(c, val, f"{path}/{c.tag}")


def el(tag, value):
    return f"<{tag}>{escape(str(value))}</{tag}>"


def tmpl(tag, attrs):
    out = []
    for k, v in attrs.items():
        if isinstance(v, dict):
            out.append(tmpl(k, v))
        elif isinstance(v, list):
            out.extend(tmpl(k, x) for x in v)
        else:
            out.append(f"<{k}><![CDATA[{v}]]></{k}>")
    return f"<{tag}>{''.join(out)}</{tag}>"


PERMS = "<PERMISSIONS>" + "".join(el(p, 1 if p.startswith("OWNER") and p != "OWNER_A" else 0) for p in (
    "OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A", "OTHER_U", "OTHER_M", "OTHER_A")) + "</PERMISSIONS>"
OWNER = el("UID", 0) + el("GID", 0) + el("UNAME", "oneadmin") + el("GNAME", "oneadmin")


def vm_xml(vm):
    return ("<VM>" + el("ID", vm["id"]) + OWNER + el("NAME", vm["name"]) + PERMS + el("LAST_POLL", 0)
            + el("STATE", vm["state"]) + el("LCM_STATE", vm["lcm"]) + el("PREV_STATE", vm["state"])
            + el("PREV_LCM_STATE", vm["lcm"]) + el("RESCHED", 0) + el("STIME", vm["stime"])
            + el("ETIME", vm["etime"]) + el("DEPLOY_ID", "") + "<MONITORING/><SCHED_ACTIONS/>"
            + tmpl("TEMPLATE", vm["template"]) + tmpl("USER_TEMPLATE", vm["user"])
            + "<HISTORY_RECORDS/></VM>")


def pool_vm_xml(vm):
    """vm_pool.xsd's shorter VM: no PERMISSIONS, a TEMPLATE of sizes and disks."""
    t = vm["template"]
    short = {"CPU": t["CPU"], "MEMORY": t["MEMORY"], "VCPU": t["VCPU"], "DISK": t["DISK"]}
    return ("<VM>" + el("ID", vm["id"]) + OWNER + el("NAME", vm["name"]) + el("LAST_POLL", 0)
            + el("STATE", vm["state"]) + el("LCM_STATE", vm["lcm"]) + el("RESCHED", 0) + el("STIME", vm["stime"])
            + el("ETIME", vm["etime"]) + el("DEPLOY_ID", "") + tmpl("TEMPLATE", short) + "<MONITORING/>"
            + tmpl("USER_TEMPLATE", vm["user"]) + "<HISTORY_RECORDS/></VM>")


def image_xml(img):
    vms = "<VMS>" + "".join(el("ID", v) for v in img["vms"]) + "</VMS>"
    return ("<IMAGE>" + el("ID", img["id"]) + OWNER + el("NAME", img["name"]) + PERMS
            + el("TYPE", img["type"]) + el("DISK_TYPE", 0) + el("PERSISTENT", img["persistent"])
            + el("REGTIME", img["regtime"]) + el("MODTIME", img["regtime"]) + el("SOURCE", img["source"])
            + el("PATH", img["path"]) + el("FORMAT", "raw") + el("FS", "") + el("SIZE", img["size"])
            + el("STATE", img["state"]) + el("PREV_STATE", img["state"]) + el("RUNNING_VMS", len(img["vms"]))
            + el("CLONING_OPS", 0) + el("CLONING_ID", -1) + el("TARGET_SNAPSHOT", -1)
            + el("DATASTORE_ID", img["ds"]) + el("DATASTORE", "default") + vms
            + "<CLONES/><APP_CLONES/>" + tmpl("TEMPLATE", img["template"]) + "<SNAPSHOTS><ALLOW_ORPHANS>NO</ALLOW_ORPHANS><CURRENT_BASE>-1</CURRENT_BASE><NEXT_SNAPSHOT>0</NEXT_SNAPSHOT></SNAPSHOTS></IMAGE>")


def history_xml(vm):
    h = (el("OID", vm["id"]) + el("SEQ", 0) + el("HOSTNAME", "dummy-host-1") + el("HID", 0) + el("CID", 0)
         + el("STIME", vm["run_start"]) + el("ETIME", vm["etime"]) + el("VM_MAD", "dummy") + el("TM_MAD", "dummy")
         + el("DS_ID", 0) + el("PLAN_ID", -1) + el("ACTION_ID", -1) + el("PSTIME", vm["run_start"]) + el("PETIME", vm["run_start"])
         + el("RSTIME", vm["run_start"]) + el("RETIME", vm["etime"]) + el("ESTIME", 0) + el("EETIME", 0)
         + el("ACTION", 0) + el("UID", 0) + el("GID", 0) + el("REQUEST_ID", -1))
    return "<HISTORY>" + h + vm_xml(vm) + "</HISTORY>"


# ---- templates as oned parses them (KEY="V", KEY=[A="x", B="y"])
ATTR = re.compile(r'\s*([A-Za-z0-9_]+)\s*=\s*(\[[^\]]*\]|"[^"]*"|[^\n]*)')


def parse_template(text):
    out = {}
    for m in ATTR.finditer(text):
        k, v = m.group(1).upper(), m.group(2).strip()
        if v.startswith("["):
            v = {a.upper(): b for a, b in re.findall(r'([A-Za-z0-9_]+)\s*=\s*"([^"]*)"', v)}
            out.setdefault(k, []).append(v)
        else:
            out[k] = v.strip('"')
    return out


def ok(v):
    return [True, v, 0]


def err(code, method, msg):
    return [False, f"[{method}] {msg}", code]


# ---- the methods
def tick(vm):
    """Move a VM along its life as time passes (the scheduler and drivers)."""
    now = time.time()
    if vm["state"] == 1 and ARGS.fault != "pending" and now - vm["stime"] >= BOOT_SECS:
        if ARGS.fault == "failed":
            vm["state"], vm["lcm"] = 3, 36
            vm["user"]["ERROR"] = {"MESSAGE": "Error executing image transfer script: dummy host out of disk", "TIMESTAMP": time.ctime()}
        else:
            vm["state"], vm["lcm"], vm["run_start"] = 3, 3, int(now)
    if vm.get("dying") and now - vm["dying"] >= BOOT_SECS and ARGS.fault != "stuck-delete":
        vm["state"], vm["lcm"], vm["etime"] = 6, 0, int(now)
        for img in IMAGES.values():
            if vm["id"] in img["vms"]:
                img["vms"].remove(vm["id"])
                img["state"] = 1
    if vm["lcm"] == 17 and now - vm.get("hotplug", 0) >= BOOT_SECS:
        vm["lcm"] = 3


def vm_allocate(template, hold=False):
    t = parse_template(template)
    with LOCK:
        i = NEXT["vm"]
        NEXT["vm"] += 1
        disks = t.get("DISK", [])
        for n, d in enumerate(disks):
            d["DISK_ID"] = str(n)
        user = {k: v for k, v in t.items() if k not in ("NAME", "CPU", "VCPU", "MEMORY", "DISK", "NIC")}
        VMS[i] = {"id": i, "name": t.get("NAME", f"one-{i}"), "state": 2 if hold else 1, "lcm": 0,
                  "stime": int(time.time()), "etime": 0, "run_start": 0,
                  "template": {"CPU": t.get("CPU", "1"), "VCPU": t.get("VCPU", "1"),
                               "MEMORY": t.get("MEMORY", "128"), "DISK": disks, "VMID": str(i)},
                  "user": user}
    return ok(i)


def vm_info(i, decrypt=False):
    with LOCK:
        vm = VMS.get(i)
        if vm is None:
            return err(NO_EXISTS, "one.vm.info", f"Error getting virtual machine [{i}].")
        tick(vm)
        return ok(check_doc(vm_xml(vm)))


def vm_action(action, i):
    with LOCK:
        vm = VMS.get(i)
        if vm is None:
            return err(NO_EXISTS, "one.vm.action", f"Error getting virtual machine [{i}].")
        if vm["state"] == 6:
            return err(ACTION, "one.vm.action", f'Wrong state to perform action "{action}".')
        if action not in ("terminate-hard", "terminate"):
            return err(RPC_API, "one.vm.action", f"Virtual machine action \"{action}\" is not supported")
        vm["dying"] = time.time()
        if vm["state"] == 3:
            vm["lcm"] = 23 if ARGS.fault == "stuck-delete" else 12
        return ok(i)


def vmpool_info(flt, start, end, state=-1, *rest):
    with LOCK:
        for vm in VMS.values():
            tick(vm)
        docs = [pool_vm_xml(v) for v in VMS.values() if state == -2 or (state == -1 and v["state"] != 6) or v["state"] == state]
        return ok(check_doc("<VM_POOL>" + "".join(docs) + "</VM_POOL>"))


def vmpool_accounting(flt, start, end):
    with LOCK:
        for vm in VMS.values():
            tick(vm)
        hs = [history_xml(v) for v in VMS.values() if v["run_start"]
              and (start < 0 or (v["etime"] or time.time()) >= start) and (end < 0 or v["run_start"] <= end)]
        return ok(check_doc("<HISTORY_RECORDS>" + "".join(hs) + "</HISTORY_RECORDS>"))


def vm_attach(i, template):
    t = parse_template(template)
    with LOCK:
        vm = VMS.get(i)
        if vm is None:
            return err(NO_EXISTS, "one.vm.attach", f"Error getting virtual machine [{i}].")
        if vm["state"] != 3 or vm["lcm"] != 3:
            return err(ACTION, "one.vm.attach", "Wrong state to perform action \"disk-attach\".")
        d = t["DISK"][0]
        img = IMAGES.get(int(d.get("IMAGE_ID", -1)))
        if img is None:
            return err(NO_EXISTS, "one.vm.attach", "Error getting image.")
        if img["vms"] and img["persistent"]:
            return err(ACTION, "one.vm.attach", "Cannot acquire image, it is already used")
        ids = [int(x["DISK_ID"]) for x in vm["template"]["DISK"]]
        d["DISK_ID"] = str(max(ids, default=-1) + 1)
        vm["template"]["DISK"].append(d)
        vm["lcm"], vm["hotplug"] = 17, time.time()
        img["vms"].append(i)
        img["state"] = 8 if img["persistent"] else 2
        return ok(i)


def vm_detach(i, disk_id):
    with LOCK:
        vm = VMS.get(i)
        if vm is None:
            return err(NO_EXISTS, "one.vm.detach", f"Error getting virtual machine [{i}].")
        disks = vm["template"]["DISK"]
        d = next((x for x in disks if x["DISK_ID"] == str(disk_id)), None)
        if d is None:
            return err(ACTION, "one.vm.detach", f"VM {i} has no disk {disk_id}")
        disks.remove(d)
        vm["lcm"], vm["hotplug"] = 17, time.time()
        img = IMAGES.get(int(d.get("IMAGE_ID", -1)))
        if img and i in img["vms"]:
            img["vms"].remove(i)
            img["state"] = 1 if not img["vms"] else img["state"]
        return ok(i)


def fetch(img):
    """The datastore driver: copy PATH, then READY (or ERROR)."""
    try:
        with urllib.request.urlopen(img["path"], timeout=30) as r:
            h, n = hashlib.md5(), 0
            while chunk := r.read(1 << 16):
                h.update(chunk)
                n += len(chunk)
        with LOCK:
            img.update(state=1, size=max(1, -(-n // (1 << 20))), source=f"/var/lib/one/datastores/1/{h.hexdigest()}")
            img["template"]["MD5"] = h.hexdigest()
    except Exception as e:  # the driver's failure becomes the image's ERROR
        with LOCK:
            img["state"] = 5
            img["template"]["ERROR"] = f"Error copying image in the datastore: {e}"


def image_allocate(template, ds, nocheck=False):
    t = parse_template(template)
    with LOCK:
        i = NEXT["image"]
        NEXT["image"] += 1
        typ = {"OS": 0, "CDROM": 1, "DATABLOCK": 2}.get(t.get("TYPE", "OS"), 0)
        known = ("NAME", "TYPE", "PATH", "SIZE", "PERSISTENT", "FORMAT")
        img = {"id": i, "name": t.get("NAME", f"img-{i}"), "type": typ, "persistent": int(t.get("PERSISTENT", "NO") == "YES"),
               "regtime": int(time.time()), "source": "", "path": t.get("PATH", ""), "size": int(t.get("SIZE", "0")),
               "state": 4, "vms": [], "ds": ds, "template": {k: v for k, v in t.items() if k not in known}}
        IMAGES[i] = img
    if img["path"].startswith("http://") or img["path"].startswith("https://"):
        threading.Thread(target=fetch, args=(img,), daemon=True).start()
    else:
        img["state"] = 1
    return ok(i)


def image_info(i, decrypt=False):
    with LOCK:
        img = IMAGES.get(i)
        if img is None:
            return err(NO_EXISTS, "one.image.info", f"Error getting image [{i}].")
        if img["state"] == 7:
            del IMAGES[i]
            return err(NO_EXISTS, "one.image.info", f"Error getting image [{i}].")
        return ok(check_doc(image_xml(img)))


def image_delete(i, force=False):
    with LOCK:
        img = IMAGES.get(i)
        if img is None:
            return err(NO_EXISTS, "one.image.delete", f"Error getting image [{i}].")
        if img["vms"]:
            return err(ACTION, "one.image.delete", "Cannot delete image, it is being used by VMs")
        img["state"] = 7
        return ok(i)


def imagepool_info(flt, start, end):
    with LOCK:
        return ok(check_doc("<IMAGE_POOL>" + "".join(image_xml(x) for x in IMAGES.values() if x["state"] != 7) + "</IMAGE_POOL>"))


def user_info(i, decrypt=False):
    groups = "".join(el("ID", g) for g in GROUPS)
    return ok(check_doc("<USER>" + el("ID", 0) + el("GID", 0) + "<GROUPS>" + groups + "</GROUPS>"
                        + el("GNAME", "oneadmin") + el("NAME", SESSION_USER) + el("PASSWORD", "x")
                        + el("AUTH_DRIVER", "core") + el("ENABLED", 1) + "<TEMPLATE/></USER>"))


def group_info(i, decrypt=False):
    if i not in GROUPS:
        return err(NO_EXISTS, "one.group.info", f"Error getting group [{i}].")
    return ok(check_doc("<GROUP>" + el("ID", i) + el("NAME", GROUPS[i]) + "<TEMPLATE/><USERS>" + el("ID", 0)
                        + "</USERS><ADMINS/></GROUP>"))


def template_xml(t):
    return ("<VMTEMPLATE>" + el("ID", t["id"]) + el("UID", 0) + el("GID", t["gid"]) + el("UNAME", "oneadmin")
            + el("GNAME", GROUPS[t["gid"]]) + el("NAME", t["name"]) + PERMS + el("REGTIME", t["regtime"])
            + tmpl("TEMPLATE", t["template"]) + "</VMTEMPLATE>")


def templatepool_info(flt, start, end):
    with LOCK:
        return ok(check_doc("<VMTEMPLATE_POOL>" + "".join(template_xml(t) for t in TEMPLATES.values()) + "</VMTEMPLATE_POOL>"))


def user_login(user, token, valid, egid=-1):
    tok = hashlib.sha256(f"{user}{time.time()}".encode()).hexdigest()[:40]
    TOKENS.add(tok)
    return ok(tok)


METHODS = {
    "one.system.version": lambda: ok("7.4.0"),
    "one.user.info": user_info, "one.user.login": user_login,
    "one.vm.allocate": vm_allocate, "one.vm.info": vm_info, "one.vm.action": vm_action,
    "one.vm.attach": vm_attach, "one.vm.detach": vm_detach,
    "one.vmpool.info": vmpool_info, "one.vmpool.accounting": vmpool_accounting,
    "one.image.allocate": image_allocate, "one.image.info": image_info, "one.image.delete": image_delete,
    "one.imagepool.info": imagepool_info,
    "one.group.info": group_info, "one.templatepool.info": templatepool_info,
}
SESSION_USER, SESSION_PASS, TOKENS = "fedprobe", None, set()


class Dispatcher(SimpleXMLRPCDispatcher):
    def _dispatch(self, method, params):
        f = METHODS.get(method)
        if f is None:
            raise Exception(f"method {method} is not supported")
        session, rest = (params[0] if params else ""), params[1:]
        user, _, secret = str(session).partition(":")
        if ARGS.fault == "auth" or user != SESSION_USER or (secret != SESSION_PASS and secret not in TOKENS):
            return err(AUTHENTICATION, method, "User couldn't be authenticated, aborting call.")
        try:
            return f(*rest)
        except TypeError as e:
            return err(RPC_API, method, f"Wrong parameters: {e}")


class Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

    def do_POST(self):
        body_peek = self.headers.get("Content-Length")
        if ARGS.fault in ("garbage", "throttle"):
            n = int(body_peek or 0)
            data = self.rfile.read(n)
            if ARGS.fault == "garbage" and b"one.vm.info" in data:
                return self.answer(200, b"<html><body>oned restarting</body></html>", "text/html")
            if ARGS.fault == "throttle" and b"one.vm.allocate" in data:
                return self.answer(429, b"Too Many Requests", "text/plain", {"Retry-After": "30"})
            self.rfile = __import__("io").BytesIO(data)
        return super().do_POST()

    def answer(self, code, body, ctype, extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Server(ThreadingHTTPServer, Dispatcher):
    daemon_threads = True
    logRequests = False

    def __init__(self, addr):
        ThreadingHTTPServer.__init__(self, addr, Handler)
        Dispatcher.__init__(self, allow_none=False, encoding=None)


def main():
    global ARGS, SESSION_USER, SESSION_PASS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fault", default="")
    ap.add_argument("--session-file", required=True)
    ap.add_argument("--unchecked", action="store_true",
                    help="answer without checking documents against pyone's bindings (demo only)")
    ARGS = ap.parse_args()
    if bindings is None and not ARGS.unchecked:
        sys.exit("one_fixture.py checks its answers with pyone: bash ci/peers/opennebula.sh install "
                 "makes its venv (or --unchecked, as fedprobe demo runs it)")
    SESSION_USER, SESSION_PASS = open(ARGS.session_file).read().strip().split(":", 1)
    # the image VMs boot from, as a site's marketplace import would leave it
    IMAGES[0] = {"id": 0, "name": "ttylinux", "type": 0, "persistent": 0, "regtime": int(time.time()),
                 "source": "/var/lib/one/datastores/1/ttylinux", "path": "", "size": 200, "state": 1,
                 "vms": [], "ds": 1, "template": {}}
    # the VM template cloudkeeper-one registers for an appliance of the VO's
    # image list (attribute names from cloudkeeper-one's template), in the
    # VO's group: what cloud-info-provider publishes as an image
    TEMPLATES[0] = {"id": 0, "name": "ttylinux@ops", "gid": 100, "regtime": int(time.time()), "template": {
        "CPU": "1", "MEMORY": "128", "DISK": {"IMAGE_ID": "0"},
        "CLOUDKEEPER_APPLIANCE_MPURI": "https://appdb.egi.eu/store/vm/image/fedprobe-ttylinux:1/",
        "CLOUDKEEPER_APPLIANCE_ID": "fedprobe-ttylinux-1", "CLOUDKEEPER_APPLIANCE_TITLE": "ttylinux",
        "CLOUDKEEPER_APPLIANCE_DESCRIPTION": "ttylinux test appliance", "CLOUDKEEPER_APPLIANCE_VERSION": "1.0",
        "CLOUDKEEPER_APPLIANCE_ARCHITECTURE": "x86_64", "CLOUDKEEPER_APPLIANCE_OS": "Linux"}}
    if ARGS.fault == "template-gone":
        TEMPLATES.clear()
    srv = Server(("127.0.0.1", ARGS.port))
    print(f"PORT {srv.server_address[1]}", flush=True)
    # bounded: the fixture lives at most an hour, whoever started it
    t = threading.Timer(3600, srv.shutdown)
    t.daemon = True
    t.start()
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

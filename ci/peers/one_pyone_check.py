#!/usr/bin/env python3
"""Drive the OpenNebula fixture with OpenNebula's own Python client (pyone,
whose bindings are generated from oned's XSDs), making the calls fedprobe
makes, so a fixture that drifts from the real API fails CI.
usage: one_pyone_check.py (starts its own fixture on a free port)"""
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import time
import http.server
import threading

import pyone

HERE = os.path.dirname(os.path.abspath(__file__))
checks = 0


def expect(cond, what):
    global checks
    checks += 1
    if not cond:
        print(f"FAIL {what}")
        sys.exit(1)
    print(f"ok   {what}")


def wait(f, what, limit=10):
    end = time.time() + limit
    while time.time() < end:
        if f():
            expect(True, what)
            return
        time.sleep(0.1)
    expect(False, what)


def main():
    d = tempfile.mkdtemp()
    sess = os.path.join(d, "one_auth")
    with open(sess, "w") as fh:
        fh.write("fedprobe:pyone-check-password")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "one_fixture.py"), "--session-file", sess],
                         stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline().split()[1])
        url = f"http://127.0.0.1:{port}/RPC2"
        one = pyone.OneServer(url, session="fedprobe:pyone-check-password")
        expect(one.system.version() == "7.4.0", "one.system.version")
        u = one.user.info(-1)
        expect(u.NAME == "fedprobe" and u.AUTH_DRIVER == "core", "one.user.info -> USER")
        tok = one.user.login("fedprobe", "", 60, -1)
        expect(pyone.OneServer(url, session=f"fedprobe:{tok}").user.info(-1).NAME == "fedprobe", "one.user.login token works")
        try:
            pyone.OneServer(url, session="fedprobe:wrong").vm.info(0)
            expect(False, "bad session refused")
        except pyone.OneAuthenticationException:
            expect(True, "bad session -> OneAuthenticationException")
        # image served over HTTP, as the probe does
        payload = os.urandom(300_000)

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *a):
                pass
        srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.handle_request, daemon=True).start()
        iid = one.image.allocate(f'NAME="pyone-img"\nTYPE="OS"\nPATH="http://127.0.0.1:{srv.server_address[1]}/x.img"\nFEDPROBE_RUN="r1"', 1, False)
        wait(lambda: one.image.info(iid).STATE == 1, "image from PATH URL -> READY")
        img = one.image.info(iid)
        expect(img.SIZE == 1 and img.TEMPLATE.get("FEDPROBE_RUN") == "r1", "one.image.info -> IMAGE with SIZE (MB) and tag")
        vol = one.image.allocate('NAME="pyone-vol"\nTYPE="DATABLOCK"\nPERSISTENT="YES"\nSIZE="1024"', 1, False)
        expect(one.image.info(vol).PERSISTENT == 1, "persistent DATABLOCK image")
        vid = one.vm.allocate(f'NAME="pyone-vm"\nCPU="0.1"\nVCPU="1"\nMEMORY="128"\nDISK=[IMAGE_ID="{iid}"]\nFEDPROBE_RUN="r1"', False)
        st = one.vm.info(vid).STATE
        expect(st in (1, 3), f"one.vm.allocate -> VM (state {st})")
        wait(lambda: one.vm.info(vid).LCM_STATE == 3, "VM -> ACTIVE/RUNNING")
        vm = one.vm.info(vid)
        expect(vm.USER_TEMPLATE.get("FEDPROBE_RUN") == "r1", "tag in USER_TEMPLATE")
        pool = one.vmpool.info(-3, -1, -1, -1)
        expect([v.ID for v in pool.VM] == [vid], "one.vmpool.info -> VM_POOL")
        one.vm.attach(vid, f'DISK=[IMAGE_ID="{vol}"]')
        wait(lambda: one.vm.info(vid).LCM_STATE == 3, "attach: HOTPLUG -> RUNNING")
        expect(one.image.info(vol).STATE == 8, "attached volume USED_PERS")
        disks = one.vm.info(vid).TEMPLATE["DISK"]
        did = [d for d in disks if d["IMAGE_ID"] == str(vol)][0]["DISK_ID"]
        one.vm.detach(vid, int(did))
        wait(lambda: one.image.info(vol).STATE == 1, "detach: volume READY")
        acct = one.vmpool.accounting(-3, -1, -1)
        expect(acct.HISTORY[0].OID == vid and acct.HISTORY[0].VM.ID == vid, "one.vmpool.accounting -> HISTORY_RECORDS")
        expect(iid in [i.ID for i in one.imagepool.info(-3, -1, -1).IMAGE], "one.imagepool.info -> IMAGE_POOL")
        # what check_glue compares a GLUE publication with (and what
        # ci/producers/cip_opennebula.py publishes from)
        expect(u.GROUPS.ID == [0, 100], "one.user.info -> USER/GROUPS")
        g = one.group.info(100)
        expect(g.NAME == "ops", "one.group.info -> GROUP")
        tpls = one.templatepool.info(-2, -1, -1).VMTEMPLATE
        expect([(t.ID, t.GNAME) for t in tpls] == [(0, "ops")], "one.templatepool.info -> VMTEMPLATE_POOL")
        expect(tpls[0].TEMPLATE.get("CLOUDKEEPER_APPLIANCE_MPURI", "").startswith("https://"),
               "VM template with cloudkeeper-one's appliance attributes")
        one.vm.action("terminate-hard", vid)
        wait(lambda: one.vm.info(vid).STATE == 6, "terminate-hard -> DONE")
        for i in (iid, vol):
            one.image.delete(i, False)
        try:
            one.image.info(iid)
            expect(False, "deleted image gone")
        except pyone.OneNoExistsException:
            expect(True, "deleted image -> OneNoExistsException")
        print(f"pyone {importlib.metadata.version('pyone')}: {checks} passed, 0 failed")
    finally:
        p.terminate()
        p.wait(5)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Drive the Azure fixture with Microsoft's own clients (azure-identity for the Entra ID
token, azure-mgmt-compute for ARM): the operations fedprobe's Azure backend uses, and the
faults it is tested with. If the fixture drifts from what the SDK (generated from the same
REST API specification) sends or expects, this fails.

    azure_sdk_check.py URL        (https://127.0.0.1:PORT of ci/peers/azure.sh; CA from
                                   REQUESTS_CA_BUNDLE / SSL_CERT_FILE)
Prints one line per check and 'N passed, N failed'; exit 1 on any failure.
"""
import json
import sys
import time
import urllib.request
import uuid

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientAssertionCredential, ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

URL = sys.argv[1].rstrip("/")
TENANT, CLIENT, SECRET = "fedprobe-tenant", "fedprobe-app", "fixture-secret"
SUB, RG, LOC = "0000-sub", "fedprobe-rg", "westeurope"
VMV, DISKV = "2024-07-01", "2024-03-02"  # the vendored spec versions (testdata/azure-spec)
SCOPES = ["https://management.azure.com/.default"]
AUTHORITY = URL.split("://", 1)[1]
results = []


def faults(*names):
    req = urllib.request.Request(URL + "/fedprobe-fixture/faults", data=json.dumps({"faults": list(names)}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()


def check(name, fn):
    try:
        detail = fn()
        results.append(True)
        print(f"ok   {name}: {detail}")
    except Exception as e:  # report and go on
        results.append(False)
        print(f"FAIL {name}: {type(e).__name__}: {str(e)[:300]}")


def client(cred):
    return ComputeManagementClient(cred, SUB, base_url=URL, credential_scopes=SCOPES)


def secret_cred():
    return ClientSecretCredential(TENANT, CLIENT, SECRET, authority=AUTHORITY, disable_instance_discovery=True)


def fed_cred():
    # The federation's OIDC access token as the client assertion (a JWT-shaped string here).
    return ClientAssertionCredential(TENANT, CLIENT, lambda: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJwcm9iZSJ9.c2ln",
                                     authority=AUTHORITY, disable_instance_discovery=True)


def image_id(name):
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/images/{name}"


def vm_body(tags):
    # SDK models (serialized by the SDK); plain dicts below are sent as written (wire names)
    return m.VirtualMachine(location=LOC, tags=tags, properties=m.VirtualMachineProperties(
        hardware_profile=m.HardwareProfile(vm_size="Standard_B1s"),
        storage_profile=m.StorageProfile(image_reference=m.ImageReference(id=image_id("egi-monitoring")),
                                         os_disk=m.OSDisk(create_option="FromImage", delete_option="Delete"))))


def lifecycle(c):
    sizes = [s.name for s in c.virtual_machine_sizes.list(LOC, api_version=VMV)]
    img = c.images.get(RG, "egi-monitoring", api_version=VMV)
    name = "sdk-" + uuid.uuid4().hex[:8]
    vm = c.virtual_machines.begin_create_or_update(RG, name, vm_body({"fedprobe-run": name}), api_version=VMV).result()
    assert vm.provisioning_state == "Succeeded", vm.provisioning_state
    view = c.virtual_machines.get(RG, name, expand="instanceView", api_version=VMV)
    codes = [s.code for s in view.instance_view.statuses]
    listed = [v.name for v in c.virtual_machines.list(RG, api_version=VMV) if (v.tags or {}).get("fedprobe-run")]
    assert name in listed
    c.virtual_machines.begin_delete(RG, name, api_version=VMV).result()
    try:
        c.virtual_machines.get(RG, name, api_version=VMV)
        raise AssertionError("VM still there after delete")
    except HttpResponseError as e:
        assert e.status_code == 404
    return f"sizes {sizes}; image {img.name} ({img.storage_profile.os_disk.os_type}); VM {name} {codes}; deleted"


def volumes(c):
    name = "sdk-" + uuid.uuid4().hex[:8]
    vm = c.virtual_machines.begin_create_or_update(RG, name, vm_body({}), api_version=VMV).result()
    d = c.disks.begin_create_or_update(RG, name + "-vol", m.Disk(location=LOC, tags={"fedprobe-run": name}, properties=m.DiskProperties(
                                       creation_data=m.CreationData(create_option="Empty"), disk_size_gb=1)),
                                       api_version=DISKV).result()
    assert d.disk_state == "Unattached", d.disk_state
    c.virtual_machines.begin_attach_detach_data_disks(RG, name, {"dataDisksToAttach": [{"diskId": d.id, "lun": 0}]},
                                                      api_version=VMV).result()
    assert c.disks.get(RG, d.name, api_version=DISKV).disk_state == "Attached"
    c.virtual_machines.begin_attach_detach_data_disks(RG, name, {"dataDisksToDetach": [{"diskId": d.id}]},
                                                      api_version=VMV).result()
    after = c.disks.get(RG, d.name, api_version=DISKV).disk_state
    c.disks.begin_delete(RG, d.name, api_version=DISKV).result()
    c.virtual_machines.begin_delete(RG, name, api_version=VMV).result()
    listed = [x.name for x in c.disks.list_by_resource_group(RG, api_version=DISKV)]
    assert d.name not in listed
    return f"disk {d.name} {d.disk_size_gb} GB attached, detached ({after}), deleted"


def image_upload(c):
    name = "sdk-img-" + uuid.uuid4().hex[:8]
    data = bytes(range(256)) * 4096  # 1 MiB
    d = c.disks.begin_create_or_update(RG, name + "-disk", {"location": LOC, "properties": {"osType": "Linux",
                                       "creationData": {"createOption": "Upload", "uploadSizeBytes": len(data)}}},
                                       api_version=DISKV).result()
    assert d.disk_state == "ReadyToUpload", d.disk_state
    sas = c.disks.begin_grant_access(RG, d.name, {"access": "Write", "durationInSeconds": 600}, api_version=DISKV).result()
    req = urllib.request.Request(sas.access_sas + "&comp=page", data=data, method="PUT",
                                 headers={"x-ms-page-write": "update", "x-ms-range": f"bytes=0-{len(data) - 1}",
                                          "x-ms-version": "2021-08-06"})
    assert urllib.request.urlopen(req).status == 201
    c.disks.begin_revoke_access(RG, d.name, api_version=DISKV).result()
    img = c.images.begin_create_or_update(RG, name, {"location": LOC, "tags": {"fedprobe-run": name}, "properties": {"storageProfile": {
        "osDisk": {"osType": "Linux", "osState": "Generalized", "managedDisk": {"id": d.id}}}}}, api_version=VMV).result()
    assert img.provisioning_state == "Succeeded"
    rd = c.disks.begin_grant_access(RG, d.name, {"access": "Read", "durationInSeconds": 600}, api_version=DISKV).result()
    back = urllib.request.urlopen(rd.access_sas).read()
    c.disks.begin_revoke_access(RG, d.name, api_version=DISKV).result()
    assert back == data, "downloaded bytes differ"
    c.images.begin_delete(RG, name, api_version=VMV).result()
    c.disks.begin_delete(RG, d.name, api_version=DISKV).result()
    return f"{len(data)} bytes uploaded to disk {d.name}, image {img.name}, read back equal, deleted"


def fault_vm_failed(c):
    faults("vm-failed")
    try:
        c.virtual_machines.begin_create_or_update(RG, "sdk-fail", vm_body({}), api_version=VMV).result()
        raise AssertionError("create succeeded")
    except HttpResponseError as e:
        assert "AllocationFailed" in str(e), str(e)
        return "LRO failed with AllocationFailed"
    finally:
        faults()
        c.virtual_machines.begin_delete(RG, "sdk-fail", api_version=VMV).result()


def fault_throttle(c):
    faults("throttle:2")
    t0 = time.time()
    n = len(list(c.images.list_by_resource_group(RG, api_version=VMV)))
    took = time.time() - t0
    assert took >= 1.5, f"retried after {took:.1f}s, Retry-After: 1 twice not honoured"
    return f"two 429s with Retry-After: 1 retried by the SDK, {n} images after {took:.1f}s"


def fault_refused(_):
    faults("refuse-federated")
    try:
        fed_cred().get_token(*SCOPES)
        raise AssertionError("token issued")
    except ClientAuthenticationError as e:
        assert "AADSTS700213" in str(e), str(e)
        return "ClientAssertionCredential refused with AADSTS700213"
    finally:
        faults()


check("client secret: token", lambda: "expires_on %d" % secret_cred().get_token(*SCOPES).expires_on)
check("federated: token", lambda: "expires_on %d" % fed_cred().get_token(*SCOPES).expires_on)
c = client(fed_cred())
check("VM lifecycle", lambda: lifecycle(c))
check("disk create/attach/detach/delete", lambda: volumes(c))
check("image upload via disk SAS", lambda: image_upload(c))
check("fault vm-failed", lambda: fault_vm_failed(c))
check("fault throttle", lambda: fault_throttle(c))
check("fault refuse-federated", lambda: fault_refused(c))
print(f"{results.count(True)} passed, {results.count(False)} failed")
sys.exit(0 if all(results) else 1)

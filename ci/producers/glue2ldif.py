#!/usr/bin/env python3
"""GLUE 2.1 cloud JSON (as cloud-info-provider writes it) -> LDIF for a BDII.

Entries go under GLUE2GroupID=resource,o=glue. GLUE 2.0 structural classes
(GLUE2Service, GLUE2Manager, GLUE2Endpoint, GLUE2Share, GLUE2MappingPolicy,
GLUE2AccessPolicy) carry the cloud auxiliaries of glue21-cloud.schema; images,
instance types and accelerators are the schema's own structural classes.
Associations become ...ForeignKey attributes. The mapping back is
probes/src/clients/ldap.rs.

usage: glue2ldif.py GLUE.json > out.ldif
"""
import json
import sys

BASE = "GLUE2GroupID=resource,o=glue"

# class -> (objectClasses, attribute prefix for own fields, ID attribute,
#           {association class: foreign key attribute})
CLASSES = {
    "CloudComputingService": (["GLUE2Service", "GLUE2CloudComputingService"], "GLUE2Service", "GLUE2ServiceID",
                              {"AdminDomain": "GLUE2ServiceAdminDomainForeignKey"}),
    "CloudComputingManager": (["GLUE2Manager", "GLUE2CloudComputingManager"], "GLUE2Manager", "GLUE2ManagerID",
                              {"CloudComputingService": "GLUE2ManagerServiceForeignKey"}),
    "CloudComputingEndpoint": (["GLUE2Endpoint", "GLUE2CloudComputingEndpoint"], "GLUE2Endpoint", "GLUE2EndpointID",
                               {"CloudComputingService": "GLUE2EndpointServiceForeignKey"}),
    "Share": (["GLUE2Share", "GLUE2CloudComputingShare"], "GLUE2Share", "GLUE2ShareID",
              {"CloudComputingService": "GLUE2ShareServiceForeignKey",
               "CloudComputingEndpoint": "GLUE2ShareEndpointForeignKey"}),
    "MappingPolicy": (["GLUE2MappingPolicy"], "GLUE2Policy", "GLUE2PolicyID",
                      {"Share": "GLUE2MappingPolicyShareForeignKey",
                       "PolicyUserDomain": "GLUE2PolicyUserDomainForeignKey"}),
    "AccessPolicy": (["GLUE2AccessPolicy"], "GLUE2Policy", "GLUE2PolicyID",
                     {"CloudComputingEndpoint": "GLUE2AccessPolicyEndpointForeignKey"}),
    "CloudComputingImage": (["GLUE2CloudComputingImage"], "GLUE2CloudComputingImage", "GLUE2CloudComputingImageID",
                            {"Share": "GLUE2CloudComputingImageShareForeignKey",
                             "CloudComputingEndpoint": "GLUE2CloudComputingImageEndpointForeignKey",
                             "CloudComputingManager": "GLUE2CloudComputingImageManagerForeignKey"}),
    "CloudComputingInstanceType": (["GLUE2CloudComputingInstanceType"], "GLUE2CloudComputingInstanceType",
                                   "GLUE2CloudComputingInstanceTypeID",
                                   {"Share": "GLUE2CloudComputingInstanceTypeShareForeignKey",
                                    "CloudComputingEndpoint": "GLUE2CloudComputingInstanceTypeEndpointForeignKey",
                                    "CloudComputingManager": "GLUE2CloudComputingInstanceTypeManagerForeignKey",
                                    "CloudComputingVirtualAccelerator":
                                        "GLUE2CloudComputingInstanceTypeVirtualAcceleratorForeignKey"}),
    "CloudComputingVirtualAccelerator": (["GLUE2CloudComputingVirtualAccelerator"],
                                         "GLUE2CloudComputingVirtualAccelerator",
                                         "GLUE2CloudComputingVirtualAcceleratorID",
                                         {"CloudComputingInstanceType":
                                              "GLUE2CloudComputingVirtualAcceleratorInstanceTypeForeignKey"}),
}

# Fields that live in the cloud auxiliary class rather than the 2.0 class.
AUX = {
    "CloudComputingService": ("GLUE2CloudComputingService", {"TotalVM", "RunningVM", "SuspendedVM", "HaltedVM", "ServiceAUP"}),
    "CloudComputingManager": ("GLUE2CloudComputingManager", {
        "TotalCPUs", "TotalRAM", "InstanceMaxCPU", "InstanceMinCPU", "InstanceMaxRAM", "InstanceMinRAM",
        "HypervisorName", "HypervisorVersion", "NetworkVirtualizationType", "CPUVirtualizationType"}),
    "CloudComputingEndpoint": ("GLUE2CloudComputingEndpoint", {"Authentication"}),
    "Share": ("GLUE2CloudComputingShare", {
        "ProjectID", "InstanceMaxCPU", "InstanceMaxRAM", "InstanceMinCPU", "InstanceMinRAM", "TotalVM",
        "RunningVM", "SuspendedVM", "HaltedVM", "MaxVM", "SLA", "NetworkInfo", "DefaultNetworkType",
        "PublicNetworkName"}),
}
# Fields of the 2.0 classes that we do not carry (no attribute for them).
SKIP = {"CloudComputingManager": {"ManagerVirtualdiskFormat", "ManagerFailover", "ManagerLiveMigration",
                                  "ManagerVMBackupRestore"},
        "CloudComputingEndpoint": set(), "Share": set()}
ENTITY = {"Name": "GLUE2EntityName", "CreationTime": "GLUE2EntityCreationTime", "Validity": "GLUE2EntityValidity"}


def dn_escape(v):
    out = ""
    for i, c in enumerate(v):
        if c in ',+"\\<>;=' or (i == 0 and c in " #") or (i == len(v) - 1 and c == " "):
            out += "\\" + c
        else:
            out += c
    return out


def value(v):
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def line(attr, v):
    v = value(v)
    if v == "" or not v.isascii() or v[0] in " :<" or v[-1] == " " or "\n" in v:
        import base64
        return f"{attr}:: {base64.b64encode(v.encode()).decode()}"
    return f"{attr}: {v}"


def entry(cls, o):
    ocs, prefix, id_attr, fks = CLASSES[cls]
    aux = AUX.get(cls)
    lines = [f"dn: {id_attr}={dn_escape(o['ID'])},{BASE}"]
    lines += [f"objectClass: {oc}" for oc in ocs]
    lines.append(line(id_attr, o["ID"]))
    for k, v in o.items():
        if k == "ID" or v is None or k in SKIP.get(cls, ()):
            continue
        if k in ENTITY:
            lines.append(line(ENTITY[k], v))
        elif k == "OtherInfo":
            for ok, ov in sorted(v.items()):
                lines.append(line("GLUE2EntityOtherInfo", f"{ok}={value(ov)}"))
        elif k == "Associations":
            for target, ids in v.items():
                if target in fks:
                    lines += [line(fks[target], i) for i in ids]
        else:
            attr = (aux[0] if aux and k in aux[1] else prefix) + k
            for item in (v if isinstance(v, list) else [v]):
                lines.append(line(attr, item))
    if cls == "CloudComputingManager" and "ProductName" not in o:
        # GLUE 2.0 makes it mandatory; cloud-info-provider leaves it out.
        lines.append("GLUE2ManagerProductName: UNKNOWN")
    if cls == "CloudComputingService" and "AdminDomain" not in o.get("Associations", {}):
        lines.append("GLUE2ServiceAdminDomainForeignKey: UNKNOWN")
    return "\n".join(lines)


def main():
    doc = json.load(open(sys.argv[1]))
    out = [f"dn: o=glue\nobjectClass: organization\no: glue",
           f"dn: {BASE}\nobjectClass: GLUE2Group\nGLUE2GroupID: resource"]
    for cls in CLASSES:
        # cloud-info-provider repeats an image or instance type once per
        # share (same ID, other associations): one entry, keys merged.
        merged = {}
        for o in doc.get(cls, []):
            if not isinstance(o, dict) or "ID" not in o:
                continue
            have = merged.get(o["ID"])
            if have is None:
                merged[o["ID"]] = json.loads(json.dumps(o))
                continue
            for target, ids in (o.get("Associations") or {}).items():
                lst = have.setdefault("Associations", {}).setdefault(target, [])
                lst += [i for i in ids if i not in lst]
        for o in merged.values():
            out.append(entry(cls, o))
    print("\n\n".join(out) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build the broken GLUE corpus in bad/ from cloud-info-provider-sample.json.

Each case breaks one thing; EXPECTED lists file|status|substring the
validator must report (tests/glue_corpus.rs). Re-run after changing the sample.
"""
import copy
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
base = json.load(open(os.path.join(HERE, "cloud-info-provider-sample.json")))
cases = []


def case(name, status, expect, doc=None, raw=None):
    path = os.path.join(HERE, "bad", name)
    with open(path, "w") as f:
        if raw is not None:
            f.write(raw)
        else:
            json.dump(doc, f, indent=1)
    cases.append(f"{name}|{status}|{expect}")


d = copy.deepcopy(base); del d["Share"]
case("missing-share-class.json", "CRITICAL", "Share: no object of this required class", d)

d = copy.deepcopy(base); del d["Share"][0]["ProjectID"]
case("missing-project-id.json", "CRITICAL", "\"ProjectID\" is a required property", d)

d = copy.deepcopy(base); del d["CloudComputingEndpoint"][0]["URL"]
case("missing-endpoint-url.json", "CRITICAL", "\"URL\" is a required property", d)

d = copy.deepcopy(base); d["Share"][0]["Validity"] = "forever"
case("validity-not-integer.json", "CRITICAL", "/Share/0/Validity", d)

d = copy.deepcopy(base); d["CloudComputingInstanceType"][0]["RAM"] = "2 GB"
case("ram-text.json", "CRITICAL", "/CloudComputingInstanceType/0/RAM", d)

d = copy.deepcopy(base)
for cls in d.values():
    for o in cls:
        o["CreationTime"] = "2020-01-01T00:00:00+00:00"
case("stale.json", "CRITICAL", "publication expired", d)

d = copy.deepcopy(base); d["Share"][1]["CreationTime"] = "yesterday"
case("creationtime-garbage.json", "CRITICAL", "CreationTime", d)

d = copy.deepcopy(base); d["CloudComputingImage"][0]["Associations"]["Share"] = ["no-such-share"]
case("unresolved-association.json", "CRITICAL", "association Share \"no-such-share\" does not resolve", d)

d = copy.deepcopy(base); d["CloudComputingEndpoint"][0]["Associations"]["CloudComputingService"] = ["ghost"]
case("unresolved-service.json", "CRITICAL", "association CloudComputingService \"ghost\" does not resolve", d)

d = copy.deepcopy(base); d["MappingPolicy"] = d["MappingPolicy"][:1]
case("share-without-policy.json", "CRITICAL", "no MappingPolicy for this share", d)

d = copy.deepcopy(base); d["Share"].append(copy.deepcopy(d["Share"][0]))
case("duplicate-share.json", "CRITICAL", "ID published twice", d)

d = copy.deepcopy(base); d["CloudComputingService"][0]["ID"] = "compute-service"
for cls in d.values():
    for o in cls:
        a = o.get("Associations", {})
        if "CloudComputingService" in a:
            a["CloudComputingService"] = ["compute-service"]
case("service-id-convention.json", "WARNING", "ID does not follow <endpoint>_cloud.compute", d)

d = copy.deepcopy(base); d["CloudComputingService"][0]["Type"] = "org.openstack.nova"
case("service-type.json", "CRITICAL", "/CloudComputingService/0/Type", d)

d = copy.deepcopy(base); d["CloudComputingImage"] = []; d["CloudComputingInstanceType"] = []
case("no-images-no-flavors.json", "WARNING", "none published", d)

case("html-error-page.json", "CRITICAL", "not JSON",
     raw="<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n")
case("truncated.json", "CRITICAL", "not JSON", raw=json.dumps(base)[:700])
case("top-level-list.json", "CRITICAL", "top level is a list", raw="[1, 2, 3]\n")
case("empty.json", "CRITICAL", "not JSON", raw="")

with open(os.path.join(HERE, "bad", "EXPECTED"), "w") as f:
    f.write("\n".join(cases) + "\n")
print(f"{len(cases)} cases")

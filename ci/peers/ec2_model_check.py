#!/usr/bin/env python3
"""Check requests the EC2 backend really sent against botocore's service models.

Input: JSON lines (from probes/tests/it/ec2.rs), one request each:
  {"service": "ec2"|"sts"|"ebs", "method": "POST", "path": "/...", "query": "...",
   "headers": {name: value}, "body": "..."}
The models are AWS's machine-readable API definitions shipped in the botocore wheel
(botocore/data/{ec2/2016-11-15,sts/2011-06-15,ebs/2019-11-02}/service-2.json*), loaded
with botocore's own loader, so a request shape that drifts from AWS's definition fails.

Query protocols (ec2, sts): the Action is an operation of the model, Version its apiVersion,
every parameter path (Filter.1.Value.1, TagSpecification.1.Tag.2.Key ...) resolves through
the operation's input shape with the protocol's serialized names, scalar values have their
shape's type, and every required member is present.
rest-json (ebs): method + path match one operation's requestUri, every x-amz-* header and
query parameter is a member located there, JSON body keys are body members, required
members present.

Also prints what the models say about ImportImage (the path fedprobe does not take on moto).
Exit 0 when every request conforms; 1 with one line per violation otherwise.
"""
import json
import re
import sys
from urllib.parse import parse_qsl

import botocore
from botocore.loaders import Loader
from botocore.model import ServiceModel

MODELS = {"ec2": "ec2", "sts": "sts", "ebs": "ebs"}


def load(name):
    return ServiceModel(Loader().load_service_model(name, "service-2"), service_name=name)


def serialized(member_name, shape, protocol):
    if protocol == "ec2":
        if "queryName" in shape.serialization:
            return shape.serialization["queryName"]
        if "name" in shape.serialization:
            n = shape.serialization["name"]
            return n[0].upper() + n[1:]
        return member_name
    return shape.serialization.get("name", member_name)


def check_scalar(shape, value, where, errors):
    t = shape.type_name
    if t in ("integer", "long"):
        if not re.fullmatch(r"-?\d+", value):
            errors.append(f"{where}: {value!r} is not an {t}")
    elif t == "boolean":
        if value not in ("true", "false"):
            errors.append(f"{where}: {value!r} is not a boolean")
    elif t == "string" and shape.enum and value not in shape.enum:
        errors.append(f"{where}: {value!r} not in enum {shape.name}")


def walk(shape, tokens, value, protocol, where, errors):
    if not tokens:
        if shape.type_name in ("structure", "list", "map"):
            errors.append(f"{where}: a {shape.type_name} given a scalar value")
        else:
            check_scalar(shape, value, where, errors)
        return
    t = shape.type_name
    if t == "structure":
        for mname, mshape in shape.members.items():
            if serialized(mname, mshape, protocol) == tokens[0]:
                return walk(mshape, tokens[1:], value, protocol, where, errors)
        errors.append(f"{where}: {tokens[0]!r} is not a member of {shape.name}")
    elif t == "list":
        flattened = protocol == "ec2" or shape.serialization.get("flattened")
        if not flattened:
            if tokens[0] != shape.member.serialization.get("name", "member"):
                errors.append(f"{where}: list {shape.name} wants .member.N, got {tokens[0]!r}")
                return
            tokens = tokens[1:]
        if not tokens or not tokens[0].isdigit() or int(tokens[0]) < 1:
            errors.append(f"{where}: list {shape.name} needs a 1-based index")
            return
        walk(shape.member, tokens[1:], value, protocol, where, errors)
    else:
        errors.append(f"{where}: {shape.name} ({t}) has no member {tokens[0]!r}")


def check_query(model, req, errors):
    params = parse_qsl(req["body"], keep_blank_values=True)
    d = dict(params)
    action = d.pop("Action", None)
    version = d.pop("Version", None)
    if action not in model.operation_names:
        errors.append(f"{req['service']}: unknown Action {action!r}")
        return None
    if version != model.api_version:
        errors.append(f"{action}: Version {version!r}, the model says {model.api_version}")
    op = model.operation_model(action)
    shape = op.input_shape
    given = set()
    for k, v in d.items():
        tokens = k.split(".")
        given.add(tokens[0])
        walk(shape, tokens, v, model.protocol, f"{action} {k}", errors)
    if shape is not None:
        for r in shape.required_members:
            if serialized(r, shape.members[r], model.protocol) not in given:
                errors.append(f"{action}: required {r} missing")
    return action


def check_rest(model, req, errors):
    for name in model.operation_names:
        op = model.operation_model(name)
        if op.http["method"] != req["method"]:
            continue
        uri = op.http["requestUri"].split("?")[0]
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", uri) + "$"
        if re.match(pattern, req["path"]):
            break
    else:
        errors.append(f"ebs: no operation for {req['method']} {req['path']}")
        return None
    shape = op.input_shape
    located = {}
    for mname, m in shape.members.items():
        loc = m.serialization.get("location")
        if loc:
            located[(loc, m.serialization.get("name", mname).lower())] = (mname, m)
    present = set()
    for h, v in req["headers"].items():
        h = h.lower()
        if h.startswith("x-amz-") and h not in ("x-amz-date", "x-amz-content-sha256",
                                                "x-amz-security-token"):
            if ("header", h) not in located:
                errors.append(f"{name}: header {h} is not in the model")
            else:
                mname, m = located[("header", h)]
                present.add(mname)
                check_scalar(m, v, f"{name} {h}", errors)
    for k, v in parse_qsl(req.get("query") or ""):
        if ("querystring", k.lower()) not in located:
            errors.append(f"{name}: query parameter {k} is not in the model")
        else:
            present.add(located[("querystring", k.lower())][0])
    for mname, m in shape.members.items():
        if m.serialization.get("location") == "uri":
            present.add(mname)
    payload = shape.serialization.get("payload")
    if payload:
        present.add(payload)
    elif req["body"]:
        body = json.loads(req["body"])
        for k in body:
            if k not in shape.members or shape.members[k].serialization.get("location"):
                errors.append(f"{name}: body key {k} is not a body member")
            else:
                present.add(k)
    for r in shape.required_members:
        if r not in present:
            errors.append(f"{name}: required {r} missing")
    return name


def main():
    models = {k: load(v) for k, v in MODELS.items()}
    errors, seen = [], {}
    n = 0
    for line in open(sys.argv[1]):
        if not line.strip():
            continue
        req = json.loads(line)
        n += 1
        m = models[req["service"]]
        op = (check_rest if m.protocol == "rest-json" else check_query)(m, req, errors)
        if op:
            seen[f"{req['service']}:{op}"] = seen.get(f"{req['service']}:{op}", 0) + 1
    ec2 = models["ec2"]
    imp = ec2.operation_model("ImportImage")
    print(f"botocore {botocore.__version__}: ec2 {ec2.api_version} ({len(ec2.operation_names)} "
          f"operations), sts {models['sts'].api_version}, ebs {models['ebs'].api_version}")
    print(f"{n} requests, {len(seen)} operations: "
          + ", ".join(f"{k} x{v}" for k, v in sorted(seen.items())))
    print("ImportImage (not used: moto lacks it) takes "
          + ", ".join(sorted(imp.input_shape.members)))
    for e in errors:
        print("DRIFT " + e)
    return 1 if errors or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Create the peers' OpenStack objects through the real APIs (stdlib only).

  setup_cloud.py keystone   service users + catalog, projects, federation (IdP egi.eu, mapping,
                            protocol openid), password user probe-user + application credential
  setup_cloud.py storage    only the cinder and swift service users + catalog entries (to add
                            them to running peers; `keystone` does it too)
  setup_cloud.py fixture    public image egi-monitoring (ad:appid, APPLIANCE_ATTRIBUTES),
                            flavors m1.probe and m1.tiny
  setup_cloud.py network    external network `public` (router:external, flat, a 40-address pool)
                            and, for each shared project, its network + subnet and a router with
                            its gateway on `public` and an interface on the subnet
  setup_cloud.py env        write $P/peers.env (KEY=VALUE lines) and $P/clouds.yaml

Reads its settings from the environment (set by up.sh through lib.sh):
P (state dir), KS (keystone direct url), ISSUER, and the port numbers.
Writes facts to $P/facts.json (merged).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

P = os.environ["P"]
KS = os.environ["KS"]
SECRETS = os.path.join(P, "secrets")
FACTS = os.path.join(P, "facts.json")
ENV = os.environ


def secret(name):
    with open(os.path.join(SECRETS, name)) as f:
        return f.read().strip()


def facts_load():
    try:
        with open(FACTS) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def facts_save(new):
    d = facts_load()
    d.update(new)
    with open(FACTS, "w") as f:
        json.dump(d, f, indent=1, sort_keys=True)


def call(method, url, token=None, body=None, headers=None, expect=(200, 201, 202, 204), raw=None):
    h = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if raw is not None:
        data = raw
        h["Content-Type"] = "application/octet-stream"
    if token:
        h["X-Auth-Token"] = token
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, rh, b = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, rh, b = e.code, e.headers, e.read()
    if status not in expect:
        sys.exit(f"setup_cloud: {method} {url} -> {status}: {b[:500]!r}")
    return status, rh, (json.loads(b) if b and b.strip()[:1] in (b"{", b"[") else None)


def password_token(user, password, project, domain="default"):
    _, h, _ = call("POST", f"{KS}/auth/tokens", body={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": domain}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": domain}}}}})
    return h["X-Subject-Token"]


def admin_token():
    return password_token("admin", secret("admin_password"), "admin")


# Service users + catalog. Public endpoints are the Apache TLS fronts (as on production sites),
# internal/admin stay plain http for service-to-service traffic.
# (user, service name, type, public url, internal url)
SERVICES = [
    ("glance", "glance", "image", f"https://127.0.0.1:{ENV['GLANCE_TLS_PORT']}", f"http://127.0.0.1:{ENV['GLANCE_PORT']}"),
    ("nova", "nova", "compute", f"https://127.0.0.1:{ENV['NOVA_TLS_PORT']}/v2.1", f"http://127.0.0.1:{ENV['NOVA_PORT']}/v2.1"),
    ("placement", "placement", "placement", f"http://127.0.0.1:{ENV['PLACEMENT_PORT']}", f"http://127.0.0.1:{ENV['PLACEMENT_PORT']}"),
    ("neutron", "neutron", "network", f"https://127.0.0.1:{ENV['NEUTRON_TLS_PORT']}", f"http://127.0.0.1:{ENV['NEUTRON_PORT']}"),
]
# keystone substitutes the project id of the token's scope for %(project_id)s
CINDER_PUB = f"https://127.0.0.1:{ENV['CINDER_TLS_PORT']}/v3/%(project_id)s"
CINDER_INT = f"http://127.0.0.1:{ENV['CINDER_PORT']}/v3/%(project_id)s"
STORAGE_SERVICES = [
    # nova looks cinder up as volumev3, openstacksdk and newer clients as block-storage
    ("cinder", "cinderv3", "volumev3", CINDER_PUB, CINDER_INT),
    ("cinder", "cinder", "block-storage", CINDER_PUB, CINDER_INT),
    ("swift", "swift", "object-store", f"https://127.0.0.1:{ENV['SWIFT_TLS_PORT']}/v1/AUTH_%(project_id)s",
     f"http://127.0.0.1:{ENV['SWIFT_PORT']}/v1/AUTH_%(project_id)s"),
]


def ensure_user(t, name, password, email=None):
    us = call("GET", f"{KS}/users?name={name}&domain_id=default", t)[2]["users"]
    if us:
        return us[0]["id"]
    u = {"name": name, "password": password, "domain_id": "default"}
    if email:
        u["email"] = email
    return call("POST", f"{KS}/users", t, {"user": u})[2]["user"]["id"]


def register_services(t, roles, service_pid, services):
    """service users (roles admin + service on project service) and their catalog entries"""
    svc_pw = secret("service_password")
    existing = {s["type"]: s["id"] for s in call("GET", f"{KS}/services", t)[2]["services"]}
    for uname, name, stype, public, internal in services:
        uid = ensure_user(t, uname, svc_pw)
        for role in ("admin", "service"):
            call("PUT", f"{KS}/projects/{service_pid}/users/{uid}/roles/{roles[role]}", t)
        if stype in existing:
            continue
        sid = call("POST", f"{KS}/services", t, {"service": {"name": name, "type": stype}})[2]["service"]["id"]
        for iface, url in (("public", public), ("internal", internal), ("admin", internal)):
            call("POST", f"{KS}/endpoints", t, {"endpoint": {"service_id": sid, "interface": iface, "url": url,
                                                             "region_id": "RegionOne"}})


def keystone(only_storage=False):
    t = admin_token()
    g = lambda path: call("GET", f"{KS}{path}", t)[2]
    post = lambda path, body: call("POST", f"{KS}{path}", t, body)[2]
    put = lambda path, body=None: call("PUT", f"{KS}{path}", t, body)

    roles = {r["name"]: r["id"] for r in g("/roles")["roles"]}
    if "service" not in roles:
        roles["service"] = post("/roles", {"role": {"name": "service"}})["role"]["id"]

    def project(name, description):
        ps = g(f"/projects?name={name}")["projects"]
        if ps:
            return ps[0]["id"]
        return post("/projects", {"project": {"name": name, "domain_id": "default",
                                               "description": description}})["project"]["id"]

    service_pid = project("service", "OpenStack service users")

    if only_storage:
        # cinder + swift on top of running peers (cinder.sh/swift.sh started by hand)
        register_services(t, roles, service_pid, STORAGE_SERVICES)
        print("setup_cloud: cinder and swift registered")
        return
    register_services(t, roles, service_pid, SERVICES + STORAGE_SERVICES)

    vo_pid = project("vo.access.egi.eu", "EGI access VO (fedprobe peers)")
    ops_pid = project("ops.vo.example", "ops VO: the project monitoring uses (name contains 'ops')")

    # federation: OIDC subject from the local OP (validated by Apache) -> group with member role
    gs = g("/groups?name=egi-federated-users")["groups"]
    gid = gs[0]["id"] if gs else post("/groups", {"group": {"name": "egi-federated-users", "domain_id": "default"}})["group"]["id"]
    for pid in (vo_pid, ops_pid):
        put(f"/projects/{pid}/groups/{gid}/roles/{roles['member']}")
    issuer = ENV["OIDC_ISSUER"]
    put("/OS-FEDERATION/identity_providers/egi.eu", {"identity_provider": {
        "enabled": True, "description": "local stand-in for EGI Check-in", "remote_ids": [issuer]}})
    # one rule: any subject of our issuer becomes a federated user in the group (production maps
    # entitlements; keystone rules fail when a referenced header is absent, and client_credentials
    # tokens carry no email/entitlement, so only sub + iss are used)
    mapping = {"rules": [{
        "local": [{"user": {"name": "{0}"}, "group": {"id": gid}}],
        "remote": [{"type": "HTTP_OIDC_SUB"}, {"type": "HTTP_OIDC_ISS", "any_one_of": [issuer]}],
    }]}
    st, _, _ = call("GET", f"{KS}/OS-FEDERATION/mappings/egi-mapping", t, expect=(200, 404))
    if st == 404:
        put("/OS-FEDERATION/mappings/egi-mapping", {"mapping": mapping})
    else:
        call("PATCH", f"{KS}/OS-FEDERATION/mappings/egi-mapping", t, {"mapping": mapping})
    st, _, _ = call("GET", f"{KS}/OS-FEDERATION/identity_providers/egi.eu/protocols/openid", t, expect=(200, 404))
    if st == 404:
        put("/OS-FEDERATION/identity_providers/egi.eu/protocols/openid", {"protocol": {"mapping_id": "egi-mapping"}})

    # password user + application credential (member of ops.vo.example)
    pw = secret("probe_user_password")
    puid = ensure_user(t, "probe-user", pw, "probe-user@fedprobe.test")
    put(f"/projects/{ops_pid}/users/{puid}/roles/{roles['member']}")
    ut = password_token("probe-user", pw, "ops.vo.example")
    for ac in call("GET", f"{KS}/users/{puid}/application_credentials", ut)[2]["application_credentials"]:
        if ac["name"] == "fedprobe-ci":
            call("DELETE", f"{KS}/users/{puid}/application_credentials/{ac['id']}", ut)
    ac = call("POST", f"{KS}/users/{puid}/application_credentials", ut, {"application_credential": {
        "name": "fedprobe-ci", "description": "fedprobe CI", "secret": secret("app_cred_secret")}})[2]
    facts_save({
        "SERVICE_PROJECT_ID": service_pid, "VO_PROJECT_ID": vo_pid, "VO_PROJECT_NAME": "vo.access.egi.eu",
        "OPS_PROJECT_ID": ops_pid, "OPS_PROJECT_NAME": "ops.vo.example", "FEDERATED_GROUP_ID": gid,
        "PASSWORD_USER_ID": puid, "APP_CRED_ID": ac["application_credential"]["id"],
        "APP_CRED_NAME": "fedprobe-ci", "MEMBER_ROLE_ID": roles["member"],
    })
    print(f"setup_cloud: keystone ready (vo {vo_pid}, ops {ops_pid}, group {gid}, probe-user {puid})")


def fixture():
    t = admin_token()
    nova = f"http://127.0.0.1:{ENV['NOVA_PORT']}/v2.1"
    glance = f"http://127.0.0.1:{ENV['GLANCE_PORT']}"
    nh = {"OpenStack-API-Version": "compute 2.79"}
    imgs = call("GET", f"{glance}/v2/images?name=egi-monitoring", t)[2]["images"]
    if imgs:
        img = imgs[0]["id"]
    else:
        ref = ENV["IMAGE_REGISTRY_REF"]
        attrs = {"eu.egi.cloud.image_ref": ref, "eu.egi.cloud.tag": "1.0", "ad:appid": ENV["IMAGE_APPDB_ID"],
                 "org.openstack.glance.os_distro": "ubuntu", "org.openstack.glance.os_version": "22.04",
                 "org.openstack.glance.architecture": "x86_64",
                 "org.opencontainers.image.title": "EGI Monitoring image (fedprobe fixture)"}
        img = call("POST", f"{glance}/v2/images", t, {
            "name": "egi-monitoring", "disk_format": "raw", "container_format": "bare",
            "visibility": "public", "ad:appid": ENV["IMAGE_APPDB_ID"],
            "APPLIANCE_ATTRIBUTES": json.dumps(attrs), "os_distro": "ubuntu", "os_version": "22.04",
            "architecture": "x86_64",
        })[2]["id"]
        call("PUT", f"{glance}/v2/images/{img}/file", t, raw=b"\0" * 65536)
    for _ in range(30):
        if call("GET", f"{glance}/v2/images/{img}", t)[2]["status"] == "active":
            break
        time.sleep(1)
    else:
        sys.exit("setup_cloud: fixture image never became active")
    flavors = {f["name"]: f["id"] for f in call("GET", f"{nova}/flavors/detail?is_public=None", t, headers=nh)[2]["flavors"]}
    for name, fid, ram, disk in (("m1.probe", "8", 512, 8), ("m1.tiny", "1", 512, 1)):
        if name not in flavors:
            call("POST", f"{nova}/flavors", t, {"flavor": {"name": name, "id": fid, "ram": ram, "vcpus": 1,
                                                           "disk": disk}}, headers=nh)
            flavors[name] = fid
    facts_save({"IMAGE_ID": img, "IMAGE_NAME": "egi-monitoring", "FLAVOR_ID": flavors["m1.probe"],
                "FLAVOR_TINY_ID": flavors["m1.tiny"]})
    print(f"setup_cloud: fixture ready (image {img}, flavors m1.probe={flavors['m1.probe']} m1.tiny={flavors['m1.tiny']})")


# The usual topology a user sees: own network + subnet, own router to the external network.
# Flat networks (one physnet each): the peers have no tenant network type (no agent).
EXT_NET, EXT_CIDR, EXT_POOL = "public", "198.51.100.0/24", ("198.51.100.10", "198.51.100.49")


def network():
    t = admin_token()
    f = facts_load()
    nt = f"http://127.0.0.1:{ENV['NEUTRON_PORT']}/v2.0"

    def one(kind, query, body):
        found = call("GET", f"{nt}/{kind}s?{query}", t)[2][f"{kind}s"]
        return found[0] if found else call("POST", f"{nt}/{kind}s", t, {kind: body})[2][kind]

    # shared as well as external: the federation's orchestrator (IM) puts a VM whose RADL has one
    # public interface straight on the pool's network, and Nova refuses that for a non-admin
    # unless the network is shared (ExternalNetworkAttachForbidden). See NOTES.md, IM gotcha 4.
    ext = one("network", f"name={EXT_NET}", {
        "name": EXT_NET, "router:external": True, "shared": True, "provider:network_type": "flat",
        "provider:physical_network": EXT_NET})
    if not ext.get("shared"):
        call("PUT", f"{nt}/networks/{ext['id']}", t, {"network": {"shared": True}})
    one("subnet", f"network_id={ext['id']}", {
        "name": f"{EXT_NET}-subnet", "network_id": ext["id"], "ip_version": 4, "cidr": EXT_CIDR,
        "gateway_ip": "198.51.100.1", "enable_dhcp": False,
        "allocation_pools": [{"start": EXT_POOL[0], "end": EXT_POOL[1]}]})
    for i, key in enumerate(("OPS", "VO"), start=1):
        pid, pname = f[f"{key}_PROJECT_ID"], f[f"{key}_PROJECT_NAME"]
        net = one("network", f"name={pname}-net&project_id={pid}", {
            "name": f"{pname}-net", "project_id": pid, "provider:network_type": "flat",
            "provider:physical_network": f"project{i}"})
        sub = one("subnet", f"network_id={net['id']}", {
            "name": f"{pname}-subnet", "network_id": net["id"], "project_id": pid, "ip_version": 4,
            "cidr": f"10.10.{i}.0/24"})
        rt = one("router", f"name={pname}-router&project_id={pid}", {
            "name": f"{pname}-router", "project_id": pid,
            "external_gateway_info": {"network_id": ext["id"]}})
        ports = call("GET", f"{nt}/ports?device_id={rt['id']}&network_id={net['id']}", t)[2]["ports"]
        if not ports:
            call("PUT", f"{nt}/routers/{rt['id']}/add_router_interface", t, {"subnet_id": sub["id"]})
        facts_save({f"{key}_NETWORK_ID": net["id"], f"{key}_ROUTER_ID": rt["id"]})
    facts_save({"EXTERNAL_NETWORK_ID": ext["id"], "EXTERNAL_NETWORK_NAME": EXT_NET})
    print(f"setup_cloud: network ready (external {EXT_NET} {ext['id']}, project networks and routers)")


def write_env():
    f = facts_load()
    sec = lambda name: os.path.join(SECRETS, name)
    ca = os.path.join(P, "tls", "ca.pem")
    ks_pub = f"https://127.0.0.1:{ENV['KS_APACHE_TLS_PORT']}/v3"
    iss = ENV["OIDC_ISSUER"]
    t = admin_token()
    nova_direct = f"http://127.0.0.1:{ENV['NOVA_PORT']}"
    ver = call("GET", f"{nova_direct}/v2.1/", t)[2]["version"]
    cinder_direct = f"http://127.0.0.1:{ENV['CINDER_PORT']}"
    cver = [v for v in call("GET", f"{cinder_direct}/", t, expect=(200, 300))[2]["versions"] if v["id"] == "v3.0"][0]
    env = {
        "FEDPROBE_PEERS_DIR": P,
        "PEERS_LOG_DIR": os.path.join(P, "log"),
        "KEYSTONE_URL": ks_pub,
        "KEYSTONE_HTTP_URL": f"http://127.0.0.1:{ENV['KS_APACHE_HTTP_PORT']}/v3",
        "KEYSTONE_DIRECT_URL": ENV["KS"],
        "OIDC_ISSUER": iss,
        "OIDC_DISCOVERY_URL": f"{iss}/.well-known/openid-configuration",
        "OIDC_TOKEN_ENDPOINT": f"{iss}/token",
        "OIDC_CLIENT_ID": "fedprobe",
        "OIDC_CLIENT_SECRET_FILE": sec("oidc_client_secret"),
        "OIDC_SCOPES": "openid,email,profile,eduperson_entitlement",  # comma-separated: no spaces in peers.env
        "OIDC_USER": "probe-monitor",
        "OIDC_USER_PASSWORD_FILE": sec("oidc_user_password"),
        "OIDC_REDIRECT_URI": "https://fedprobe.invalid/callback",
        "CA_CERT": ca,
        "IDP": "egi.eu",
        "PROTOCOL": "openid",
        "REGION": "RegionOne",
        "FEDERATED_GROUP_ID": f["FEDERATED_GROUP_ID"],
        "OPS_PROJECT_ID": f["OPS_PROJECT_ID"],
        "OPS_PROJECT_NAME": f["OPS_PROJECT_NAME"],
        "VO_PROJECT_ID": f["VO_PROJECT_ID"],
        "VO_PROJECT_NAME": f["VO_PROJECT_NAME"],
        "IMAGE_ID": f["IMAGE_ID"],
        "IMAGE_NAME": f["IMAGE_NAME"],
        "IMAGE_APPDB_ID": ENV["IMAGE_APPDB_ID"],
        "IMAGE_REGISTRY_REF": ENV["IMAGE_REGISTRY_REF"],
        "FLAVOR_NAME": "m1.probe",
        "FLAVOR_ID": f["FLAVOR_ID"],
        "FLAVOR_TINY_NAME": "m1.tiny",
        "FLAVOR_TINY_ID": f["FLAVOR_TINY_ID"],
        "NOVA_URL": f"https://127.0.0.1:{ENV['NOVA_TLS_PORT']}/v2.1",
        "NOVA_MIN_MICROVERSION": ver["min_version"],
        "NOVA_MAX_MICROVERSION": ver["version"],
        "GLANCE_URL": f"https://127.0.0.1:{ENV['GLANCE_TLS_PORT']}",
        "NEUTRON_URL": f"https://127.0.0.1:{ENV['NEUTRON_TLS_PORT']}",
        "NEUTRON_KIND": "stub" if ENV.get("FEDPROBE_NEUTRON_STUB") == "1" else "real",
        "NOVA_DIRECT_URL": f"{nova_direct}/v2.1",
        "GLANCE_DIRECT_URL": f"http://127.0.0.1:{ENV['GLANCE_PORT']}",
        "NEUTRON_DIRECT_URL": f"http://127.0.0.1:{ENV['NEUTRON_PORT']}",
        "PLACEMENT_URL": f"http://127.0.0.1:{ENV['PLACEMENT_PORT']}",
        # cinder and swift: the catalog URLs are these plus /<project id> and /AUTH_<project id>
        "CINDER_URL": f"https://127.0.0.1:{ENV['CINDER_TLS_PORT']}/v3",
        "CINDER_DIRECT_URL": f"{cinder_direct}/v3",
        "CINDER_MIN_MICROVERSION": cver["min_version"],
        "CINDER_MAX_MICROVERSION": cver["version"],
        "CINDER_EXPORT_DIR": os.path.join(P, "cinder", "nfs-export"),  # holds volume-<id> files
        "EXTERNAL_NETWORK_ID": f.get("EXTERNAL_NETWORK_ID", ""),
        "EXTERNAL_NETWORK_NAME": f.get("EXTERNAL_NETWORK_NAME", ""),
        "OPS_NETWORK_ID": f.get("OPS_NETWORK_ID", ""),
        "SWIFT_URL": f"https://127.0.0.1:{ENV['SWIFT_TLS_PORT']}/v1",
        "SWIFT_DIRECT_URL": f"http://127.0.0.1:{ENV['SWIFT_PORT']}/v1",
        "SWIFT_DEVICES_DIR": os.path.join(P, "swift", "node"),  # d1/objects/... (the one device)
        "ADMIN_USER": "admin",
        "ADMIN_PROJECT_NAME": "admin",
        "ADMIN_PASSWORD_FILE": sec("admin_password"),
        "USER_DOMAIN_NAME": "Default",
        "PROJECT_DOMAIN_NAME": "Default",
        "PASSWORD_USER": "probe-user",
        "PASSWORD_USER_ID": f["PASSWORD_USER_ID"],
        "PASSWORD_FILE": sec("probe_user_password"),
        "PASSWORD_PROJECT_NAME": f["OPS_PROJECT_NAME"],
        "APP_CRED_ID": f["APP_CRED_ID"],
        "APP_CRED_NAME": f["APP_CRED_NAME"],
        "APP_CRED_SECRET_FILE": sec("app_cred_secret"),
        "CLOUDS_YAML": os.path.join(P, "clouds.yaml"),
        "OS_CLOUD_NAME": "fedprobe-peers",
        "OS_CLOUD_APPCRED_NAME": "fedprobe-peers-appcred",
        "OS_CLOUD_OIDC_NAME": "fedprobe-peers-oidc",
    }
    rt = sec("oidc_refresh_token")
    if os.path.exists(rt) and os.path.getsize(rt) > 0:
        env["OIDC_REFRESH_TOKEN_FILE"] = rt
    with open(os.path.join(P, "peers.env.tmp"), "w") as out:
        for k, v in env.items():
            assert not any(c in str(v) for c in " \t\n\"'"), k
            out.write(f"{k}={v}\n")
    os.replace(os.path.join(P, "peers.env.tmp"), os.path.join(P, "peers.env"))

    q = lambda v: json.dumps(v)  # JSON strings are valid YAML scalars
    clouds = f"""# written by ci/peers/up.sh
clouds:
  fedprobe-peers:
    auth_type: password
    auth:
      auth_url: {q(ks_pub)}
      username: probe-user
      password: {q(secret("probe_user_password"))}
      project_name: {q(f["OPS_PROJECT_NAME"])}
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
    cacert: {q(ca)}
  fedprobe-peers-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: {q(ks_pub)}
      application_credential_id: {q(f["APP_CRED_ID"])}
      application_credential_secret: {q(secret("app_cred_secret"))}
    region_name: RegionOne
    interface: public
    identity_api_version: 3
    cacert: {q(ca)}
  fedprobe-peers-oidc:
    auth_type: v3oidcclientcredentials
    auth:
      auth_url: {q(ks_pub)}
      identity_provider: egi.eu
      protocol: openid
      client_id: fedprobe
      client_secret: {q(secret("oidc_client_secret"))}
      discovery_endpoint: {q(iss + "/.well-known/openid-configuration")}
      project_name: {q(f["OPS_PROJECT_NAME"])}
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
    cacert: {q(ca)}
"""
    fd = os.open(os.path.join(P, "clouds.yaml"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(clouds)
    print(f"setup_cloud: wrote {P}/peers.env and {P}/clouds.yaml")


if __name__ == "__main__":
    {"keystone": keystone, "storage": lambda: keystone(only_storage=True), "fixture": fixture,
     "network": network, "env": write_env}[sys.argv[1]]()

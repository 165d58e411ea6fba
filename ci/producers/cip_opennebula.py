#!/usr/bin/env python3
"""GLUE 2.1 JSON for an OpenNebula site, made by cloud-info-provider 1.2.0's
own GLUE objects, glue21json formatter and stdout publisher.

cloud-info-provider's OpenNebula provider was removed in 1.0.0 (the "Big
refactor", May 2025); every release on PyPI reads OpenStack only, and the last
release with it (0.13.0, GitHub only) cannot write GLUE 2.1 for an OpenNebula
share (its glue21 template reads share['project_name'] and the endpoint's CA,
which that provider never sets: KeyError). This provider is that 0.13.0
provider's logic on 1.2.0's provider API, making the same XML-RPC calls:
  one.templatepool.info(session, -3, -1, -1)   the VM templates (0.13.0:
      _get_one_templates), kept when in the share's group (auth.group, by
      default the VO's name) and, unless --all-images, when they carry
      cloudkeeper-one's CLOUDKEEPER_APPLIANCE_MPURI;
  one.user.info(session, -1)                   the connected user, for the
      endpoint's health (not in 0.13.0).
An image's GLUE ID is the template ID (what one.template.instantiate takes;
0.13.0 wrote "template#ID" for OCCI). OpenNebula has no flavors: no instance
types are published (0.13.0 took them from rOCCI's files). The share's
ProjectID is the group's name, as 0.13.0's share["project"].

usage: cip_opennebula.py SITE site.yaml --on-auth USER:PASS --on-rpcxml-endpoint URL
site.yaml: gocdb, endpoint (the XML-RPC URL), vos: [{name, auth: {group}}].
GOCDB is not reachable from the test machines: its lookup is answered
locally (gocdb_id/site_name), as ci/producers/cloud_info.sh does.
"""
import argparse
import sys
import xml.etree.ElementTree as ET
import xmlrpc.client

from cloud_info_provider import glue
from cloud_info_provider.formatters.glue import GLUE21Json
from cloud_info_provider.providers import base, utils
from cloud_info_provider.publishers.stdout import StdOutPublisher


class OpenNebulaProvider(base.BaseProvider):
    goc_service_type = "org.opennebula.xmlrpc"
    interface_name = "org.opennebula.xmlrpc"

    def __init__(self, opts):
        super().__init__(opts)
        self.session = opts.on_auth
        self.rpc = xmlrpc.client.ServerProxy(opts.on_rpcxml_endpoint)
        self.all_images = opts.all_images

    def call(self, method, *args):
        ok, value, code = getattr(self.rpc, method)(self.session, *args)[:3]
        if not ok:
            raise RuntimeError(f"{method}: {value} (0x{code:x})")
        return ET.fromstring(value)

    # IDs as the OpenStack provider makes them, the API named in the endpoint's
    def get_service_id(self):
        return f"{self.site_config['endpoint']}_cloud.compute"

    def get_manager_id(self):
        return f"{self.site_config['endpoint']}_cloud.compute_manager"

    def get_endpoint_id(self):
        return f"{self.site_config['endpoint']}_OpenNebula"

    def build_share_images(self, share, group, templates):
        for t in templates:
            if t.findtext("GNAME") != group:
                continue
            tt = t.find("TEMPLATE")
            attr = (lambda k: tt.findtext(k)) if tt is not None else (lambda k: None)
            mpuri = attr("CLOUDKEEPER_APPLIANCE_MPURI")
            if not (self.all_images or mpuri):
                continue
            other = {}
            if attr("CLOUDKEEPER_APPLIANCE_BASE_MPURI"):
                other["base_mpuri"] = attr("CLOUDKEEPER_APPLIANCE_BASE_MPURI")
            img = glue.CloudComputingImage(
                id=t.findtext("ID"),
                name=t.findtext("NAME"),
                osName=attr("CLOUDKEEPER_APPLIANCE_OS") or "UNKNOWN",
                osVersion=attr("CLOUDKEEPER_APPLIANCE_VERSION") or "UNKNOWN",
                osPlatform=attr("CLOUDKEEPER_APPLIANCE_ARCHITECTURE") or "UNKNOWN",
                description=attr("CLOUDKEEPER_APPLIANCE_DESCRIPTION") or "UNKNOWN",
                marketplace_url=mpuri,
                other_info=other,
            )
            img.add_associated_object(share)
            img.add_associated_object(self.endpoint)
            self.add_glue(img)

    def build_shares(self):
        templates = list(self.call("one.templatepool.info", -3, -1, -1))
        rules = []
        for vo in self.site_config.get("vos") or []:
            group = (vo.get("auth") or {}).get("group") or vo["name"]
            share_id = f"{self.get_endpoint_id()}_share_{vo['name']}_{group}"
            share = glue.Share(
                id=share_id,
                name=f"{vo['name']} - {group} share",
                project_id=group,
                other_info={"project_name": group},
                description=f"Share in service {self.get_endpoint_id()} for VO {vo['name']} (group {group})",
                instance_max_cpu=0, instance_min_cpu=0, instance_max_ram=0, instance_min_ram=0,
            )
            share.add_associated_object(self.service)
            share.add_associated_object(self.endpoint)
            self.build_share_images(share, group, templates)
            self.add_glue(share)
            rule = f"VO:{vo['name']}"
            rules.append(rule)
            policy = glue.MappingPolicy(id=f"{share_id}_Policy", rule=[rule])
            policy.add_associated_object(share)
            policy.add_association("PolicyUserDomain", vo["name"])
            self.add_glue(policy)
        access = glue.AccessPolicy(id=f"{self.endpoint.id}_policy", rule=rules)
        access.add_associated_object(self.endpoint)
        self.add_glue(access)

    def fetch(self):
        super().fetch()
        user = self.call("one.user.info", -1)
        self.endpoint.other_info.update({"user": user.findtext("NAME")})
        return self.objs


def main():
    site = sys.argv.pop(1)
    # No route to goc.egi.eu here; answer the lookup the way GOCDB would.
    utils.find_in_gocdb = lambda url, svc_type, insecure=False, timeout=None: {
        "gocdb_id": "fedprobe-1", "site_name": site}
    ap = argparse.ArgumentParser()
    base.BaseProvider.populate_parser(ap)
    ap.add_argument("--on-auth", required=True)
    ap.add_argument("--on-rpcxml-endpoint", required=True)
    ap.add_argument("--all-images", action="store_true")
    ap.add_argument("--insecure", action="store_true")
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--debug", action="store_true")
    opts = ap.parse_args()
    objs = OpenNebulaProvider(opts).fetch()
    StdOutPublisher(opts).publish(GLUE21Json().format(opts, objs))


if __name__ == "__main__":
    main()

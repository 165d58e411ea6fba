#!/usr/bin/env python3
"""cloud-info-provider's own code, on its own test fixtures, without a cloud.

Runs the real OpenStackProvider.fetch() and the real GLUE21Json formatter from
the installed PyPI package, with the OpenStack clients replaced by the fakes
the package ships in cloud_info_provider/tests/data.py (OS_FAKES), GOCDB and
the CA probe answered locally (no network here). Used when no local OpenStack
is up; ci/producers/cloud_info.sh runs it against the real one.

usage: cip_fixture.py ENDPOINT_URL SITE_NAME > glue.json
"""
import argparse
import sys
from unittest import mock

from cloud_info_provider.formatters.glue import GLUE21Json
from cloud_info_provider.providers import openstack as os_provider
from cloud_info_provider.tests import data

FAKES = data.OS_FAKES


def main():
    endpoint, site = sys.argv[1], sys.argv[2]

    class Provider(os_provider.OpenStackProvider):
        def __init__(self, opts):
            self.opts = opts
            self.site_config = {
                "gocdb": site,
                "endpoint": endpoint,
                "vos": [{"name": "vo.example", "auth": {"project_id": "fixture-project"}},
                        {"name": "ops", "auth": {"project_id": "fixture-ops"}}],
            }
            self._goc_info, self._ca_info, self.objs = {}, {}, {}
            self.project_id = None
            self.all_images = True
            self.select_flavors = "all"
            self.flavor_properties, self.image_properties = {}, {}
            self.last_working_auth = None
            self.exit_on_share_errors = False

        def _get_goc_info(self, url):
            return {"gocdb_id": "fixture-1", "site_name": site}

        def _get_ca_info(self, url):
            return {"issuer": "/CN=fixture CA", "trusted_cas": ["/CN=fixture CA"]}

        def rescope_project(self, auth=None, os_cloud=None):
            self.project_id = auth["project_id"]
            self.last_working_auth = auth
            self.nova = mock.Mock()
            self.nova.flavors.list.return_value = FAKES.flavors
            self.nova.servers.list.return_value = FAKES.servers
            self.nova.quotas.get.return_value = FAKES.quotas
            self.nova.api_version.get_string.return_value = "2.1"
            self.nova.versions.get_current.return_value = FAKES.version
            self.glance = mock.Mock()
            self.glance.images.list.return_value = FAKES.images
            self.glance.http_client.get_endpoint.return_value = endpoint.replace(":5000/v3", ":9292/")
            self.auth_plugin = mock.Mock()
            self.auth_plugin.get_access.return_value = FAKES.access
            self.session = mock.Mock()

    opts = argparse.Namespace(os_auth_type="v3oidcaccesstoken", auditor_role_cloud="", debug=False)
    glue = Provider(opts).fetch()
    print(GLUE21Json().format(opts, glue))


if __name__ == "__main__":
    main()

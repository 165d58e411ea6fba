"""Binds every port on its first segment, as an agentless 'other' VIF, status ACTIVE.

The peers run Neutron without any L2 agent. Without a mechanism driver that binds, every port
Nova asks for ends `binding_failed` and Nova refuses to boot on a network (PortBindingFailed).
Nova's fake virt driver plugs nothing, so a bound port is all it needs.
"""
from neutron_lib.api.definitions import portbindings
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api


class BindAll(api.MechanismDriver):
    def initialize(self):
        pass

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        if not context.segments_to_bind:
            return
        context.set_binding(context.segments_to_bind[0][api.ID], portbindings.VIF_TYPE_OTHER,
                            {portbindings.CAP_PORT_FILTER: True},
                            status=constants.PORT_STATUS_ACTIVE)

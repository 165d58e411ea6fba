"""smoke.sh helper: every entry of $FEDPROBE_PEERS_DIR/clouds.yaml authenticates with the real
openstacksdk (from the peers' venv), sees the fixture flavor and image, and finds the block
storage and object storage services in its catalog (list volumes, account metadata)."""
import os
import sys

import openstack

os.environ["OS_CLIENT_CONFIG_FILE"] = sys.argv[1]
for name in sys.argv[2:]:
    c = openstack.connect(cloud=name)
    flavors = {f.name for f in c.compute.flavors()}
    images = {i.name for i in c.image.images()}
    if "m1.probe" not in flavors or "egi-monitoring" not in images:
        sys.exit(f"{name}: flavors {sorted(flavors)} images {sorted(images)}")
    list(c.block_storage.volumes())
    c.object_store.get_account_metadata()
    print(f"{name}: project {c.current_project_id}")

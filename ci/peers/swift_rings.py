#!/usr/bin/env python3
"""Build swift's three rings (account, container, object) for one device per ring on 127.0.0.1,
one replica, in one python process (nine swift-ring-builder calls would cost ~5 s of start-up).
Run with the storage venv's python.

  swift_rings.py SWIFT_DIR OBJECT_PORT CONTAINER_PORT ACCOUNT_PORT
"""
import os
import sys

from swift.common.ring import RingBuilder


def main(swift_dir, ports):
    for kind, port in ports.items():
        # part power 8 (256 partitions), 1 replica, min_part_hours 1
        rb = RingBuilder(8, 1, 1)
        rb.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                    "device": "d1", "weight": 100, "meta": ""})
        rb.rebalance()
        rb.save(os.path.join(swift_dir, f"{kind}.builder"))
        rb.get_ring().save(os.path.join(swift_dir, f"{kind}.ring.gz"))
        print(f"swift_rings: {kind} ring: 127.0.0.1:{port}/d1, {rb.parts} partitions, 1 replica")


if __name__ == "__main__":
    d, o, c, a = sys.argv[1:5]
    main(d, {"object": o, "container": c, "account": a})

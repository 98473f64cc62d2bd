#!/usr/bin/env python3
"""Pushes COUNT one-layer images (a 1 KiB layer, a config, a manifest) to
a registry with CONCURRENCY clients on keep-alive connections, and prints
the images per second. Used by bench/notifications.sh.

Usage: push_small.py HOST:PORT COUNT CONCURRENCY PREFIX
"""

import hashlib
import http.client
import json
import os
import sys
import threading
import time

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def push(conn: http.client.HTTPConnection, repo: str, tag: str, seed: bytes) -> None:
    layer = seed + os.urandom(1024 - len(seed))
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed.hex()}).encode()
    for blob in (config, layer):
        conn.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest(blob)}", body=blob,
                     headers={"Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            raise SystemExit(f"blob upload answered {r.status}")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": len(layer)}],
    }).encode()
    conn.request("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest, headers={"Content-Type": MT_MANIFEST})
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        raise SystemExit(f"manifest PUT answered {r.status}")


def main() -> None:
    addr, count, conc, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    host, port = addr.rsplit(":", 1)
    errors = []

    def client(c: int) -> None:
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            for i in range(c, count, conc):
                push(conn, f"{prefix}/r{c}", f"t{i}", f"{prefix}-{i}".encode())
        except BaseException as e:  # reported below, never hidden
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(conc)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if errors:
        raise SystemExit(f"push failed: {errors[0]}")
    print(f"{count / elapsed:.1f}")


if __name__ == "__main__":
    main()

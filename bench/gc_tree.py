#!/usr/bin/env python3
"""Writes a registry:2 storage tree for bench/gc.sh, straight to disk.

    gc_tree.py ROOT MANIFESTS ORPHANS

MANIFESTS image manifests in 100 repositories, each tagged, each naming a
config and two layers of its own (so 4 blobs per manifest), plus ORPHANS
unreferenced blobs whose time is two hours back: garbage a collection
deletes. The layout is exactly what the registry writes (tests/compat_distribution.rs
checks it against distribution); writing it directly takes seconds where
50,000 pushes would take minutes. Run again, it only puts the orphans back.
"""
import hashlib
import json
import os
import sys
import time

ROOT = sys.argv[1]
MANIFESTS = int(sys.argv[2])
ORPHANS = int(sys.argv[3])
V2 = os.path.join(ROOT, "docker/registry/v2")
OLD = time.time() - 2 * 3600


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def blob(data, age=None):
    hexd = hashlib.sha256(data).hexdigest()
    path = os.path.join(V2, "blobs/sha256", hexd[:2], hexd, "data")
    if not os.path.exists(path):
        write(path, data)
    if age is not None:
        os.utime(path, (age, age))
    return "sha256:" + hexd


def link(repo, rel, digest):
    write(os.path.join(V2, "repositories", repo, rel), digest.encode())


if not os.path.exists(os.path.join(V2, "repositories")):
    for i in range(MANIFESTS):
        repo = f"bench/gc{i % 100}"
        config_bytes = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
        layer_bytes = [f"layer {i}.{j} ".encode() * 8 for j in range(2)]
        config = blob(config_bytes)
        layers = [blob(b) for b in layer_bytes]
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                       "size": len(config_bytes)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(b)}
                       for d, b in zip(layers, layer_bytes)],
        }).encode()
        m = blob(manifest)
        for d in [config] + layers:
            link(repo, f"_layers/sha256/{d[7:]}/link", d)
        link(repo, f"_manifests/revisions/sha256/{m[7:]}/link", m)
        link(repo, f"_manifests/tags/t{i}/current/link", m)
        link(repo, f"_manifests/tags/t{i}/index/sha256/{m[7:]}/link", m)
for i in range(ORPHANS):
    blob(f"orphan {i} ".encode() * 8, age=OLD)

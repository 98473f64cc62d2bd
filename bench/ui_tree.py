#!/usr/bin/env python3
"""Writes a registry:2 storage tree for bench/ui.sh, straight to disk.

    ui_tree.py ROOT REPOSITORIES TAGS_PER_REPOSITORY

REPOSITORIES repositories (team-NN/service-NNNNN), each with one image
manifest of its own (a config of its own and a layer all share), tagged
TAGS_PER_REPOSITORY times (v0 ... vN-1, then latest). The layout is what the
registry writes; writing it directly takes a minute where 100,000 tag PUTs
would take far longer. Does nothing when the tree exists.
"""
import hashlib
import json
import os
import sys

ROOT, REPOS, TAGS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
V2 = os.path.join(ROOT, "docker/registry/v2")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def blob(data):
    hexd = hashlib.sha256(data).hexdigest()
    path = os.path.join(V2, "blobs/sha256", hexd[:2], hexd, "data")
    if not os.path.exists(path):
        write(path, data)
    return "sha256:" + hexd


if os.path.exists(os.path.join(V2, "repositories")):
    sys.exit(0)
layer_bytes = b"shared layer " * 1000
layer = blob(layer_bytes)
for i in range(REPOS):
    repo = os.path.join(V2, "repositories", f"team-{i % 50:02d}", f"service-{i:05d}")
    config_bytes = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": [f"N={i}"]}}).encode()
    config = blob(config_bytes)
    manifest = blob(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": len(layer_bytes)}],
    }).encode())
    for d in (config, layer):
        write(os.path.join(repo, "_layers/sha256", d[7:], "link"), d.encode())
    write(os.path.join(repo, "_manifests/revisions/sha256", manifest[7:], "link"), manifest.encode())
    for t in range(TAGS):
        tag = "latest" if t == TAGS - 1 else f"v{t}"
        write(os.path.join(repo, "_manifests/tags", tag, "current/link"), manifest.encode())
        write(os.path.join(repo, "_manifests/tags", tag, "index/sha256", manifest[7:], "link"), manifest.encode())

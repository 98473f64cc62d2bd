#!/usr/bin/env python3
"""Writes a single-layer image as a docker-archive tarball (the format of
`docker save`), which `ctr images import` reads. Only the standard library.

    mkimage.py OUT.tar NAME:TAG --entrypoint '["/pause"]' \
        --file /src/path:/dest/path[:mode] ... --symlink /bin/sh:/bin/busybox ...

Everything is deterministic (mtime 0, uid/gid 0), so the same inputs give the
same image ID.
"""
import argparse
import hashlib
import io
import json
import tarfile


def add_dirs(tar, seen, path):
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d in seen:
            continue
        seen.add(d)
        ti = tarfile.TarInfo(d)
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
        tar.addfile(ti)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("ref")
    ap.add_argument("--entrypoint", default="null")
    ap.add_argument("--cmd", default="null")
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--symlink", action="append", default=[])
    ap.add_argument("--dir", action="append", default=[])
    a = ap.parse_args()

    layer = io.BytesIO()
    seen = set()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d in a.dir:
            add_dirs(t, seen, d.rstrip("/") + "/x")
        for spec in a.file:
            fields = spec.split(":")
            src, dest = fields[0], fields[1]
            mode = int(fields[2], 8) if len(fields) > 2 else 0o755
            add_dirs(t, seen, dest)
            data = open(src, "rb").read()
            ti = tarfile.TarInfo(dest.lstrip("/"))
            ti.size = len(data)
            ti.mode = mode
            t.addfile(ti, io.BytesIO(data))
        for spec in a.symlink:
            link, target = spec.split(":")
            add_dirs(t, seen, link)
            ti = tarfile.TarInfo(link.lstrip("/"))
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            ti.mode = 0o777
            t.addfile(ti)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()

    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": json.loads(a.entrypoint),
            "Cmd": json.loads(a.cmd),
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "e2e/cluster/mkimage.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.split(":")[1] + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [a.ref], "Layers": [layer_name]}]

    with tarfile.open(a.out, mode="w", format=tarfile.PAX_FORMAT) as out:
        for name, data in ((config_name, config_bytes), (layer_name, layer_bytes),
                           ("manifest.json", json.dumps(manifest).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            out.addfile(ti, io.BytesIO(data))
    print(config_name[:-5])


if __name__ == "__main__":
    main()

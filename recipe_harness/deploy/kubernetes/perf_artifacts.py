"""Bring aiperf's artifacts of a perf Job back to this machine.

A perf Job writes ``profile_export_aiperf.json`` (and ``.csv``) under a PVC. A short-lived
helper pod mounts the same claims read-only (on the same node, for ReadWriteOnce claims), finds
the files written since the Job started and prints them as one base64 tar between two marker
lines; the harness reads that from the pod's log and unpacks it. A Job that prints such a block
itself needs no helper.
"""

from __future__ import annotations

import base64
import io
import math
import re
import tarfile
import time
from pathlib import Path
from typing import Any

BEGIN = "RH-ARTIFACTS-BEGIN"
END = "RH-ARTIFACTS-END"
NONE = "RH-ARTIFACTS-NONE"
PATTERN = "profile_export_aiperf.*"

# POSIX sh + find/tar/base64: runs in busybox and in any distro image.
SCRIPT = f"""set -eu
cd /
LIST=""
for root in $RH_ROOTS; do
  rel="${{root#/}}"
  found=$(find "$rel" -type f -name '{PATTERN}' -mmin "-$RH_MINUTES" 2>/dev/null || true)
  LIST="$LIST $found"
done
if [ -z "$(echo $LIST)" ]; then echo "{NONE} under $RH_ROOTS"; exit 3; fi
echo {BEGIN}
tar czf - $LIST | base64
echo {END}
"""

_BLOCK = re.compile(rf"^{BEGIN}\s*$(.*?)^{END}\s*$", re.S | re.M)


def minutes_since(started: float, now: float | None = None) -> int:
    """``find -mmin`` window covering a Job that started at ``started`` (epoch seconds)."""
    return max(1, math.ceil(((now or time.time()) - started) / 60.0) + 2)


def extract(log_text: str, dest: Path) -> list[Path]:
    """Unpack every marked block of ``log_text`` under ``dest``; returns the files written."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written: list[Path] = []
    for block in _BLOCK.findall(log_text):
        data = base64.b64decode("".join(block.split()))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                target = (dest / member.name).resolve()
                if not member.isfile() or not str(target).startswith(str(root) + "/"):
                    continue  # no links, devices or paths leaving dest
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    continue
                target.write_bytes(src.read())
                written.append(target)
    return written


def pvc_mounts(job: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The Job pod's PVC volumes and the mounts of them, as a read-only helper pod needs them."""
    spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes") or []
              if isinstance(v, dict) and isinstance(v.get("persistentVolumeClaim"), dict)}
    volumes = [{"name": n, "persistentVolumeClaim": {"claimName": c, "readOnly": True}} for n, c in sorted(claims.items())]
    mounts, seen = [], set()
    for c in spec.get("containers") or []:
        for m in c.get("volumeMounts") or []:
            if m.get("name") in claims and m.get("mountPath") not in seen:
                seen.add(m["mountPath"])
                mount = {"name": m["name"], "mountPath": m["mountPath"], "readOnly": True}
                if m.get("subPath"):
                    mount["subPath"] = m["subPath"]
                mounts.append(mount)
    return volumes, mounts


def helper_pod(name: str, image: str, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]], minutes: int,
               node: str | None, labels: dict[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "collect",
            "image": image,
            "command": ["sh", "-c", SCRIPT],
            "env": [{"name": "RH_ROOTS", "value": " ".join(m["mountPath"] for m in mounts)},
                    {"name": "RH_MINUTES", "value": str(minutes)}],
            "volumeMounts": mounts,
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        }],
        "volumes": volumes,
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}

"""Hardware profiles of ``thresholds.yaml`` as the GPU systems the performance model knows.

A profile id names a GPU (``h200-sxm``, ``h100-sxm``, ``b200``, ``gb200`` ...); :func:`system_of`
maps it to the system's name in the model and its memory per GPU. Memory figures are the
``mem_capacity`` of AIConfigurator 0.12.0's system files (``aiconfigurator_core/systems/<name>.yaml``,
bytes as ``nvidia-smi`` reports them), so the static memory rule and the model agree on the GPU.
A profile that names no modelled GPU (``cpu-mocker``, a typo) is reported with the ids known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GIB = 1 << 30


@dataclass(frozen=True)
class GpuSystem:
    name: str            # the model's system name, e.g. h200_sxm
    label: str           # e.g. H200 SXM
    memory_bytes: int    # per GPU
    gpus_per_node: int

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB


SYSTEMS: dict[str, GpuSystem] = {s.name: s for s in (
    GpuSystem("h100_sxm", "H100 SXM", 85899345920, 8),
    GpuSystem("h100_pcie", "H100 PCIe", 85899345920, 8),
    GpuSystem("h200_sxm", "H200 SXM", 151397597184, 8),
    GpuSystem("b200_sxm", "B200 SXM", 193273528320, 8),
    GpuSystem("b300_sxm", "B300 SXM", 288400343040, 8),
    GpuSystem("gb200", "GB200", 198674743296, 4),
    GpuSystem("gb300", "GB300", 298013687808, 4),
    GpuSystem("a100_sxm", "A100 SXM", 85899345920, 8),
    GpuSystem("a100_pcie", "A100 PCIe", 85899345920, 8),
    GpuSystem("l40s", "L40S", 48305799168, 8),
    GpuSystem("l4", "L4", 25769803776, 8),
)}

# profile id (lower case, '_' and ' ' read as '-') -> system name
_ALIASES = {
    "h100": "h100_sxm", "h100-sxm": "h100_sxm", "h100-sxm5": "h100_sxm", "h100-80gb": "h100_sxm",
    "h100-pcie": "h100_pcie",
    "h200": "h200_sxm", "h200-sxm": "h200_sxm", "h200-141gb": "h200_sxm",
    "b200": "b200_sxm", "b200-sxm": "b200_sxm", "hgx-b200": "b200_sxm", "dgx-b200": "b200_sxm",
    "b300": "b300_sxm", "b300-sxm": "b300_sxm",
    "gb200": "gb200", "gb200-nvl72": "gb200", "gb300": "gb300", "gb300-nvl72": "gb300",
    "a100": "a100_sxm", "a100-sxm": "a100_sxm", "a100-80gb": "a100_sxm", "a100-pcie": "a100_pcie",
    "l40s": "l40s", "l4": "l4",
}


class UnmappedProfile(Exception):
    """The hardware profile names no GPU system the model knows."""


def system_of(profile_id: str) -> GpuSystem:
    key = re.sub(r"[\s_]+", "-", profile_id.strip().lower())
    name = _ALIASES.get(key)
    if name is None:
        if "cpu" in key or "mocker" in key:
            raise UnmappedProfile(f"hardware profile {profile_id!r} is a CPU profile: no GPU system to model")
        known = ", ".join(sorted(set(_ALIASES.values())))
        raise UnmappedProfile(f"hardware profile {profile_id!r} names no GPU system the model knows ({known}; "
                              "profile ids such as h200-sxm, h100-sxm, b200, gb200 map to them)")
    return SYSTEMS[name]

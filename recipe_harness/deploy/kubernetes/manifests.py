"""What the Kubernetes target applies for a recipe: the DGD, the objects that travel with it, the
model-cache and perf manifests, and the Secrets and ConfigMaps they read.

A recipe's deploy file is applied as its README says, ``kubectl apply -f deploy.yaml``: every
document of it, not only the DynamoGraphDeployment. Upstream recipes keep the engine configs
their workers mount (``--extra-engine-args /config/...``) as ConfigMaps in the same file, and
multi-node ones a ComputeDomain. Left out, the pods wait in ``ContainerCreating`` for volumes that
never come (``FailedMount: configmap "prefill-config" not found``). The companions are applied in
file order before the DGD; a ConfigMap the graph mounts or reads that another YAML file of the
recipe folder holds (``configmap.yaml`` beside ``deploy.yaml``) comes too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recipe_harness.model.backends import config_maps
from recipe_harness.model.bundle import LoadedRecipe

DGD_KIND = "DynamoGraphDeployment"


@dataclass
class Manifests:
    dgd: dict[str, Any]
    model_cache: list[dict[str, Any]] = field(default_factory=list)
    perf: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    companions: list[dict[str, Any]] = field(default_factory=list)  # applied before the DGD, in order


def walk_maps(obj: Any) -> Iterator[dict]:
    """Every mapping inside a manifest body, depth first."""
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from walk_maps(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk_maps(v)


def referenced_secrets(manifests: Manifests) -> list[str]:
    """Secrets the manifests read env from (``envFromSecret``, ``secretRef``, ``secretKeyRef``)."""
    names: set[str] = set()
    for body in [manifests.dgd, *manifests.model_cache, *manifests.perf]:
        for node in walk_maps(body):
            if isinstance(node.get("envFromSecret"), str):
                names.add(node["envFromSecret"])
            for key in ("secretRef", "secretKeyRef"):
                ref = node.get(key)
                if isinstance(ref, dict) and isinstance(ref.get("name"), str):
                    names.add(ref["name"])
    return sorted(names)


def referenced_config_maps(body: Any) -> list[str]:
    """ConfigMaps a manifest mounts (``volumes[].configMap``, projected sources) or reads env from
    (``configMapRef``, ``configMapKeyRef``), in the order they appear."""
    names: list[str] = []
    for node in walk_maps(body):
        for key in ("configMap", "configMapRef", "configMapKeyRef"):
            ref = node.get(key)
            if isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"] not in names:
                names.append(ref["name"])
    return names


def companions(recipe: LoadedRecipe) -> list[dict[str, Any]]:
    """The documents of the deploy file besides the DGD, in file order, then the ConfigMaps the
    DGD references that only another YAML file of the recipe folder holds."""
    out = [d.body for d in recipe.deploy_documents  # nameless or kindless ones: the schema checks report them
           if isinstance(d.body, dict) and isinstance(d.kind, str) and d.kind not in (DGD_KIND, "Namespace")
           and isinstance(d.name, str)]  # a Namespace: the run has its own
    have = {(b.get("kind"), (b.get("metadata") or {}).get("name")) for b in out}
    dgd = recipe.dgd_documents[0].body if recipe.dgd_documents else None
    maps = config_maps(recipe)
    for name in referenced_config_maps(dgd):
        doc = maps.get(name)
        if doc is not None and ("ConfigMap", name) not in have and isinstance(doc.body, dict):
            out.append(doc.body)
    return out

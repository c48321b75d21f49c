"""Images (RH340-RH349): pinned tags, one Dynamo release, runtime images that match the engine, registry hosts
that are not a typo of a well-known registry, no placeholder images. Every finding points at the image's line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from recipe_harness.findings import Finding
from recipe_harness.load.render.envsubst import VAR_RE
from recipe_harness.model import Service
from recipe_harness.model.backends import Source
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.model.shell import containers
from recipe_harness.static.rules import rule
from recipe_harness.static.rules.common import at, emit, known, workers


@dataclass
class ImageRef:
    text: str
    src: Source
    owner: str              # service or Job/Pod name
    service: Service | None = None

    @property
    def name(self) -> str:
        ref = self.text.split("@", 1)[0]
        last = ref.rsplit("/", 1)[-1]
        return ref[: len(ref) - len(last)] + last.split(":", 1)[0]

    @property
    def tag(self) -> str | None:
        ref = self.text.split("@", 1)[0]
        last = ref.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else None

    @property
    def digest(self) -> str | None:
        return self.text.split("@", 1)[1] if "@" in self.text else None

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1].lower()


def _find_image(node: object, image: str, path: tuple) -> tuple | None:
    """Document path of the first ``image: <image>`` entry below ``node`` (main container, podTemplate
    containers, frontend sidecar ...), depth first in document order."""
    if isinstance(node, dict):
        if node.get("image") == image:
            return path + ("image",)
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return None
    for key, value in items:
        if isinstance(value, (dict, list)):
            hit = _find_image(value, image, path + (key,))
            if hit is not None:
                return hit
    return None


def _service_image_path(svc: Service, image: str) -> tuple:
    """Where the service's image is written: its container's ``image`` key, else the service."""
    candidates = []
    if svc.args_path:
        base = svc.args_path[:-1] if svc.args_path[-1] in ("args", "command") else svc.args_path
        candidates.append(base + ("image",))
    candidates.append(svc.path + ("extraPodSpec", "mainContainer", "image"))
    for path in candidates:
        node: object = svc.raw
        for part in path[len(svc.path):]:
            node = node.get(part) if isinstance(node, dict) else None
        if node == image:
            return path
    return _find_image(svc.raw, image, svc.path) or svc.path


def images(recipe: LoadedRecipe) -> list[ImageRef]:
    out: list[ImageRef] = []
    dep = recipe.deployment
    if dep is not None:
        for svc in dep.services:
            if svc.image:
                path = _service_image_path(svc, svc.image)
                if dep.document.get(*path) != svc.image:
                    path = svc.path
                out.append(ImageRef(svc.image, at(dep.document, path), svc.name, svc))
    for doc in recipe.documents():
        for c in containers(doc, init=True):
            image = c.spec.get("image")
            if isinstance(image, str):
                out.append(ImageRef(image, at(doc, c.path + ("image",)), f"{doc.kind} {doc.name}"))
    return out


@rule("RH340", "images", "Every image is pinned: an explicit tag other than latest (or a digest), no unexpanded variables.",
      "use a release tag such as nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1 (or an @sha256 digest)")
def pinned(recipe: LoadedRecipe) -> Iterator[Finding]:
    for img in images(recipe):
        if img.digest or placeholder(img.text) or VAR_RE.search(img.text):
            continue  # a placeholder is RH345's, a ${VAR} template variable RH208's
        tag = img.tag
        if "$" in img.text or "{" in img.text:
            why = "contains an unexpanded variable (kubectl does not substitute it)"
        elif tag is None:
            why = "has no tag (it resolves to :latest and changes under the recipe)"
        elif tag.lower() == "latest":
            why = "uses the moving tag :latest"
        else:
            continue
        yield emit("RH340", recipe, img.src, f"{img.owner}: image {img.text!r} {why}")


_DYNAMO = re.compile(r"(?:^|/)ai-dynamo/[^/]+$")


@rule("RH341", "images", "All Dynamo runtime images of a deployment are the same Dynamo release.",
      "use one tag for every nvcr.io/nvidia/ai-dynamo/* image of the DGD (frontend and workers talk one protocol)")
def one_release(recipe: LoadedRecipe) -> Iterator[Finding]:
    first: ImageRef | None = None
    for img in images(recipe):
        if img.service is None or not _DYNAMO.search(img.name) or img.tag is None or placeholder(img.text) \
                or img.tag.lower() == "latest":
            continue  # a placeholder tag (:my-tag, RH345) or :latest (RH340) is not a release
        if first is None:
            first = img
        elif img.tag != first.tag:
            yield emit("RH341", recipe, img.src,
                       f"{img.owner} runs Dynamo {img.tag} ({img.text}) but {first.owner} runs {first.tag} ({first.text})")


_KEYWORDS = {"vllm": ("vllm",), "sglang": ("sglang",), "trtllm": ("tensorrtllm", "tensorrt-llm", "trtllm")}


def _image_backend(basename: str) -> str | None:
    found = [b for b, words in _KEYWORDS.items() if any(w in basename for w in words)]
    return found[0] if len(found) == 1 else None


@rule("RH342", "images",
      "A worker's runtime image is built for its engine (vllm-runtime for dynamo.vllm, sglang-runtime, "
      "tensorrtllm-runtime).",
      "use the runtime image of the worker's backend, e.g. nvcr.io/nvidia/ai-dynamo/sglang-runtime:<release>")
def runtime_matches_engine(recipe: LoadedRecipe) -> Iterator[Finding]:
    by_service = {img.owner: img for img in images(recipe) if img.service is not None}
    for svc, cfg in workers(recipe):
        img = by_service.get(svc.name)
        if img is None or not known(cfg) or cfg.backend == "mocker":
            continue
        built_for = _image_backend(img.basename)
        if built_for is not None and built_for != cfg.backend:
            yield emit("RH342", recipe, img.src,
                       f"{svc.name} runs {cfg.module or cfg.backend} in image {img.text!r}, built for {built_for}")


_FRAMEWORK_NAMES = {"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm"}


@rule("RH343", "images", "The DGD's backendFramework names the engine its workers run.",
      "set spec.backendFramework to vllm, sglang or trtllm as the workers' python -m dynamo.<backend>")
def framework_matches(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None or not dep.framework:
        return
    fw = str(dep.framework).lower()
    for svc, cfg in workers(recipe):
        if cfg.module and cfg.backend in _FRAMEWORK_NAMES and cfg.backend != fw:
            yield emit("RH343", recipe, at(dep.document, ("spec", "backendFramework")),
                       f"backendFramework is {fw} but {svc.name} runs {cfg.module}")
            return


# Registries images are commonly pulled from; a host one edit away from one of them is a typo.
WELL_KNOWN_REGISTRIES = ("nvcr.io", "docker.io", "registry-1.docker.io", "index.docker.io", "ghcr.io", "quay.io",
                         "registry.k8s.io", "k8s.gcr.io", "gcr.io", "public.ecr.aws", "mcr.microsoft.com",
                         "registry.gitlab.com", "docker.elastic.co", "registry.access.redhat.com",
                         "registry.redhat.io")


def registry_host(image: str) -> str | None:
    """The registry host of an image reference (``nvcr.io`` of ``nvcr.io/nvidia/x:1``), ``None`` for Docker Hub
    short names (``python:3.12``, ``library/busybox``): the first path part counts as a host when it has a dot or
    a port, or is ``localhost`` (the rule of the Docker reference grammar)."""
    if "/" not in image:
        return None
    first = image.split("/", 1)[0]
    return first.lower() if ("." in first or ":" in first or first == "localhost") else None


def _one_edit(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one insertion, deletion, substitution or swap of adjacent characters."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[i:] == long_[i + 1:]


def registry_typo(host: str) -> str | None:
    """The well-known registry ``host`` is one typo away from, if it is not one itself."""
    bare = host.split(":", 1)[0]
    if bare in WELL_KNOWN_REGISTRIES or bare.endswith((".gcr.io", ".pkg.dev", ".amazonaws.com", ".azurecr.io")):
        return None
    return next((r for r in WELL_KNOWN_REGISTRIES if _one_edit(bare, r)), None)


@rule("RH344", "images", "An image's registry host is not one typo away from a well-known registry (nvcr.io, docker.io, "
      "ghcr.io, quay.io, registry.k8s.io, gcr.io, public.ecr.aws ...).",
      "correct the registry host; a look-alike host fails the pull at best and serves someone else's image at worst")
def registry_typos(recipe: LoadedRecipe) -> Iterator[Finding]:
    for img in images(recipe):
        host = registry_host(img.text)
        close = registry_typo(host) if host else None
        if close is not None:
            yield emit("RH344", recipe, img.src, f"{img.owner}: image {img.text!r} is pulled from {host!r}, "
                                                 f"one typo away from {close!r}")


_PLACEHOLDER_PART = re.compile(r"^(?:my|your)[-_.]|^(?:replace[-_]?me|replace[-_].*|changeme|change[-_]me|todo|"
                               r"tbd|xxx+|placeholder|example|registry\.example\.com|.*\.example\.(?:com|org))$",
                               re.IGNORECASE)


def placeholder(image: str) -> str | None:
    """The part of an image reference that is a placeholder to fill in (``<tag>``, ``my-registry``, ``:my-tag``,
    ``your-org``, ``REPLACE-IMAGE``), if any."""
    if "<" in image or ">" in image:
        return image[image.find("<"): image.find(">") + 1] if "<" in image and ">" in image else image
    ref = image.split("@", 1)[0]
    parts = ref.split("/")
    last = parts[-1]
    name, _, tag = last.partition(":")
    for part in [*parts[:-1], name, tag]:
        if part and _PLACEHOLDER_PART.match(part):
            return part
    return None


@rule("RH345", "images", "No placeholder image (my-registry/..., :my-tag, <image>, your-..., REPLACE-ME) is left to fill in.",
      "put the real image reference, e.g. nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1, or build and push the "
      "image the README describes and name it here")
def placeholders(recipe: LoadedRecipe) -> Iterator[Finding]:
    for img in images(recipe):
        part = placeholder(img.text)
        if part is not None:
            yield emit("RH345", recipe, img.src, f"{img.owner}: image {img.text!r} is a placeholder ({part!r} is "
                                                 "to be filled in)")

"""Images (RH340-RH349): pinned tags, one Dynamo release, runtime images that match the engine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..backends import Source
from ..bundle import LoadedRecipe
from ..findings import Finding
from ..model import Service
from ..shell import containers
from . import rule
from .common import at, emit, known, workers


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


def _service_image_path(svc: Service) -> tuple:
    if svc.args_path:
        return svc.args_path[:-1] + ("image",)
    if "extraPodSpec" in (svc.raw or {}):
        return svc.path + ("extraPodSpec", "mainContainer", "image")
    return svc.path


def images(recipe: LoadedRecipe) -> list[ImageRef]:
    out: list[ImageRef] = []
    dep = recipe.deployment
    if dep is not None:
        for svc in dep.services:
            if svc.image:
                path = _service_image_path(svc)
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
        if img.digest:
            continue
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
        if img.service is None or not _DYNAMO.search(img.name) or img.tag is None:
            continue
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

"""Image hygiene through the CLI: registry look-alikes (RH344), placeholders (RH345) rather than version skew,
and every image finding at the line of its ``image:``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_harness.static.rules.images import placeholder, registry_host, registry_typo

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "fixtures" / "images" / "recipes"
CLI = Path(sys.executable).with_name("recipe-harness")


def check(path: Path) -> list[tuple[str, str, int, int]]:
    proc = subprocess.run([str(CLI), "check", "--format", "json", str(path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stderr
    out = []
    for f in json.loads(proc.stdout)["findings"]:
        if f["rule"].startswith("RH34"):
            out.append((f["rule"], str(Path(f["file"]).resolve().relative_to(RECIPES.resolve())), f["line"], f["col"]))
    return sorted(out)


def line_of(rel: str, text: str) -> tuple[int, int]:
    for n, line in enumerate((RECIPES / rel).read_text().splitlines(), 1):
        if text in line:
            return n, line.index(text) + 1
    raise AssertionError(f"{text!r} not in {rel}")


def test_findings_point_at_the_image_lines() -> None:
    beta, flat = "tiny/beta/gaie/deploy.yaml", "tiny/vllm/latest-frontend/deploy.yaml"
    assert check(RECIPES) == sorted([
        ("RH345", beta, *line_of(beta, "my-registry/dynamo-epp:my-tag")),  # a placeholder, not Dynamo version skew
        ("RH344", beta, *line_of(beta, "nvrc.io/")),
        ("RH340", flat, *line_of(flat, "nvcr.io/nvidia/ai-dynamo/vllm-runtime:latest")),  # a container without command/args: still its line
    ])


@pytest.mark.parametrize(("host", "close"), [
    ("nvrc.io", "nvcr.io"), ("ncr.io", "nvcr.io"), ("nvcr.oi", "nvcr.io"), ("dokcer.io", "docker.io"),
    ("quai.io", "quay.io"), ("registry.k8.io", "registry.k8s.io"), ("ghrc.io", "ghcr.io"), ("pubic.ecr.aws", "public.ecr.aws"),
    ("nvcr.io", None), ("gcr.io", None), ("ghcr.io", None), ("us.gcr.io", None), ("europe-docker.pkg.dev", None),
    ("localhost:5000", None), ("registry.internal.example.net", None),
])
def test_registry_typos(host: str, close: str | None) -> None:
    """One insertion, deletion, substitution or adjacent swap from a well-known registry; known hosts pass
    (gcr.io and ghcr.io are one edit apart and both real)."""
    assert registry_typo(host) == close


@pytest.mark.parametrize(("image", "part"), [
    ("my-registry/epp:v1", "my-registry"), ("ghcr.io/org/epp:my-tag", "my-tag"), ("<your-image>", "<your-image>"),
    ("your-org/img:1", "your-org"), ("REPLACE-IMAGE", "REPLACE-IMAGE"), ("registry.example.com/a:1", "registry.example.com"),
    ("nvcr.io/nvidia/ai-dynamo/sglang-runtime:1.6.0-deepseek-v4.1-flash-dev.1", None), ("python:3.12-slim", None),
    ("mytool/x:1", None), ("nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1", None),
])
def test_placeholders(image: str, part: str | None) -> None:
    assert placeholder(image) == part


def test_registry_host_follows_the_reference_grammar() -> None:
    assert registry_host("python:3.12") is None and registry_host("library/busybox:1") is None
    assert registry_host("nvcr.io/nvidia/x:1") == "nvcr.io" and registry_host("localhost:5000/a") == "localhost:5000"

"""The mocker twins write only flags the mocker they run accepts, and both twins write the same ones.

The mocker exits on an unknown flag, so a twin whose flags its image lacks never starts
(CrashLoopBackOff). The flags the shipped release (``.venv-dynamo``: ai-dynamo
``DEFAULT_DYNAMO_VERSION``) takes are checked against the installed mocker itself: its
``--help`` and its own argument parser (``dynamo.mocker.args.parse_args``) run on every
worker's arguments of every recipe, the Kubernetes twin's and the local twin's. Older releases
are checked against the per-release table. The two twins' arguments for a worker differ only in
the builder's parameters (``recipe_harness.deploy.mocker``): model path, served name, DP cap.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recipe_harness.deploy import DeployError
from recipe_harness.deploy.kubernetes.target import KubeOptions, KubernetesTarget
from recipe_harness.deploy.kubernetes.twin import (
    DEFAULT_DYNAMO_VERSION,
    MOCKER_FLAGS,
    TwinOptions,
    mocker_cli,
    mocker_twin,
)
from recipe_harness.deploy.twin import Caps, plan
from recipe_harness.load.discovery import discover
from recipe_harness.model.backends import engine_config
from recipe_harness.model.bundle import LoadedRecipe

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import NAMESPACES, EmulatedCluster  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "recipe-harness"
DYNAMO_PY = ROOT / ".venv-dynamo" / "bin" / "python"
needs_dynamo = pytest.mark.skipif(not DYNAMO_PY.exists(), reason=f"{DYNAMO_PY} missing (run `recipe-harness setup`)")
RECIPE_ROOTS = [ROOT / "recipes", ROOT / "fixtures" / "upstream-patterns" / "recipes",
                ROOT / "fixtures" / "upstream-patterns" / "recipes-moe", ROOT / "fixtures" / "local" / "sidecar",
                ROOT / "fixtures" / "local" / "kv-events"]
MOCKER = ["python3", "-m", "dynamo.mocker"]
SHIPPED = tuple(int(x) for x in DEFAULT_DYNAMO_VERSION.split("."))
DISAGG = "qwen3-32b/vllm/disagg-kv-router"   # prefill + decode workers, --max-model-len set

# Runs the installed mocker's own parser on each argv (JSON on stdin), one result per argv.
PARSE = textwrap.dedent("""
    import contextlib, io, json, sys, warnings
    from dynamo.mocker.args import parse_args
    out = []
    for argv in json.load(sys.stdin):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ns = parse_args(argv)
        except SystemExit as exc:
            out.append({"ok": False, "error": err.getvalue().strip().splitlines()[-1:], "code": exc.code})
            continue
        except ValueError as exc:
            out.append({"ok": False, "error": [str(exc)]})
            continue
        out.append({"ok": True, "mode": ns.disaggregation_mode, "max_model_len": ns.max_model_len,
                    "block_size": ns.block_size, "model_name": ns.model_name, "dp_size": ns.dp_size})
    print(json.dumps(out))
""")


def parse_with_installed_mocker(argvs: list[list[str]]) -> list[dict]:
    proc = subprocess.run([str(DYNAMO_PY), "-c", PARSE], input=json.dumps(argvs), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_all() -> list[LoadedRecipe]:
    out = []
    for root in RECIPE_ROOTS:
        for found in discover(root).recipes:
            recipe = LoadedRecipe.load(found)
            if recipe.deployment is not None:
                out.append(recipe)
    return out


def load(root: Path, recipe_id: str) -> LoadedRecipe:
    found = [r for r in discover(root).recipes if r.id == recipe_id]
    assert found, f"recipe {recipe_id} missing under {root}"
    return LoadedRecipe.load(found[0])


def retagged(tmp_path: Path, version: str, recipe_id: str = DISAGG) -> LoadedRecipe:
    """A copy of a reference recipe whose Dynamo images are of release ``version``."""
    root = tmp_path / f"recipes-{version}"
    model = recipe_id.split("/")[0]
    shutil.copytree(ROOT / "recipes" / model, root / model)
    for path in root.rglob("*.yaml"):
        text = path.read_text()
        assert ":1.6.1" in text or "deploy" not in path.name
        path.write_text(re.sub(r"(ai-dynamo/[\w.-]+):1\.6\.1", rf"\1:{version}", text))
    return load(root, recipe_id)


def mocker_containers(dgd: dict) -> dict[str, dict]:
    """The twin's mocker containers by service name (v1alpha1 services and v1beta1 components)."""
    spec = dgd["spec"]
    out = {}
    for name, node in (spec.get("services") or {}).items():
        container = ((node.get("extraPodSpec") or {}).get("mainContainer")) or {}
        if container.get("command") == MOCKER:
            out[name] = container
    for comp in spec.get("components") or []:
        for container in comp["podTemplate"]["spec"]["containers"]:
            if container.get("command") == MOCKER:
                out[comp["name"]] = container
    return out


def images(dgd: dict) -> set[str]:
    text = json.dumps(dgd)
    return set(re.findall(r'"image": "([^"]+)"', text))


ALL = load_all()
NO_CAPS = Caps(processes_per_service=1000, worker_processes=1000, data_parallel=1000)


def without_model(args: list[str]) -> list[str]:
    """``args`` without ``--model-path`` and ``--model-name`` and their values."""
    out = list(args)
    for flag in ("--model-path", "--model-name"):
        if flag in out:
            i = out.index(flag)
            del out[i:i + 2]
    return out


def local_argvs(recipe: LoadedRecipe, caps: Caps | None = None) -> dict[str, list[str]]:
    """The local twin's mocker arguments per worker service, as its processes get them (tokenizer folder aside)."""
    return {w.service: ["--model-path", "/tmp/tiny", *w.args]
            for w in plan(recipe, caps or NO_CAPS, speedup_ratio=10).workers}


# -- the table against the installed mocker ---------------------------------------------------------


@needs_dynamo
def test_every_flag_the_table_lists_for_the_shipped_release_is_in_the_installed_mockers_help():
    version = subprocess.run([str(DYNAMO_PY), "-m", "dynamo.mocker", "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.stdout.strip() == f"Dynamo Mocker {DEFAULT_DYNAMO_VERSION}", version.stdout + version.stderr
    proc = subprocess.run([str(DYNAMO_PY), "-m", "dynamo.mocker", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    accepted = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", proc.stdout))
    assert "--max-model-len" in accepted and "--disaggregation-mode" in accepted  # the help was read
    table = MOCKER_FLAGS[SHIPPED]
    assert len(table) > 40
    assert sorted(table - accepted) == []
    # the flags the twin writes on any release are declared on the shipped one too
    assert {"--model-path", "--model-name", "--speedup-ratio", "--block-size", "--max-num-seqs",
            "--data-parallel-size", "--enable-prefix-caching", "--no-enable-prefix-caching",
            "--is-prefill-worker", "--is-decode-worker"} <= table


def test_table_marks_the_flags_that_changed_between_releases():
    assert min(MOCKER_FLAGS) == (0, 6, 0) and max(MOCKER_FLAGS) == SHIPPED
    for version, flags in MOCKER_FLAGS.items():
        assert ("--disaggregation-mode" in flags) == (version >= (1, 0, 0)), version
        assert ("--max-model-len" in flags) == (version >= (1, 4, 0)), version
        assert ("--is-prefill-worker" in flags) == (version >= (0, 6, 1)), version
        assert {"--model-path", "--model-name", "--speedup-ratio", "--block-size"} <= flags
    assert "--watermark" in MOCKER_FLAGS[(0, 9, 1)] and "--watermark" not in MOCKER_FLAGS[(1, 1, 0)]


# -- every recipe's twin on the shipped release, through the mocker's own parser ---------------------


@pytest.fixture(scope="module")
def parsed() -> dict[tuple[str, str], dict]:
    """Each recipe's twin workers' arguments, as the installed mocker parses them."""
    keys, argvs = [], []
    for recipe in ALL:
        for name, container in mocker_containers(mocker_twin(recipe).dgd).items():
            keys.append((recipe.id, name))
            argvs.append(container["args"])
        for name, args in local_argvs(recipe, Caps()).items():
            keys.append((recipe.id, name, "local"))
            argvs.append(args)
    return dict(zip(keys, parse_with_installed_mocker(argvs), strict=True))


@needs_dynamo
@pytest.mark.parametrize("recipe", ALL, ids=[r.id for r in ALL])
def test_twin_worker_args_pass_the_installed_mockers_parser(recipe, parsed):
    twin = mocker_twin(recipe)
    image = f"nvcr.io/nvidia/ai-dynamo/dynamo-planner:{DEFAULT_DYNAMO_VERSION}"
    assert twin.notes[0] == (f"mocker flags for Dynamo {DEFAULT_DYNAMO_VERSION}, image {image} "
                             f"(the recipe's Dynamo {DEFAULT_DYNAMO_VERSION})")
    workers = mocker_containers(twin.dgd)
    local = {w.service: w.role for w in plan(recipe).workers}   # the local twin's roles, proven on real processes
    assert sorted(workers) == sorted(local)
    for name, container in workers.items():
        result = parsed[(recipe.id, name)]
        assert result["ok"], f"{recipe.id} {name}: {container['args']} -> {result['error']}"
        assert result["mode"] == {"worker": "agg"}.get(local[name], local[name]), name
        assert container["image"] == image
        cfg = engine_config(recipe, recipe.deployment.service(name))
        assert result["max_model_len"] == cfg.max_model_len
        assert result["block_size"] == cfg.block_size
    assert set(re.findall(r"--[a-z0-9-]+", " ".join(" ".join(c["args"]) for c in workers.values()))) \
        <= MOCKER_FLAGS[SHIPPED]


@needs_dynamo
@pytest.mark.parametrize("recipe", ALL, ids=[r.id for r in ALL])
def test_local_twin_worker_args_pass_the_installed_mockers_parser(recipe, parsed):
    twin = plan(recipe, Caps())
    for w in twin.workers:
        result = parsed[(recipe.id, w.service, "local")]
        assert result["ok"], f"{recipe.id} {w.service}: {w.args} -> {result['error']}"
        assert result["mode"] == {"worker": "agg"}.get(w.role, w.role), w.service
        assert result["model_name"] == twin.model_name
        assert (result["dp_size"] or 1) == w.data_parallel


@pytest.mark.parametrize("recipe", ALL, ids=[r.id for r in ALL])
def test_both_twins_write_the_same_mocker_args_for_every_worker(recipe):
    """Same flags, values and order; only the builder's parameters differ: the Kubernetes twin names
    the recipe's model and each worker's own served name, the local twin its tokenizer folder and the
    twin-wide served name (and caps DP, lifted here)."""
    local = plan(recipe, NO_CAPS, speedup_ratio=10)
    kube = {name: c["args"] for name, c in mocker_containers(mocker_twin(recipe).dgd).items()}
    assert sorted(kube) == sorted(w.service for w in local.workers)
    for w in local.workers:
        cfg = engine_config(recipe, recipe.deployment.service(w.service))
        model = cfg.model or cfg.served_name or "Qwen/Qwen3-0.6B"
        assert kube[w.service][:4] == ["--model-path", model, "--model-name", cfg.served_name or model]
        assert w.args[:2] == ["--model-name", local.model_name]
        assert without_model(kube[w.service]) == without_model(w.args), w.service


def test_the_local_twin_caps_data_parallel_and_the_cluster_twin_does_not():
    recipe = load(ROOT / "recipes", "deepseek-r1/trtllm/disagg/wide_ep/gb200")
    kube = mocker_containers(mocker_twin(recipe).dgd)["TrtllmDecodeWorker"]["args"]
    assert kube[kube.index("--data-parallel-size") + 1] == "32"
    local = plan(recipe, Caps(data_parallel=4))
    decode = next(w for w in local.workers if w.service == "TrtllmDecodeWorker")
    assert decode.args[decode.args.index("--data-parallel-size") + 1] == "4" and decode.data_parallel == 4
    assert "TrtllmDecodeWorker: data parallel 32 -> 4 ranks per mocker (cap)" in local.notes
    assert "TrtllmDecodeWorker: trtllm attention DP over the TP ranks, 32 ranks -> one mocker instance with " \
           "--data-parallel-size 32" in mocker_twin(recipe).notes


def test_a_mocker_recipe_keeps_its_own_tuning_in_the_cluster_twin():
    recipe = load(ROOT / "recipes", "mocker-tiny/mocker/agg")
    args = mocker_containers(mocker_twin(recipe).dgd)["MockerWorker"]["args"]
    assert args[args.index("--num-gpu-blocks-override") + 1] == "4096"
    assert args[args.index("--max-num-batched-tokens") + 1] == "8192"
    assert args[args.index("--speedup-ratio") + 1] == "1.0" and args.count("--speedup-ratio") == 1


def test_an_engine_type_the_release_lacks_is_left_out_and_noted(tmp_path):
    twin = mocker_twin(retagged(tmp_path, "1.2.0", "deepseek-r1/trtllm/disagg/wide_ep/gb200"))
    for container in mocker_containers(twin.dgd).values():
        assert "--engine-type" not in container["args"]
    assert "TrtllmDecodeWorker: trtllm simulated as vLLM (the mocker of Dynamo 1.2.0 has no trtllm engine type)" \
        in twin.notes
    twin = mocker_twin(retagged(tmp_path, "1.3.1", "deepseek-r1/trtllm/disagg/wide_ep/gb200"))
    for container in mocker_containers(twin.dgd).values():
        assert container["args"][container["args"].index("--engine-type") + 1] == "trtllm"


# -- older releases, table-driven ---------------------------------------------------------------------


@pytest.mark.parametrize(("version", "disagg_flag", "max_model_len", "repo"), [
    ("0.8.1", False, False, "dynamo-frontend"),
    ("0.9.1", False, False, "dynamo-frontend"),
    ("1.0.2", True, False, "dynamo-frontend"),
    ("1.2.0", True, False, "dynamo-planner"),
    ("1.3.1", True, False, "dynamo-planner"),
    ("1.5.0", True, True, "dynamo-planner"),
    ("1.6.1", True, True, "dynamo-planner"),
])
def test_twin_of_a_recipe_at_each_release_writes_that_releases_flags(tmp_path, version, disagg_flag, max_model_len,
                                                                     repo):
    recipe = retagged(tmp_path, version)
    twin = mocker_twin(recipe)
    image = f"nvcr.io/nvidia/ai-dynamo/{repo}:{version}"
    assert twin.notes[0].startswith(f"mocker flags for Dynamo {version}, image {image} ")
    workers = mocker_containers(twin.dgd)
    assert sorted(workers) == ["VllmDecodeWorker", "VllmPrefillWorker"]
    assert images(twin.dgd) == {image}
    for name, container in workers.items():
        args = container["args"]
        assert {a for a in args if a.startswith("--")} <= MOCKER_FLAGS[tuple(map(int, version.split(".")))]
        role = "prefill" if name == "VllmPrefillWorker" else "decode"
        if disagg_flag:
            assert args[args.index("--disaggregation-mode") + 1] == role
            assert f"--is-{role}-worker" not in args
        else:
            assert "--disaggregation-mode" not in args and f"--is-{role}-worker" in args
        assert ("--max-model-len" in args) == max_model_len
    dropped = [n for n in twin.notes if "max model length" in n and "not simulated" in n]
    assert len(dropped) == (0 if max_model_len else 2)


@needs_dynamo
def test_dynamo_0_8_twin_marks_roles_with_is_worker_flags_the_mocker_reads_as_roles(tmp_path):
    twin = mocker_twin(retagged(tmp_path, "0.8.1"))
    workers = mocker_containers(twin.dgd)
    prefill, decode = workers["VllmPrefillWorker"]["args"], workers["VllmDecodeWorker"]["args"]
    for args in (prefill, decode):
        assert "--disaggregation-mode" not in args and "--max-model-len" not in args
    assert "--is-prefill-worker" in prefill and "--is-decode-worker" not in prefill
    assert "--is-decode-worker" in decode and "--is-prefill-worker" not in decode
    # the shipped mocker still reads the 0.x flags (deprecated): they mean the roles intended
    modes = [r["mode"] for r in parse_with_installed_mocker([prefill, decode])]
    assert modes == ["prefill", "decode"]
    assert any("VllmPrefillWorker: max model length" in n and "Dynamo 0.8.1 has no --max-model-len" in n
               for n in twin.notes)


def test_a_patch_release_between_table_rows_takes_the_nearest_older_rows_flags(tmp_path):
    twin = mocker_twin(retagged(tmp_path, "1.0.1"))
    assert twin.notes[0] == ("mocker flags for Dynamo 1.0.0, image nvcr.io/nvidia/ai-dynamo/dynamo-frontend:1.0.1 "
                             "(the recipe's Dynamo 1.0.1: nearest older release in the flag table)")
    args = mocker_containers(twin.dgd)["VllmPrefillWorker"]["args"]
    assert "--disaggregation-mode" in args and "--max-model-len" not in args


def test_a_release_newer_than_the_table_runs_the_shipped_release(tmp_path):
    twin = mocker_twin(retagged(tmp_path, "1.7.0"))
    image = f"nvcr.io/nvidia/ai-dynamo/dynamo-planner:{DEFAULT_DYNAMO_VERSION}"
    assert images(twin.dgd) == {image}
    assert twin.notes[0].startswith(f"mocker flags for Dynamo {DEFAULT_DYNAMO_VERSION}, image {image} (the recipe's "
                                    f"Dynamo 1.7.0 is outside the mocker flag table")


# -- --twin-image --------------------------------------------------------------------------------------


def test_twin_image_without_a_release_tag_gets_the_shipped_releases_flags():
    recipe = load(ROOT / "recipes", DISAGG)
    target = KubernetesTarget(KubeOptions(twin="mocker", twin_image="registry.example/dynamo-mocker:dev"))
    manifests = target.manifests(recipe)
    assert images(manifests.dgd) == {"registry.example/dynamo-mocker:dev"}
    assert manifests.notes[0] == (f"mocker flags for Dynamo {DEFAULT_DYNAMO_VERSION}, image "
                                  f"registry.example/dynamo-mocker:dev (tag 'dev' names no Dynamo release; assumed "
                                  f"{DEFAULT_DYNAMO_VERSION}, the release the harness ships)")
    args = mocker_containers(manifests.dgd)["VllmPrefillWorker"]["args"]
    assert args[args.index("--disaggregation-mode") + 1] == "prefill" and "--max-model-len" in args


def test_twin_image_of_an_older_release_gets_that_releases_flags_whatever_the_recipe_runs():
    recipe = load(ROOT / "recipes", DISAGG)   # a 1.6.1 recipe
    twin = mocker_twin(recipe, TwinOptions(image="nvcr.io/nvidia/ai-dynamo/dynamo-frontend:0.8.1"))
    assert twin.notes[0] == ("mocker flags for Dynamo 0.8.1, image nvcr.io/nvidia/ai-dynamo/dynamo-frontend:0.8.1 "
                             "(the image's tag 0.8.1)")
    args = mocker_containers(twin.dgd)["VllmPrefillWorker"]["args"]
    assert "--is-prefill-worker" in args and "--disaggregation-mode" not in args and "--max-model-len" not in args


def test_twin_image_older_than_the_table_is_refused_with_what_to_give():
    recipe = load(ROOT / "recipes", DISAGG)
    with pytest.raises(DeployError, match=r"--twin-image reg/mocker:0\.5\.1: Dynamo 0\.5\.1 predates .* give an image "
                                          r"of Dynamo >= 0\.6\.0"):
        mocker_twin(recipe, TwinOptions(image="reg/mocker:0.5.1"))


def test_a_release_whose_mocker_takes_no_role_cannot_twin_a_disaggregated_recipe():
    with pytest.raises(DeployError, match="takes no prefill/decode role"):
        mocker_cli([], "reg/mocker:0.6.0", needs_roles=True)
    # the recipe's own 0.6.0 images: the twin runs the shipped release instead
    cli = mocker_cli(["nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6.0"], needs_roles=True)
    assert cli.version == DEFAULT_DYNAMO_VERSION and "takes no prefill/decode role" in cli.note
    assert mocker_cli(["nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6.0"]).version == "0.6.0"


def test_cli_refuses_a_twin_image_older_than_the_table_before_creating_anything(tmp_path):
    shutil.copytree(ROOT / "recipes" / "qwen3-32b", tmp_path / "recipes" / "qwen3-32b")
    cluster = EmulatedCluster()
    try:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        proc = subprocess.run(
            [str(CLI), "test", "--target", "kubernetes", "--suite", "smoke", "--recipes-root", str(tmp_path / "recipes"),
             "--report-dir", str(tmp_path / "reports"), "--", "--twin", "mocker", "--twin-image", "reg/mocker:0.5.1",
             "--kubeconfig", str(kubeconfig), "--deploy-timeout", "30", "-p", "no:cacheprovider"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out[-3000:]
        assert ("--twin-image reg/mocker:0.5.1: Dynamo 0.5.1 predates the mocker command line the twin writes "
                "(known from 0.6.0); give an image of Dynamo >= 0.6.0") in out, out[-3000:]
        assert cluster.items(NAMESPACES) == []
    finally:
        cluster.close()


def test_the_workers_release_picks_the_flags_when_the_frontend_runs_another(tmp_path):
    recipe = retagged(tmp_path, "1.6.1")
    deploy = recipe.recipe.deploy_file
    lines = deploy.read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if "vllm-runtime:1.6.1" in line)   # the Frontend's image
    worker_lines = "".join(lines[first + 1:]).replace("vllm-runtime:1.6.1", "vllm-runtime:1.2.0")
    deploy.write_text("".join(lines[:first + 1]) + worker_lines)
    recipe = LoadedRecipe.load(recipe.recipe)
    assert recipe.deployment.frontend.image.endswith(":1.6.1")
    twin = mocker_twin(recipe)
    assert twin.notes[0].startswith("mocker flags for Dynamo 1.2.0, image nvcr.io/nvidia/ai-dynamo/dynamo-planner:1.2.0 ")
    assert "--max-model-len" not in mocker_containers(twin.dgd)["VllmDecodeWorker"]["args"]

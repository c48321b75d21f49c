"""Wiring (RH330-RH339): one frontend, a perf Job that reaches it, KV routing that is really on,
disaggregated workers in the roles their flags say, and names the operator can derive from the DGD."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from recipe_harness.findings import Finding, Severity
from recipe_harness.model.backends import frontend_config, routes_by_kv_events
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.operator_names import MIN_NAMESPACE, RUN_NAMESPACE_MAX, WORKER_HASH_LEN, graph_names, namespace_room
from recipe_harness.static.rules import rule
from recipe_harness.static.rules.common import at, effective_mode, emit, known, service_at, workers
from recipe_harness.static.rules.scripts import aiperf_runs

_ROLE_FLAGS = {
    "vllm": "--disaggregation-mode prefill|decode (or --is-prefill-worker)",
    "sglang": "--disaggregation-mode prefill|decode",
    "trtllm": "--disaggregation-mode prefill|decode",
    "mocker": "--disaggregation-mode prefill|decode",
}


@rule("RH330", "wiring", "A deployment has exactly one Frontend service.",
      "keep one service with componentType: frontend (scale it with replicas, not with a second service)")
def one_frontend(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None:
        return
    fronts = dep.frontends
    sidecar_frontends = any(s.raw.get("frontendSidecar") for s in dep.services)
    if not fronts and not sidecar_frontends:
        services_key = ("spec", "services") if dep.document.get("spec", "services") is not None else ("spec", "components")
        yield emit("RH330", recipe, at(dep.document, services_key, key=True),
                   f"{dep.name} has no Frontend service: nothing serves the OpenAI API")
    for extra in fronts[1:]:
        yield emit("RH330", recipe, service_at(dep, extra),
                   f"second frontend {extra.name!r} (first: {fronts[0].name!r}); the perf Job and clients reach one")


def _frontend_url_problem(recipe: LoadedRecipe, url: str, job_ns: str | None) -> str | None:
    dep = recipe.deployment
    front = dep.frontend if dep else None
    if dep is None or front is None:
        return None
    expected = dep.frontend_service_name or ""
    port = frontend_config(recipe, front).http_port
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        url_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"URL {url!r} has an invalid port"
    labels = host.split(".")
    if labels[0] != expected:
        return f"perf targets host {host!r} but the frontend Service is {expected!r} (<dgd-name>-<frontend service>)"
    ns = labels[1] if len(labels) > 1 else None
    dgd_ns = dep.namespace
    if len(labels) > 1 and not (len(labels) == 2 or labels[2:] in (["svc"], ["svc", "cluster", "local"])):
        return f"perf host {host!r} is not a cluster Service name"
    if ns and dgd_ns and ns != dgd_ns:
        return f"perf targets namespace {ns!r} but {dep.name} is deployed in {dgd_ns!r}"
    if not ns and job_ns and dgd_ns and job_ns != dgd_ns:
        return f"perf Job runs in namespace {job_ns!r} and uses the short name {host!r}, but {dep.name} is in {dgd_ns!r}"
    if url_port != port:
        return f"perf targets port {url_port} but the frontend listens on {port}"
    return None


@rule("RH331", "wiring",
      "The perf Job's URL targets the frontend Service <dgd-name>-<frontend> on the frontend's HTTP port, "
      "in the deployment's namespace.",
      "set aiperf --url http://<dgd-name>-frontend:<--http-port, default 8000>")
def perf_reaches_frontend(recipe: LoadedRecipe) -> Iterator[Finding]:
    for run in aiperf_runs(recipe):
        job_ns = run.container.doc.get("metadata", "namespace")
        if not run.urls:
            yield emit("RH331", recipe, run.src,
                       "aiperf has no --url: it would benchmark localhost:8000 inside the perf pod")
            continue
        for setting in run.urls:
            for url in setting.values:
                if "$" in url:
                    continue
                problem = _frontend_url_problem(recipe, url, job_ns if isinstance(job_ns, str) else None)
                if problem:
                    yield emit("RH331", recipe, setting.src, problem)
                    break


_KV_NAMED = re.compile(r"(?i)kv[-_]?(?:aware[-_]?)?rout")


@rule("RH332", "wiring",
      "A recipe named for KV-aware routing (kv-router in its id or DGD name) runs its frontend with --router-mode kv.",
      "add `--router-mode kv` to the frontend's args (or set DYN_ROUTER_MODE=kv)")
def kv_named_recipes_route_by_kv(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None or dep.frontend is None:
        return
    if not (_KV_NAMED.search(recipe.id) or _KV_NAMED.search(dep.name)):
        return
    fc = frontend_config(recipe, dep.frontend)
    if fc.router_mode != "kv":
        src = fc.sources.get("router_mode") or service_at(dep, dep.frontend)
        yield emit("RH332", recipe, src,
                   f"{recipe.id} is a KV-router recipe but its frontend routes {fc.router_mode}")


@rule("RH333", "wiring",
      "With --router-mode kv (and router KV events on), the workers the router picks publish KV events "
      "(prefill workers when disaggregated, aggregated workers otherwise).",
      "vLLM: keep prefix caching on and pass --kv-events-config '{\"enable_kv_cache_events\":true,...}'; SGLang: "
      "--kv-events-config; TRT-LLM: --publish-kv-events; or run the frontend with --no-router-kv-events")
def kv_router_has_events(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None or not routes_by_kv_events(recipe):
        return
    ws = [(s, c) for s, c in workers(recipe) if known(c)]
    modes = {s.name: effective_mode(s, c) for s, c in ws}
    routed = [(s, c) for s, c in ws if modes[s.name] == "prefill"] or [(s, c) for s, c in ws if modes[s.name] == "agg"]
    for svc, cfg in routed:
        if cfg.publishes_kv_events:
            continue
        if not cfg.prefix_caching:
            why = "prefix caching is off"
            src = cfg.sources.get("prefix_caching") or service_at(dep, svc)
        else:
            why = "it has no KV events configuration"
            src = service_at(dep, svc, *svc.args_path[len(svc.path):], key=True) if svc.args_path \
                else service_at(dep, svc)
        yield emit("RH333", recipe, src,
                   f"the frontend routes by KV cache but {svc.name} ({cfg.backend}) publishes no KV events: {why}")


@rule("RH334", "wiring",
      "A disaggregated deployment has both prefill and decode workers.",
      "add the missing prefill or decode worker service, or make the recipe aggregated")
def both_halves(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    ws = workers(recipe)
    if dep is None or not ws:
        return
    modes: dict[str, list] = {}
    for svc, cfg in ws:
        mode = effective_mode(svc, cfg)
        if mode == "agg" and svc.role == "prefill":
            mode = "prefill"  # meant as prefill; RH335 reports its missing flag
        elif mode == "agg" and cfg.backend == "vllm":
            mode = "agg-or-decode"  # vLLM workers without the flag serve alone, or take the decode side
        elif mode == "agg" and svc.role == "decode":
            mode = "decode"
        modes.setdefault(mode, []).append(svc)
    has_decode = "decode" in modes or "agg-or-decode" in modes
    if "prefill" in modes and not has_decode:
        have, missing = "prefill", "decode"
    elif "decode" in modes and "prefill" not in modes:
        have, missing = "decode", "prefill"
    else:
        return
    svc = modes[have][0]
    yield emit("RH334", recipe, service_at(dep, svc),
               f"{svc.name} is a {have} worker but no {missing} worker exists: requests would never complete")


@rule("RH335", "wiring",
      "Prefill and decode workers carry their backend's role flag, and it matches their subComponentType.",
      "vLLM/SGLang/TRT-LLM/mocker: --disaggregation-mode prefill on prefill workers and "
      "--disaggregation-mode decode on decode workers")
def role_flags(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None:  # no services, no workers
        return
    for svc, cfg in workers(recipe):
        if not known(cfg):
            continue
        mode = cfg.disaggregation_mode
        src = cfg.sources.get("disaggregation_mode") or \
            (service_at(dep, svc, *svc.args_path[len(svc.path):], key=True) if svc.args_path else service_at(dep, svc))
        if svc.role in ("prefill", "decode") and mode and mode != svc.role:
            yield emit("RH335", recipe, src,
                       f"{svc.name} has subComponentType {svc.role} but runs {cfg.backend} as a {mode} worker")
        elif svc.role == "prefill" and mode is None:
            yield emit("RH335", recipe, src,
                       f"{svc.name} is a prefill worker but {cfg.backend} runs aggregated without "
                       f"{_ROLE_FLAGS[cfg.backend]}")
        elif svc.role == "decode" and mode is None and cfg.backend != "vllm":
            # vLLM workers without the flag take the decode side; the other engines need it
            yield emit("RH335", recipe, src,
                       f"{svc.name} is a decode worker but {cfg.backend} runs aggregated without "
                       f"{_ROLE_FLAGS[cfg.backend]}")



@rule("RH336", "wiring",
      "The names the Dynamo operator derives from the DGD are valid in any namespace: each service's Service "
      "<dgd-name>-<service> is a DNS-1035 label of at most 63 characters, and the pod label values <dgd-name>, "
      "<service> and <dgd-name>-<service> are valid label values of at most 63 characters.",
      "shorten metadata.name or the service's name so <dgd-name>-<lowercased service name> is at most 63 "
      "characters, and start metadata.name with a lowercase letter; the apiserver rejects the operator's objects "
      "otherwise and the graph never becomes ready")
def operator_names_valid(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None or not dep.name:
        return
    reported: set[str | None] = set()
    for name in graph_names(dep.name, [s.name for s in dep.services]):
        why = name.problem()
        if not why or name.component in reported:
            continue
        reported.add(name.component)
        svc = dep.service(name.component) if name.component else None
        src = service_at(dep, svc) if svc else at(dep.document, ("metadata", "name"))
        whose = f"service {svc.name!r}: " if svc else ""
        yield emit("RH336", recipe, src, f"{whose}the operator's {name.describe()} {why}")


@rule("RH337", "wiring",
      f"The DGD name leaves room for a namespace of at least {MIN_NAMESPACE} characters in the operator's pod label "
      f"nvidia.com/dynamo-namespace=<namespace>-<dgd-name> (63 characters, so a name of at most "
      f"{62 - MIN_NAMESPACE}), and worker names leave room for the {WORKER_HASH_LEN}-character spec hash operators "
      "that roll workers append (<dgd-name>-<worker>-<hash>).",
      f"shorten metadata.name (at most {62 - MIN_NAMESPACE} characters) and long worker service names: the "
      f"namespace and the DGD name share one 63-character label value, and test runs use namespaces of up to "
      f"{RUN_NAMESPACE_MAX} characters", severity=Severity.WARNING)
def operator_names_room(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None or not dep.name:
        return
    if any(n.problem() for n in graph_names(dep.name, [])):  # the DGD name is no label value: RH336
        return
    global_ns = bool(dep.services) and all(s.raw.get("globalDynamoNamespace") is True for s in dep.services)
    hashed = []  # workers whose hash-suffixed name is too long, when their plain names are valid (else RH336)
    for name in graph_names(dep.name, [], [s.name for s in dep.workers]):
        svc = dep.service(name.component) if name.component else None
        why = name.problem()
        if svc is not None and why and not any(n.problem() for n in graph_names(dep.name, [svc.name])):
            hashed.append((svc, why))
    room = namespace_room(dep.name)
    if not global_ns and room < MIN_NAMESPACE:
        also = "".join(f"; worker {svc.name!r} named with the spec hash (<dgd-name>-{svc.name.lower()}-"
                       f"<{WORKER_HASH_LEN} hex>) {why}" for svc, why in hashed)
        yield emit("RH337", recipe, at(dep.document, ("metadata", "name")),
                   f"DGD name {dep.name!r} ({len(dep.name)} characters) leaves room for a namespace of "
                   f"{max(room, 0)} characters in the operator's label nvidia.com/dynamo-namespace="
                   f"<namespace>-<dgd-name> (63); in a longer namespace the operator's objects are rejected{also}")
        return
    for svc, why in hashed:
        yield emit("RH337", recipe, service_at(dep, svc),
                   f"worker {svc.name!r}: operators that roll workers by spec hash label its pods "
                   f"nvidia.com/selector=<dgd-name>-{svc.name.lower()}-<{WORKER_HASH_LEN} hex>, which {why}")

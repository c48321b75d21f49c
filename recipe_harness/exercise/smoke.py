"""Smoke checks of an OpenAI-compatible endpoint (any :class:`~recipe_harness.deploy.Endpoint`).

Each check takes a :class:`SmokeClient` and returns a :class:`Result` (metrics and notes for the
report), raises :class:`SmokeFailure` with a message that says what was wrong, or
:class:`SmokeSkip` when it does not apply to the deployment. Requests run under a watchdog: when
a component of the deployment dies, the waiting request is abandoned at once and the watchdog's
:class:`~recipe_harness.deploy.DeployError` (the dead process and its last log lines) is raised
instead of a timeout.

Checks (:data:`CHECKS`): ``models``, ``chat``, ``stream``, ``max-tokens``, ``concurrency``,
``bad-request``, ``disagg`` (prefill and decode workers both served requests) and ``kv-routing``
(a repeated prefix goes to the same worker), the last two read the workers' Prometheus metrics.
"""

from __future__ import annotations

import functools
import json
import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from recipe_harness.endpoint import Component, Endpoint

WORKER_REQUESTS_METRIC = "dynamo_component_requests_total"
KV_EVENTS_METRIC = "dynamo_component_kv_cache_events_applied"  # on the frontend (its KV router)
DEFAULT_TIMEOUT = 60.0
CONCURRENCY = 8


class SmokeFailure(AssertionError):
    """The endpoint answered, but not as the OpenAI API says it must."""


class SmokeSkip(Exception):
    """The check does not apply to this deployment (the reason says why)."""


@dataclass
class Result:
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Streamed:
    status: int
    content_type: str
    events: list[str]          # the data of each SSE event, in order
    first_event_s: float | None
    text: str = ""             # the body when the status is not 200


class SmokeClient:
    """httpx against ``endpoint.base_url``; every call waits under ``watchdog`` (raises when the
    deployment died) and ``timeout``."""

    def __init__(self, endpoint: Endpoint, *, watchdog: Callable[[], None] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, poll: float = 0.2) -> None:
        self.endpoint = endpoint
        self.watchdog = watchdog or (lambda: None)
        self.timeout = timeout
        self.poll = poll
        self.http = httpx.Client(base_url=endpoint.base_url, timeout=httpx.Timeout(timeout, connect=10.0),
                                 trust_env=False, limits=httpx.Limits(max_connections=64))
        self._pool = ThreadPoolExecutor(max_workers=CONCURRENCY * 2, thread_name_prefix="smoke")

    def __enter__(self) -> SmokeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def guarded(self, fn: Callable[[], Any], what: str) -> Any:
        """Run ``fn`` in a worker thread, checking the watchdog while it runs."""
        self.watchdog()
        future: Future = self._pool.submit(fn)
        deadline = time.monotonic() + self.timeout + 5
        while True:
            try:
                result = future.result(timeout=self.poll)
            except TimeoutError:
                self.watchdog()
                if time.monotonic() > deadline:
                    raise SmokeFailure(f"{what}: no answer within {self.timeout:g}s") from None
            except httpx.HTTPError as exc:
                self.watchdog()  # a dead component explains the error better than the error does
                raise SmokeFailure(f"{what}: {type(exc).__name__}: {exc}") from None
            else:
                self.watchdog()  # an answer cut short by a dying component is not an answer
                return result

    def get(self, path: str) -> httpx.Response:
        return self.guarded(lambda: self.http.get(path), f"GET {path}")

    def post(self, path: str, body: Any = None, *, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        if content is not None:
            return self.guarded(lambda: self.http.post(path, content=content, headers=headers), f"POST {path}")
        return self.guarded(lambda: self.http.post(path, json=body, headers=headers), f"POST {path}")

    def stream(self, path: str, body: Any) -> Streamed:
        def run() -> Streamed:
            started = time.monotonic()
            with self.http.stream("POST", path, json=body) as resp:
                if resp.status_code != 200:
                    return Streamed(resp.status_code, resp.headers.get("content-type", ""), [], None,
                                    resp.read().decode("utf-8", "replace"))
                events, first = _read_sse(resp, started)
                return Streamed(resp.status_code, resp.headers.get("content-type", ""), events, first)

        return self.guarded(run, f"POST {path} (stream)")

    def chat(self, content: str, *, max_tokens: int = 16, **extra: Any) -> httpx.Response:
        body = {"model": self.endpoint.model, "messages": [{"role": "user", "content": content}],
                "max_tokens": max_tokens, **extra}
        return self.post("/v1/chat/completions", body)


def _read_sse(resp: httpx.Response, started: float) -> tuple[list[str], float | None]:
    events: list[str] = []
    data: list[str] = []
    first: float | None = None
    for line in resp.iter_lines():
        if line == "":
            if data:
                events.append("\n".join(data))
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            if first is None:
                first = time.monotonic() - started
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        events.append("\n".join(data))
    return events, first


# -- helpers -------------------------------------------------------------------------------------------


def _json(resp: httpx.Response, what: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise SmokeFailure(f"{what}: answer is not JSON (HTTP {resp.status_code}): {resp.text[:300]!r}") from None


def _expect_ok(resp: httpx.Response, what: str) -> dict:
    if resp.status_code != 200:
        raise SmokeFailure(f"{what}: HTTP {resp.status_code}: {resp.text[:500]}")
    body = _json(resp, what)
    if not isinstance(body, dict):
        raise SmokeFailure(f"{what}: answer is not a JSON object: {str(body)[:300]}")
    return body


def _completion(body: dict, what: str, model: str) -> tuple[str, dict, str | None]:
    """(content, usage, finish_reason) of a chat completion, checking its shape."""
    if body.get("object") != "chat.completion":
        raise SmokeFailure(f"{what}: object is {body.get('object')!r}, expected 'chat.completion'")
    if body.get("model") != model:
        raise SmokeFailure(f"{what}: model is {body.get('model')!r}, expected {model!r}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise SmokeFailure(f"{what}: no choices in {str(body)[:300]}")
    message = choices[0].get("message") or {}
    content = message.get("content")
    if not isinstance(content, str):
        raise SmokeFailure(f"{what}: choices[0].message.content is {content!r}, expected a string")
    usage = body.get("usage")
    if not isinstance(usage, dict):
        raise SmokeFailure(f"{what}: no usage in the answer")
    return content, usage, choices[0].get("finish_reason")


def _check_usage(usage: dict, what: str) -> None:
    p, c, t = usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")
    if not (isinstance(p, int) and isinstance(c, int) and isinstance(t, int)):
        raise SmokeFailure(f"{what}: usage has non-integer counts: {usage}")
    if p <= 0 or c <= 0:
        raise SmokeFailure(f"{what}: usage counts must be positive: {usage}")
    if t != p + c:
        raise SmokeFailure(f"{what}: usage total_tokens {t} != prompt_tokens {p} + completion_tokens {c}")


def _error_message(resp: httpx.Response) -> str | None:
    """The error message of an error body: OpenAI ``{"error": {"message"}}`` or ``{"message"}``."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"]
    if isinstance(err, str) and err:
        return err
    if isinstance(body.get("message"), str) and body["message"]:
        return body["message"]
    if isinstance(body.get("detail"), str | list):
        return str(body["detail"])
    return None


def prompt(words: int, tag: str = "") -> str:
    """A deterministic English-like prompt of about ``words`` words (``tag`` makes it unique)."""
    base = ("the quick brown fox jumps over the lazy dog while a careful engineer checks every "
            "recipe before it ships to production clusters").split()
    out = [tag] if tag else []
    out += [base[i % len(base)] for i in range(words)]
    return " ".join(out)


# -- metrics -------------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition: (name, labels, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        labels = dict(_LABEL.findall(m.group(3) or ""))
        out.append((m.group(1), labels, value))
    return out


def served_requests(client: SmokeClient, components: list[Component]) -> dict[str, float]:
    """Requests each worker component has served: its ``generate`` endpoint's request counter."""
    out: dict[str, float] = {}
    for comp in components:
        if not comp.metrics_url:
            continue
        resp = client.guarded(functools.partial(client.http.get, comp.metrics_url), f"GET {comp.metrics_url}")
        if resp.status_code != 200:
            raise SmokeFailure(f"metrics of {comp.name} ({comp.metrics_url}): HTTP {resp.status_code}")
        out[comp.name] = sum(v for name, labels, v in parse_metrics(resp.text)
                             if name == WORKER_REQUESTS_METRIC and labels.get("dynamo_endpoint") == "generate")
    return out


def _workers(endpoint: Endpoint, *roles: str) -> list[Component]:
    return [c for c in endpoint.components if c.role in roles and c.metrics_url]


# -- checks --------------------------------------------------------------------------------------------


def check_models(client: SmokeClient) -> Result:
    resp = client.get("/v1/models")
    body = _expect_ok(resp, "GET /v1/models")
    data = body.get("data")
    if body.get("object") != "list" or not isinstance(data, list):
        raise SmokeFailure(f"GET /v1/models: expected an object 'list' with 'data', got {str(body)[:300]}")
    ids = [m.get("id") for m in data if isinstance(m, dict)]
    if client.endpoint.model not in ids:
        raise SmokeFailure(f"GET /v1/models does not list the served model {client.endpoint.model!r}: {ids}")
    return Result(metrics={"models": ids})


def check_chat(client: SmokeClient) -> Result:
    started = time.monotonic()
    resp = client.chat("Say hello in one short sentence.", max_tokens=16)
    latency = time.monotonic() - started
    what = "POST /v1/chat/completions"
    content, usage, finish = _completion(_expect_ok(resp, what), what, client.endpoint.model)
    if not content.strip():
        raise SmokeFailure(f"{what}: empty content (finish_reason {finish!r}, usage {usage})")
    _check_usage(usage, what)
    return Result(metrics={"latency_ms": round(latency * 1000, 1), "usage": usage, "finish_reason": finish})


def check_completions(client: SmokeClient) -> Result:
    body = {"model": client.endpoint.model, "prompt": "Once upon a time", "max_tokens": 8}
    what = "POST /v1/completions"
    data = _expect_ok(client.post("/v1/completions", body), what)
    choices = data.get("choices") or [{}]
    if not isinstance(choices[0].get("text"), str) or not choices[0]["text"]:
        raise SmokeFailure(f"{what}: no text in choices[0]: {str(data)[:300]}")
    _check_usage(data.get("usage") or {}, what)
    return Result(metrics={"usage": data["usage"]})


def check_stream(client: SmokeClient) -> Result:
    what = "POST /v1/chat/completions (stream)"
    body = {"model": client.endpoint.model, "messages": [{"role": "user", "content": "Count to five."}],
            "max_tokens": 12, "stream": True, "stream_options": {"include_usage": True}}
    got = client.stream("/v1/chat/completions", body)
    if got.status != 200:
        raise SmokeFailure(f"{what}: HTTP {got.status}: {got.text[:500]}")
    if not got.content_type.startswith("text/event-stream"):
        raise SmokeFailure(f"{what}: content-type {got.content_type!r}, expected text/event-stream")
    if not got.events:
        raise SmokeFailure(f"{what}: no SSE events")
    if got.events[-1].strip() != "[DONE]":
        raise SmokeFailure(f"{what}: the stream does not end with 'data: [DONE]' (last event: {got.events[-1][:200]!r})")
    if any(e.strip() == "[DONE]" for e in got.events[:-1]):
        raise SmokeFailure(f"{what}: events after 'data: [DONE]'")
    ids: set[str] = set()
    pieces: list[str] = []
    finish: str | None = None
    usage: dict | None = None
    for i, raw in enumerate(got.events[:-1]):
        try:
            chunk = json.loads(raw)
        except ValueError:
            raise SmokeFailure(f"{what}: event {i} is not JSON: {raw[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise SmokeFailure(f"{what}: event {i} is not a JSON object: {raw[:200]!r}")
        if "error" in chunk:
            raise SmokeFailure(f"{what}: error event in the stream: {raw[:300]}")
        if chunk.get("object") != "chat.completion.chunk":
            raise SmokeFailure(f"{what}: event {i} has object {chunk.get('object')!r}, expected 'chat.completion.chunk'")
        ids.add(str(chunk.get("id")))
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                pieces.append(delta["content"])
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
    if len(ids) != 1:
        raise SmokeFailure(f"{what}: chunks carry {len(ids)} different ids: {sorted(ids)[:5]}")
    if not "".join(pieces):
        raise SmokeFailure(f"{what}: no content in any chunk")
    if finish is None:
        raise SmokeFailure(f"{what}: no chunk carries a finish_reason")
    if usage is None:
        raise SmokeFailure(f"{what}: stream_options.include_usage asked for usage, no chunk carries it")
    _check_usage(usage, what)
    if usage["completion_tokens"] > body["max_tokens"]:
        raise SmokeFailure(f"{what}: {usage['completion_tokens']} completion tokens > max_tokens {body['max_tokens']}")
    return Result(metrics={"events": len(got.events), "content_chunks": len(pieces), "finish_reason": finish,
                           "first_event_ms": round((got.first_event_s or 0) * 1000, 1), "usage": usage})


def _tokenizer(endpoint: Endpoint):
    if endpoint.tokenizer_dir is None or not (Path(endpoint.tokenizer_dir) / "tokenizer.json").is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover
        return None
    return Tokenizer.from_file(str(Path(endpoint.tokenizer_dir) / "tokenizer.json"))


def check_max_tokens(client: SmokeClient) -> Result:
    tok = _tokenizer(client.endpoint)
    seen: dict[str, Any] = {}
    for limit in (1, 7):
        what = f"POST /v1/chat/completions max_tokens={limit}"
        resp = client.chat("Write a long story about the sea.", max_tokens=limit)
        content, usage, finish = _completion(_expect_ok(resp, what), what, client.endpoint.model)
        used = usage.get("completion_tokens")
        if not isinstance(used, int) or used > limit:
            raise SmokeFailure(f"{what}: usage.completion_tokens {used!r} exceeds max_tokens")
        if finish == "length" and used != limit:
            raise SmokeFailure(f"{what}: finish_reason 'length' after {used} tokens")
        if tok is not None:
            n = len(tok.encode(content, add_special_tokens=False).ids)
            if n > limit:
                raise SmokeFailure(f"{what}: content is {n} tokens long: {content!r}")
        seen[str(limit)] = {"completion_tokens": used, "finish_reason": finish}
    return Result(metrics={"max_tokens": seen})


def check_concurrency(client: SmokeClient, n: int = CONCURRENCY) -> Result:
    what = f"{n} concurrent chat completions"
    barrier = threading.Barrier(n)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        t0 = time.monotonic()
        body = {"model": client.endpoint.model, "messages": [{"role": "user", "content": f"Request {i}: say hi."}],
                "max_tokens": 8}
        try:
            resp = client.http.post("/v1/chat/completions", json=body)
            content, usage, _ = _completion(_expect_ok(resp, f"request {i}"), f"request {i}", client.endpoint.model)
            if not content:
                raise SmokeFailure(f"request {i}: empty content")
            with lock:
                latencies.append(time.monotonic() - t0)
        except (SmokeFailure, httpx.HTTPError) as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])

    started = time.monotonic()
    workers = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for w in workers:
        w.start()

    def join_all() -> None:
        for w in workers:
            w.join()

    client.guarded(join_all, what)
    wall = time.monotonic() - started
    if errors:
        raise SmokeFailure(f"{what}: {len(errors)} of {n} failed:\n  " + "\n  ".join(errors[:5]))
    return Result(metrics={"requests": n, "wall_ms": round(wall * 1000, 1),
                           "p50_ms": round(statistics.median(latencies) * 1000, 1),
                           "max_ms": round(max(latencies) * 1000, 1)})


def check_bad_request(client: SmokeClient) -> Result:
    cases: list[tuple[str, Callable[[], httpx.Response]]] = [
        ("unknown model", lambda: client.post("/v1/chat/completions", {
            "model": f"no-such-model-{uuid.uuid4().hex[:6]}", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4})),
        ("malformed JSON", lambda: client.post("/v1/chat/completions", content=b'{"model": "x", "messages": [',
                                               headers={"content-type": "application/json"})),
        ("messages missing", lambda: client.post("/v1/chat/completions", {"model": client.endpoint.model})),
    ]
    seen: dict[str, int] = {}
    for name, send in cases:
        resp = send()
        if not 400 <= resp.status_code < 500:
            raise SmokeFailure(f"{name}: expected a 4xx answer, got HTTP {resp.status_code}: {resp.text[:300]}")
        if _error_message(resp) is None:
            raise SmokeFailure(f"{name}: HTTP {resp.status_code} without an error message in a JSON body: "
                               f"{resp.text[:300]!r}")
        seen[name] = resp.status_code
    # the endpoint still serves after bad requests
    _expect_ok(client.chat("still there?", max_tokens=2), "chat after bad requests")
    return Result(metrics={"status": seen})


def check_disagg(client: SmokeClient, n: int = 4) -> Result:
    ep = client.endpoint
    if not ep.disaggregated:
        raise SmokeSkip("aggregated recipe: no prefill/decode split to check")
    prefill, decode = _workers(ep, "prefill"), _workers(ep, "decode")
    if not prefill or not decode:
        raise SmokeSkip("the target exposes no metrics of prefill and decode workers")
    before = served_requests(client, prefill + decode)
    for i in range(n):
        _expect_ok(client.chat(prompt(60, f"disagg-{uuid.uuid4().hex[:8]}-{i}"), max_tokens=4), f"request {i}")
    after = served_requests(client, prefill + decode)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    p = sum(delta[c.name] for c in prefill)
    d = sum(delta[c.name] for c in decode)
    if p < 1 or d < 1:
        raise SmokeFailure(f"{n} requests: prefill workers served {p:g}, decode workers served {d:g}; "
                           f"both must serve in a disaggregated recipe (per worker: {delta})")
    return Result(metrics={"requests": n, "prefill_served": p, "decode_served": d, "per_worker": delta})


def kv_events_applied(client: SmokeClient, frontend: Component) -> float | None:
    """KV cache "stored" events the frontend's router has applied so far; ``None`` when the frontend
    does not expose the counter (a Dynamo release that names it differently, or no KV router)."""
    url = frontend.metrics_url
    if not url:
        raise SmokeFailure(f"{frontend.name}: no metrics URL to read the router's KV events from")
    resp = client.guarded(lambda: client.http.get(url), f"GET {url}")
    series = [(labels, v) for name, labels, v in parse_metrics(resp.text) if name == KV_EVENTS_METRIC]
    if not series:
        return None
    return sum(v for labels, v in series if labels.get("event_type") == "stored")


def _kv_events_seen(client: SmokeClient, frontend: Component | None, before: float, within_s: float) -> bool:
    """Whether the frontend's router applies more than ``before`` KV events within ``within_s`` seconds."""
    return Retrying(stop=stop_after_delay(within_s), wait=wait_fixed(0.05), retry=retry_if_result(lambda seen: not seen),
                    retry_error_callback=lambda state: False)(
        lambda: frontend is not None and (kv_events_applied(client, frontend) or 0.0) > before)


def check_kv_routing(client: SmokeClient, n: int = 4, settle_s: float = 5.0) -> Result:
    """``n`` requests sharing a long prefix stay on one worker. When the router listens to KV events
    and its frontend counts them (``dynamo_component_kv_cache_events_applied``), it must also have
    applied some: a router that hears none routes by load alone, and keeps requests together only
    by chance."""
    ep = client.endpoint
    if ep.router_mode != "kv":
        raise SmokeSkip(f"router mode {ep.router_mode!r}: no KV-aware routing to check")
    routed = _workers(ep, "prefill") if ep.disaggregated else _workers(ep, "worker", "decode")
    if len(routed) < 2:
        raise SmokeSkip(f"{len(routed)} worker(s) with metrics: KV routing needs 2 or more to choose from")
    frontend = next((c for c in ep.components if c.role == "frontend" and c.metrics_url), None)
    notes: list[str] = []
    before = served_requests(client, routed)
    counted = kv_events_applied(client, frontend) if frontend else None
    events = counted or 0.0
    shared = prompt(120, f"kv-{uuid.uuid4().hex}")
    for i in range(n):
        _expect_ok(client.chat(shared + f" Question {i}: what comes next?", max_tokens=4), f"request {i}")
        if i == 0 and not _kv_events_seen(client, frontend, events, settle_s):
            # the router must have indexed the first request's blocks before the next one
            notes.append(f"the router applied no KV events within {settle_s:g}s of the first request")
    if notes and counted is not None and ep.router_kv_events and not _kv_events_seen(client, frontend, events, settle_s):
        raise SmokeFailure(
            f"the frontend's KV router applied no KV events in {n} requests: the workers it routes to "
            f"({', '.join(c.name for c in routed)}) publish none, so it routes by load alone (vLLM: "
            "--kv-events-config with enable_kv_cache_events; SGLang: --kv-events-config; TRT-LLM: "
            "--publish-kv-events; or run the frontend with --no-router-kv-events; see RH333)")
    after = served_requests(client, routed)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    top = max(delta, key=lambda k: delta[k])
    if delta[top] < n:
        raise SmokeFailure(f"{n} requests sharing a {len(shared)}-character prefix went to several workers "
                           f"({ {k: v for k, v in delta.items() if v} }); the KV router should keep them on one"
                           + (f" ({notes[0]})" if notes else ""))
    return Result(metrics={"requests": n, "worker": top, "per_worker": delta}, notes=notes)


CHECKS: dict[str, Callable[[SmokeClient], Result]] = {
    "models": check_models,
    "chat": check_chat,
    "completions": check_completions,
    "stream": check_stream,
    "max-tokens": check_max_tokens,
    "concurrency": check_concurrency,
    "bad-request": check_bad_request,
    "disagg": check_disagg,
    "kv-routing": check_kv_routing,
}


def run(name: str, endpoint: Endpoint, *, watchdog: Callable[[], None] | None = None,
        timeout: float = DEFAULT_TIMEOUT) -> Result:
    """Run the check ``name`` against ``endpoint``."""
    with SmokeClient(endpoint, watchdog=watchdog, timeout=timeout) as client:
        return CHECKS[name](client)

"""A thin, raw-JSON wrapper over the kubernetes client's transport.

Every call goes through the client's own ``ApiClient`` (kubeconfig auth, exec plugins,
client certificates, proxies all work as with ``kubectl``), but bodies stay plain dicts:
no model classes, so custom resources and unknown fields survive untouched.

Transient API errors (429, 5xx, dropped connections) are retried (tenacity) with capped
exponential backoff that honours ``Retry-After``; other errors become :class:`ApiError` whose message
says what to fix (403 names the verb and resource the kubeconfig user lacks). Nothing else
leaves a :class:`Kube` method: the client's own exceptions (``ApiValueError``, ``ApiTypeError``,
``ValueError`` and ``TypeError`` from building or sending a request) become an :class:`ApiError`
too, so every caller's cleanup path (``except ApiError``) holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.config.config_exception import ConfigException
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random_exponential,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "recipe-harness"
T = TypeVar("T")


class KubeError(Exception):
    """Anything the Kubernetes target cannot do; the message says what and how to fix it.

    :class:`ApiError` is built only from what the API answered (or that it did not answer);
    conditions the harness finds itself -- a kubeconfig it cannot load, a Service with no ready
    pod, a kind the cluster does not serve -- have their own types below, which no retry logic
    mistakes for a transient HTTP status.
    """


class ConfigError(KubeError):
    """No usable kubeconfig or in-cluster configuration."""


class Unreachable(KubeError):
    """What the harness wants to reach is not there (yet): no ready pod behind a Service, no such
    port or container, no selector, no frontend."""


class ApiError(KubeError):
    """A Kubernetes API request failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, reason: str, message: str, method: str = "", path: str = "",
                 retry_after: float | None = None, retryable: bool | None = None) -> None:
        self.status = status
        self.reason = reason
        self.api_message = message
        self.method = method
        self.path = path
        self.retry_after = retry_after
        self.retryable = retryable
        super().__init__(self._describe())

    @property
    def transient(self) -> bool:
        if self.retryable is not None:
            return self.retryable
        return self.status == 0 or self.status in RETRY_STATUSES

    def _describe(self) -> str:
        head = f"{self.method} {self.path}: HTTP {self.status} {self.reason}".strip()
        text = f"{head}: {self.api_message}" if self.api_message else head
        if self.status == 403:
            text += ("\n    hint: the kubeconfig user lacks RBAC permission for this request; grant it "
                     "(a Role/ClusterRole with this verb on this resource) or use --context with a user that has it")
        elif self.status == 401:
            text += "\n    hint: the credentials of the kubeconfig context were rejected; refresh them (log in again)"
        return text


@dataclass
class Backoff:
    """Capped exponential backoff with jitter; ``attempts`` tries in all. The delay before retry
    ``n`` (from 0) is ``min(cap, base * 2**n)`` scaled by a random factor in [0.5, 1] (half fixed,
    half random), or the answer's ``Retry-After`` (capped). ``sleep`` is what waits (tests pass a
    fake one)."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 10.0
    sleep: Any = time.sleep

    def _jitter(self) -> Any:
        half = {"multiplier": self.base / 2, "max": self.cap / 2}
        return wait_exponential(**half) + wait_random_exponential(**half)

    def wait(self, state: RetryCallState) -> float:
        """tenacity's ``wait``: the delay after the attempt ``state`` describes."""
        exc = state.outcome.exception() if state.outcome is not None and state.outcome.failed else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        return self._jitter()(state)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The delay before retry ``attempt`` (from 0), for loops that wait their own way (a watch's stop event)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempt + 1
        return self._jitter()(state)

    def retrying(self) -> Retrying:
        """Retries an :class:`ApiError` that is transient, up to ``attempts`` tries; the last error is raised."""
        return Retrying(stop=stop_after_attempt(self.attempts), wait=self.wait, sleep=self.sleep, reraise=True,
                        retry=retry_if_exception(lambda exc: isinstance(exc, ApiError) and exc.transient))


def poll(check: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float) -> T:
    """Call ``check`` every ``interval`` seconds until ``done`` holds for its result or ``timeout``
    seconds have passed (then one last call answers); returns the last result. ``check`` runs at
    least once; what it raises, and an interrupt while waiting, ends the poll."""
    return Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(interval),
                    retry=retry_if_result(lambda result: not done(result)),
                    retry_error_callback=_last_result)(check)


def _last_result(state: RetryCallState) -> Any:
    """tenacity's ``retry_error_callback`` for :func:`poll`: the last call's result, not a RetryError."""
    assert state.outcome is not None  # the callback runs after an attempt
    return state.outcome.result()


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _status_from_body(data: bytes) -> tuple[str, str]:
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        return "", data[:300].decode("utf-8", "replace").strip()
    if isinstance(body, dict):
        return str(body.get("reason") or ""), str(body.get("message") or "")
    return "", ""


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> k8s_client.ApiClient:
    """An ``ApiClient`` from ``kubeconfig``/``context`` (default: $KUBECONFIG, ~/.kube/config, in-cluster)."""
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(config_file=kubeconfig, context=context,
                                    client_configuration=configuration, persist_config=False)
    except (ConfigException, FileNotFoundError, TypeError) as exc:
        if kubeconfig or context:
            raise ConfigError(f"cannot load kubeconfig {kubeconfig or '(default)'} "
                              f"context {context or '(current)'}: {exc}") from exc
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc2:
            raise ConfigError("no kubeconfig found ($KUBECONFIG, ~/.kube/config) and not running in a pod; "
                              "pass --kubeconfig FILE (and --context NAME)") from exc2
    return k8s_client.ApiClient(configuration)


class Kube:
    """Raw JSON requests to one cluster, with retries on transient errors."""

    def __init__(self, api_client: k8s_client.ApiClient, backoff: Backoff | None = None,
                 request_timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.backoff = backoff or Backoff()
        self.request_timeout = request_timeout

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None, **kw: Any) -> Kube:
        return cls(load_api_client(kubeconfig, context), **kw)

    @property
    def host(self) -> str:
        return self.api_client.configuration.host

    def close(self) -> None:
        self.api_client.close()

    # -- raw transport --------------------------------------------------------------------

    def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
              content_type: str | None, timeout: Any, accept: str = "application/json"):
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        params = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in params]
        try:
            _, url, headers, body, _ = self.api_client.param_serialize(
                method=method, resource_path=path, query_params=params, header_params=headers,
                body=body, auth_settings=["BearerToken"])
            return self.api_client.call_api(method, url, header_params=headers, body=body,
                                            _request_timeout=timeout)
        except ApiException as exc:  # TLS and request-building failures
            raise ApiError(exc.status or 0, str(exc.reason or "Error"), "", method, path) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiError(0, "ConnectionError", str(exc), method, path) from exc
        except (OpenApiException, ValueError, TypeError) as exc:
            # ApiValueError/ApiTypeError/ApiKeyError and plain ValueError/TypeError: the client could
            # not build or send the request. Retrying the same request cannot help.
            raise ApiError(0, f"ClientError {type(exc).__name__}", str(exc), method, path,
                           retryable=False) from exc

    def _raise_for(self, resp, method: str, path: str) -> None:
        if 200 <= resp.status <= 299:
            return
        data = resp.read() or b""
        reason, message = _status_from_body(data)
        raise ApiError(resp.status, reason or str(resp.reason or ""), message, method, path,
                       retry_after=_retry_after(resp.headers))

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, timeout: float | None = None) -> Any:
        """One request; returns the decoded JSON body (``None`` if empty)."""

        def once():
            resp = self._send(method, path, query, body, content_type, timeout or self.request_timeout)
            self._raise_for(resp, method, path)
            data = resp.read()
            return json.loads(data) if data else None

        return self.backoff.retrying()(once)

    def text(self, path: str, *, query: dict[str, Any] | None = None, timeout: float | None = None) -> str:
        """A GET whose answer is plain text (pod logs)."""

        def once():
            resp = self._send("GET", path, query, None, None, timeout or self.request_timeout, accept="*/*")
            self._raise_for(resp, "GET", path)
            return (resp.read() or b"").decode("utf-8", "replace")

        return self.backoff.retrying()(once)

    def stream_lines(self, path: str, *, query: dict[str, Any], read_timeout: float,
                     on_open: Any = None) -> Iterator[bytes]:
        """A streaming GET (watch): yields raw lines until the server ends the stream.

        Opening is retried like any request; a stream cut mid-way simply ends the iteration
        (the caller resumes from its last resourceVersion).
        """

        def open_():
            resp = self._send("GET", path, query, None, None, (10.0, read_timeout))
            self._raise_for(resp, "GET", path)
            return resp

        resp = self.backoff.retrying()(open_)
        raw = resp.response
        if on_open is not None:
            on_open(raw)
        buf = b""
        try:
            for chunk in raw.stream(amt=65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield line
            if buf.strip():
                yield buf
        except (urllib3.exceptions.HTTPError, OSError):
            return  # dropped stream: the caller resumes
        finally:
            raw.release_conn()

    # -- helpers --------------------------------------------------------------------------

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)

    def get_or_none(self, path: str) -> Any:
        try:
            return self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, path: str, body: dict[str, Any], *, force: bool = True) -> Any:
        """Server-side apply of ``body`` at its object path (``.../plural/name``)."""
        return self.request("PATCH", path, body=body, content_type=APPLY_PATCH,
                            query={"fieldManager": FIELD_MANAGER, "force": force})

    def delete(self, path: str, *, propagation: str = "Background") -> bool:
        """Delete; ``False`` if it was already gone."""
        try:
            self.request("DELETE", path, body={"kind": "DeleteOptions", "apiVersion": "v1",
                                               "propagationPolicy": propagation})
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise


def ns_path(namespace: str, plural: str, name: str | None = None, *, group: str = "", version: str = "v1",
            sub: str | None = None) -> str:
    """``/api/v1/namespaces/ns/pods/name/log`` or ``/apis/g/v/namespaces/ns/plural/name``."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    path = f"{base}/namespaces/{quote(namespace)}/{plural}"
    if name:
        path += f"/{quote(name)}"
    if sub:
        path += f"/{sub}"
    return path

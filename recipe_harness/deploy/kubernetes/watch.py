"""List + watch collections in background threads, resuming from the last resourceVersion.

A :class:`Watcher` lists a collection once (its items arrive as ``ADDED``), then watches from
the list's resourceVersion. A stream that ends -- server ``timeoutSeconds``, a load balancer
cutting idle connections, an apiserver restart -- is reopened from the last resourceVersion
seen (bookmarks included), so no event is lost or replayed. ``410 Gone`` (history compacted)
relists. 429/5xx are retried with backoff inside :class:`~.client.Kube`, then again here until
the caller stops. :class:`WatchSet` merges several watchers into one queue and keeps the
current state of every object, which is what the fail-fast analysis reads.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recipe_harness.deploy.kubernetes.client import ApiError, Backoff, Kube


@dataclass
class WatchEvent:
    source: str                 # the watcher's label: "pods", "events", "dgd" ...
    type: str                   # ADDED | MODIFIED | DELETED | RELISTED | FAILED
    object: dict[str, Any] = field(default_factory=dict)
    error: ApiError | None = None


@dataclass
class WatchStats:
    lists: int = 0
    streams: int = 0
    resumes: int = 0
    relists: int = 0
    retries: int = 0
    events: int = 0


class Watcher(threading.Thread):
    def __init__(self, kube: Kube, source: str, path: str, out: queue.Queue, *,
                 params: dict[str, Any] | None = None, timeout_seconds: int = 60,
                 backoff: Backoff | None = None) -> None:
        super().__init__(name=f"watch-{source}", daemon=True)
        self.kube = kube
        self.source = source
        self.path = path
        self.params = dict(params or {})
        self.out = out
        self.timeout_seconds = timeout_seconds
        self.backoff = backoff or Backoff()
        self.stats = WatchStats()
        self._stop_event = threading.Event()
        self._response = None
        self.resource_version: str | None = None

    def stop(self) -> None:
        self._stop_event.set()
        resp = self._response
        if resp is not None:
            try:
                resp.shutdown() if hasattr(resp, "shutdown") else resp.close()
            except Exception:  # noqa: BLE001 -- best effort to unblock a read
                pass

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def _put(self, type_: str, obj: dict[str, Any] | None = None, error: ApiError | None = None) -> None:
        self.out.put(WatchEvent(self.source, type_, obj or {}, error))

    def _list(self) -> None:
        listing = self.kube.request("GET", self.path, query=self.params or None) or {}
        self.stats.lists += 1
        if self.stats.lists > 1:
            self.stats.relists += 1
        self.resource_version = (listing.get("metadata") or {}).get("resourceVersion") or None
        self._put("RELISTED", {"items": listing.get("items") or []})

    def _open(self, resp) -> None:
        self._response = resp

    def _stream(self) -> None:
        query = dict(self.params, watch="true", allowWatchBookmarks="true",
                     timeoutSeconds=self.timeout_seconds, resourceVersion=self.resource_version)
        self.stats.streams += 1
        for line in self.kube.stream_lines(self.path, query=query, read_timeout=self.timeout_seconds + 15,
                                           on_open=self._open):
            if self.stopped:
                return
            try:
                event = json.loads(line)
            except ValueError:
                continue
            type_ = event.get("type")
            obj = event.get("object") or {}
            if type_ == "ERROR":
                code = int(obj.get("code") or 0)
                raise ApiError(code, str(obj.get("reason") or "Error"), str(obj.get("message") or ""),
                               "WATCH", self.path)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = rv
            if type_ == "BOOKMARK":
                continue
            self.stats.events += 1
            self._put(type_, obj)

    def run(self) -> None:
        failures = 0
        while not self.stopped:
            try:
                if self.resource_version is None:
                    self._list()
                self._stream()
                if not self.stopped:
                    self.stats.resumes += 1  # the stream ended: reopen from the last resourceVersion
                failures = 0
            except ApiError as exc:
                if self.stopped:
                    return
                if exc.status == 410:  # too old: history compacted, list again
                    self.resource_version = None
                    continue
                if not exc.transient:
                    self._put("FAILED", error=exc)
                    return
                self.stats.retries += 1
                # not a tenacity loop: a watch reconnects for as long as it runs, and stop() must end this wait at once
                self._stop_event.wait(self.backoff.delay(failures, exc.retry_after))
                failures += 1
            finally:
                self._response = None


class WatchSet:
    """Several watchers feeding one queue; ``objects[source][ns/name]`` is the latest state."""

    def __init__(self, kube: Kube, timeout_seconds: int = 60) -> None:
        self.kube = kube
        self.timeout_seconds = timeout_seconds
        self.queue: queue.Queue[WatchEvent] = queue.Queue()
        self.watchers: dict[str, Watcher] = {}
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}

    def add(self, source: str, path: str, params: dict[str, Any] | None = None) -> Watcher:
        watcher = Watcher(self.kube, source, path, self.queue, params=params, timeout_seconds=self.timeout_seconds)
        self.watchers[source] = watcher
        self.objects.setdefault(source, {})
        watcher.start()
        return watcher

    def __enter__(self) -> WatchSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for watcher in self.watchers.values():
            watcher.stop()

    @staticmethod
    def key(obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"

    def apply(self, event: WatchEvent) -> None:
        store = self.objects.setdefault(event.source, {})
        if event.type == "RELISTED":
            store.clear()
            for item in event.object.get("items", []):
                store[self.key(item)] = item
        elif event.type in ("ADDED", "MODIFIED"):
            store[self.key(event.object)] = event.object
        elif event.type == "DELETED":
            store.pop(self.key(event.object), None)

    def events(self, deadline: float, tick: float = 0.5) -> Iterator[WatchEvent | None]:
        """Events as they come (state already applied); ``None`` every ``tick`` s without one.

        Ends at ``deadline`` (``time.monotonic()``). A watcher that fails for good raises its error.
        """
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                event = self.queue.get(timeout=min(tick, remaining))
            except queue.Empty:
                yield None
                continue
            if event.type == "FAILED" and event.error is not None:
                raise event.error
            self.apply(event)
            yield event

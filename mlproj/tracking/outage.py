"""A tracking server that fails: unreachable at start (a fast, clear error), or lost mid-run (buffer, retry,
and if it never comes back, keep everything trained on local disk for `python -m mlproj.upload`).

MLflow's HTTP client retries a failed request itself, with exponential backoff for minutes by default; mlproj
bounds those retries per request (see `bound_client_retries`) and owns the longer wait (`tracking.retry_for`),
so training never blocks on the server and the time a command can hang is predictable.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from mlproj.errors import TrackingLost, TrackingUnreachable

log = logging.getLogger(__name__)

T = TypeVar("T")

PROBE_TIMEOUT_S = 4.0  # the whole start-up check, all attempts together (a restarting server gets a moment)
BATCH_LIMIT = 1000  # MLflow's limit on metrics per log_batch
KEPT_FOLDER = "unlogged"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def bound_client_retries() -> None:
    """Cap MLflow's own per-request retries (default: 7 with doubling backoff, minutes of blocking) to a few
    seconds; longer outages are mlproj's to wait out. Set the variables yourself to override."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # Each retried request logs a warning; during an outage mlproj says it once itself.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingUnreachable unless the server answers (any HTTP status counts: an auth proxy's 401 is
    an answer) within `timeout` seconds. Only connection failures and timeouts mean unreachable."""
    from mlproj.tracking.masking import redact

    deadline = time.monotonic() + timeout
    reason = ""
    request = _health_request(uri)
    while time.monotonic() < deadline:
        try:
            left = max(0.5, min(3.0, deadline - time.monotonic()))
            urllib.request.urlopen(request, timeout=left).close()
            return
        except urllib.error.HTTPError:
            return
        except (OSError, ValueError) as exc:
            reason = str(getattr(exc, "reason", exc))
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    raise TrackingUnreachable(
        f"tracking server {redact(uri)} is unreachable ({reason}); nothing was created or trained. "
        "Start it (python -m mlproj.server) or point tracking.uri at one that runs"
    )


def _health_request(uri: str) -> urllib.request.Request:
    """GET <uri>/health; credentials in the URL (http://user:password@host) become a Basic auth header, as
    MLflow's own client sends them (urllib would take them for part of the host name)."""
    import base64
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri.rstrip("/") + "/health")
    if parts.username is None:
        return urllib.request.Request(urlunsplit(parts))
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    request = urllib.request.Request(urlunsplit(parts._replace(netloc=host)))
    token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    return request


def is_connection_error(exc: BaseException) -> bool:
    """A failure to reach the server (refused, reset, timed out, 502-504 from a proxy), not a bad request."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout | ConnectionError):
        return True
    text = str(exc)
    markers = (
        "Max retries exceeded",
        "Connection refused",
        "Connection aborted",
        "Read timed out",
        "RemoteDisconnected",
    )
    return any(m in text for m in markers) or any(f"{code} Server Error" in text for code in (502, 503, 504))


class Outage:
    """When the server was first found lost (None while it answers), and how long to wait for it."""

    def __init__(self, uri: str, retry_for: float) -> None:
        self.uri, self.retry_for = uri, retry_for
        self.since: float | None = None

    def lost(self) -> None:
        if self.since is None:
            self.since = time.monotonic()
            print(f"mlproj: tracking server lost; buffering and retrying for up to {self.retry_for:.0f} s", flush=True)

    def back(self) -> None:
        if self.since is not None:
            print(f"mlproj: tracking server back after {time.monotonic() - self.since:.0f} s", flush=True)
        self.since = None

    def expired(self) -> bool:
        return self.since is not None and time.monotonic() - self.since >= self.retry_for

    def wait(self) -> None:
        """Sleep a little, or until the server answers again (checked cheaply on /health)."""
        for _ in range(4):
            try:
                probe(self.uri, timeout=0.5)
                return
            except TrackingUnreachable:
                pass
            if self.expired():
                return

    def call(self, step: Callable[[], T], what: str) -> T:
        """`step()`, retried while the server is lost, until tracking.retry_for runs out (TrackingLost)."""
        while True:
            try:
                result = step()
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                self.lost()
                if self.expired():
                    raise TrackingLost(f"{what}: {exc}") from exc
                self.wait()
                continue
            self.back()
            return result


class MetricBuffer:
    """Metrics sent in the background, in arrival order; kept and re-sent while the server is lost.

    Written by hand because MLflow's asynchronous logging drops a batch whose request failed: here nothing
    leaves the buffer until the server has acknowledged it.
    """

    def __init__(self, client: Any, run_id: str, outage: Outage) -> None:
        self.client, self.run_id, self.outage = client, run_id, outage
        self._queue: list[Any] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlproj-metrics")
        self._future: Future[None] | None = None
        self._sending = False  # a _send is queued or running; set and cleared under the lock

    def add(self, metrics: list[Any]) -> None:
        with self._lock:
            self._queue.extend(metrics)
            self._start()

    def _start(self) -> None:
        # Under the lock: a sender that found the queue empty clears the flag in the same critical section,
        # so a metric added after it looked is never left waiting for the next add().
        if not self._sending:
            self._sending = True
            self._future = self._executor.submit(self._send)

    def _send(self) -> None:
        try:
            while True:
                with self._lock:
                    batch = self._queue[:BATCH_LIMIT]
                    if not batch:
                        self._sending = False
                        return
                try:
                    self.client.log_batch(self.run_id, metrics=batch)
                except Exception as exc:
                    if not is_connection_error(exc):
                        raise
                    self.outage.lost()
                    with self._lock:
                        self._sending = False
                    return  # kept; the next add() or flush() tries again
                self.outage.back()
                with self._lock:
                    del self._queue[: len(batch)]
        except BaseException:
            with self._lock:
                self._sending = False
            raise

    def pending(self) -> list[Any]:
        with self._lock:
            return list(self._queue)

    def flush(self) -> None:
        """Block until every metric is on the server; TrackingLost when tracking.retry_for runs out."""
        while True:
            future = self._future
            if future is not None:
                future.result()  # a non-connection error (a bad metric) surfaces here
            if not self.pending():
                return
            if self.outage.expired():
                raise TrackingLost(f"{len(self.pending())} metrics could not be sent")
            self.outage.wait()
            with self._lock:
                self._start()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def keep_locally(
    folder: Path,
    run: dict[str, Any],
    pending: list[Any],
    save_model: Callable[[Path], None] | None,
    figures: dict[str, Any] | None,
) -> Path:
    """Write what the server did not get: `run.json` (run id, store, results, tags, config), unsent metrics,
    the packaged model (a complete MLflow model folder, loadable with mlflow.pyfunc.load_model) and plots."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_FILE).write_text(json.dumps(run, indent=1, default=str))
    with (folder / METRICS_FILE).open("w") as out:
        for m in pending:
            out.write(json.dumps([m.key, m.value, m.timestamp, m.step]) + "\n")
    if save_model is not None:
        save_model(folder / "model")
    for name, figure in (figures or {}).items():  # names are artifact paths: plots/<file>.png
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if hasattr(figure, "to_csv"):  # a table (permutation importance) beside the plots
            figure.to_csv(folder / name, index=False)
        else:
            figure.savefig(folder / name, dpi=100)
    return folder

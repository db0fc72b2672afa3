"""HTTP for the fetcher: retries with backoff (429/5xx, Retry-After honoured), a per-host rate limit,
timeouts, and PDF downloads that are size-capped, checked and only ever renamed into place when whole.

Built on ``requests`` (2.34 here); its automatic urllib3 retries are not used, so one policy covers API
calls and downloads alike and every retry is counted. A download streams into ``.<name>.part`` beside
its target, hashing as it goes; it is renamed to ``<name>`` (os.replace: atomic on one file system) only
after the body is complete (Content-Length met, a ``%%EOF`` marker near the end), starts with ``%PDF-``
and fits the size cap. A killed process therefore leaves at most a ``.part`` file, which the next run
deletes. Bodies that are not PDFs are refused with the reason: ``html_instead_of_pdf`` (a landing page
or a login wall) or ``not_a_pdf``.

Retry-After is either delta-seconds or an HTTP-date (RFC 9110 section 10.2.3); both are read.
A body cut short of its Content-Length raises during streaming (checked in the installed sources: urllib3
2.8 ``HTTPResponse(enforce_content_length=True)`` by default raises ``ProtocolError`` (IncompleteRead), which
requests 2.34 ``Response.iter_content`` re-raises as ``ChunkedEncodingError``); a close-delimited body
without Content-Length cannot be checked that way, hence the %%EOF check.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 300.0  # a server asking for longer than this: give up on this call, a later run retries
PDF_TAIL = 2048  # %%EOF must appear in the last bytes of a whole PDF (incremental updates end with one too)


class FetchHTTPError(Exception):
    """A call that failed for good (after the retries): ``reason`` is "http_error:<code>" or "network_error"."""

    def __init__(self, url: str, reason: str, detail: str):
        detail = redact(detail)
        super().__init__(f"{url}: {reason} ({detail})")
        self.url, self.reason, self.detail = url, reason, detail


def redact(text: str) -> str:
    """An error text with any api_key=... query value masked (requests puts the full URL in its messages)."""
    return re.sub(r"(api_key=)[^&\s'\"]+", r"\1***", text)


@dataclass
class Download:
    """The outcome of one PDF download: ok with its file, hash and size, or refused/failed with a reason."""

    ok: bool
    reason: str | None = None
    detail: str = ""
    path: Path | None = None
    sha256: str | None = None
    bytes: int = 0


@dataclass
class HttpStats:
    requests: int = 0
    retries: int = 0
    waited_s: float = 0.0
    by_host: dict[str, int] = field(default_factory=dict)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HostRateLimiter:
    """At most one request per ``interval`` seconds to each host (thread-safe; the fetch is sequential today)."""

    def __init__(self, default_interval: float, per_host: dict[str, float] | None = None, sleep=time.sleep):
        self.default = default_interval
        self.per_host = dict(per_host or {})
        self.sleep = sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> float:
        interval = self.per_host.get(host, self.default)
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, 0.0))
            self._next[host] = start + interval
        if start > now:
            self.sleep(start - now)
        return start - now


class Http:
    """One requests.Session with the fetcher's retry, rate-limit and timeout policy."""

    def __init__(self, user_agent: str, limiter: HostRateLimiter, attempts: int = 5, backoff_s: float = 2.0,
                 timeout: tuple[float, float] = (10.0, 60.0), sleep=time.sleep):
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.limiter, self.attempts, self.backoff_s, self.timeout, self.sleep = limiter, attempts, backoff_s, timeout, sleep
        self.stats = HttpStats()

    def close(self) -> None:
        self.session.close()

    def _backoff(self, attempt: int, response: requests.Response | None) -> float:
        """Retry-After when the server gave one, else exponential backoff with jitter (base * 2^attempt)."""
        hinted = retry_after_seconds(response.headers.get("Retry-After")) if response is not None else None
        if hinted is not None:
            return hinted
        return self.backoff_s * (2 ** attempt) * (0.5 + random.random() / 2)

    def _send(self, url: str, params: dict | None, stream: bool) -> requests.Response:
        """GET with retries on 429/5xx, timeouts and dropped connections; the last failure raises."""
        host = urlsplit(url).netloc
        last = "no attempt"
        for attempt in range(self.attempts):
            self.limiter.wait(host)
            self.stats.requests += 1
            self.stats.by_host[host] = self.stats.by_host.get(host, 0) + 1
            response = None
            try:
                response = self.session.get(url, params=params, stream=stream, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last, reason = f"{type(exc).__name__}: {exc}", "network_error"
            else:
                if response.status_code not in RETRY_STATUS:
                    return response
                last, reason = f"HTTP {response.status_code}", f"http_error:{response.status_code}"
                response.close()
            if attempt + 1 == self.attempts:
                break
            wait = self._backoff(attempt, response)
            if wait > MAX_RETRY_AFTER_S:
                raise FetchHTTPError(url, reason, f"{last}; server asks to wait {wait:.0f} s")
            self.stats.retries += 1
            self.stats.waited_s += wait
            self.sleep(wait)
        raise FetchHTTPError(url, reason, f"{last} after {self.attempts} attempt(s)")

    def get_json(self, url: str, params: dict | None = None) -> tuple[dict, Mapping[str, str]]:
        """(body, response headers) of a JSON API call; HTTP errors other than 429/5xx raise at once. The headers
        stay requests' case-insensitive mapping: header names are case-insensitive (RFC 9110 section 5.1), a server
        or proxy may send x-ratelimit-cost-usd (HTTP/2 carries names in lower case), which a plain dict missed."""
        response = self._send(url, params, stream=False)
        if response.status_code != 200:
            raise FetchHTTPError(url, f"http_error:{response.status_code}", response.text[:300])
        try:
            return response.json(), response.headers
        except ValueError as exc:
            raise FetchHTTPError(url, "bad_json", f"not JSON: {exc}") from None

    def download_pdf(self, url: str, dest: Path, max_bytes: int) -> Download:
        """Stream url into dest (via .<name>.part); retried as a whole when the body arrives truncated."""
        part = dest.with_name(f".{dest.name}.part")
        outcome = Download(False, "truncated", "no attempt")
        for attempt in range(self.attempts):
            try:
                response = self._send(url, None, stream=True)
            except FetchHTTPError as exc:
                return Download(False, exc.reason, exc.detail)
            with response:
                outcome = self._receive(response, part, max_bytes)
            if outcome.ok:
                os.replace(part, dest)
                outcome.path = dest
                return outcome
            part.unlink(missing_ok=True)
            if outcome.reason not in ("truncated", "network_error") or attempt + 1 == self.attempts:
                return outcome
            self.stats.retries += 1
            self.sleep(self._backoff(attempt, None))
        return outcome

    def _receive(self, response: requests.Response, part: Path, max_bytes: int) -> Download:
        if response.status_code != 200:
            return Download(False, f"http_error:{response.status_code}", response.reason or "")
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            return Download(False, "too_large", f"Content-Length {int(declared):,} > cap {max_bytes:,}")
        content_type = response.headers.get("Content-Type", "")
        digest, size, head, judged, tail = hashlib.sha256(), 0, b"", False, b""
        try:
            with open(part, "wb") as fh:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    if not judged:  # the first KiB, over as many chunks as it takes: a chunked body (urllib3 yields
                        head = (head + chunk)[:1024]  # one HTTP chunk at a time) may start with a few bytes only
                        if len(head) == 1024 or b"%PDF-" in head:
                            judged = True
                            verdict = _not_pdf(head, content_type)
                            if verdict:
                                return Download(False, *verdict)
                    size += len(chunk)
                    if size > max_bytes:
                        return Download(False, "too_large", f"more than the cap of {max_bytes:,} bytes")
                    digest.update(chunk)
                    tail = (tail + chunk)[-PDF_TAIL:]
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as exc:
            return Download(False, "truncated", f"connection lost after {size:,} bytes: {type(exc).__name__}")
        if not head:
            return Download(False, "not_a_pdf", "empty body")
        verdict = None if judged else _not_pdf(head, content_type)  # a body shorter than a KiB
        if verdict:
            return Download(False, *verdict)
        if declared and declared.isdigit() and size < int(declared):
            return Download(False, "truncated", f"{size:,} of {int(declared):,} bytes")
        if b"%%EOF" not in tail:
            return Download(False, "truncated", f"no %%EOF in the last {PDF_TAIL} bytes ({size:,} bytes received)")
        return Download(True, sha256=digest.hexdigest(), bytes=size)


def check_pdf_file(path: Path) -> Download:
    """A finished file found on disk without its manifest line (a run killed between the rename and the line):
    accepted as downloaded when it passes the same checks as a download (%PDF- header, %%EOF at the end)."""
    data = path.read_bytes()
    if _not_pdf(data[:1024], "application/pdf") or b"%%EOF" not in data[-PDF_TAIL:]:
        return Download(False, "not_a_pdf", f"{path.name} on disk is not a whole PDF")
    return Download(True, path=path, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))


def _not_pdf(head: bytes, content_type: str) -> tuple[str, str] | None:
    """None when the first bytes are a PDF's (%PDF- in the first KiB, as PDF readers accept); else why not."""
    if b"%PDF-" in head:
        return None
    low = head.lstrip()[:512].lower()
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<!--")) or b"<html" in low or "html" in content_type:
        return "html_instead_of_pdf", f"an HTML page (Content-Type {content_type or 'none'}) where a PDF was promised"
    return "not_a_pdf", f"no %PDF- header (Content-Type {content_type or 'none'})"

"""A local stand-in for the scholarly indexes and the publishers' PDF hosts (no network in the tests).

It answers in the documented shapes of the real APIs (dataset_builders/fetch/openalex.py and europepmc.py
cite what was read):
- ``GET /works`` (OpenAlex): ``{"meta": {"count", "per_page", "next_cursor"}, "results": [...]}``, cursor
  paging from ``cursor=*`` (``next_cursor`` null on the last page), ``per-page`` honoured up to
  ``page_size``, cost headers ``X-RateLimit-Cost-USD`` / ``X-RateLimit-Remaining-USD``;
- ``GET /europepmc/search`` (Europe PMC REST): ``{"hitCount", "nextCursorMark", "resultList": {"result"}}``,
  ``cursorMark`` paging, no ``nextCursorMark`` on the last page;
- ``GET /pdf/<name>``: a file as scripted by ``FileSpec`` — a whole PDF, an HTML landing page, a body cut
  short of its Content-Length, or a slow one that stops half-way until ``release`` is set.
Faults: ``faults[key]`` is a list of (status, headers) sent to the first requests of that key (key =
"works:<cursor>", "epmc:<cursorMark>" or "pdf:<name>"), then normal answers. Every request is logged.

Usage:
    with LiteratureServer(works=[...], page_size=2, faults={"works:*": [(429, {"Retry-After": "1"})]}) as api:
        api.base_url, api.log
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HTML_PAGE = b"<!DOCTYPE html><html><head><title>Article</title></head><body>Sign in to download</body></html>"


@dataclass
class FileSpec:
    body: bytes = b""
    kind: str = "pdf"  # pdf | html | truncated | slow | nolength (close-delimited, no Content-Length) | chunked
    # (Transfer-Encoding: chunked, a first chunk of 3 bytes: urllib3 hands the body on one HTTP chunk at a time)
    content_type: str = "application/pdf"


@dataclass
class Logged:
    path: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    t: float


@dataclass
class LiteratureServer:
    works: list[dict] = field(default_factory=list)
    epmc: list[dict] = field(default_factory=list)
    files: dict[str, FileSpec] = field(default_factory=dict)
    faults: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    page_size: int = 100
    cost_usd: float = 0.001
    lower_headers: bool = False  # send the cost headers in lower case (as many servers and proxies do)

    def __post_init__(self):
        self.log: list[Logged] = []
        self.release = threading.Event()  # lets a "slow" file finish
        self.slow_started = threading.Event()
        self._seen: Counter = Counter()
        self._lock = threading.Lock()
        self.spent = 0.0

    # --- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "LiteratureServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def count(self, key: str, status: int | None = None) -> int:
        return sum(1 for r in self.log if r.key == key and (status is None or r.status == status))

    # --- answers --------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/works":
            key = f"works:{query.get('cursor', '')}"
        elif parts.path == "/europepmc/search":
            key = f"epmc:{query.get('cursorMark', '')}"
        elif parts.path.startswith("/pdf/"):
            key = f"pdf:{parts.path[5:]}"
        else:
            key = "unknown"
        with self._lock:
            n = self._seen[key]
            self._seen[key] += 1
        script = self.faults.get(key, [])
        status = script[n][0] if n < len(script) else 200
        if key == "unknown" or (key.startswith("pdf:") and key[4:] not in self.files):
            status = 404
        self.log.append(Logged(parts.path, key, query, dict(h.headers), status, time.monotonic()))
        try:
            if status != 200:
                body = json.dumps({"error": f"HTTP {status}", "message": "scripted fault"}).encode()
                self._send(h, status, body, "application/json", script[n][1] if n < len(script) else {})
            elif key.startswith("works:"):
                self._works(h, query)
            elif key.startswith("epmc:"):
                self._epmc(h, query)
            else:
                self._file(h, self.files[key[4:]])
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _send(h, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _page(self, items: list[dict], cursor: str, size: int) -> tuple[list[dict], str | None]:
        start = 0 if cursor == "*" else int(cursor.removeprefix("c"))
        size = max(1, min(size, self.page_size))
        nxt = start + size
        return items[start:nxt], (f"c{nxt}" if nxt < len(items) else None)

    def _works(self, h, query: dict[str, str]) -> None:
        page, nxt = self._page(self.works, query.get("cursor", "*"), int(query.get("per-page", 25)))
        self.spent += self.cost_usd
        body = {"meta": {"count": len(self.works), "db_response_time_ms": 1, "page": None,
                         "per_page": len(page), "next_cursor": nxt}, "results": page, "group_by": []}
        headers = {"X-RateLimit-Limit-USD": "1.0", "X-RateLimit-Cost-USD": str(self.cost_usd),
                   "X-RateLimit-Remaining-USD": f"{1.0 - self.spent:.4f}"}
        if self.lower_headers:
            headers = {k.lower(): v for k, v in headers.items()}
        self._send(h, 200, json.dumps(body).encode(), "application/json", headers)

    def _epmc(self, h, query: dict[str, str]) -> None:
        page, nxt = self._page(self.epmc, query.get("cursorMark", "*"), int(query.get("pageSize", 25)))
        body = {"version": "6.9", "hitCount": len(self.epmc), "request": {"query": query.get("query")},
                "resultList": {"result": page}}
        if nxt:
            body["nextCursorMark"] = nxt
        self._send(h, 200, json.dumps(body).encode(), "application/json")

    def _file(self, h, spec: FileSpec) -> None:
        if spec.kind == "html":
            self._send(h, 200, HTML_PAGE, "text/html; charset=utf-8")
            return
        h.send_response(200)
        h.send_header("Content-Type", spec.content_type)
        if spec.kind == "chunked":
            h.send_header("Transfer-Encoding", "chunked")
        elif spec.kind != "nolength":
            h.send_header("Content-Length", str(len(spec.body)))
        h.end_headers()
        if spec.kind == "chunked":
            for piece in (spec.body[:3], spec.body[3:]):
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
            return
        if spec.kind in ("pdf", "nolength"):
            h.wfile.write(spec.body)
            return
        half = len(spec.body) // 2
        h.wfile.write(spec.body[:half])
        h.wfile.flush()
        if spec.kind == "slow":
            self.slow_started.set()
            if self.release.wait(timeout=120):
                h.wfile.write(spec.body[half:])
        # "truncated": the connection closes here, short of Content-Length


def work(oid: str, doi: str, licence: str | None, pdf_url: str | None, title: str = "A fractography study",
         year: int = 2025, venue: str = "Engineering Failure Analysis") -> dict:
    """An OpenAlex Work object as the API returns it (the fields the fetcher selects)."""
    return {"id": f"https://openalex.org/{oid}", "doi": f"https://doi.org/{doi}", "display_name": title,
            "publication_year": year, "publication_date": f"{year}-03-01",
            "authorships": [{"author": {"display_name": "A. Author"}}, {"author": {"display_name": "B. Author"}}],
            "primary_location": {"source": {"display_name": venue}},
            "best_oa_location": {"pdf_url": pdf_url, "landing_page_url": f"https://doi.org/{doi}", "license": licence,
                                 "version": "publishedVersion", "source": {"display_name": venue}}}


def epmc_result(pmcid: str, doi: str, licence: str | None, pdf_url: str | None, title: str = "Fatigue fracture",
                year: int = 2025) -> dict:
    """A Europe PMC core search result (the fields the fetcher reads)."""
    urls = [{"availability": "Open access", "availabilityCode": "OA", "documentStyle": "html", "site": "Europe_PMC",
             "url": f"https://europepmc.org/articles/{pmcid}"}]
    if pdf_url:
        urls.append({"availability": "Open access", "availabilityCode": "OA", "documentStyle": "pdf",
                     "site": "Europe_PMC", "url": pdf_url})
    return {"id": pmcid.removeprefix("PMC"), "source": "PMC", "pmcid": pmcid, "doi": doi, "title": title,
            "authorString": "Curie M, Bragg L.", "authorList": {"author": [{"fullName": "Curie M"},
                                                                          {"fullName": "Bragg L"}]},
            "journalInfo": {"journal": {"title": "Materials"}}, "pubYear": str(year),
            "firstPublicationDate": f"{year}-02-01", "isOpenAccess": "Y", "license": licence,
            "fullTextUrlList": {"fullTextUrl": urls}}

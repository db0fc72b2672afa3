"""OpenAlex works search: open-access works matching a query, with their best OA location's PDF and licence.

What was checked (OpenAlex documentation, read 2026-12 with the search tool):
- developers.openalex.org/api-reference/authentication ("Authentication & Pricing"): an API key is required
  since 2026-02-13, passed as ``api_key=``; the API is metered in USD against a daily allowance: $1/day
  with a free key, $0.01/day without one (the .md twin of that page says $0.10: the two disagree, we
  take the lower); per call: singleton (/works/W123) free, list+filter $0.0001, search (``search=``)
  $0.001, content download $0.01; at most 100 requests/second; tip: per_page=100.
- docs.openalex.org/how-to-use-the-api/rate-limits-and-authentication: every response carries
  X-RateLimit-Limit-USD, X-RateLimit-Remaining-USD and X-RateLimit-Cost-USD; 429 when the allowance
  is spent. The polite pool: ``mailto=you@example.org`` (or mailto: in the User-Agent).
- developers.openalex.org/api-reference/errors: 429 daily limit, 500 "retry with backoff", 403 slow down.
- Works list: ``meta.count``, ``meta.next_cursor`` (cursor paging: start with ``cursor=*``; null at the
  end), ``results``; filters ``is_oa:true``, ``from_publication_date:YYYY-MM-DD``; ``select=`` trims the
  fields; a work's ``best_oa_location`` has ``pdf_url``, ``landing_page_url`` and ``license``.

Why not pyalex (the maintained client, 0.21 on PyPI): its works URLs are built with a hard-coded
``https://api.openalex.org`` (pyalex/api.py, BaseOpenAlex.url: ``urlunparse(("https", "api.openalex.org",
...))``; ``config.openalex_url`` is only used for n-grams), so it cannot be pointed at a local server for
the tests; its retries are mounted for https:// only, and it does not expose the cost headers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date

from dataset_builders.fetch.candidates import Candidate, bare_doi
from dataset_builders.fetch.http import Http

DEFAULT_URL = "https://api.openalex.org"
API_KEY_ENV = "OPENALEX_API_KEY"  # read at call time, never stored or printed
PER_PAGE = 100
PRICE_USD = {"singleton": 0.0, "list": 0.0001, "search": 0.001}
DAILY_ALLOWANCE_USD = {"no_key": 0.01, "free_key": 1.0}
SELECT = "id,doi,display_name,publication_year,publication_date,authorships,primary_location,best_oa_location"


class OpenAlexClient:
    def __init__(self, http: Http, base_url: str = DEFAULT_URL, mailto: str | None = None):
        self.http, self.base_url, self.mailto = http, base_url.rstrip("/"), mailto
        self.calls = 0
        self.cost_usd = 0.0  # as the server reported it (X-RateLimit-Cost-USD), else the documented price
        self.remaining_usd: float | None = None

    @staticmethod
    def has_key() -> bool:
        return bool(os.environ.get(API_KEY_ENV))

    def _params(self, query: str | None, since: date | None, per_page: int, cursor: str | None) -> dict:
        filters = ["is_oa:true"] + ([f"from_publication_date:{since.isoformat()}"] if since else [])
        params = {"filter": ",".join(filters), "per-page": per_page, "select": SELECT}
        if query:
            params["search"] = query
        if cursor:
            params["cursor"] = cursor
        if self.mailto:
            params["mailto"] = self.mailto
        key = os.environ.get(API_KEY_ENV)
        if key:
            params["api_key"] = key
        return params

    def price(self, query: str | None) -> float:
        return PRICE_USD["search" if query else "list"]

    def _call(self, params: dict, query: str | None) -> dict:
        body, headers = self.http.get_json(f"{self.base_url}/works", params)
        self.calls += 1
        try:
            self.cost_usd += float(headers.get("X-RateLimit-Cost-USD", self.price(query)))
        except ValueError:
            self.cost_usd += self.price(query)
        if "X-RateLimit-Remaining-USD" in headers:
            try:
                self.remaining_usd = float(headers["X-RateLimit-Remaining-USD"])
            except ValueError:
                pass
        return body

    def count(self, query: str | None, since: date | None) -> int:
        """How many works match (one call with per-page=1)."""
        body = self._call(self._params(query, since, 1, None), query)
        return int(body.get("meta", {}).get("count", 0))

    def search(self, query: str | None, since: date | None, max_results: int) -> Iterator[Candidate]:
        """Matching works, cursor-paged, at most max_results."""
        cursor: str | None = "*"
        seen = 0
        while cursor and seen < max_results:
            body = self._call(self._params(query, since, min(PER_PAGE, max_results - seen), cursor), query)
            results = body.get("results") or []
            for work in results:
                if seen >= max_results:
                    return
                seen += 1
                yield parse_work(work)
            cursor = (body.get("meta") or {}).get("next_cursor")
            if not results:
                return


def parse_work(work: dict) -> Candidate:
    """An OpenAlex Work object -> Candidate (PDF URL and licence from best_oa_location)."""
    oid = str(work.get("id") or "").rstrip("/").rsplit("/", 1)[-1]
    best = work.get("best_oa_location") or {}
    primary = work.get("primary_location") or {}
    source = (primary.get("source") or best.get("source") or {})
    authors = [((a.get("author") or {}).get("display_name") or "").strip() for a in work.get("authorships") or []]
    return Candidate(
        key=f"openalex:{oid}", source="openalex", openalex_id=oid, doi=bare_doi(work.get("doi")),
        title=work.get("display_name") or work.get("title"), authors=[a for a in authors if a],
        year=work.get("publication_year"), venue=source.get("display_name"), published=work.get("publication_date"),
        licence_raw=best.get("license"), pdf_url=best.get("pdf_url"), landing_url=best.get("landing_page_url"))

"""Europe PMC REST search: open-access articles with a PDF link and their licence (the second index).

What was checked (read 2026-12 with the search tool): the REST search endpoint
``{base}/search?query=...&format=json&resultType=core&pageSize=N&cursorMark=*`` (pageSize up to 1000;
resultType=core adds the licence, journal, authors and ``fullTextUrlList``); cursor paging through
``nextCursorMark`` — the Europe PMC web-services announcement of version 6.6 says that when
``nextCursorMark`` (or ``nextPageUrl``) is absent the end of the results is reached; query fields
``OPEN_ACCESS:y`` and ``FIRST_PDATE:[YYYY-MM-DD TO YYYY-MM-DD]``; no key; about 10 requests/second per IP.
A result's ``fullTextUrlList.fullTextUrl[]`` entries carry ``documentStyle`` ("pdf", "html", ...),
``availabilityCode`` ("OA" open access, "F" free, "S" subscription) and ``url``; ``license`` is e.g.
"cc by", "cc by-nc-nd", "cc0". Calls are free: nothing is metered. An optional ``email=`` parameter
identifies the caller (as third-party clients such as europePMCTools' getAPIlink send it); the
User-Agent carries the same address.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from dataset_builders.fetch.candidates import Candidate, bare_doi
from dataset_builders.fetch.http import Http

DEFAULT_URL = "https://www.ebi.ac.uk/europepmc/webservices/rest"
PAGE_SIZE = 100
OPEN_CODES = ("OA", "F")  # open access, free to read: a PDF we may fetch (reuse is the licence's business)


class EuropePMCClient:
    def __init__(self, http: Http, base_url: str = DEFAULT_URL, mailto: str | None = None):
        self.http, self.base_url, self.mailto = http, base_url.rstrip("/"), mailto
        self.calls = 0

    def _params(self, query: str | None, since: date | None, page_size: int, cursor: str) -> dict:
        terms = [f"({query})"] if query else []
        terms.append("OPEN_ACCESS:y")
        if since:
            terms.append(f"FIRST_PDATE:[{since.isoformat()} TO 3000-12-31]")
        params = {"query": " AND ".join(terms), "format": "json", "resultType": "core", "pageSize": page_size,
                  "cursorMark": cursor}
        if self.mailto:
            params["email"] = self.mailto
        return params

    def _call(self, params: dict) -> dict:
        body, _ = self.http.get_json(f"{self.base_url}/search", params)
        self.calls += 1
        return body

    def count(self, query: str | None, since: date | None) -> int:
        return int(self._call(self._params(query, since, 1, "*")).get("hitCount", 0))

    def search(self, query: str | None, since: date | None, max_results: int) -> Iterator[Candidate]:
        cursor: str | None = "*"
        seen = 0
        while cursor and seen < max_results:
            body = self._call(self._params(query, since, min(PAGE_SIZE, max_results - seen), cursor))
            results = (body.get("resultList") or {}).get("result") or []
            for result in results:
                if seen >= max_results:
                    return
                seen += 1
                yield parse_result(result)
            following = body.get("nextCursorMark")
            if not results or following == cursor:
                return
            cursor = following


def _pdf_url(result: dict) -> str | None:
    urls = ((result.get("fullTextUrlList") or {}).get("fullTextUrl")) or []
    pdfs = [u for u in urls if u.get("documentStyle") == "pdf" and u.get("availabilityCode") in OPEN_CODES and u.get("url")]
    pdfs.sort(key=lambda u: (u.get("site") != "Europe_PMC", u.get("availabilityCode") != "OA"))
    return pdfs[0]["url"] if pdfs else None


def parse_result(result: dict) -> Candidate:
    """A Europe PMC core result -> Candidate."""
    pmcid = result.get("pmcid")
    ident = pmcid or f"{result.get('source', 'X')}{result.get('id', '')}"
    authors = [a.get("fullName", "").strip() for a in ((result.get("authorList") or {}).get("author") or [])]
    if not any(authors) and result.get("authorString"):
        authors = [a.strip().rstrip(".") for a in result["authorString"].split(",")]
    journal = ((result.get("journalInfo") or {}).get("journal") or {}).get("title")
    year = result.get("pubYear")
    landing = f"https://europepmc.org/article/PMC/{pmcid}" if pmcid else None
    return Candidate(
        key=f"europepmc:{ident}", source="europepmc", pmcid=pmcid, doi=bare_doi(result.get("doi")),
        title=result.get("title"), authors=[a for a in authors if a], year=int(year) if str(year or "").isdigit() else None,
        venue=journal, published=result.get("firstPublicationDate"), licence_raw=result.get("license"),
        pdf_url=_pdf_url(result), landing_url=landing)

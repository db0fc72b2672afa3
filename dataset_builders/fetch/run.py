"""One fetch, end to end: ask the indexes, decide per candidate, download, append to the manifest.

Per candidate, in this order (the first rule that applies decides; each decision is one manifest line):
1. already downloaded (manifest says so, the file is there and its sha256 matches): nothing to do;
   already refused for good (FINAL_REASONS: html_instead_of_pdf, not_a_pdf, too_large, duplicate_file,
   for the same PDF URL): nothing to do;
2. licence not in --licences: skipped "licence_not_allowed";
3. no PDF URL: skipped "no_pdf";
4. DOI already downloaded under another key (the other index): skipped "duplicate_doi";
5. failed in --give-up-after runs in a row (the manifest's failed_runs, same PDF URL): not tried again
   ("gave_up:<reason>" in the summary) unless --retry-failed;
6. download (http.Http.download_pdf): refused bodies are skipped with their reason, failed calls
   ("http_error:<code>", "network_error", "truncated") are recorded as failed (failed_runs + 1) and
   retried by the next run;
7. same bytes as a file already there: the new copy is deleted, skipped "duplicate_file".
Nothing is downloaded twice: a resumed run re-reads the manifest and checks each file's sha256.
The run stops as soon as --max PDFs were downloaded; the indexes are paged lazily, so no page is asked
for that is not needed (at most --max-candidates candidates per index).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from dataset_builders.fetch.candidates import Candidate
from dataset_builders.fetch.europepmc import DEFAULT_URL as EUROPEPMC_URL
from dataset_builders.fetch.europepmc import EuropePMCClient
from dataset_builders.fetch.http import FetchHTTPError, HostRateLimiter, Http, check_pdf_file
from dataset_builders.fetch.manifest import (
    FINAL_REASONS,
    MANIFEST_NAME,
    ManifestRecord,
    ManifestWriter,
    read_manifest,
)
from dataset_builders.fetch.openalex import DAILY_ALLOWANCE_USD, PER_PAGE
from dataset_builders.fetch.openalex import DEFAULT_URL as OPENALEX_URL
from dataset_builders.fetch.openalex import OpenAlexClient
from fracto_core.files import file_sha256

DEFAULT_LICENCES = ("cc-by", "cc-by-sa", "cc0", "public-domain")


class FetchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = None
    since: date | None = None
    max: int = Field(100, ge=1)  # PDFs downloaded by this run, at most (over all indexes)
    max_candidates: int = Field(1000, ge=1)  # candidates read from each index, at most (bounds the metered calls)
    give_up_after: int = Field(3, ge=1)  # runs in a row a download may fail before it is no longer tried
    retry_failed: bool = False  # try the given-up downloads again (once more each)
    licences: list[str] = list(DEFAULT_LICENCES)
    out: Path
    dry_run: bool = False
    mailto: str | None = None
    sources: list[str] = ["openalex", "europepmc"]
    openalex_url: str = OPENALEX_URL
    europepmc_url: str = EUROPEPMC_URL
    max_mb: float = Field(50.0, gt=0)
    host_interval: float = Field(1.0, ge=0)  # seconds between requests to one PDF host
    api_interval: float = Field(0.2, ge=0)  # seconds between calls to one index
    attempts: int = Field(5, ge=1)
    backoff: float = Field(2.0, ge=0)
    timeout: float = Field(60.0, gt=0)


@dataclass
class FetchSummary:
    decisions: Counter = field(default_factory=Counter)  # "downloaded", "already", "skipped:<reason>", ...
    counts: dict[str, int] = field(default_factory=dict)  # dry run: matches per index
    calls: dict[str, int] = field(default_factory=dict)
    openalex_cost_usd: float = 0.0
    openalex_estimate_usd: float = 0.0
    openalex_remaining_usd: float | None = None
    errors: list[str] = field(default_factory=list)
    bytes: int = 0
    retries: int = 0
    stopped_at_max: int | None = None  # --max, when the run stopped because it was reached

    def line(self, dry_run: bool) -> str:
        calls = ", ".join(f"{k} {v}" for k, v in self.calls.items())
        cost = f"OpenAlex ${self.openalex_cost_usd:.4f}" + (
            f" (remaining today ${self.openalex_remaining_usd:.4f})" if self.openalex_remaining_usd is not None else "")
        if dry_run:
            found = ", ".join(f"{k} {v:,} match(es)" for k, v in self.counts.items())
            return (f"dry run: {found}; fetching them would cost about ${self.openalex_estimate_usd:.4f} of OpenAlex "
                    f"allowance; calls made {calls}; {cost}; nothing downloaded")
        decided = ", ".join(f"{k} {v}" for k, v in sorted(self.decisions.items())) or "no candidates"
        gave_up = sum(v for k, v in self.decisions.items() if k.startswith("gave_up:"))
        return (f"{decided}; {self.bytes / 1e6:.2f} MB; calls {calls}; {self.retries} retried; {cost}"
                + (f"; stopped at --max {self.stopped_at_max} downloads" if self.stopped_at_max else "")
                + (f"; {gave_up} given up after repeated failures (--retry-failed tries them again)" if gave_up else "")
                + (f"; {len(self.errors)} index error(s)" if self.errors else ""))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def last_run_date(records: dict[str, ManifestRecord]) -> date | None:
    """The day of the newest decision in the manifest (``--since last``)."""
    stamps = [r.fetched_at for r in records.values()]
    return datetime.fromisoformat(max(stamps)).date() if stamps else None


def _record(c: Candidate, status: str, reason: str | None = None, detail: str = "", **extra) -> ManifestRecord:
    return ManifestRecord(key=c.key, source=c.source, doi=c.doi, openalex_id=c.openalex_id, pmcid=c.pmcid,
                          title=c.title, authors=c.authors, year=c.year, venue=c.venue, licence=c.licence,
                          licence_raw=c.licence_raw, licence_url=c.licence_url, source_url=c.pdf_url,
                          landing_url=c.landing_url, fetched_at=now_iso(), status=status, reason=reason,
                          detail=detail, **extra)


class Fetcher:
    """Decides and downloads candidates into one folder; the manifest is its memory."""

    def __init__(self, settings: FetchSettings, http: Http):
        self.s, self.http = settings, http
        self.out = Path(settings.out)
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in self.out.glob(".*.part"):  # a download a killed run left half-written: never trusted
            stale.unlink()
        self.records = read_manifest(self.out / MANIFEST_NAME)
        self.writer = ManifestWriter(self.out / MANIFEST_NAME)
        self.verified: dict[str, bool] = {}
        self.doi_owner = {r.doi: k for k, r in self.records.items() if r.status == "downloaded" and r.doi}
        self.sha_owner = {r.sha256: k for k, r in self.records.items() if r.status == "downloaded" and r.sha256}
        self.summary = FetchSummary()

    def _have(self, record: ManifestRecord) -> bool:
        """A downloaded record whose file is there, whole (sha256 checked once per run)."""
        if record.key not in self.verified:
            path = self.out / (record.pdf or "")
            self.verified[record.key] = bool(record.pdf) and path.is_file() and file_sha256(path) == record.sha256
        return self.verified[record.key]

    def _decide(self, record: ManifestRecord) -> str:
        old = self.records.get(record.key)
        if old is None or (old.status, old.reason, old.source_url, old.licence, old.sha256, old.failed_runs) != (
                record.status, record.reason, record.source_url, record.licence, record.sha256, record.failed_runs):
            self.writer.append(record)  # unchanged re-decisions are not repeated in the manifest
        self.records[record.key] = record
        return record.status if record.status == "downloaded" else f"{record.status}:{record.reason}"

    def handle(self, c: Candidate) -> str:
        old = self.records.get(c.key)
        if old is not None and old.status == "downloaded" and self._have(old):
            return "already"
        if old is not None and old.reason in FINAL_REASONS and old.source_url == c.pdf_url:
            return f"already_refused:{old.reason}"
        if c.licence not in self.s.licences:
            return self._decide(_record(c, "skipped", "licence_not_allowed",
                                        f"licence {c.licence} ({c.licence_raw or 'none given'}) is not in --licences"))
        if not c.pdf_url:
            return self._decide(_record(c, "skipped", "no_pdf", "the index gives no PDF URL"))
        owner = self.doi_owner.get(c.doi) if c.doi else None
        if owner and owner != c.key and self._have(self.records[owner]):
            return self._decide(_record(c, "skipped", "duplicate_doi", f"already downloaded as {owner}"))
        # failed before at this URL: runs in a row so far (a line written before failed_runs existed counts 1)
        failed_runs = max(old.failed_runs, 1) if old and old.status == "failed" and old.source_url == c.pdf_url else 0
        target = self.out / c.file_name
        if old is not None and old.status == "downloaded":
            # its file is missing or not the bytes the manifest records (_have said so): damaged or replaced, so
            # never adopted below (a damaged PDF may still start with %PDF- and end with %%EOF); fetched again
            target.unlink(missing_ok=True)
        found = check_pdf_file(target) if target.is_file() else None  # renamed in place, then killed before its line
        if failed_runs >= self.s.give_up_after and not self.s.retry_failed and not (found and found.ok):
            return f"gave_up:{old.reason}"
        got = found if found and found.ok else self.http.download_pdf(c.pdf_url, target, int(self.s.max_mb * 1e6))
        if not got.ok:
            if (got.reason or "").startswith("http_error") or got.reason in ("network_error", "truncated"):
                return self._decide(_record(c, "failed", got.reason, got.detail, failed_runs=failed_runs + 1))
            return self._decide(_record(c, "skipped", got.reason, got.detail))
        owner = self.sha_owner.get(got.sha256)
        if owner and owner != c.key and self._have(self.records[owner]):
            (self.out / c.file_name).unlink(missing_ok=True)
            return self._decide(_record(c, "skipped", "duplicate_file", f"same bytes as {self.records[owner].pdf}",
                                        sha256=got.sha256, bytes=got.bytes))
        self.summary.bytes += got.bytes
        self.verified[c.key] = True
        if c.doi:
            self.doi_owner[c.doi] = c.key
        self.sha_owner[got.sha256] = c.key
        return self._decide(_record(c, "downloaded", pdf=c.file_name, sha256=got.sha256, bytes=got.bytes))


def run_fetch(settings: FetchSettings, progress: bool = True) -> FetchSummary:
    """Run one fetch (or, with dry_run, count matches and estimate the cost); see the module docstring."""
    agent = "FractoVLM-fetch/1.0" + (f" (mailto:{settings.mailto})" if settings.mailto else "")
    api_hosts = {h: settings.api_interval for h in (_host(settings.openalex_url), _host(settings.europepmc_url))}
    http = Http(agent, HostRateLimiter(settings.host_interval, api_hosts), settings.attempts, settings.backoff,
                (min(10.0, settings.timeout), settings.timeout))
    openalex = OpenAlexClient(http, settings.openalex_url, settings.mailto)
    europepmc = EuropePMCClient(http, settings.europepmc_url, settings.mailto)
    clients = {"openalex": openalex, "europepmc": europepmc}
    try:
        if settings.dry_run:
            summary = FetchSummary()
            for name in settings.sources:
                try:
                    summary.counts[name] = clients[name].count(settings.query, settings.since)
                except FetchHTTPError as exc:
                    summary.errors.append(f"{name}: {exc}")
            n = min(summary.counts.get("openalex", 0), settings.max_candidates)
            summary.openalex_estimate_usd = -(-n // PER_PAGE) * openalex.price(settings.query)
        else:
            fetcher = Fetcher(settings, http)
            summary = fetcher.summary
            bar = tqdm(total=settings.max, desc="fetch", unit="pdf", disable=not progress)
            for name in settings.sources:
                if summary.stopped_at_max:
                    break
                try:
                    for candidate in clients[name].search(settings.query, settings.since, settings.max_candidates):
                        decision = fetcher.handle(candidate)
                        summary.decisions[decision] += 1
                        bar.set_postfix(candidates=summary.decisions.total(), refresh=False)
                        if decision == "downloaded":
                            bar.update(1)
                            if summary.decisions["downloaded"] >= settings.max:
                                summary.stopped_at_max = settings.max
                                break  # leaving the generator: no further page is asked for
                except FetchHTTPError as exc:  # the index failed for good: keep what was done, say so
                    summary.errors.append(f"{name}: {exc}")
            bar.close()
        summary.calls = {name: clients[name].calls for name in settings.sources}
        summary.openalex_cost_usd, summary.openalex_remaining_usd = openalex.cost_usd, openalex.remaining_usd
        summary.retries = http.stats.retries
        return summary
    finally:
        http.close()


def allowance_note(has_key: bool) -> str:
    kind = "free_key" if has_key else "no_key"
    return (f"OpenAlex daily allowance {'with' if has_key else 'without'} an API key: "
            f"${DAILY_ALLOWANCE_USD[kind]:.2f}/day (search $0.001 per call, list $0.0001; docs checked 2026-12)")


def _host(url: str) -> str:
    return urlsplit(url).netloc

"""Find open-access papers in OpenAlex and Europe PMC and download their PDFs, with a licence manifest.

Usage:
    python -m dataset_builders.fetch --query "fractography fatigue striations" --out papers/ --mailto you@lab.org
    python -m dataset_builders.fetch --query "..." --out papers/ --since last       # only what is new
    python -m dataset_builders.fetch --query "..." --out papers/ --dry-run          # count and cost only
    python -m dataset_builders.build --papers papers/ --out runs/ds1                # then build (or update)

The PDFs land in --out with papers.jsonl beside them (one line per decision: downloaded with sha256, or
skipped/failed with the reason); the builder reads that manifest for DOI, title, authors and licence.
Killed and run again, it resumes: finished files are checked by sha256 and never fetched twice.
OpenAlex key: set OPENALEX_API_KEY in the environment (read at call time, never printed or written).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from dataset_builders.fetch.manifest import MANIFEST_NAME, read_manifest
from dataset_builders.fetch.openalex import API_KEY_ENV, OpenAlexClient
from dataset_builders.fetch.run import DEFAULT_LICENCES, FetchSettings, allowance_note, last_run_date, run_fetch
from dataset_builders.licences import KNOWN_IDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dataset_builders.fetch", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--query", help="search words (OpenAlex search=, Europe PMC query); none: every OA work (list "
                                   "calls, 10x cheaper on OpenAlex, but rarely what you want)")
    p.add_argument("--out", type=Path, required=True, help="folder for the PDFs and papers.jsonl (the builder's --papers)")
    p.add_argument("--since", help="only papers published on or after this day: YYYY-MM-DD, or 'last' for the day "
                                   "of the newest decision in the manifest")
    p.add_argument("--max", type=int, default=100, help="at most this many PDFs downloaded by this run (over all "
                                                        "indexes); the run stops when they are in")
    p.add_argument("--max-candidates", type=int, default=1000,
                   help="at most this many candidates read from each index (bounds the metered calls: OpenAlex "
                        "pages of 100); pages are asked for only while fewer than --max PDFs are in")
    p.add_argument("--give-up-after", type=int, default=3,
                   help="a download that failed in this many runs in a row (counted in papers.jsonl) is not tried "
                        "again; the summary counts them as gave_up")
    p.add_argument("--retry-failed", action="store_true",
                   help="try the downloads given up after --give-up-after failed runs once more")
    p.add_argument("--licences", default=",".join(DEFAULT_LICENCES),
                   help="licences to download, comma-separated, of: " + ", ".join(KNOWN_IDS))
    p.add_argument("--sources", default="openalex,europepmc", help="indexes to ask, comma-separated")
    p.add_argument("--dry-run", action="store_true", help="count matches and estimate the OpenAlex cost; download nothing")
    p.add_argument("--mailto", help="your e-mail: OpenAlex's polite pool (mailto=) and Europe PMC's email=")
    p.add_argument("--max-mb", type=float, default=50.0, help="size cap per PDF (MB); larger ones are skipped too_large")
    p.add_argument("--host-interval", type=float, default=1.0, help="seconds between requests to one PDF host")
    p.add_argument("--api-interval", type=float, default=0.2, help="seconds between calls to one index")
    p.add_argument("--attempts", type=int, default=5, help="attempts per call (429/5xx/timeouts/truncated bodies)")
    p.add_argument("--backoff", type=float, default=2.0, help="first backoff in seconds (doubles; Retry-After wins)")
    p.add_argument("--timeout", type=float, default=60.0, help="read timeout per request, seconds")
    p.add_argument("--openalex-url", default="https://api.openalex.org", help="OpenAlex API base URL")
    p.add_argument("--europepmc-url", default="https://www.ebi.ac.uk/europepmc/webservices/rest",
                   help="Europe PMC REST base URL")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def settings_from_args(ns: argparse.Namespace) -> FetchSettings:
    """Raises ValueError with a message naming the flag."""
    licences = [x.strip() for x in ns.licences.split(",") if x.strip()]
    bad = [x for x in licences if x not in KNOWN_IDS]
    if bad:
        raise ValueError(f"--licences: unknown licence id(s) {', '.join(bad)}; known: {', '.join(KNOWN_IDS)}")
    sources = [x.strip() for x in ns.sources.split(",") if x.strip()]
    if not sources or any(x not in ("openalex", "europepmc") for x in sources):
        raise ValueError(f"--sources: expected openalex and/or europepmc, got {ns.sources!r}")
    since = None
    if ns.since == "last":
        since = last_run_date(read_manifest(ns.out / MANIFEST_NAME))
        if since is None:
            raise ValueError(f"--since last: {ns.out / MANIFEST_NAME} holds no earlier run")
    elif ns.since:
        try:
            since = date.fromisoformat(ns.since)
        except ValueError:
            raise ValueError(f"--since {ns.since!r}: expected YYYY-MM-DD or 'last'") from None
    try:
        return FetchSettings(query=ns.query, since=since, max=ns.max, max_candidates=ns.max_candidates,
                             give_up_after=ns.give_up_after, retry_failed=ns.retry_failed, licences=licences, out=ns.out,
                             dry_run=ns.dry_run, mailto=ns.mailto, sources=sources, openalex_url=ns.openalex_url,
                             europepmc_url=ns.europepmc_url, max_mb=ns.max_mb, host_interval=ns.host_interval,
                             api_interval=ns.api_interval, attempts=ns.attempts, backoff=ns.backoff,
                             timeout=ns.timeout)
    except ValidationError as exc:
        raise ValueError("; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors())) from None


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(ns)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "openalex" in settings.sources:
        print(allowance_note(OpenAlexClient.has_key())
              + ("" if OpenAlexClient.has_key() else f"; set {API_KEY_ENV} for more"), flush=True)
    t0 = time.perf_counter()
    try:
        summary = run_fetch(settings, progress=not ns.quiet)
    except KeyboardInterrupt:
        print("\ninterrupted: finished downloads are in the manifest; run the same command again to resume",
              file=sys.stderr)
        return 130
    for error in summary.errors:
        print(f"index error: {error}", file=sys.stderr)
    print(f"\nSummary: {summary.line(settings.dry_run)}")
    if not settings.dry_run:
        print(f"  manifest: {(settings.out / MANIFEST_NAME).resolve()}")
    print(f"  done in {time.perf_counter() - t0:.1f}s")
    return 1 if summary.errors else 0


if __name__ == "__main__":
    sys.exit(main())

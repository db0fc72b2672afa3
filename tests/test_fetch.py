"""dataset_builders.fetch against a local replay of OpenAlex, Europe PMC and a PDF host (no network).

The real client code (requests, our retry/rate-limit/download logic, the manifest) runs unchanged; only the
base URLs point at tests/support/literature_server.py, which answers in the APIs' documented shapes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pymupdf
import pytest

from dataset_builders.fetch.http import HostRateLimiter, retry_after_seconds
from dataset_builders.fetch.manifest import MANIFEST_NAME, ManifestRecord, ManifestWriter, read_manifest
from dataset_builders.fetch.run import FetchSettings, run_fetch
from dataset_builders.licences import find_licence, normalise_licence
from dataset_builders.pdf.licence import pdf_licence
from support.literature_server import HTML_PAGE, FileSpec, LiteratureServer, epmc_result, work

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-test-openalex-key-123"


def make_pdf(text: str, pages: int = 1) -> bytes:
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page()
        page.insert_text((72, 72), f"{text} (page {i + 1})", fontsize=11)
    data = doc.tobytes()
    doc.close()
    return data


def settings(out: Path, api: LiteratureServer, **kw) -> FetchSettings:
    base = dict(query="fractography", out=out, openalex_url=api.base_url, europepmc_url=api.base_url + "/europepmc",
                mailto="lab@example.org", host_interval=0.0, api_interval=0.0, backoff=0.05, attempts=3, timeout=10,
                max=50)
    base.update(kw)
    return FetchSettings(**base)


def _corpus(pdfs: LiteratureServer) -> tuple[list[dict], list[dict]]:
    u = pdfs.base_url + "/pdf/"
    works = [work("W1", "10.1/one", "cc-by", u + "one.pdf"),
             work("W2", "10.1/two", "cc-by-nc", u + "two.pdf"),
             work("W3", "10.1/three", "cc-by", u + "landing.pdf"),
             work("W4", "10.1/four", "cc-by-sa", None),
             work("W5", "10.1/five", "cc-by", u + "cut.pdf"),
             work("W6", "10.1/six", "cc-by", u + "copy.pdf")]
    epmc = [epmc_result("PMC100", "10.1/ONE", "cc by", u + "one-again.pdf"),
            epmc_result("PMC200", "10.1/seven", "CC0", u + "seven.pdf")]
    return works, epmc


def test_fetch_pages_retries_and_refusals(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENALEX_API_KEY", SECRET)
    one, seven = make_pdf("Paper one. CC BY 4.0"), make_pdf("Paper seven")
    with LiteratureServer() as pdfs:
        pdfs.files = {"one.pdf": FileSpec(one), "two.pdf": FileSpec(make_pdf("two")),
                      "landing.pdf": FileSpec(kind="html"), "cut.pdf": FileSpec(make_pdf("cut", pages=30), "truncated"),
                      "copy.pdf": FileSpec(one), "one-again.pdf": FileSpec(one), "seven.pdf": FileSpec(seven)}
        pdfs.faults = {"pdf:one.pdf": [(503, {})]}
        works, epmc = _corpus(pdfs)
        faults = {"works:*": [(429, {"Retry-After": "1"})], "works:c2": [(500, {})]}
        with LiteratureServer(works=works, epmc=epmc, page_size=2, faults=faults) as api:
            summary = run_fetch(settings(tmp_path, api, host_interval=0.2), progress=False)
            log = list(api.log)
    pdf_times = [r.t for r in pdfs.log]
    gaps = [b - a for a, b in zip(pdf_times, pdf_times[1:])]
    # per-host limit of 0.2 s: arrival times seen by the server thread jitter with scheduling on a busy machine
    assert len(pdf_times) == 8 and min(gaps) >= 0.12 and pdf_times[-1] - pdf_times[0] >= 7 * 0.2 - 0.05, gaps
    records = read_manifest(tmp_path / MANIFEST_NAME)
    got = {k: (r.status, r.reason) for k, r in records.items()}
    assert got == {
        "openalex:W1": ("downloaded", None),
        "openalex:W2": ("skipped", "licence_not_allowed"),
        "openalex:W3": ("skipped", "html_instead_of_pdf"),
        "openalex:W4": ("skipped", "no_pdf"),
        "openalex:W5": ("failed", "truncated"),
        "openalex:W6": ("skipped", "duplicate_file"),
        "europepmc:PMC100": ("skipped", "duplicate_doi"),
        "europepmc:PMC200": ("downloaded", None),
    }
    w1 = records["openalex:W1"]
    assert w1.sha256 == hashlib.sha256(one).hexdigest() and w1.bytes == len(one)
    assert (tmp_path / w1.pdf).read_bytes() == one and w1.pdf == "openalex-W1.pdf"
    assert (w1.doi, w1.licence, w1.year, w1.venue, w1.authors) == (
        "10.1/one", "cc-by", 2025, "Engineering Failure Analysis", ["A. Author", "B. Author"])
    assert w1.source_url.endswith("/pdf/one.pdf") and w1.licence_url == "https://creativecommons.org/licenses/by/"
    assert records["europepmc:PMC200"].licence == "cc0" and records["europepmc:PMC200"].venue == "Materials"
    assert not (tmp_path / "openalex-W6.pdf").exists() and not (tmp_path / "openalex-W3.pdf").exists()
    assert not list(tmp_path.glob(".*.part"))
    # paging: 3 OpenAlex pages of 2, each after its fault; Retry-After honoured; the cursor followed
    works_calls = [r for r in log if r.path == "/works"]
    assert [(r.key, r.status) for r in works_calls] == [
        ("works:*", 429), ("works:*", 200), ("works:c2", 500), ("works:c2", 200), ("works:c4", 200)]
    assert works_calls[1].t - works_calls[0].t >= 0.95
    assert all(r.query.get("mailto") == "lab@example.org" and r.query.get("api_key") == SECRET for r in works_calls)
    assert all("is_oa:true" in r.query["filter"] for r in works_calls)
    epmc_calls = [r for r in log if r.path == "/europepmc/search"]
    assert [r.key for r in epmc_calls] == ["epmc:*"] and "OPEN_ACCESS:y" in epmc_calls[0].query["query"]
    assert summary.calls == {"openalex": 3, "europepmc": 1}
    assert summary.openalex_cost_usd == pytest.approx(0.003) and summary.openalex_remaining_usd == pytest.approx(0.997)
    # the key is sent, never kept
    assert SECRET not in (tmp_path / MANIFEST_NAME).read_text() and SECRET not in capsys.readouterr().out


def test_resume_downloads_nothing_twice_and_checks_files(tmp_path):
    one, two = make_pdf("one"), make_pdf("two")
    with LiteratureServer() as pdfs:
        pdfs.files = {"one.pdf": FileSpec(one), "two.pdf": FileSpec(two), "cut.pdf": FileSpec(two, "truncated")}
        u = pdfs.base_url + "/pdf/"
        works = [work("W1", "10.1/one", "cc-by", u + "one.pdf"), work("W2", "10.1/two", "cc-by", u + "two.pdf"),
                 work("W5", "10.1/five", "cc-by", u + "cut.pdf")]
        with LiteratureServer(works=works) as api:
            first = run_fetch(settings(tmp_path, api, sources=["openalex"]), progress=False)
            assert first.decisions == {"downloaded": 2, "failed:truncated": 1}
            assert pdfs.count("pdf:cut.pdf") == 3  # attempts=3: a truncated body is retried as a whole
            second = run_fetch(settings(tmp_path, api, sources=["openalex"]), progress=False)
            assert second.decisions == {"already": 2, "failed:truncated": 1}
            assert (pdfs.count("pdf:one.pdf"), pdfs.count("pdf:two.pdf")) == (1, 1)
            # a file damaged on disk is not trusted: fetched again; the cut one now arrives whole
            (tmp_path / "openalex-W2.pdf").write_bytes(two[:100])
            pdfs.files["cut.pdf"] = FileSpec(two + b"\n")
            third = run_fetch(settings(tmp_path, api, sources=["openalex"]), progress=False)
    assert third.decisions == {"already": 1, "downloaded": 2}
    assert (pdfs.count("pdf:one.pdf"), pdfs.count("pdf:two.pdf")) == (1, 2)
    assert (tmp_path / "openalex-W2.pdf").read_bytes() == two
    lines = (tmp_path / MANIFEST_NAME).read_text().splitlines()
    # W1, W2, W5 failed, W5 failed a second run (failed_runs 2), then W5 downloaded: W2 fetched again to the same
    # bytes is no news
    assert len(lines) == 5


def test_dry_run_counts_and_costs_without_downloading(tmp_path):
    with LiteratureServer() as pdfs:
        works, epmc = _corpus(pdfs)
        with LiteratureServer(works=works * 40, epmc=epmc) as api:  # 240 matches
            summary = run_fetch(settings(tmp_path, api, dry_run=True, max_candidates=150), progress=False)
            assert [r.query["per-page"] for r in api.log if r.path == "/works"] == ["1"]
    assert summary.counts == {"openalex": 240, "europepmc": 2}
    assert summary.openalex_estimate_usd == pytest.approx(2 * 0.001)  # 150 of 240 -> 2 search pages of 100
    assert not pdfs.log and not (tmp_path / MANIFEST_NAME).exists()
    assert "nothing downloaded" in summary.line(True)


def test_kill_mid_download_then_resume(tmp_path):
    one, big = make_pdf("one"), make_pdf("slow paper", pages=200)
    out = tmp_path / "papers"
    with LiteratureServer() as pdfs:
        pdfs.files = {"one.pdf": FileSpec(one), "big.pdf": FileSpec(big, "slow")}
        u = pdfs.base_url + "/pdf/"
        works = [work("W1", "10.1/one", "cc-by", u + "one.pdf"), work("W2", "10.1/big", "cc-by", u + "big.pdf")]
        with LiteratureServer(works=works) as api:
            cmd = [sys.executable, "-m", "dataset_builders.fetch", "--query", "x", "--out", str(out), "--sources",
                   "openalex", "--openalex-url", api.base_url, "--host-interval", "0", "--api-interval", "0",
                   "--quiet"]
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            env.pop("OPENALEX_API_KEY", None)
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                assert pdfs.slow_started.wait(60), "the slow download never started"
                deadline = time.monotonic() + 10
                while not list(out.glob(".*.part")) and time.monotonic() < deadline:
                    time.sleep(0.05)
                os.kill(proc.pid, signal.SIGKILL)
            finally:
                proc.wait(timeout=30)
                proc.stdout.close()
                proc.stderr.close()
            assert proc.returncode == -signal.SIGKILL
            assert [p.name for p in out.glob(".*.part")] == [".openalex-W2.pdf.part"]
            assert not (out / "openalex-W2.pdf").exists()
            assert {k: r.status for k, r in read_manifest(out / MANIFEST_NAME).items()} == {"openalex:W1": "downloaded"}
            pdfs.files["big.pdf"] = FileSpec(big)
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "already 1" in done.stdout and "downloaded 1" in done.stdout
    assert pdfs.count("pdf:one.pdf") == 1 and pdfs.count("pdf:big.pdf") == 2
    assert (out / "openalex-W2.pdf").read_bytes() == big and not list(out.glob(".*.part"))
    assert read_manifest(out / MANIFEST_NAME)["openalex:W2"].sha256 == hashlib.sha256(big).hexdigest()


def test_torn_manifest_line_is_ignored(tmp_path):
    good = ManifestRecord(key="openalex:W1", source="openalex", fetched_at="2026-12-01T00:00:00+00:00",
                          status="skipped", reason="no_pdf")
    (tmp_path / MANIFEST_NAME).write_text(good.model_dump_json() + "\n" + good.model_dump_json()[:40])
    assert list(read_manifest(tmp_path / MANIFEST_NAME)) == ["openalex:W1"]


def test_retry_after_and_host_rate_limit():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    waits: list[float] = []
    limiter = HostRateLimiter(0.5, {"api": 0.0}, sleep=waits.append)
    limiter.wait("pdf.host")
    limiter.wait("pdf.host")
    limiter.wait("api")
    limiter.wait("api")
    assert len(waits) == 1 and 0.4 < waits[0] <= 0.5  # only the second request to the PDF host waited


@pytest.mark.parametrize("raw, expected", [
    ("cc-by", "cc-by"), ("cc by-nc", "cc-by-nc"), ("CC BY-NC-ND", "cc-by-nc-nd"), ("cc0", "cc0"),
    ("https://openalex.org/licenses/cc-by-sa", "cc-by-sa"), ("other-oa", "other-oa"),
    ("publisher-specific-oa", "publisher-specific-oa"), (None, "unknown"), ("", "unknown"), ("all rights", "unknown")])
def test_licence_ids(raw, expected):
    assert normalise_licence(raw) == expected


def test_pdf_licence_statements():
    assert find_licence("distributed under the Creative Commons Attribution-NonCommercial-NoDerivatives 4.0 "
                        "International License") == ("cc-by-nc-nd", "https://creativecommons.org/licenses/by-nc-nd/4.0/")
    assert pdf_licence("", "Open access (http://creativecommons.org/licenses/by-sa/4.0/).")[::2] == ("cc-by-sa", "pdf_text")
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmlns:xmpRights="http://ns.adobe.com/'
           'xap/1.0/rights/" xmpRights:WebStatement="https://creativecommons.org/licenses/by/4.0/"/>'
           '</rdf:RDF></x:xmpmeta>')
    assert pdf_licence(xmp, "no statement here") == ("cc-by", "https://creativecommons.org/licenses/by/4.0/", "xmp")
    assert pdf_licence("", "Copyright 2024 Elsevier Ltd. All rights reserved.") == ("unknown", None, "unknown")


def test_cli_rejects_bad_flags(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bad = subprocess.run([sys.executable, "-m", "dataset_builders.fetch", "--out", str(tmp_path), "--licences",
                          "cc-by,cc-whatever"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cc-whatever" in bad.stderr
    last = subprocess.run([sys.executable, "-m", "dataset_builders.fetch", "--out", str(tmp_path), "--since", "last"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert last.returncode == 2 and "no earlier run" in last.stderr


def test_file_renamed_before_its_manifest_line_is_adopted_not_fetched_again(tmp_path):
    whole = make_pdf("killed between rename and manifest line")
    (tmp_path / "openalex-W1.pdf").write_bytes(whole)
    (tmp_path / "openalex-W2.pdf").write_bytes(b"%PDF-1.7 cut")  # not whole: fetched again
    with LiteratureServer() as pdfs:
        pdfs.files = {"one.pdf": FileSpec(whole), "two.pdf": FileSpec(make_pdf("two"))}
        u = pdfs.base_url + "/pdf/"
        works = [work("W1", "10.1/one", "cc-by", u + "one.pdf"), work("W2", "10.1/two", "cc-by", u + "two.pdf")]
        with LiteratureServer(works=works) as api:
            summary = run_fetch(settings(tmp_path, api, sources=["openalex"]), progress=False)
    assert summary.decisions == {"downloaded": 2}
    assert (pdfs.count("pdf:one.pdf"), pdfs.count("pdf:two.pdf")) == (0, 1)
    assert read_manifest(tmp_path / MANIFEST_NAME)["openalex:W1"].sha256 == hashlib.sha256(whole).hexdigest()


def test_size_cap_and_non_pdf_bodies(tmp_path):
    big = make_pdf("big", pages=40)
    with LiteratureServer() as pdfs:
        pdfs.files = {"declared.pdf": FileSpec(big), "streamed.pdf": FileSpec(big, "nolength"),
                      "image.pdf": FileSpec(b"\x89PNG\r\n\x1a\n" + bytes(2000), content_type="application/pdf"),
                      "small.pdf": FileSpec(make_pdf("small"), "nolength")}
        u = pdfs.base_url + "/pdf/"
        works = [work(f"W{i}", f"10.1/{name}", "cc-by", u + name)
                 for i, name in enumerate(["declared.pdf", "streamed.pdf", "image.pdf", "small.pdf"])]
        with LiteratureServer(works=works) as api:
            run_fetch(settings(tmp_path, api, sources=["openalex"], max_mb=len(big) / 2e6), progress=False)
    got = {k: (r.status, r.reason, r.detail.split(" ")[0]) for k, r in read_manifest(tmp_path / MANIFEST_NAME).items()}
    assert got == {"openalex:W0": ("skipped", "too_large", "Content-Length"),
                   "openalex:W1": ("skipped", "too_large", "more"),
                   "openalex:W2": ("skipped", "not_a_pdf", "no"),
                   "openalex:W3": ("downloaded", None, "")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openalex-W3.pdf", MANIFEST_NAME]  # no .part left


@contextmanager
def one_paper(name: str, spec: FileSpec):
    """A PDF host serving one file and an index listing it as work W1 (cc-by): (pdfs, api)."""
    with LiteratureServer() as pdfs:
        pdfs.files = {name: spec}
        with LiteratureServer(works=[work("W1", f"10.1/{name}", "cc-by", f"{pdfs.base_url}/pdf/{name}")]) as api:
            yield pdfs, api


def test_a_stalled_download_times_out_and_is_retried_next_run(tmp_path):
    pdf = make_pdf("stalls")
    with one_paper("stall.pdf", FileSpec(pdf, "slow")) as (pdfs, api):
        t0 = time.monotonic()
        first = run_fetch(settings(tmp_path, api, sources=["openalex"], timeout=0.5, attempts=2), progress=False)
        took = time.monotonic() - t0
        assert first.decisions == {"failed:truncated": 1} and took < 20
        assert "connection lost" in read_manifest(tmp_path / MANIFEST_NAME)["openalex:W1"].detail
        assert pdfs.count("pdf:stall.pdf") == 2 and not list(tmp_path.glob("*.pdf")) and not list(tmp_path.glob(".*"))
        pdfs.files["stall.pdf"] = FileSpec(pdf)
        second = run_fetch(settings(tmp_path, api, sources=["openalex"]), progress=False)
    assert second.decisions == {"downloaded": 1} and (tmp_path / "openalex-W1.pdf").read_bytes() == pdf


def test_max_counts_pdfs_downloaded_not_candidates(tmp_path):
    with LiteratureServer() as pdfs:
        u = pdfs.base_url + "/pdf/"
        pdfs.files = {f"p{i}.pdf": FileSpec(make_pdf(f"paper {i}")) for i in range(3, 7)}
        works = [work("W1", "10.1/w1", "cc-by-nc", u + "p1.pdf"), work("W2", "10.1/w2", "cc-by", None)]
        works += [work(f"W{i}", f"10.1/w{i}", "cc-by", u + f"p{i}.pdf") for i in range(3, 7)]
        epmc = [epmc_result("PMC9", "10.1/nine", "cc by", u + "p6.pdf")]
        with LiteratureServer(works=works, epmc=epmc, page_size=2) as api:
            summary = run_fetch(settings(tmp_path, api, max=2), progress=False)
            log = list(api.log)
            first_files = sorted(p.name for p in tmp_path.glob("*.pdf"))
            second = run_fetch(settings(tmp_path, api, max=2), progress=False)
    # two candidates refused, then two downloads: --max 2 is reached on the second page; no third page, no EPMC
    assert summary.decisions == {"skipped:licence_not_allowed": 1, "skipped:no_pdf": 1, "downloaded": 2}
    assert [r.key for r in log if r.path == "/works"] == ["works:*", "works:c2"]
    assert not [r for r in log if r.path.startswith("/europepmc")]
    assert first_files == ["openalex-W3.pdf", "openalex-W4.pdf"]
    assert summary.stopped_at_max == 2 and "stopped at --max 2 downloads" in summary.line(False)
    # the next run: what is there is not counted, two more arrive
    assert second.decisions["already"] == 2 and second.decisions["downloaded"] == 2
    assert sorted(p.name for p in tmp_path.glob("*.pdf")) == [f"openalex-W{i}.pdf" for i in range(3, 7)]


def test_a_download_that_keeps_failing_is_given_up_then_retried_on_request(tmp_path):
    pdf = make_pdf("cut short")
    with one_paper("cut.pdf", FileSpec(pdf, "truncated")) as (pdfs, api):
        runs = [run_fetch(settings(tmp_path, api, sources=["openalex"], attempts=1), progress=False)
                for _ in range(4)]
        assert pdfs.count("pdf:cut.pdf") == 3  # the fourth run did not ask
        assert [dict(r.decisions) for r in runs] == [{"failed:truncated": 1}] * 3 + [{"gave_up:truncated": 1}]
        assert "1 given up after repeated failures (--retry-failed" in runs[3].line(False)
        assert read_manifest(tmp_path / MANIFEST_NAME)["openalex:W1"].failed_runs == 3
        pdfs.files["cut.pdf"] = FileSpec(pdf)
        again = run_fetch(settings(tmp_path, api, sources=["openalex"], retry_failed=True), progress=False)
    assert again.decisions == {"downloaded": 1} and pdfs.count("pdf:cut.pdf") == 4
    assert (tmp_path / "openalex-W1.pdf").read_bytes() == pdf


def test_a_given_up_download_whose_file_is_in_place_is_recorded_not_given_up(tmp_path):
    """A --retry-failed run that renamed the PDF into place and was killed before its manifest line: the next
    plain run finds the good file and records it, without asking the server."""
    pdf = make_pdf("cut short")
    with one_paper("cut.pdf", FileSpec(pdf, "truncated")) as (pdfs, api):
        for _ in range(3):
            run_fetch(settings(tmp_path, api, sources=["openalex"], attempts=1), progress=False)
        (tmp_path / "openalex-W1.pdf").write_bytes(pdf)  # the retry's file, its line lost to the kill
        after = run_fetch(settings(tmp_path, api, sources=["openalex"], attempts=1), progress=False)
        assert pdfs.count("pdf:cut.pdf") == 3
    assert after.decisions == {"downloaded": 1}
    assert read_manifest(tmp_path / MANIFEST_NAME)["openalex:W1"].status == "downloaded"


def test_cli_help_says_what_max_bounds():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "dataset_builders.fetch", "--help"], env=env, capture_output=True,
                         text=True, timeout=60).stdout
    assert "at most this many PDFs downloaded by this run" in " ".join(out.split())
    assert "--retry-failed" in out and "--give-up-after" in out and "--max-candidates" in out


def test_a_downloaded_file_damaged_inside_is_fetched_again_not_adopted(tmp_path):
    """A recorded download whose bytes changed on disk (one flipped byte: still %PDF- ... %%EOF) is damaged: the
    next run fetches it again (also after a failed attempt), it does not adopt the damaged file as a new one."""
    pdf = make_pdf("damaged later")
    with one_paper("one.pdf", FileSpec(pdf)) as (pdfs, api):
        run_fetch(settings(tmp_path, api, sources=["openalex"], attempts=1), progress=False)
        path = tmp_path / "openalex-W1.pdf"
        damaged = bytearray(path.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF
        path.write_bytes(bytes(damaged))
        pdfs.faults = {"pdf:one.pdf": [(200, {}), (404, {})]}  # the second request (the re-fetch) fails
        failed = run_fetch(settings(tmp_path, api, sources=["openalex"], attempts=1), progress=False)
        again = run_fetch(settings(tmp_path, api, sources=["openalex"], attempts=1), progress=False)
    assert (dict(failed.decisions), dict(again.decisions)) == ({"failed:http_error:404": 1}, {"downloaded": 1})
    assert pdfs.count("pdf:one.pdf") == 3 and path.read_bytes() == pdf
    assert read_manifest(tmp_path / MANIFEST_NAME)["openalex:W1"].sha256 == hashlib.sha256(pdf).hexdigest()


def test_cost_headers_are_read_whatever_the_case_of_their_names(tmp_path):
    """HTTP header names are case-insensitive: x-ratelimit-cost-usd is the cost header too (not the price list's)."""
    with LiteratureServer(works=[work("W1", "10.1/one", "cc-by", None)], cost_usd=0.005, lower_headers=True) as api:
        summary = run_fetch(settings(tmp_path, api, sources=["openalex"], dry_run=True), progress=False)
    assert summary.openalex_cost_usd == pytest.approx(0.005)
    assert summary.openalex_remaining_usd == pytest.approx(0.995)


def test_a_chunked_body_is_judged_on_its_first_kib_not_its_first_chunk(tmp_path):
    """A chunked PDF whose first chunk holds 3 bytes ("%PD") is a PDF; a chunked HTML page is still refused."""
    pdf = make_pdf("chunked")
    with LiteratureServer() as pdfs:
        pdfs.files = {"chunked.pdf": FileSpec(pdf, "chunked"),
                      "page.pdf": FileSpec(HTML_PAGE, "chunked", "text/html; charset=utf-8")}
        works = [work("W1", "10.1/one", "cc-by", pdfs.base_url + "/pdf/chunked.pdf"),
                 work("W2", "10.1/two", "cc-by", pdfs.base_url + "/pdf/page.pdf")]
        with LiteratureServer(works=works) as api:
            run_fetch(settings(tmp_path, api, sources=["openalex"]), progress=False)
    got = {k: (r.status, r.reason) for k, r in read_manifest(tmp_path / MANIFEST_NAME).items()}
    assert got == {"openalex:W1": ("downloaded", None), "openalex:W2": ("skipped", "html_instead_of_pdf")}
    assert (tmp_path / "openalex-W1.pdf").read_bytes() == pdf


def test_a_title_holding_a_line_separator_keeps_its_manifest_record(tmp_path):
    # pydantic writes U+2028 / U+0085 raw (no ASCII escaping): the record is still one line of papers.jsonl
    odd = ManifestRecord(key="openalex:W2", source="openalex", fetched_at="2026-12-01T00:00:00+00:00",
                         status="downloaded", title="Fatigue\u2028striations in Ti\x85alloys", pdf="w2.pdf")
    writer = ManifestWriter(tmp_path / MANIFEST_NAME)
    writer.append(odd)
    records = read_manifest(tmp_path / MANIFEST_NAME)
    assert list(records) == ["openalex:W2"] and records["openalex:W2"].title == odd.title

"""What an index says about one open-access paper: the typed record the index clients hand to the fetch."""

from __future__ import annotations

from typing import Literal

from dataset_builders.licences import licence_url, normalise_licence
from dataset_builders.records import Record


class Candidate(Record):
    key: str  # "openalex:W..." | "europepmc:PMC..." (the manifest key)
    source: Literal["openalex", "europepmc"]
    doi: str | None = None
    openalex_id: str | None = None
    pmcid: str | None = None
    title: str | None = None
    authors: list[str] = []
    year: int | None = None
    venue: str | None = None
    published: str | None = None  # YYYY-MM-DD when the index gives it
    licence_raw: str | None = None
    pdf_url: str | None = None
    landing_url: str | None = None

    @property
    def licence(self) -> str:
        return normalise_licence(self.licence_raw)

    @property
    def licence_url(self) -> str | None:
        return licence_url(self.licence)

    @property
    def file_name(self) -> str:
        """The PDF's name in the output folder, fixed by the key so that a resumed run finds it."""
        return self.key.replace(":", "-").replace("/", "_") + ".pdf"


def bare_doi(doi: str | None) -> str | None:
    """"https://doi.org/10.1/ABC" -> "10.1/abc" (DOIs are case-insensitive); None stays None."""
    if not doi:
        return None
    doi = doi.strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:"):
        if doi.lower().startswith(prefix):
            doi = doi[len(prefix):]
    return doi.lower() or None

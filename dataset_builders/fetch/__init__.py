"""The literature loop's first step: find open-access papers in scholarly indexes and download their PDFs.

Modules: ``http`` (retries, per-host rate limit, safe downloads), ``openalex`` and ``europepmc`` (the index
clients), ``manifest`` (papers.jsonl, also read by the builder), ``run`` (one fetch, end to end) and
``__main__`` (the command line: ``python -m dataset_builders.fetch --help``).
"""

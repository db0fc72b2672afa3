"""Expert review of a build: Label Studio export / import, and a static gallery.

Usage:
    python -m dataset_builders.review export --to label-studio --out runs/ds1 --n 100 --seed 0 [--url URL --token T]
    python -m dataset_builders.review import --out runs/ds1 --export export.json   (or --url URL --token T --project ID)
    python -m dataset_builders.review gallery --out runs/ds1 [--eval runs/eval/run1 ...] [--html gallery.html]
    python -m dataset_builders.review benchmark export|agree|finish --out runs/ds1 ...   (docs/expert_benchmark.md)

The token may also come from the environment (LABEL_STUDIO_TOKEN); it is read at call time and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dataset_builders.review import label_studio as ls
from dataset_builders.review.bench_cli import add_parser as add_benchmark_parser
from dataset_builders.review.collect import ReviewInputError, collect_items
from dataset_builders.review.gallery import DEFAULT_THUMB, write_gallery
from dataset_builders.review.importer import AUDIT_MD, ReviewImportError, import_review, load_export

TOKEN_ENV = "LABEL_STUDIO_TOKEN"


def _token(ns) -> str:
    token = ns.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise ReviewInputError(f"--url needs an API token: --token or the {TOKEN_ENV} environment variable")
    return token


def cmd_export(ns) -> int:
    items = collect_items(ns.out)
    root = (ns.document_root or ns.out).resolve()
    tasks, sample = ls.build_tasks(items, ns.n, ns.seed, root, ns.rare_weight)
    if not tasks:
        raise ReviewInputError(f"{ns.out}: no labelled item to review")
    dest = ns.dest or ns.out / "review" / "label_studio"
    files = ls.write_files(dest, tasks, sample, root)
    by_id = {i.item_id: i for i in items}
    storage = ls.storage_dir([by_id[t["data"]["item_id"]].image for t in tasks], root)
    print(f"sample: {len(tasks)} of {sum(1 for i in items if i.features)} labelled items, seed {ns.seed} "
          f"({files['sample']})")
    print(f"config: {files['config']}\ntasks:  {files['tasks']}")
    if ns.url:
        client = ls.LabelStudioClient(ns.url, _token(ns))
        made = ls.create_project(client, ns.title, tasks, storage)
        (dest / "project.json").write_text(json.dumps({"url": ns.url, **made}, indent=1) + "\n", encoding="utf-8")
        print(f"project {made['project']} at {ns.url}/projects/{made['project']}: {made['tasks']} task(s) imported")
    else:
        print("Start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
              f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root}; create a project with config.xml as its labelling "
              f"interface, add a local-files storage with path {storage} (do not sync it), then import tasks.json.")
    return 0


def cmd_import(ns) -> int:
    if ns.export is not None:
        records, source = load_export(ns.export), str(ns.export)
    elif ns.url and ns.project is not None:
        records = ls.LabelStudioClient(ns.url, _token(ns)).export_json_min(ns.project)
        source = f"{ns.url.rstrip('/')}/projects/{ns.project}"
    else:
        raise ReviewInputError("give --export FILE (a JSON-MIN export) or --url, --token and --project")
    data = import_review(ns.out, records, source, ns.reviewer)
    f = (lambda x: "n/a" if x is None else f"{x:.3f}")
    print(f"imported {data['last_import']['items']} reviewed item(s) from {source}; "
          f"{data['reviewed']} reviewed in total, {data['not_fractograph']} marked not a fractograph")
    print(f"audit: pooled agreement {f(data['pooled_agreement'])}, pooled kappa {f(data['pooled_kappa'])}, "
          f"exact-set {f(data['exact_set_agreement'])} ({ns.out / 'review' / AUDIT_MD})")
    print(f"apply: python -m dataset_builders.build --out {ns.out} --from-stage items  "
          "(expert labels win; the dataset card then shows the audit)")
    return 0


def cmd_gallery(ns) -> int:
    items = collect_items(ns.out, include_rejected=not ns.kept_only)
    dest = ns.html or ns.out / "review" / "gallery.html"
    counts = write_gallery(dest, items, ns.eval, title=ns.title, thumb=ns.thumb)
    print(f"gallery: {dest.resolve().as_uri()} ({counts['items']} items, {counts['images']} images, "
          f"{counts['with_answers']} with model answers, {counts['expert_rejected']} rejected by an expert "
          f"(hidden until shown), {counts['bytes'] / 1e6:.1f} MB)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dataset_builders.review", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, required=True, help="the build's output folder (holds stages/)")
    api = argparse.ArgumentParser(add_help=False)
    api.add_argument("--url", help="Label Studio URL, e.g. http://127.0.0.1:8080")
    api.add_argument("--token", help=f"API token (default: ${TOKEN_ENV})")

    e = sub.add_parser("export", parents=[common, api], help="a Label Studio project for a stratified sample",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--to", choices=["label-studio"], default="label-studio")
    e.add_argument("--n", type=int, default=100, help="images in the sample")
    e.add_argument("--seed", type=int, default=0, help="sampling seed (recorded in sample.json)")
    e.add_argument("--rare-weight", type=int, default=None, help="draws per round for rare features (default 2)")
    e.add_argument("--document-root", type=Path, default=None,
                   help="Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: --out)")
    e.add_argument("--dest", type=Path, default=None, help="where to write (default OUT/review/label_studio)")
    e.add_argument("--title", default="FractoVLM expert review", help="project title")
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("import", parents=[common, api], help="apply a JSON-MIN export and audit the labels",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    i.add_argument("--export", type=Path, default=None, help="a JSON-MIN export file")
    i.add_argument("--project", type=int, default=None, help="project id to pull the export from (with --url)")
    i.add_argument("--reviewer", default=None, help="reviewer name when the export has no annotator")
    i.set_defaults(func=cmd_import)

    g = sub.add_parser("gallery", parents=[common], help="one self-contained HTML page to browse offline",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g.add_argument("--eval", type=Path, nargs="*", default=[], help="eval run folders (with samples.jsonl)")
    g.add_argument("--html", type=Path, default=None, help="output file (default OUT/review/gallery.html)")
    g.add_argument("--kept-only", action="store_true", help="leave out the panels the filter rejected and the images an expert rejected")
    g.add_argument("--thumb", type=int, default=DEFAULT_THUMB, help="longest image side in the page, pixels")
    g.add_argument("--title", default="FractoVLM review", help="page title")
    g.set_defaults(func=cmd_gallery)
    add_benchmark_parser(sub, common, api)
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return ns.func(ns)
    except (ReviewInputError, ReviewImportError, ls.LabelStudioError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

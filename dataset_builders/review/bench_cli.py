"""``python -m dataset_builders.review benchmark export|agree|finish``: the expert benchmark from the held-out pool.

Usage:
    python -m dataset_builders.review benchmark export --out runs/ds1 --n 200 --seed 0 --annotators ann1 ann2 [--url URL]
    python -m dataset_builders.review benchmark agree  --out runs/ds1 (--export-a A.json --export-b B.json | --url URL)
    python -m dataset_builders.review benchmark finish --out runs/ds1 (--export ADJ.json | --url URL)
Then: python -m eval.run --model ... --benchmark runs/ds1/benchmark/set/benchmark.csv
With --url the project ids come from OUT/benchmark/projects.json (written by export and agree); the token comes
from --token or $LABEL_STUDIO_TOKEN, read at call time and never printed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dataset_builders.review import label_studio as ls
from dataset_builders.review.adjudicate import CARD_MD, CSV_NAME, SET_DIR, agree, finish
from dataset_builders.review.benchmark import (DEFAULT_RARE_MIN, SLOTS, bench_dir, export, load_json,
                                               parse_answers)
from dataset_builders.review.collect import ReviewInputError

TOKEN_ENV = "LABEL_STUDIO_TOKEN"


def _client(ns) -> ls.LabelStudioClient | None:
    if not ns.url:
        return None
    token = ns.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise ReviewInputError(f"--url needs an API token: --token or the {TOKEN_ENV} environment variable")
    return ls.LabelStudioClient(ns.url, token)


def _project(ns, key: str) -> int:
    path = bench_dir(ns.out) / "projects.json"
    if not path.exists():
        raise ReviewInputError(f"{path}: not found; run 'benchmark export --url ...' first, or pass export files")
    info = load_json(path)
    project = info.get("annotation", {}).get(key) if key in SLOTS else info.get(key)
    if project is None:
        raise ReviewInputError(f"{path}: no {key} project")
    return int(project)


def _records(ns, client, file: Path | None, key: str) -> tuple[list, str]:
    if file is not None:
        return load_json(file), str(file)
    if client is None:
        raise ReviewInputError(f"give the {key} export file, or --url to pull it from Label Studio")
    project = _project(ns, key)
    return client.export_json_min(project), f"{client.url}/projects/{project}"


def cmd_export(ns) -> int:
    client = _client(ns)
    res = export(ns.out, ns.n, ns.seed, ns.annotators, ns.rare_min, ns.document_root, client, ns.title,
                 show_text=not ns.image_only, replace=ns.replace)
    s = res["sample"]
    rare = {f: r["in_sample"] for f, r in s["features"].items() if r["rare"]}
    print(f"sample: {s['n']} of {s['pool_images']} pool images, seed {s['seed']}; rare features in it: "
          + (", ".join(f"{k} {v}" for k, v in rare.items()) or "none") + f" ({res['dest'] / 'sample.json'})")
    print("techniques (from captions): " + ", ".join(f"{k} {v}" for k, v in s["techniques"].items()))
    if client is not None:
        print(f"projects: annotator A {res['projects']['A']}, annotator B {res['projects']['B']} at {client.url} "
              f"({len(res['tasks'])} tasks each, no predictions)")
    else:
        print(f"Create two projects (one per annotator) with {res['dest'] / 'config.xml'}, a local-files storage "
              f"with path {res['storage']} in each, and import {res['dest'] / 'tasks.json'} into both.")
    return 0


def cmd_agree(ns) -> int:
    client = _client(ns)
    answers = [parse_answers(*_records(ns, client, f, slot)) for f, slot in ((ns.export_a, "A"), (ns.export_b, "B"))]
    data = agree(ns.out, *answers, client=client, n_resamples=ns.resamples, seed=ns.seed)

    def ci(iv):
        return "" if iv[0] is None else f" [{iv[0]:.2f}, {iv[1]:.2f}]"

    kappa = "n/a" if data["kappa"] is None else f"{data['kappa']:.3f}"
    print(f"agreement over {data['n_images']} images: kappa {kappa}{ci(data['kappa_ci'])}, raw agreement "
          f"{data['agreement']:.3f}{ci(data['agreement_ci'])}, exact-set {data['exact_set_agreement']:.3f} "
          f"({bench_dir(ns.out) / 'agreement.md'})")
    where = f"project {data['adjudication_project']}" if "adjudication_project" in data else \
        str(bench_dir(ns.out) / "adjudication_tasks.json")
    print(f"adjudication: {len(data['disagreements'])} disagreement(s) -> {where}")
    return 0


def cmd_finish(ns) -> int:
    client = _client(ns)
    if ns.export is None and not load_json(bench_dir(ns.out) / "agreement.json")["disagreements"]:
        records, source = [], "no disagreement"
    else:
        records, source = _records(ns, client, ns.export, "adjudication")
    card = finish(ns.out, parse_answers(records, source), ns.name)
    folder = bench_dir(ns.out) / SET_DIR
    print(f"benchmark: {card['n_items']} images, {card['adjudication']['adjudicated']} adjudicated, "
          f"{card['not_fractograph']} left out as not a fractograph; kappa "
          f"{'n/a' if card['agreement']['kappa'] is None else format(card['agreement']['kappa'], '.3f')}")
    print(f"csv:  {folder / CSV_NAME}\ncard: {folder / CARD_MD}")
    print(f"next: python -m eval.run --model <model> --benchmark {folder / CSV_NAME}")
    return 0


def add_parser(sub, common: argparse.ArgumentParser, api: argparse.ArgumentParser) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    b = sub.add_parser("benchmark", help="expert benchmark from the held-out pool: two annotators, adjudication",
                       description=__doc__.split("\n")[0], formatter_class=fmt)
    steps = b.add_subparsers(dest="step", required=True)
    e = steps.add_parser("export", parents=[common, api], formatter_class=fmt,
                         help="stratified sample of the pool -> one blind project per annotator")
    e.add_argument("--n", type=int, default=200, help="images in the benchmark sample")
    e.add_argument("--seed", type=int, default=0, help="sampling seed (recorded in sample.json and the card)")
    e.add_argument("--rare-min", type=int, default=DEFAULT_RARE_MIN, help="images guaranteed per rare feature")
    e.add_argument("--annotators", nargs=2, required=True, metavar="NAME", help="the two annotators (A, B)")
    e.add_argument("--document-root", type=Path, default=None,
                   help="Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: --out)")
    e.add_argument("--image-only", action="store_true",
                   help="hide the caption and the citing text from the annotators (they judge the image alone)")
    e.add_argument("--replace", action="store_true", help="replace a different sample already in OUT/benchmark")
    e.add_argument("--title", default="FractoVLM benchmark", help="project title prefix (cut to fit 50 characters)")
    e.set_defaults(func=cmd_export)
    a = steps.add_parser("agree", parents=[common, api], formatter_class=fmt,
                         help="both annotators' exports -> kappa, agreement, adjudication tasks")
    a.add_argument("--export-a", type=Path, default=None, help="JSON-MIN export of annotator A's project")
    a.add_argument("--export-b", type=Path, default=None, help="JSON-MIN export of annotator B's project")
    a.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the images")
    a.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    a.set_defaults(func=cmd_agree)
    f = steps.add_parser("finish", parents=[common, api], formatter_class=fmt,
                         help="adjudication export -> consensus, benchmark CSV and card")
    f.add_argument("--export", type=Path, default=None, help="JSON-MIN export of the adjudication project")
    f.add_argument("--name", default="expert_benchmark", help="benchmark name in the card")
    f.set_defaults(func=cmd_finish)

"""Stage qa (after export, only with --qa): question-answer pairs per kept image, and the Q&A dataset.

Reads stages/items.jsonl, stages/splits.jsonl, stages/dedup.json and stages/panels/*.json (captions and
citing excerpts of every panel showing the item's image); writes stages/qa.jsonl (one
``questions.records.QAItem`` per split item) and, through ``questions.export``, the second LlamaFactory dataset
<name>_qa_{train,val,test}.json in dataset/ (registered in dataset_info.json, same splits as the
morphology dataset).

Who writes the pairs (``--qa-generator``): "templates" (offline, ``questions.templates``: the default, and
what --labeler caption_rules implies), or "openai" / "gemini" / "vllm" through the labelling client
(``questions.llm``; --label-model, --base-url and the --label-* settings; replies cached in OUT/qa_cache.sqlite).
A failed or rejected reply leaves the item without pairs and adds a problem line.

Usage:
    python -m dataset_builders.build --qa                                  # sample corpus, templates, offline
    python -m dataset_builders.build --out runs/ds1 --from-stage qa --qa --qa-generator openai --label-model gpt-5.2
"""

from __future__ import annotations

import json

from dataset_builders.questions import export as qa_export
from dataset_builders.config import BuildConfig
from dataset_builders.items import ItemTexts, load_manual_items
from dataset_builders.questions.records import QAItem, SourceText
from dataset_builders.questions.templates import ORIGIN as TEMPLATES, TEMPLATE_PROMPT_VERSION, template_pairs
from dataset_builders.records import Item, Problem, SplitAssignment, StageResult
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_jsonl_atomic

STAGE = "qa"
LLM_GENERATORS = ("openai", "gemini", "vllm")


def qa_path(paths: StagePaths):
    return paths.stages / "qa.jsonl"


def cache_path(paths: StagePaths):
    return paths.out / "qa_cache.sqlite"  # outside stages/: --fresh must not delete paid replies


def generator_name(config: BuildConfig) -> str:
    """--qa-generator, or: the labeller when it is an LLM, else templates."""
    if config.qa_generator:
        return config.qa_generator
    return config.labeler if config.labeler in LLM_GENERATORS else TEMPLATES


def get_generator(config: BuildConfig):
    """None for templates, else an LLMQAGenerator (ValueError/ProviderError when it cannot run)."""
    name = generator_name(config)
    if name == TEMPLATES:
        return None
    if name not in LLM_GENERATORS:
        raise ValueError(f"unknown Q&A generator {name!r}; valid: {TEMPLATES}, {', '.join(LLM_GENERATORS)}")
    from dataset_builders.questions.llm import LLMQAGenerator  # pulls in the API client only when used

    generator = LLMQAGenerator(name, config)
    generator.check_ready()
    return generator


def source_texts(paths: StagePaths, items: list[Item]) -> list[SourceText]:
    """The captions (the panels' parts and the whole captions as printed) and excerpts of every panel showing
    each item's image (reprints included)."""
    texts = ItemTexts(paths)  # one read of the panels, paper by paper
    manual = {m.item_id: m for m in load_manual_items(paths)}
    out: list[SourceText] = []
    for item in items:
        shown = texts.panels_of(item)
        captions, excerpts = texts(item, shown)
        printed = list(dict.fromkeys(p.figure_caption or p.caption for p in shown if p.figure_caption or p.caption))
        origin = "manual" if item.item_id in manual or item.label_origin == "manual" else item.label_origin
        out.append(SourceText(item_id=item.item_id, captions=captions, figure_captions=printed, excerpts=excerpts,
                              features=list(item.features), label_origin=origin))
    return out


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Generate the pairs, write stages/qa.jsonl, export and validate the Q&A dataset."""
    for f, made_by in ((paths.items, "items"), (paths.splits, "split"), (paths.dataset / "dataset_info.json",
                                                                          "export")):
        if not f.exists():
            raise FileNotFoundError(f"the qa stage needs {f}: run the {made_by} stage first")
    items = {it.item_id: it for it in read_jsonl(paths.items, Item)}
    assigned = [a for a in read_jsonl(paths.splits, SplitAssignment) if a.item_id in items]
    sources = source_texts(paths, [items[a.item_id] for a in sorted(assigned, key=lambda a: a.item_id)])
    generator = get_generator(config)
    problems: list[Problem] = []
    counts: dict[str, int] = {}

    with_text = [s for s in sources if s.has_text or s.label_origin == "manual"]
    usable = {s.item_id for s in with_text}
    results: list[QAItem] = [QAItem(item_id=s.item_id, origin=TEMPLATES if generator is None else generator.origin,
                                    prompt_version="", status="no_text", detail="no caption or excerpt")
                             for s in sources if s.item_id not in usable]
    if generator is None:
        results += [QAItem(item_id=s.item_id, origin=TEMPLATES, prompt_version=TEMPLATE_PROMPT_VERSION,
                           pairs=template_pairs(s)) for s in with_text]
    else:
        generated, summary = generator.generate(with_text, cache_path(paths), progress=progress)
        print(f"[     qa] {generator.origin}: {summary.line()}", flush=True)
        results += generated
        counts.update({k: v for k, v in summary.counts().items() if k in ("api_calls", "cache_hits",
                                                                           "cost_microusd")})
    panel_captions = {s.item_id: s.captions for s in sources}
    results = [r.model_copy(update={"panel_captions": panel_captions[r.item_id]}) for r in results]
    results.sort(key=lambda r: r.item_id)
    for r in results:
        if r.status == "failed":
            problems.append(Problem(file=qa_path(paths).name, stage=STAGE, reason="qa_failed", item_id=r.item_id,
                                    detail=r.detail, severity="failed"))
    write_jsonl_atomic(qa_path(paths), results)

    split_of = {a.item_id: a.split for a in assigned}
    written = qa_export.write(paths, config, results, items, split_of)
    card = json.loads((paths.dataset / "qa_card.json").read_text(encoding="utf-8"))
    for warning in card["warnings"]:  # said at build time too (issue 27: a small real corpus)
        print(f"[     qa] warning: {warning}", flush=True)
    pairs = [p for r in results for p in r.pairs]
    counts.update({"items": len(results), "with_pairs": sum(bool(r.pairs) for r in results),
                   "no_text": sum(r.status == "no_text" for r in results),
                   "failed": sum(r.status == "failed" for r in results), "pairs": len(pairs),
                   "refusals": sum(p.refused for p in pairs)})
    counts.update({f"{split}_pairs": n for split, n in written.items()})
    return StageResult(stage=STAGE, counts=counts, problems=problems)


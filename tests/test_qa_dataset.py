"""The Q&A dataset (issue 15): template pairs, LLM-written pairs against a scripted server, the export with the
morphology splits, LlamaFactory's own loader on it, and (slow) a real `llamafactory-cli train` on the mixture."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dataset_builders.config import BuildConfig
from dataset_builders.questions.llm import LLMQAGenerator, parse_qa_reply
from dataset_builders.questions.records import QUESTIONS, SourceText
from dataset_builders.questions.templates import sentences, template_pairs
from support import Reply, ScriptedServer

STRIATIONS = SourceText(
    item_id="p1-f1-a",
    captions=["Fig. 1: SEM fractograph showing closely spaced fatigue striations; no cleavage facets are visible."],
    excerpts=["ested at R = 0.1. The crack initiated at a surface pore. Hardness was measured with a lo"],
    features=["fatigue striations"], label_origin="caption_rules")


# --- templates -------------------------------------------------------------------------------------

def test_sentences_keep_figure_references_and_drop_cut_pieces() -> None:
    text = "ested at R. As shown in Fig. 1, the surface exhibits rock candy. No dimples were seen in Fig. 2. The heat tr"
    assert sentences(text) == ["As shown in Fig. 1, the surface exhibits rock candy.", "No dimples were seen in Fig. 2."]
    assert sentences("fatigue striations", keep_unterminated=True) == ["fatigue striations"]


def test_template_pairs_are_grounded_in_the_text() -> None:
    pairs = {p.kind: p for p in template_pairs(STRIATIONS)}
    assert list(pairs) == ["features", "mechanism", "origin", "measure"]
    caption = STRIATIONS.captions[0]
    assert pairs["features"].features == ["fatigue striations"] and pairs["features"].sources == [caption]
    assert pairs["features"].question == QUESTIONS["features"]
    assert pairs["mechanism"].answer == "The fatigue striations indicate fatigue." and not pairs["mechanism"].refused
    assert pairs["origin"].sources == ["The crack initiated at a surface pore."]
    assert pairs["measure"].answer.startswith("Measure the striation spacing")
    assert not any(p.refused for p in pairs.values())
    # the negated feature is not claimed
    assert "cleavage" not in pairs["features"].answer.split(".")[0]


def test_template_refuses_what_the_text_does_not_support() -> None:
    src = SourceText(item_id="x", captions=["Fig. 3: SEM image of the specimen surface."], features=[])
    pairs = template_pairs(src)
    assert [(p.kind, p.refused, p.sources) for p in pairs] == [
        ("features", True, []), ("mechanism", True, []), ("origin", True, [])]
    negated = SourceText(item_id="y", captions=["SEM image; no dimples were observed."], features=["equiaxed dimples"])
    assert template_pairs(negated)[0].refused  # a negated mention grounds nothing


def test_a_negation_ends_at_a_contrasting_conjunction() -> None:
    """'no beach marks but fine fatigue striations' names the striations: the negation's clause ran across 'but', so
    the labelled feature was refused ("the text does not say which features are visible"), and so were the rest."""
    src = SourceText(item_id="x", captions=["Fig. 2: SEM image showing no beach marks but fine fatigue striations."],
                     features=["fatigue striations"])
    pairs = {p.kind: p for p in template_pairs(src)}
    assert not pairs["features"].refused and pairs["features"].features == ["fatigue striations"]
    assert pairs["mechanism"].answer == "The fatigue striations indicate fatigue."
    present = SourceText(item_id="y", captions=["Fatigue striations are present but dimples are absent."],
                         features=["fatigue striations", "equiaxed dimples"])
    assert template_pairs(present)[0].features == ["fatigue striations"]  # the dimples stay negated


def test_a_printed_sentence_holding_60_percent_of_the_words_is_quoted() -> None:
    """printed_sentence: 'at least 60 % of the words'; exactly 60 % found nothing (the first match needed more)."""
    from dataset_builders.questions.templates import printed_sentence

    printed = ["SEM fractographs of the shaft showing fine striations.", "Overview of the part."]
    assert printed_sentence("shaft fine striations near origin", printed) == printed[0]  # 3 of 5 words
    assert printed_sentence("shaft fine wear near origin", printed) is None  # 2 of 5


# --- LLM generation against a scripted server -------------------------------------------------------

def _good(src: SourceText) -> str:
    return json.dumps({"item": src.item_id, "pairs": [
        {"kind": "features", "answer": "Fatigue striations.", "refused": False, "sources": [src.captions[0]]},
        {"kind": "origin", "answer": "Not stated.", "refused": True, "sources": []}]})


def test_llm_generation_accepts_grounded_replies_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    sources = [STRIATIONS.model_copy(update={"item_id": f"item-{k}"}) for k in ("good", "ungrounded", "badjson",
                                                                               "badkind", "down")]
    replies = {
        "item-good": Reply(_good(sources[0])),
        "item-ungrounded": Reply(json.dumps({"item": "item-ungrounded", "pairs": [
            {"kind": "features", "answer": "Dimples.", "refused": False, "sources": ["Dimples cover the surface."]},
            {"kind": "origin", "answer": "No.", "refused": True, "sources": []}]})),
        "item-badjson": Reply('{"item": "item-badjson", "pairs": [{"kind": '),
        "item-badkind": Reply(json.dumps({"item": "item-badkind", "pairs": [
            {"kind": "colour", "answer": "Grey.", "refused": False, "sources": [STRIATIONS.captions[0]]}] * 2})),
        "item-down": Reply(status=500, content=None),
    }

    def responder(body, key, n):
        text = body["messages"][-1]["content"][0]["text"]
        item = text.split("\n")[0].removeprefix("Item: ")
        return replies[item]

    with ScriptedServer(responder=responder) as server:
        config = BuildConfig(out=tmp_path, labeler="vllm", label_model="m", base_url=server.base_url,
                             label_max_attempts=2, concurrency=2)
        gen = LLMQAGenerator("vllm", config)
        items, summary = gen.generate(sources, tmp_path / "qa_cache.sqlite", progress=False)
        by_id = {i.item_id: i for i in items}
        assert by_id["item-good"].status == "ok" and [p.kind for p in by_id["item-good"].pairs] == ["features",
                                                                                                    "origin"]
        assert by_id["item-good"].pairs[0].features == ["fatigue striations"]
        assert by_id["item-good"].pairs[1].refused and by_id["item-good"].origin == "model:m"
        for bad, why in (("item-ungrounded", "source not in the text"), ("item-badjson", "not a fracto_qa JSON"),
                         ("item-badkind", "kinds must be distinct"), ("item-down", "API call failed")):
            assert by_id[bad].status == "failed" and not by_id[bad].pairs, bad
            assert why in by_id[bad].detail, (bad, by_id[bad].detail)
        assert (summary.ok, summary.invalid, summary.failed) == (1, 3, 1)
        first = server.count()
        assert first == 6  # 4 replies + 2 attempts of the 500
        # again: the valid reply comes from the cache, every rejected one is asked again
        gen.generate(sources, tmp_path / "qa_cache.sqlite", progress=False)
        asked = [r.body["messages"][-1]["content"][0]["text"].split("\n")[0] for r in server.requests[first:]]
        assert "Item: item-good" not in asked and len(asked) == 5


def test_a_reply_naming_another_item_is_rejected_and_asked_again(tmp_path: Path, monkeypatch) -> None:
    """The reply to item-a's request that echoes item-b (a known item, and a valid reply for it) is "invalid" for
    item-a: it was validated against item-b's text, counted ok and cached, so a re-run never asked again."""
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    a, b = (STRIATIONS.model_copy(update={"item_id": i}) for i in ("item-a", "item-b"))
    with ScriptedServer(responder=lambda body, key, n: Reply(_good(b))) as server:
        config = BuildConfig(out=tmp_path, labeler="vllm", label_model="m", base_url=server.base_url)
        gen = LLMQAGenerator("vllm", config)
        items, summary = gen.generate([a, b], tmp_path / "qa_cache.sqlite", progress=False)
        assert [(i.item_id, i.status) for i in items] == [("item-a", "failed"), ("item-b", "ok")]
        assert "reply is about item 'item-b'" in items[0].detail
        assert (summary.ok, summary.invalid) == (1, 1)
        _, again = gen.generate([a, b], tmp_path / "qa_cache.sqlite", progress=False)
        assert (again.cache_hits, again.api_calls, server.count()) == (1, 1, 3)


def test_a_quote_must_stand_within_one_printed_text() -> None:
    """Sources were looked up in the caption and excerpts joined by spaces: a 'quote' running from the caption's
    end into an excerpt's start (words that stand together nowhere in the paper) was accepted."""
    src = SourceText(item_id="x", captions=["Fig. 1: SEM image of the fracture surface."],
                     excerpts=["Beach marks were absent. Fatigue was ruled out."])

    def reply(source: str) -> str:
        return json.dumps({"item": "x", "pairs": [
            {"kind": "features", "answer": "Beach marks.", "refused": False, "sources": [source]},
            {"kind": "origin", "answer": "Not stated.", "refused": True, "sources": []}]})

    assert parse_qa_reply(reply("Beach marks were  absent."), src)[1] is None
    assert "source not in the text" in parse_qa_reply(reply("fracture surface. Beach marks"), src)[1]


def test_parse_qa_reply_checks_item_and_counts() -> None:
    pairs, error = parse_qa_reply(_good(STRIATIONS).replace("p1-f1-a", "other"), STRIATIONS)
    assert pairs == [] and "not 'p1-f1-a'" in error
    one = json.dumps({"item": "p1-f1-a", "pairs": json.loads(_good(STRIATIONS))["pairs"][:1]})
    assert parse_qa_reply(one, STRIATIONS)[1] == "1 pairs; expected 2 to 5"


# --- the exported Q&A dataset ----------------------------------------------------------------------

def _meta(dataset: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (dataset / f"{name}_meta.jsonl").read_text().splitlines()]


def test_qa_dataset_has_the_morphology_splits(built_qa) -> None:
    out, results = built_qa
    dataset = out / "dataset"
    info = json.loads((dataset / "dataset_info.json").read_text())
    assert {"fracto_train", "fracto_qa_train", "fracto_qa_val", "fracto_qa_test"} <= set(info)
    split_of_item = {m["item_id"]: split for split in ("train", "val", "test")
                     for m in _meta(dataset, f"fracto_{split}")}
    papers: dict[str, set[str]] = {}
    total = 0
    for split in ("train", "val", "test"):
        samples = json.loads((dataset / f"fracto_qa_{split}.json").read_text())
        metas = _meta(dataset, f"fracto_qa_{split}")
        assert len(samples) == len(metas)
        total += len(samples)
        for sample, meta in zip(samples, metas):
            assert split_of_item[meta["item_id"]] == split
            assert sample["images"] == [meta["image"]] and (dataset / meta["image"]).is_file()
            assert sample["messages"][0]["content"] == "<image>" + QUESTIONS[meta["kind"]]
            assert sample["messages"][1]["content"] == meta["answer"]
            assert meta["refused"] or meta["sources"]
            for p in meta["paper_ids"]:
                papers.setdefault(p, set()).add(split)
        per_item: dict[str, int] = {}
        for m in metas:
            per_item[m["item_id"]] = per_item.get(m["item_id"], 0) + 1
        assert all(2 <= n <= 5 for n in per_item.values())
    assert all(len(s) == 1 for s in papers.values()), {p: s for p, s in papers.items() if len(s) > 1}
    counts = results["qa"].counts
    assert counts["pairs"] == total > 0 and 0 < counts["refusals"] < total
    card = json.loads((dataset / "qa_card.json").read_text())
    assert sum(card["pairs"].values()) == total and card["generator"] == ["templates"]


def test_llamafactory_loads_the_qa_dataset(built_qa, tmp_path: Path) -> None:
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments, ModelArguments, TrainingArguments

    dataset_dir = str(built_qa[0] / "dataset")
    names = ["fracto_qa_train", "fracto_qa_test"]
    model_args = ModelArguments(model_name_or_path="unused-no-model-is-loaded", cache_dir=str(tmp_path / "hf"))
    data_args = DataArguments(dataset_dir=dataset_dir, dataset=",".join(names))
    training_args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none")
    for name, attr in zip(names, get_dataset_list(names, dataset_dir)):
        ours = json.loads(Path(dataset_dir, f"{name}.json").read_text())
        converted = _load_single_dataset(attr, model_args, data_args, training_args)
        assert len(converted) == len(ours) > 0
        for sample, record in zip(ours, converted):
            assert record["_prompt"] == [{"role": "user", "content": sample["messages"][0]["content"]}]
            assert record["_response"] == [{"role": "assistant", "content": sample["messages"][1]["content"]}]
            assert record["_images"] == [os.path.join(dataset_dir, sample["images"][0])]


@pytest.mark.slow
def test_tiny_model_trains_on_the_mixture(built_qa, tiny_dir, train_env, tmp_path: Path) -> None:
    from training.smoke import TINY_RECIPES, cpu_env, run_logged, venv_bin

    out = tmp_path / "mix"
    env = cpu_env(tmp_path, base=train_env)
    recipe = TINY_RECIPES / "lora_sft_qa_mix_cpu.yaml"
    run_logged("mix", [venv_bin("llamafactory-cli"), "train", recipe, f"model_name_or_path={tiny_dir}",
                       f"dataset_dir={built_qa[0] / 'dataset'}", f"output_dir={out}", "max_samples=8",
                       "image_max_pixels=65536", "cutoff_len=1024", "max_steps=2"], tmp_path / "mix.log", env, 600)
    log = (tmp_path / "mix.log").read_text()
    assert "Loading dataset fracto_train.json" in log and "Loading dataset fracto_qa_train.json" in log
    assert "Num examples = 16" in log  # max_samples 8 of each dataset: the mixture, not one of them
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 2 and all(0 < x < 20 for x in losses)
    assert (out / "adapter_model.safetensors").is_file()


def test_qa_stage_with_an_llm_generator(built, tmp_path: Path, monkeypatch) -> None:
    """The qa stage through the labelling client: grounded replies become the dataset, a bad one a problem line."""
    import shutil

    from dataset_builders import qa
    from dataset_builders.stage_paths import StagePaths

    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    out = tmp_path / "out"
    shutil.copytree(built[0], out, copy_function=os.link)
    asked: list[str] = []

    def responder(body, key, n):
        text = body["messages"][-1]["content"][0]["text"]
        item = text.split("\n")[0].removeprefix("Item: ")
        asked.append(item)
        caption = text.split("Caption(s):\n- ")[1].split("\n")[0] if "Caption(s):\n- " in text else ""
        if len(asked) == 1 or not caption or caption == "(none)":  # the first item gets a malformed reply
            return Reply('{"item": "' + item + '", "pairs": "oops"}')
        return Reply(json.dumps({"item": item, "pairs": [
            {"kind": "features", "answer": f"As the caption says: {caption}", "refused": False, "sources": [caption]},
            {"kind": "measure", "answer": "The text gives nothing to measure.", "refused": True, "sources": []}]}))

    with ScriptedServer(responder=responder) as server:
        stored = BuildConfig.model_validate_json((built[0] / "build_config.json").read_text())
        config = stored.model_copy(update={"out": out, "qa": True, "qa_generator": "vllm", "label_model": "qa-m",
                                           "base_url": server.base_url, "label_max_attempts": 1})
        result = qa.run(StagePaths(out), config, progress=False)
    c = result.counts
    assert c["failed"] >= 1 and c["with_pairs"] == c["items"] - c["failed"] - c["no_text"] > 0
    assert c["pairs"] == 2 * c["with_pairs"] and c["refusals"] == c["with_pairs"]
    assert {p.reason for p in result.problems} == {"qa_failed"} and len(result.problems) == c["failed"]
    assert all("invalid reply: not a fracto_qa JSON object" in p.detail for p in result.problems)
    assert asked[0] in {p.item_id for p in result.problems}
    card = json.loads((out / "dataset" / "qa_card.json").read_text())
    assert card["generator"] == ["model:qa-m"] and sum(card["pairs"].values()) == c["pairs"]
    assert card["refusals"] == {"measure": c["with_pairs"]}


# --- issue 27 (3): evidence is text of the PDF ---------------------------------------------------------

def ctrl_f(text: str) -> str:
    """Text as a reader's search in a PDF viewer matches it: ligatures unfolded, a word hyphenated across a
    line break joined (as pdf.text.join_lines does), any run of whitespace one space."""
    import re
    import unicodedata

    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"([A-Za-z])-\n\s*([a-z])", r"\1\2", text)
    return " ".join(text.split())


def _pdf_texts(out: Path) -> dict[str, str]:
    """{paper_id: the PDF's text as PyMuPDF extracts it, page by page, Ctrl-F normalised}."""
    import pymupdf

    texts = {}
    for f in (out / "stages" / "panels").glob("*.json"):
        record = json.loads(f.read_text())
        with pymupdf.open(out / "sample_corpus" / "papers" / record["source_pdf"]) as doc:
            texts[record["paper_id"]] = ctrl_f("\n".join(page.get_text() for page in doc))
    return texts


@pytest.fixture(scope="module")
def default_qa_build(tmp_path_factory) -> Path:
    """`python -m dataset_builders.build --qa` (the default sample corpus: 24 papers, seed 0)."""
    from dataset_builders.build import build

    out = tmp_path_factory.mktemp("default_qa") / "out"
    build(BuildConfig(out=out, qa=True, workers=2), progress=False)
    return out


def test_every_evidence_string_of_the_default_qa_build_is_in_its_pdf(default_qa_build: Path) -> None:
    """52 of 269 evidence strings were stitched panel captions or excerpts running into the next heading."""
    texts = _pdf_texts(default_qa_build)
    checked, missing, stitched = 0, [], 0
    for split in ("train", "val", "test"):
        for meta in _meta(default_qa_build / "dataset", f"fracto_qa_{split}"):
            pdfs = [texts[p] for p in meta["paper_ids"] if p in texts]
            for source in meta["sources"]:
                if not pdfs:  # a manual image's label
                    assert source.startswith("manual label: ")
                    continue
                checked += 1
                if not any(ctrl_f(source) in t for t in pdfs):
                    missing.append(source)
            stitched += any(not any(ctrl_f(c) in t for t in pdfs) for c in meta["panel_captions"])
    assert checked > 200 and missing == []
    assert stitched > 0  # the panel captions the templates read are kept beside the evidence, as they are


def test_excerpts_stop_at_captions_and_headings(default_qa_build: Path) -> None:
    texts = _pdf_texts(default_qa_build)
    excerpts = {(record["paper_id"], e) for f in (default_qa_build / "stages" / "panels").glob("*.json")
                for record in [json.loads(f.read_text())] for p in record["panels"] for e in p["excerpts"]}
    assert len(excerpts) > 50
    assert [e for paper, e in excerpts if ctrl_f(e.strip("…")) not in texts[paper]] == []


def test_stitched_panel_caption_is_quoted_as_printed() -> None:
    printed = ("SEM fractographs of the CoCrMo alloy specimens: (a) closely spaced fatigue striations; "
               "(b) unfused regions without dimples.")
    src = SourceText(item_id="x-a", captions=["SEM fractographs of the CoCrMo alloy specimens: closely spaced "
                                              "fatigue striations"], figure_captions=[printed],
                     excerpts=["…ed. Fig. 5(a) shows striations. The heat"], features=["fatigue striations"])
    pairs = {p.kind: p for p in template_pairs(src)}
    assert pairs["features"].sources == [printed]
    assert "closely spaced fatigue striations." in pairs["features"].answer
    assert sentences("…ed. Fig. 5(a) shows striations. The heat") == ["Fig. 5(a) shows striations."]


def test_llm_quotes_must_be_printed_text() -> None:
    from dataset_builders.questions.llm import user_prompt

    printed = "SEM fractographs of the 316L specimens: (a) gas pores; (b) dimples."
    src = SourceText(item_id="p-a", captions=["SEM fractographs of the 316L specimens: gas pores"],
                     figure_captions=[printed], features=["gas pore"])

    def reply(source: str) -> str:
        return json.dumps({"item": "p-a", "pairs": [
            {"kind": "features", "answer": "Gas pores.", "refused": False, "sources": [source]},
            {"kind": "origin", "answer": "Not stated.", "refused": True, "sources": []}]})

    pairs, error = parse_qa_reply(reply(src.captions[0]), src)
    assert pairs == [] and "source not in the text" in error
    pairs, error = parse_qa_reply(reply(printed), src)
    assert error is None and pairs[0].sources == [printed]
    prompt = user_prompt(src)
    assert f"- {printed}" in prompt and "panel described by (not a quote):\n- SEM fractographs" in prompt


# --- issue 27 (5): a small corpus gets val/test papers when asked, and is told when it has none ----------------

def test_few_papers_warn_and_min_split_papers_fills_val_and_test(tmp_path: Path, capsys) -> None:
    from dataset_builders.build import build

    base = BuildConfig(out=tmp_path / "ratios", qa=True, workers=1, n_sample_papers=4, seed=1, variants=False)
    build(base, progress=False)
    card = json.loads((base.out / "dataset" / "qa_card.json").read_text())
    assert card["papers"]["val"] == card["papers"]["test"] == 0 and card["papers"]["train"] >= 3
    assert card["warnings"] and "--min-split-papers" in card["warnings"][0]
    assert "[     qa] warning: no Q&A pairs in val and test" in capsys.readouterr().out

    asked = base.model_copy(update={"out": tmp_path / "min1", "min_split_papers": 1})
    results = build(asked, progress=False)
    card = json.loads((asked.out / "dataset" / "qa_card.json").read_text())
    assert card["papers"]["val"] >= 1 and card["papers"]["test"] >= 1 and card["papers"]["train"] >= 1
    assert card["warnings"] == [] and results["qa"].counts["test_pairs"] > 0
    assert "warning" not in capsys.readouterr().out
    split_of_paper: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        for meta in _meta(asked.out / "dataset", f"fracto_{split}"):
            for paper in meta["paper_ids"]:
                split_of_paper.setdefault(paper, set()).add(split)
    assert all(len(s) == 1 for s in split_of_paper.values())  # whole papers moved, none in two splits

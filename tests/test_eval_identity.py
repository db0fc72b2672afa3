"""Model identity: what the server serves and a fingerprint of the weights are in the run card, the resume check and
the cache key. Re-serving other weights under the same name never reuses a reply: against the scripted server,
and, slow, against the real `llamafactory-cli api` serving the tiny Qwen3-VL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eval import identity as ident
from eval.models import resolve_model
from eval.records import read_run
from eval.run import RunError, run_eval

from support import Reply, ScriptedServer
from support.eval_bench import config, features, make_benchmark


def make_adapter(folder: Path, weights: bytes) -> Path:
    """A LoRA output folder as LlamaFactory writes it: adapter files plus logs that do not define the model."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 16, "base_model_name_or_path": "/m/base"}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "trainer_log.jsonl").write_text('{"loss": 1.0}\n')
    (folder / "README.md").write_text("model card\n")
    return folder


def endpoint_file(folder: Path, base_url: str, name: str, weights: list[Path]) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"base_url": base_url, "model": name, "backend": "vllm", "job_id": "7",
                                "host": "node1", "weights": [str(w) for w in weights]}))
    return path


def test_fingerprint_covers_model_files_only_and_samples_big_shards(tmp_path, monkeypatch):
    a = ident.fingerprint_folder(make_adapter(tmp_path / "a", b"\x01" * 4096))
    assert [f["name"] for f in a["files"]] == ["adapter_config.json", "adapter_model.safetensors"]
    (tmp_path / "a" / "trainer_log.jsonl").write_text("other log\n")  # logs do not change the identity
    assert ident.fingerprint_folder(tmp_path / "a")["sha256"] == a["sha256"]
    (tmp_path / "a" / "adapter_model.safetensors").write_bytes(b"\x02" + b"\x01" * 4095)  # same size, new weights
    assert ident.fingerprint_folder(tmp_path / "a")["sha256"] != a["sha256"]
    # a big shard: 3 samples of 1 MiB (start, middle, end), not the whole file; a change in the middle is seen
    monkeypatch.setattr(ident, "FULL_HASH_MAX", 2**20)
    shard = tmp_path / "m" / "model-00001-of-00002.safetensors"
    shard.parent.mkdir()
    data = bytearray(5 * 2**20)
    shard.write_bytes(bytes(data))
    before = ident.fingerprint_folder(shard.parent)
    assert before["files"][0]["hashed"] == "sampled"
    data[len(data) // 2] = 7
    shard.write_bytes(bytes(data))
    assert ident.fingerprint_folder(shard.parent)["sha256"] != before["sha256"]
    assert ident.fingerprint_folder(tmp_path / "missing")["sha256"] is None


def test_vllm_models_entry_and_root_folders(tmp_path):
    adapter = make_adapter(tmp_path / "lora", b"w")
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    models = [{"id": "Qwen3-VL-32B-Instruct", "object": "model", "created": 1, "owned_by": "vllm", "root": str(base),
               "parent": None, "max_model_len": 4096},
              {"id": "fracto-32b", "object": "model", "created": 2, "owned_by": "vllm", "root": str(adapter),
               "parent": "Qwen3-VL-32B-Instruct", "max_model_len": 4096}]
    served = ident.served_entry(models, "fracto-32b")
    assert served == {"id": "fracto-32b", "root": str(adapter), "parent": "Qwen3-VL-32B-Instruct",
                      "max_model_len": 4096}  # "created" changes with every server start: left out
    assert ident.served_entry(models, "other") == {"listed": ["Qwen3-VL-32B-Instruct", "fracto-32b"]}
    endpoints = tmp_path / "endpoints"
    endpoints.mkdir()
    spec = resolve_model("fracto-32b", endpoint_file=endpoint_file(endpoints, "http://h:1/v1", "fracto-32b", []))
    assert ident.weights_folders(spec, models, served) == [adapter, base]  # no "weights" listed: vLLM's roots


def test_reserving_other_weights_under_the_same_name_never_reuses_replies(tmp_path, capsys):
    csv_path = make_benchmark(tmp_path / "bench", {"a": ["shear lip"], "b": ["crazing"], "c": []})
    adapter = make_adapter(tmp_path / "saves" / "fracto-tiny", b"\x00" * 2048)
    endpoints = tmp_path / "endpoints"
    endpoints.mkdir()
    with ScriptedServer(responder=lambda body, key, n: Reply(content=features("shear lip")),
                        model="fracto-tiny") as srv:
        efile = endpoint_file(endpoints, srv.base_url, "fracto-tiny", [adapter])
        cfg = config(csv_path, tmp_path / "run", None, model="fracto-tiny", endpoint_file=efile, report=False)
        run_eval(cfg)
        first = read_run(tmp_path / "run").card.identity
        assert first.served == {"id": "fracto-tiny"} and first.weights[0]["path"] == str(adapter.resolve())
        assert srv.count() == 3
        assert run_eval(cfg).already_done == 3 and srv.count() == 3  # same identity: resumed, nothing sent

        # retrain: new adapter weights in the same folder, served again under the same name
        (adapter / "adapter_model.safetensors").write_bytes(b"\x01" * 2048)
        with pytest.raises(RunError) as err:
            run_eval(cfg)
        message = str(err.value)
        second_key = ident.model_identity(resolve_model("fracto-tiny", endpoint_file=efile),
                                          resolve_model("fracto-tiny", endpoint_file=efile).endpoint()).key
        assert first.key[:12] in message and second_key[:12] in message and second_key != first.key
        assert "--out" in message and "--no-resume" in message and srv.count() == 3

        # a fresh folder holding the old cache: the identity is in every cache key, so nothing is reused
        shutil.copytree(tmp_path / "run", tmp_path / "copy")
        (tmp_path / "copy" / "samples.jsonl").unlink()
        copy = run_eval(config(csv_path, tmp_path / "copy", None, model="fracto-tiny", endpoint_file=efile,
                               report=False))
        assert copy.summary.cache_hits == 0 and srv.count() == 6
        # --no-resume starts over in the old folder: asked again, the card now names the new identity
        again = run_eval(config(csv_path, tmp_path / "run", None, model="fracto-tiny", endpoint_file=efile,
                                report=False, resume=False))
        assert again.summary.api_calls == 3 and srv.count() == 9
        assert read_run(tmp_path / "run").card.identity.key == second_key


def test_api_models_record_the_reply_snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    csv_path = make_benchmark(tmp_path / "bench", {"a": ["shear lip"]})
    with ScriptedServer(responder=lambda body, key, n: Reply(content=features("shear lip"))) as srv:
        run_eval(config(csv_path, tmp_path / "run", srv.base_url, model="openai:gpt-5-mini", report=False))
        assert all(r.path.endswith("/chat/completions") for r in srv.requests)  # no /models asked of an API
    run = read_run(tmp_path / "run")
    # the scripted server answers with the requested name; a real API answers with its dated snapshot
    assert run.samples[0].served_model == "gpt-5-mini" and run.card.identity.snapshots == ["gpt-5-mini"]


@pytest.mark.slow
def test_real_server_identity_and_new_weights_on_disk(tiny_api_server, tiny_dir, tmp_path):
    """`llamafactory-cli api` says what it serves (its id); the endpoint file names the weights folder. New weights
    written to that folder (a retrain re-served under the same name) give another identity: the run folder is
    refused and --no-resume asks the real server again instead of reusing its replies."""
    from tiny_qwen3vl import build_tiny_qwen3vl

    base_url, name = tiny_api_server
    weights = tmp_path / "weights"
    shutil.copytree(tiny_dir, weights)
    endpoints = tmp_path / "endpoints"
    endpoints.mkdir()
    efile = endpoint_file(endpoints, base_url, name, [weights])
    csv_path = make_benchmark(tmp_path / "bench", {"a": ["shear lip"], "b": []})
    cfg = config(csv_path, tmp_path / "run", None, model=name, endpoint_file=efile, max_tokens=8, timeout_s=120,
                 concurrency=1, report=False)
    run_eval(cfg)
    card = read_run(tmp_path / "run").card
    assert card.identity.served == {"id": name}
    names = {f["name"] for f in card.identity.weights[0]["files"]}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= names
    shutil.rmtree(weights)
    build_tiny_qwen3vl(weights, seed=1)  # other random weights, same architecture and name
    with pytest.raises(RunError, match=r"(?s)holds replies of another model.*recorded: identity "
                                       rf"{card.identity.key[:12]}.*--out.*--no-resume"):
        run_eval(cfg)
    again = run_eval(config(csv_path, tmp_path / "run", None, model=name, endpoint_file=efile, max_tokens=8,
                            timeout_s=120, concurrency=1, report=False, resume=False))
    assert again.summary.api_calls == 2 and again.summary.cache_hits == 0
    assert read_run(tmp_path / "run").card.identity.key != card.identity.key


# --- multi-call runs (circular, hybrid) and sem_qa: the same identity rules ------------------------------------


def _answer(body, key, n):
    """One scripted model for every multi-call task: a letter, features, or a mechanism."""
    from support.eval_classes import prompt_text

    text = prompt_text(body)
    if "specialist model examined" in text:
        return Reply(content=json.dumps({"mechanism": "fatigue", "reasons": ["striations"]}))
    if "Answer with the letter" in text:
        return Reply(content="The answer is B")
    return Reply(content=features("fatigue striations"))


@pytest.mark.parametrize("task, model, roles", [
    ("microscopy_technique", "fracto-tiny", None),  # circular: one caller
    ("failure_mechanism", "hybrid:fracto-tiny+fracto-tiny", ("specialist", "reasoner")),  # both hybrid calls
])
def test_multicall_runs_record_and_check_the_identity(tmp_path, task, model, roles):
    from support.eval_classes import make_class_benchmark

    rows = [{"item_id": f"i{n}", "features": "fatigue striations", "technique": "SEM", "material": "steel",
             "mechanism": "fatigue"} for n in range(2)]
    csv_path = make_class_benchmark(tmp_path / "bench", rows)
    adapter = make_adapter(tmp_path / "saves" / "fracto-tiny", b"\x00" * 2048)
    endpoints = tmp_path / "endpoints"
    endpoints.mkdir()
    with ScriptedServer(responder=_answer, model="fracto-tiny") as srv:
        efile = endpoint_file(endpoints, srv.base_url, "fracto-tiny", [adapter])
        cfg = config(csv_path, tmp_path / "run", None, model=model, task=task, endpoint_file=efile, report=False)
        run_eval(cfg)
        n_calls = srv.count()
        card = read_run(tmp_path / "run").card
        parts = [card.identity.parts[r] for r in roles] if roles else [card.identity]
        assert all(p.served == {"id": "fracto-tiny"} and p.weights[0]["path"] == str(adapter.resolve())
                   for p in parts)
        assert run_eval(cfg).already_done == 2 and srv.count() == n_calls  # same identity: resumed

        (adapter / "adapter_model.safetensors").write_bytes(b"\x01" * 2048)  # retrained, same name
        with pytest.raises(RunError, match=rf"(?s)holds replies of another model.*recorded: identity "
                                           rf"{card.identity.key[:12]}.*--out.*--no-resume"):
            run_eval(cfg)
        assert srv.count() == n_calls
        shutil.copytree(tmp_path / "run", tmp_path / "copy")  # the old cache in a fresh folder: no key matches
        (tmp_path / "copy" / "samples.jsonl").unlink()
        (tmp_path / "copy" / "run_card.json").unlink()
        run_eval(config(csv_path, tmp_path / "copy", None, model=model, task=task, endpoint_file=efile,
                        report=False))
        assert srv.count() == 2 * n_calls
        assert not any(c.cached for s in read_run(tmp_path / "copy").samples for c in s.calls)
        assert read_run(tmp_path / "copy").card.identity.key != card.identity.key


def test_sem_qa_records_model_and_judge_identity_and_never_reuses_other_weights(tmp_path, capsys):
    from eval.run import main as eval_main
    from test_sem_qa import JUDGE_SCRIPT, SAMPLES, qa_benchmark

    bench = qa_benchmark(tmp_path / "bench")
    adapter = make_adapter(tmp_path / "saves" / "fracto-tiny", b"\x00" * 2048)
    endpoints = tmp_path / "endpoints"
    endpoints.mkdir()
    script = {sid: [Reply(reply or "no idea")] for sid, _, _, _, reply in SAMPLES}
    with ScriptedServer(script=script, model="fracto-tiny") as model, \
            ScriptedServer(script=JUDGE_SCRIPT, model="judge-model") as judge:
        efile = endpoint_file(endpoints, model.base_url, "fracto-tiny", [adapter])

        def run(out: str) -> int:
            return eval_main(["--task", "sem_qa", "--model", "fracto-tiny", "--endpoint-file", str(efile),
                              "--judge", "vllm:judge-model", "--judge-base-url", judge.base_url, "--benchmark",
                              str(bench), "--out", str(tmp_path / out), "--reask", "0", "--max-attempts", "1",
                              "--quiet"])

        run("run")
        card = json.loads((tmp_path / "run" / "run_card.json").read_text())
        ident_model, ident_judge = card["identity"]["parts"]["model"], card["identity"]["parts"]["judge"]
        assert ident_model["served"] == {"id": "fracto-tiny"} and ident_model["weights"][0]["path"] == str(
            adapter.resolve())
        assert ident_judge["served"] == {"id": "judge-model"}
        n_model, n_judge = model.count(), judge.count()
        assert n_model == 6

        (adapter / "adapter_model.safetensors").write_bytes(b"\x01" * 2048)  # new weights, same name
        capsys.readouterr()
        assert run("run") == 2 and model.count() == n_model and judge.count() == n_judge  # refused, nothing sent
        err = capsys.readouterr().err
        assert "holds replies of another model" in err and ident_model["key"][:12] in err and "--no-resume" in err
        shutil.copytree(tmp_path / "run", tmp_path / "copy")
        for name in ("samples.jsonl", "run_card.json"):
            (tmp_path / "copy" / name).unlink()
        run("copy")  # the old cache: no reply of the old weights is reused
        assert model.count() == 2 * n_model
        new_card = json.loads((tmp_path / "copy" / "run_card.json").read_text())
        assert new_card["identity"]["key"] != card["identity"]["key"]
        assert new_card["identity"]["parts"]["judge"]["key"] == ident_judge["key"]

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

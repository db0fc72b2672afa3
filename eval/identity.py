"""Which model answers a run: what the server says it serves, and a cheap fingerprint of the weights files.

Reads, for a self-served model (vLLM, `llamafactory-cli api`):
- GET <base_url>/models: the entry of the served name -- id, root (the weights path vLLM loaded), parent
  (the base model of a LoRA adapter), max_model_len; `llamafactory-cli api` reports the id only;
- when the URL came from slurm/serve.sh's endpoint file (eval/models.py): the weights folders it names
  ("weights": [...]), else the local folders vLLM reports as `root` of the served model and of its parent.
  Per folder, the files that define the served model (config, index, adapter, tokenizer, processor and
  weights files): name, size and SHA-256 -- the whole file up to 64 MiB and for adapter files, else a
  SHA-256 of three 1 MiB samples (start, middle, end) and the size, so a 64 GB merged model is
  fingerprinted in milliseconds yet new weights of the same shape still differ (every tensor changes).
For an API model (openai:, gemini:) nothing is asked beforehand: each reply's `model` field (the dated
snapshot) is recorded per sample and collected in the run card.

`ModelIdentity.key` digests the served entry and the weights digests. eval.run refuses to resume a run
folder whose key differs and puts the key into every response-cache key, so re-serving other weights under
the same name never reuses a reply. Writes nothing.

A run of several models (a hybrid's specialist and reasoner, sem_qa's model and judge) records one identity
per role and a combined key over them (`combined_identity`); offline parts (the rules reasoner, the oracle
specialist, a CLIP checkpoint on disk) get a key from their name and, for files, their fingerprint
(`offline_identity`).

Usage:
    identity = model_identity(spec, endpoint)          # eval.records.ModelIdentity
    identity.describe()                                 # 'identity 1a2b3c4d5e6f (id fracto-32b; root ...)'
    both = combined_identity({"specialist": identity, "reasoner": offline_identity({"reasoner": "rules"})})
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

from fracto_core.vlm_api.backends import Endpoint, ProviderError, redact_url
from eval.models import ModelSpec
from eval.records import ModelIdentity

SERVED_KEYS = ("id", "root", "parent", "max_model_len")
# Files that define what a folder serves (LlamaFactory output dirs also hold logs, plots and checkpoint-*/).
WEIGHT_PATTERNS = ("config.json", "generation_config.json", "*.index.json", "adapter_config.json", "adapter_model.*",
                   "model*.safetensors", "pytorch_model*.bin", "tokenizer*", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "added_tokens.json", "chat_template.*", "preprocessor_config.json",
                   "video_preprocessor_config.json", "processor_config.json")
FULL_HASH_MAX = 64 * 2**20
SAMPLE = 2**20
TIMEOUT_S = 10.0


class IdentityError(ValueError):
    """The server cannot say what it serves (unreachable, not OpenAI-compatible); the message says what to do."""


def file_digest(path: Path, size: int) -> tuple[str, str]:
    """(sha256 hex, "full" | "sampled"): whole small and adapter files, three 1 MiB samples of big shards."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= FULL_HASH_MAX or path.name.startswith("adapter_"):
            for block in iter(lambda: fh.read(SAMPLE), b""):
                h.update(block)
            return h.hexdigest(), "full"
        h.update(str(size).encode())
        for offset in (0, size // 2 - SAMPLE // 2, size - SAMPLE):
            fh.seek(offset)
            h.update(fh.read(SAMPLE))
    return h.hexdigest(), "sampled"


def fingerprint_folder(folder: Path) -> dict:
    """{"path", "files": [{name, size, sha256, hashed}], "sha256"} of the files that define a served model."""
    folder = Path(folder)
    if not folder.is_dir():
        return {"path": str(folder), "sha256": None, "files": [], "note": "not a folder on this machine"}
    files = []
    for f in sorted(folder.iterdir()):
        if f.is_file() and any(fnmatch.fnmatch(f.name, pattern) for pattern in WEIGHT_PATTERNS):
            size = f.stat().st_size
            digest, how = file_digest(f, size)
            files.append({"name": f.name, "size": size, "sha256": digest, "hashed": how})
    blob = json.dumps([(f["name"], f["size"], f["sha256"]) for f in files]).encode()
    return {"path": str(folder.resolve()), "files": files, "sha256": hashlib.sha256(blob).hexdigest()}


def fetch_models(endpoint: Endpoint) -> list[dict]:
    """The `data` list of GET <base_url>/models (IdentityError when the server does not answer it)."""
    url = endpoint.base_url.rstrip("/") + "/models"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {endpoint.api_key()}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            payload = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError) as exc:
        raise IdentityError(f"GET {redact_url(url)} failed ({exc}): is the server up? eval.run records which model "
                            "the server serves before it sends anything") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise IdentityError(f"GET {redact_url(url)}: no model list in the answer (not an OpenAI-compatible server?)")
    return [m for m in data if isinstance(m, dict)]


def served_entry(models: list[dict], name: str) -> dict:
    """The entry of `name` in a /v1/models list, reduced to SERVED_KEYS; {"listed": [...]} when it is absent."""
    for m in models:
        if m.get("id") == name:
            return {k: m[k] for k in SERVED_KEYS if m.get(k) is not None}
    return {"listed": sorted(str(m.get("id")) for m in models)}


def weights_folders(spec: ModelSpec, models: list[dict], served: dict) -> list[Path]:
    """The endpoint file's "weights", else the local `root` folders of the served model and of its parent."""
    if spec.weights:
        return [Path(p) for p in spec.weights]
    roots = [served.get("root")]
    if served.get("parent"):
        roots += [m.get("root") for m in models if m.get("id") == served["parent"]]
    return [Path(r) for r in roots if isinstance(r, str) and Path(r).is_dir()]


def model_identity(spec: ModelSpec, endpoint: Endpoint, contact_server: bool = True) -> ModelIdentity:
    """The identity of the model behind spec (IdentityError when a self-served model cannot be asked)."""
    body: dict = {"provider": spec.provider, "model": spec.model}
    if spec.provider != "vllm":
        note = "API model: the dated snapshot of each reply is recorded (served_model)"
        return ModelIdentity(key=_digest(body), note=note)
    served: dict | None = None
    models: list[dict] = []
    note = ""
    if contact_server:
        try:
            models = fetch_models(endpoint)
        except ProviderError as exc:
            raise IdentityError(str(exc)) from None
        served = served_entry(models, spec.model)
        if "listed" in served:
            note = f"the server lists {served['listed']}, not {spec.model!r}"
    else:
        note = "server not asked (dry run)"
    folders = weights_folders(spec, models, served or {}) if spec.from_endpoint_file else []
    weights = [fingerprint_folder(f) for f in folders]
    body.update(served=served, weights=[w["sha256"] for w in weights])
    return ModelIdentity(key=_digest(body), served=served, weights=weights, note=note)


def offline_identity(body: dict, paths: tuple[Path, ...] = ()) -> ModelIdentity:
    """The identity of a part that needs no server: `body` names it; existing files and folders are fingerprinted."""
    weights = []
    for path in map(Path, paths):
        if path.is_dir():
            weights.append(fingerprint_folder(path))
        elif path.is_file():
            size = path.stat().st_size
            digest, how = file_digest(path, size)
            weights.append({"path": str(path.resolve()), "sha256": digest,
                            "files": [{"name": path.name, "size": size, "sha256": digest, "hashed": how}]})
    key = _digest({**body, "weights": [w["sha256"] for w in weights]})
    return ModelIdentity(key=key, weights=weights, note="offline: " + ", ".join(f"{k} {v}" for k, v in body.items()))


def combined_identity(parts: dict[str, ModelIdentity]) -> ModelIdentity:
    """One identity over several roles (its key changes when any role's key does)."""
    return ModelIdentity(key=_digest({role: part.key for role, part in parts.items()}), parts=dict(parts))


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

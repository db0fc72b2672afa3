"""Model registry of the evaluation harness: a `--model` name -> which API, which model, which URL.

| form                 | backend           | base URL                                    | key (read at call time)     |
|----------------------|-------------------|---------------------------------------------|-----------------------------|
| `openai:<model>`     | openai            | the SDK default (https://api.openai.com/v1) | OPENAI_API_KEY              |
| `gemini:<model>`     | gemini            | Google's OpenAI-compatible endpoint         | GEMINI_API_KEY / GOOGLE_... |
| `vllm:<served name>` | openai-compatible | --base-url, else --endpoint-file, else the  | VLLM_API_KEY (optional)     |
| `<served name>`      | openai-compatible | endpoint file slurm/serve.sh wrote          |                             |

An OpenAI-compatible endpoint is a vLLM server or `llamafactory-cli api`; the served name is what the
server was started with (`--served-model-name`, `API_MODEL_NAME`, serve.sh's `--model-name`).
slurm/serve.sh writes `{"base_url": ..., "model": ...}` to OUT/endpoint.json and to the well-known
`$ENDPOINT_DIR/<model name>.json` (ENDPOINT_DIR defaults to <repository>/output/endpoints); a bare or
`vllm:` name without --base-url looks there. An optional `"weights": [folder, ...]` (the base model,
adapter or merged folders served) is what eval.identity fingerprints; without it, the weights folders
vLLM reports in /v1/models (`root`) are used when they exist on this machine. `--base-url` also overrides the URL of `openai:`/`gemini:`
(a proxy or a test server). No key is ever stored here: ``vlm_api.backends.Endpoint`` reads it from the
environment when a request is sent.

Usage:
    spec = resolve_model("openai:gpt-5.5")
    spec = resolve_model("fracto-32b", base_url="http://gpu01:8000/v1")
    spec = resolve_model("vllm:fracto-32b")     # reads output/endpoints/fracto-32b.json
    spec.endpoint()                             # vlm_api Endpoint (provider preset + dialect)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fracto_core.vlm_api.backends import Dialect, Endpoint, redact_url

REPO = Path(__file__).resolve().parents[1]
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
COMPATIBLE_PREFIXES = ("vllm",)  # prefixes meaning "an OpenAI-compatible server we run"
PROVIDER_PREFIXES = {"openai": "openai", "gemini": "gemini"}
BACKEND_NAMES = {"openai": "openai", "gemini": "gemini", "vllm": "openai-compatible"}

VALID_FORMS = (
    "openai:<model>            an OpenAI model, e.g. openai:gpt-5.5 (OPENAI_API_KEY)",
    "gemini:<model>            a Gemini model via Google's OpenAI-compatible endpoint, e.g. gemini:gemini-3.1-pro "
    "(GEMINI_API_KEY or GOOGLE_API_KEY)",
    "vllm:<served name>        an OpenAI-compatible server (vLLM, llamafactory-cli api): --base-url URL, "
    "--endpoint-file FILE, or the file slurm/serve.sh wrote ($ENDPOINT_DIR/<name>.json)",
    "<served name>             the same, without prefix",
)


class ModelError(ValueError):
    """A --model that cannot be resolved; the message says why and lists the valid forms."""


def forms_text() -> str:
    return "valid --model forms:\n" + "\n".join(f"  {f}" for f in VALID_FORMS)


def default_endpoint_dir() -> Path:
    """Where slurm/serve.sh writes <model name>.json (its ENDPOINT_DIR, default <repository>/output/endpoints)."""
    return Path(os.environ.get("ENDPOINT_DIR") or REPO / "output" / "endpoints")


@dataclass(frozen=True)
class EndpointFile:
    """What slurm/serve.sh wrote: {"base_url", "model", "backend", "job_id", "host", optional "weights"}."""

    path: Path
    base_url: str
    model: str | None
    weights: tuple[str, ...] = ()


def read_endpoint_file(path: Path) -> EndpointFile:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"endpoint file {path}: cannot read it ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("base_url"), str) or not data["base_url"]:
        raise ModelError(f"endpoint file {path}: expected JSON with a \"base_url\" (as slurm/serve.sh writes)")
    model = data.get("model")
    weights = data.get("weights") or []
    if not isinstance(weights, list) or not all(isinstance(w, str) and w for w in weights):
        raise ModelError(f"endpoint file {path}: \"weights\" must be a list of folder paths")
    return EndpointFile(Path(path), data["base_url"], model if isinstance(model, str) and model else None,
                        tuple(weights))


@dataclass(frozen=True)
class ModelSpec:
    """A resolved --model: the registry name, the provider preset, the model name sent and the URL."""

    name: str  # as the user gave it (recorded in every sample)
    provider: str  # vlm_api provider preset: openai | gemini | vllm
    model: str  # the model name sent in the request body
    base_url: str | None  # None: the provider's default
    endpoint_source: str  # where the URL came from: "--base-url", "endpoint file <path>", "provider default"
    dialect: Dialect | None = None  # None: guessed from the model name by vlm_api.backends
    weights: tuple[str, ...] = ()  # weights folders named by the endpoint file (eval.identity fingerprints them)

    @property
    def from_endpoint_file(self) -> bool:
        return self.endpoint_source.startswith("endpoint file ")

    @property
    def backend(self) -> str:
        return BACKEND_NAMES[self.provider]

    def endpoint(self) -> Endpoint:
        return Endpoint.create(self.provider, self.model, self.base_url, dialect=self.dialect)

    def public_url(self) -> str | None:
        """The URL requests go to, without credentials (for the run card)."""
        url = self.endpoint().base_url or (OPENAI_DEFAULT_URL if self.provider == "openai" else None)
        return redact_url(url)


def resolve_model(name: str, base_url: str | None = None, endpoint_file: Path | None = None,
                  endpoint_dir: Path | None = None) -> ModelSpec:
    """The ModelSpec of a --model name (see the module docstring); ModelError lists the valid forms."""
    name = (name or "").strip()
    if not name:
        raise ModelError("--model is empty; " + forms_text())
    prefix, sep, rest = name.partition(":")
    if sep and prefix in PROVIDER_PREFIXES:
        if not rest:
            raise ModelError(f"--model {name!r} names no model after '{prefix}:'; " + forms_text())
        source = "--base-url" if base_url else "provider default"
        if endpoint_file is not None:
            raise ModelError(f"--endpoint-file is for served models (vllm:<name> or a bare name), not {name!r}")
        return ModelSpec(name, PROVIDER_PREFIXES[prefix], rest, base_url, source)
    if sep and prefix not in COMPATIBLE_PREFIXES:
        raise ModelError(f"unknown model form {name!r} (prefix {prefix!r}); " + forms_text()
                         + "\n(a served name containing ':' is written vllm:<name>)")
    served = rest if sep else name
    if not served:
        raise ModelError(f"--model {name!r} names no model after 'vllm:'; " + forms_text())
    if base_url:
        return ModelSpec(name, "vllm", served, base_url, "--base-url")
    folder = endpoint_dir or default_endpoint_dir()
    path = Path(endpoint_file) if endpoint_file is not None else folder / f"{served}.json"
    if not path.is_file():
        how = (f"--endpoint-file {path} does not exist" if endpoint_file is not None
               else f"no --base-url and no endpoint file {path}")
        raise ModelError(f"cannot reach model {name!r}: {how}. Start the server (sbatch slurm/serve.sh ... "
                         "--model-name " + served + ", which writes that file) or pass --base-url "
                         "http://host:port/v1; " + forms_text())
    info = read_endpoint_file(path)
    if info.model is not None and info.model != served:
        raise ModelError(f"endpoint file {path} serves model {info.model!r}, not {served!r}: "
                         f"use --model {info.model} or another --endpoint-file")
    return ModelSpec(name, "vllm", served, info.base_url, f"endpoint file {path}", weights=info.weights)

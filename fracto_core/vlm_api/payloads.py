"""Chat-completions request bodies: images at the training pixel budget, text parts, JSON-schema output.

Images follow the training rule (DESIGN §3, one image preprocessing for training, serving and the API
baselines): ``fracto_core.image_budget.llamafactory_resize`` decides the size (LlamaFactory's ``image_max_pixels`` /
``image_min_pixels``), Pillow's default resize does the scaling as LlamaFactory does, and the result is
sent as a base64 data URL. An image already within the budget is sent as its own PNG/JPEG bytes;
anything resized or in another format is re-encoded as JPEG quality 95 (RGB or L).

Encoding is deferred to the moment a request is sent: a request carries the image's path, its size and
the SHA-256 of its source bytes, so building 13,000 requests and answering them from the cache decodes
no image at all. The fingerprint (the cache key) is a SHA-256 over everything that changes the answer:
provider, model, prompt version, image source digests + pixel budget + encoder version, every text part,
the generation parameters, the response format and, when the caller knows it, the model identity (the
eval harness's digest of what the server serves and of its weights: new weights under the same name get
new keys). It never covers the key or the base URL.

Usage:
    img = ImageInput.from_path(path, max_pixels=589_824)
    req = build_request("item-1", endpoint, parts=[img, "caption ..."], params=GenerationParams(),
                        prompt_version="fracto-label-v1", system="You are ...", schema=(name, schema))
    req.body()   # the JSON body the SDK sends (images encoded now)
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from fracto_core.image_budget import image_tokens, llamafactory_resize
from fracto_core.vlm_api.backends import Endpoint, GenerationParams

ENCODER_VERSION = "resize-lf-jpeg95-v1"  # bump when the encoding below changes (it is in every cache key)
JPEG_QUALITY = 95
KEPT_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
# Keys Gemini's OpenAI-compatible endpoint accepts in a response schema (a subset of OpenAPI 3 schema).
GEMINI_SCHEMA_KEYS = {"type", "properties", "required", "items", "enum", "description", "minimum", "maximum",
                      "minItems", "maxItems", "nullable", "format", "propertyOrdering"}


@dataclass(frozen=True)
class ImageInput:
    """An image to send: where it is, its size, its source digest and the pixel budget to apply."""

    path: Path | None
    width: int
    height: int
    sha256: str  # of the source bytes
    max_pixels: int
    min_pixels: int = 1024
    data: bytes | None = field(default=None, repr=False)  # in-memory source (when there is no path)

    @classmethod
    def from_path(cls, path: Path, max_pixels: int, min_pixels: int = 1024) -> "ImageInput":
        """Reads the file once for its digest and its header for the size (no decode). Raises OSError."""
        raw = Path(path).read_bytes()
        width, height = _header_size(raw, str(path))
        return cls(Path(path), width, height, hashlib.sha256(raw).hexdigest(), max_pixels, min_pixels)

    @classmethod
    def from_bytes(cls, raw: bytes, max_pixels: int, min_pixels: int = 1024) -> "ImageInput":
        width, height = _header_size(raw, "<bytes>")
        return cls(None, width, height, hashlib.sha256(raw).hexdigest(), max_pixels, min_pixels, raw)

    @property
    def sent_size(self) -> tuple[int, int]:
        """(width, height) after the budget resize."""
        return llamafactory_resize(self.width, self.height, self.max_pixels, self.min_pixels)

    def estimated_tokens(self) -> int:
        """Image tokens under the 32x32-patch rule of Qwen3-VL at this budget (an estimate for APIs)."""
        return image_tokens(self.width, self.height, self.max_pixels, self.min_pixels)

    def identity(self) -> dict[str, object]:
        """What the fingerprint covers for this image."""
        return {"sha256": self.sha256, "max_pixels": self.max_pixels, "min_pixels": self.min_pixels,
                "encoder": ENCODER_VERSION}

    def source_bytes(self) -> bytes:
        return self.data if self.data is not None else Path(self.path).read_bytes()

    def encode(self) -> tuple[str, bytes]:
        """(mime type, bytes) to send: the source bytes if no resize is needed, else JPEG q95."""
        raw = self.source_bytes()
        with Image.open(io.BytesIO(raw)) as im:
            target = self.sent_size
            if target == im.size and im.format in KEPT_FORMATS:
                return KEPT_FORMATS[im.format], raw
            im = im if im.mode in ("RGB", "L") else im.convert("RGB")
            if target != im.size:
                im = im.resize(target)  # Pillow's default filter, as LlamaFactory's _preprocess_image
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=JPEG_QUALITY)
            return "image/jpeg", buf.getvalue()

    def data_url(self) -> str:
        """The data URL sent; the last URL_CACHE_IMAGES images' URLs are kept (by source digest and budget): the
        requests of a multi-call sample (circular rotations, context levels, hybrid) send one image, encoded once.
        Bodies are built in threads at the same time: a thread that finds the image being encoded waits for it."""
        key = (self.sha256, self.max_pixels, self.min_pixels)
        with _URLS_LOCK:
            url = _URLS.get(key)
            if url is not None:
                _URLS.move_to_end(key)
                return url
            pending = _PENDING.get(key)
            if pending is not None:
                encoding = False
            else:
                pending = _PENDING[key] = Future()
                encoding = True
        if not encoding:
            return pending.result()  # the other thread's URL (or its error)
        try:
            mime, data = self.encode()
            url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        except BaseException as exc:
            with _URLS_LOCK:
                del _PENDING[key]
            pending.set_exception(exc)
            raise
        with _URLS_LOCK:
            _URLS[key] = url
            while len(_URLS) > URL_CACHE_IMAGES:
                _URLS.popitem(last=False)
            del _PENDING[key]
        pending.set_result(url)
        return url


URL_CACHE_IMAGES = 8  # a multi-call sample's requests are consecutive; 8 URLs at the training budget: ~3 MB
_URLS: OrderedDict[tuple[str, int, int], str] = OrderedDict()
# images being encoded now (one entry per encoding thread, removed when it is done): the others wait for it
_PENDING: dict[tuple[str, int, int], Future] = {}
_URLS_LOCK = threading.Lock()  # bodies are built in worker threads


def _header_size(raw: bytes, name: str) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(raw)) as im:
            return im.size
    except Exception as exc:  # Pillow raises several types for undecodable data
        raise OSError(f"{name}: not a readable image ({exc})") from exc


Part = ImageInput | str


def response_format(endpoint: Endpoint, name: str, schema: dict) -> dict | None:
    """The ``response_format`` for this provider, or None when it takes no JSON schema (then: instruct + parse)."""
    p = endpoint.provider
    if not p.json_schema:
        return None
    if p.schema_dialect == "strict":
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
    if p.schema_dialect == "gemini":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": gemini_schema(schema)}}
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def gemini_schema(schema: dict) -> dict:
    """The schema reduced to the keys Gemini's OpenAI-compatible endpoint accepts (recursively)."""
    out: dict = {}
    for key, value in schema.items():
        if key not in GEMINI_SCHEMA_KEYS:
            continue
        if key == "properties":
            out[key] = {k: gemini_schema(v) for k, v in value.items()}
        elif key == "items":
            out[key] = gemini_schema(value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions call, ready to fingerprint, estimate and send."""

    request_id: str  # the caller's id (e.g. an item id); not part of the fingerprint
    model: str
    system: str | None
    parts: tuple[Part, ...]  # user-turn content, in order
    generation: tuple[tuple[str, object], ...]  # dialect-specific kwargs, sorted
    response_format: dict | None
    prompt_version: str
    fingerprint: str
    cacheable: bool  # deterministic call (see Endpoint.is_deterministic)

    def body(self) -> dict:
        """The request body (as sent by the SDK). Encodes the images now."""
        content: list[dict] = []
        for part in self.parts:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
            else:
                content.append({"type": "image_url", "image_url": {"url": part.data_url()}})
        messages: list[dict] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": content})
        body: dict = {"model": self.model, "messages": messages, **dict(self.generation)}
        if self.response_format is not None:
            body["response_format"] = self.response_format
        return body

    def estimated_input_tokens(self) -> int:
        """Image tokens from the pixel budget + text at ~4 characters a token (+ a little per message)."""
        images = sum(p.estimated_tokens() for p in self.parts if isinstance(p, ImageInput))
        chars = len(self.system or "") + sum(len(p) for p in self.parts if isinstance(p, str))
        schema_chars = len(json.dumps(self.response_format)) if self.response_format else 0
        return images + (chars + schema_chars) // 4 + 8

    @property
    def max_output_tokens(self) -> int:
        gen = dict(self.generation)
        return int(gen.get("max_completion_tokens", gen.get("max_tokens", 0)) or 0)


def fingerprint(endpoint: Endpoint, system: str | None, parts: tuple[Part, ...], generation: dict,
                response_format_: dict | None, prompt_version: str, identity: str | None = None) -> str:
    """SHA-256 hex over everything that changes the answer (never the key or the base URL)."""
    payload = {
        "provider": endpoint.provider.name,
        "model": endpoint.model,
        "prompt_version": prompt_version,
        "system": system,
        "parts": [p if isinstance(p, str) else {"image": p.identity()} for p in parts],
        "generation": generation,
        "response_format": response_format_,
    }
    if identity is not None:  # absent otherwise: the labellers' existing cache keys stay valid
        payload["identity"] = identity
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def build_request(request_id: str, endpoint: Endpoint, parts: list[Part], params: GenerationParams,
                  prompt_version: str, system: str | None = None, schema: tuple[str, dict] | None = None,
                  identity: str | None = None) -> ChatRequest:
    """A ChatRequest for ``endpoint``; ``schema`` = (name, JSON schema) asks for structured output;
    ``identity`` (the served model's identity key) becomes part of the fingerprint."""
    generation = endpoint.generation_kwargs(params)
    fmt = response_format(endpoint, *schema) if schema is not None else None
    frozen_parts = tuple(parts)
    return ChatRequest(
        request_id=request_id, model=endpoint.model, system=system, parts=frozen_parts,
        generation=tuple(sorted(generation.items())), response_format=fmt, prompt_version=prompt_version,
        fingerprint=fingerprint(endpoint, system, frozen_parts, generation, fmt, prompt_version, identity),
        cacheable=endpoint.is_deterministic(params),
    )

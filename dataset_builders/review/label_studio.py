"""Label Studio side of the expert review: the labelling config, the tasks, and a small API client.

Writes (``export_project``) into OUT/review/label_studio/: ``config.xml`` (generated from the vocabulary),
``tasks.json`` (one task per sampled image, current labels as a prediction) and ``sample.json`` (how the
sample was drawn: strategy, seed, per-feature counts). With a URL and token it also creates the project
through the API and imports the tasks. Facts of Label Studio 1.23.2 used here (../shared/DESIGN.md §6,
checked against the installed 1.23.2 and label_studio_sdk/converter): images are served by local-files
storage as ``/data/local-files/?d=<path relative to LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT>``; the API takes
``Authorization: Token <token>``; a prediction is {model_version, score, result: [{from_name, to_name,
type: "choices", value: {choices}}]}.

Usage:
    python -m dataset_builders.review export --to label-studio --out runs/ds1 --n 100 --seed 0
    python -m dataset_builders.review export --to label-studio --out runs/ds1 --url http://127.0.0.1:8080
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from xml.sax.saxutils import quoteattr

from dataset_builders.review.collect import ReviewInputError, ReviewItem
from dataset_builders.review.sample import Sample, stratified_sample
from fracto_core.files import write_json_atomic, write_text_atomic
from fracto_core.vocabulary import FEATURES, VOCABULARY_VERSION

FEATURES_TAG = "features"  # the Choices control: from_name of predictions and annotations
IMAGE_TAG = "image"  # the Image object: to_name
NOTE_TAG = "note"  # the TextArea control
NOT_FRACTOGRAPH = "not a fractograph"
NOT_FRACTOGRAPH_HINT = ("Not a fracture surface (a plot, schematic, microstructure, optical micrograph of a polished "
                        "section, ...): choose this alone.")
PREDICTION_SCORE = 1.0  # our labels carry no confidence; Label Studio needs a number to rank predictions
LOCAL_FILES_PREFIX = "/data/local-files/?d="


class LabelStudioError(RuntimeError):
    """The Label Studio API refused a request (the message has the method, path, status and body)."""


def label_config() -> str:
    """The labelling interface: the image, its caption and excerpt, every feature with its definition as hint."""
    choices = [f'    <Choice value={quoteattr(f.name)} hint={quoteattr(f.definition)}/>' for f in FEATURES]
    choices.append(f'    <Choice value={quoteattr(NOT_FRACTOGRAPH)} hint={quoteattr(NOT_FRACTOGRAPH_HINT)}/>')
    return "\n".join([
        "<View>",
        f'  <Image name="{IMAGE_TAG}" value="$image" zoom="true" zoomControl="true"/>',
        '  <Header value="Caption"/>',
        '  <Text name="caption" value="$caption"/>',
        '  <Header value="Text citing the figure"/>',
        '  <Text name="excerpt" value="$excerpt"/>',
        '  <Header value="Features visible in the image (hover a choice for its definition)"/>',
        f'  <Choices name="{FEATURES_TAG}" toName="{IMAGE_TAG}" choice="multiple" showInline="false">',
        *choices,
        "  </Choices>",
        f'  <TextArea name="{NOTE_TAG}" toName="{IMAGE_TAG}" placeholder="note (optional)" maxSubmissions="1" '
        'editable="true"/>',
        "</View>",
    ]) + "\n"


def local_files_url(image: Path, document_root: Path) -> str:
    """The URL Label Studio's local-files storage serves ``image`` under (it must lie inside the root)."""
    image, root = Path(image).resolve(), Path(document_root).resolve()
    if not image.is_relative_to(root):
        raise ReviewInputError(f"{image}: outside the Label Studio document root {root} "
                               "(LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT); pass --document-root to a folder holding it")
    return LOCAL_FILES_PREFIX + urllib.parse.quote(image.relative_to(root).as_posix(), safe="/")


def storage_dir(images: list[Path], document_root: Path) -> Path:
    """The folder a local-files storage must cover: every image's folder, strictly inside the document root."""
    root = Path(document_root).resolve()
    common = Path(os.path.commonpath([str(Path(p).resolve().parent) for p in images]))
    if common == root or root not in common.parents:
        raise ReviewInputError(f"the images lie in {common}; Label Studio needs them in a subfolder of the document "
                               f"root {root}: pass --document-root to a folder above it")
    return common


def make_task(item: ReviewItem, stratum: str, document_root: Path) -> dict:
    """One Label Studio task: the data (image URL, texts, provenance) and the current labels as a prediction."""
    evidence = "\n".join(f"{k}: {v}" for k, v in item.evidence.items())
    return {
        "data": {
            IMAGE_TAG: local_files_url(item.image, document_root),
            "caption": item.caption or "(no caption)",
            "excerpt": "\n\n".join(item.excerpts) or "(no text cites this figure)",
            "item_id": item.item_id,
            "vocabulary_version": VOCABULARY_VERSION,
            "label_origin": item.origin,
            "label_features": list(item.features),
            "label_evidence": evidence,
            "stratum": stratum,
            "split": item.split,
            "paper": item.paper,
        },
        "meta": {"item_id": item.item_id, "label_origin": item.origin, "evidence": dict(item.evidence)},
        "predictions": [{
            "model_version": item.origin or "unlabelled",
            "score": PREDICTION_SCORE,
            "result": [{"from_name": FEATURES_TAG, "to_name": IMAGE_TAG, "type": "choices",
                        "value": {"choices": list(item.features)}}] if item.features else [],
        }],
    }


def build_tasks(items: list[ReviewItem], n: int, seed: int, document_root: Path,
                rare_weight: int | None = None) -> tuple[list[dict], Sample]:
    """Tasks for a stratified sample of the labelled ``items`` (in drawing order) and the sample record."""
    by_id = {i.item_id: i for i in items if i.kept and i.features}
    kwargs = {} if rare_weight is None else {"rare_weight": rare_weight}
    sample = stratified_sample({i: it.features for i, it in by_id.items()}, n, seed, **kwargs)
    return [make_task(by_id[i], sample.strata[i], document_root) for i in sample.chosen], sample


def write_files(dest: Path, tasks: list[dict], sample: Sample, document_root: Path) -> dict[str, Path]:
    """config.xml, tasks.json and sample.json in ``dest``; returns their paths."""
    files = {"config": dest / "config.xml", "tasks": dest / "tasks.json", "sample": dest / "sample.json"}
    write_text_atomic(files["config"], label_config())
    write_json_atomic(files["tasks"], tasks)
    write_json_atomic(files["sample"], {**sample.summary(), "vocabulary_version": VOCABULARY_VERSION,
                                        "document_root": str(Path(document_root).resolve())})
    return files


# --- API client ------------------------------------------------------------------------------------

class LabelStudioClient:
    """The few Label Studio REST calls the review needs (stdlib HTTP; the token never appears in errors)."""

    def __init__(self, url: str, token: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body=None, query: dict | None = None):
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Token {self._token}", "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise LabelStudioError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise LabelStudioError(f"{method} {path}: cannot reach {self.url} ({exc.reason})") from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:  # a 200 page that is not the API's JSON (another service at --url, a login page)
            text = " ".join(raw[:200].decode("utf-8", "replace").split())
            raise LabelStudioError(f"{method} {path}: {self.url} did not answer with JSON ({text!r}); is --url the "
                                   "Label Studio server?") from None

    def create_project(self, title: str, config: str, description: str = "") -> int:
        return int(self.request("POST", "/api/projects", {"title": title, "label_config": config,
                                                          "description": description})["id"])

    def add_local_storage(self, project: int, path: Path, title: str = "build images") -> int:
        body = {"project": project, "path": str(Path(path).resolve()), "use_blob_urls": False, "title": title}
        return int(self.request("POST", "/api/storages/localfiles", body)["id"])

    def import_tasks(self, project: int, tasks: list[dict]) -> dict:
        return self.request("POST", f"/api/projects/{project}/import", tasks)

    def export_json_min(self, project: int) -> list[dict]:
        """The JSON-MIN export, its annotator user ids (JSON-MIN gives ids) replaced by the users' e-mails."""
        records = self.request("GET", f"/api/projects/{project}/export", query={"exportType": "JSON_MIN"})
        if any(isinstance(r, dict) and isinstance(r.get("annotator"), int) for r in records or []):
            users = self.request("GET", "/api/users")
            emails = {u["id"]: u.get("email") or u.get("username") for u in users if isinstance(u, dict)}
            for r in records:
                if isinstance(r.get("annotator"), int):
                    r["annotator"] = emails.get(r["annotator"], r["annotator"])
        return records


def create_project(client: LabelStudioClient, title: str, tasks: list[dict], storage_path: Path) -> dict:
    """Project + local-files storage + task import; returns ids and counts for the summary."""
    project = client.create_project(title, label_config(),
                                    f"FractoVLM expert review; vocabulary {VOCABULARY_VERSION}")
    storage = client.add_local_storage(project, storage_path)
    result = client.import_tasks(project, tasks) or {}
    return {"project": project, "storage": storage, "tasks": result.get("task_count", len(tasks)),
            "predictions": result.get("prediction_count")}

"""The hybrid specialist + reasoner run of the failure_mechanism task (`--model hybrid:<specialist>+<reasoner>`,
eval.mechanism): the specialist names the features it sees, the reasoner turns them into a mechanism.

Both parts are resolved before anything is sent (`setup`): each served part records its model identity
(eval.calls.Caller), the offline parts (`truth`, `rules`) a fixed one, and the run's identity combines them
(eval.identity.combined_identity), so re-serving either model with other weights is another run. Each
part's requests carry its own identity in the cache key. The specialist is asked first for every image
to do (its replies are committed to the response cache as they arrive); then each sample is finished --
by the rules at once, or when the reasoner's reply arrives -- and handed to `write` (eval.multicall
appends it to samples.jsonl and flushes). Writes nothing itself.

Usage:
    hybrid = setup(config, task, (max_pixels, min_pixels), warnings)
    run_hybrid(hybrid, config, task, items, refs, images, cache_path, level, log.write)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from eval.benchmark import BenchmarkItem
from eval.calls import Caller, answer_of, call_log, chat_request, gather, make_caller, make_record, send
from eval.identity import combined_identity, offline_identity
from eval.mechanism import (ORACLE_SPECIALIST, RULES_REASONER, HybridName, HybridNameError, parse_hybrid,
                            reasoner_prompt, reasons_of, rules_reply)
from eval.plan import RunError
from eval.records import CallLog, ModelIdentity, RequestParams, SampleRecord
from eval.tasks import Task, TaskAnswer, get_task


@dataclass
class Hybrid:
    names: HybridName
    specialist: Caller | None  # None: the oracle (benchmark labels)
    reasoner: Caller | None  # None: the rules
    recorded: RequestParams  # recorded with every sample (the reasoner's parameters + the specialist's name)
    identity: ModelIdentity  # combined over both parts


def setup(config, task: Task, pixels: tuple[int, int], warnings: list[str]) -> Hybrid:
    """Resolve both parts and their identities (RunError when a name or a server is wrong)."""
    if task.name != "failure_mechanism":
        raise RunError(f"hybrid models answer the failure_mechanism task, not {task.name}")
    try:
        names = parse_hybrid(config.model)
    except HybridNameError as exc:
        raise RunError(str(exc)) from None
    specialist = None
    if names.specialist != ORACLE_SPECIALIST:
        specialist = make_caller(names.specialist, config, get_task("fracture_morphology"), *pixels, warnings)
    if names.reasoner == RULES_REASONER:
        reasoner = None
        recorded = RequestParams(model=RULES_REASONER, image_max_pixels=pixels[0],
                                 extra={"specialist": names.specialist, "reasoner": RULES_REASONER})
    else:
        reasoner = make_caller(names.reasoner, config, task, *pixels, warnings)
        recorded = reasoner.recorded.model_copy(update={"extra": {**reasoner.recorded.extra,
                                                                  "specialist": names.specialist}})
    identity = combined_identity({
        "specialist": specialist.identity if specialist else offline_identity({"specialist": ORACLE_SPECIALIST}),
        "reasoner": reasoner.identity if reasoner else offline_identity({"reasoner": RULES_REASONER})})
    return Hybrid(names, specialist, reasoner, recorded, identity)


def _features(hybrid: Hybrid, config, items: Sequence[BenchmarkItem], images: dict, cache_path: Path
              ) -> dict[str, tuple[TaskAnswer | None, CallLog]]:
    """{item_id: (the specialist's features or None without a reply, its call log)}."""
    features: dict[str, tuple[TaskAnswer | None, CallLog]] = {}
    if hybrid.specialist is None:
        for it in items:
            ans = TaskAnswer(tuple(it.features), "ok", "benchmark labels (oracle specialist)")
            features[it.item_id] = (ans, call_log("specialist", None, None, ans, request_id=f"{it.item_id}/truth",
                                                  raw_reply=json.dumps({"features": list(it.features)})))
        return features
    morph = get_task("fracture_morphology")  # the prompt it was trained on: image + instruction, no context
    reqs = {it.item_id: chat_request(hybrid.specialist, f"{it.item_id}/specialist", [images[it.item_id],
                                                                                      morph.prompt()], morph)
            for it in items if it.item_id in images}
    results = send(hybrid.specialist, list(reqs.values()), config, cache_path)
    for item_id, req in reqs.items():
        r = results.get(req.request_id)
        ans = answer_of(r, morph.parse)  # a cut reply names no feature (as eval.run scores it)
        features[item_id] = (ans, call_log("specialist", req, r, ans))
    return features


def run_hybrid(hybrid: Hybrid, config, task: Task, items: Sequence[BenchmarkItem], refs: dict[str, list[str]],
               images: dict, cache_path: Path, level: str, write: Callable[[SampleRecord], None]) -> None:
    """Ask both parts for `items` (those with a readable image); each finished sample goes to `write`."""
    by_id = {it.item_id: it for it in items}
    features = _features(hybrid, config, items, images, cache_path)

    def finish(item_id: str, reasoner_log: CallLog, text: str | None, ans: TaskAnswer | None) -> None:
        write(make_record(by_id[item_id], task, config.model, refs[item_id], hybrid.recorded, level, ans, text,
                          [features[item_id][1], reasoner_log], **({"reasons": reasons_of(text)} if ans else {})))

    reqs = {}
    for item_id, (ans_f, _) in features.items():
        if hybrid.reasoner is None or ans_f is None:  # the rules, or no features to reason from
            text = None if ans_f is None else rules_reply(ans_f.labels)
            ans = None if text is None else task.parse(text)
            log = call_log("reasoner", None, None, ans, request_id=f"{item_id}/rules", raw_reply=text)
            finish(item_id, log, text, ans)
        else:
            reqs[item_id] = chat_request(hybrid.reasoner, f"{item_id}/reasoner",
                                         [reasoner_prompt(ans_f.labels, by_id[item_id], level)], task)
    if reqs:
        def on_reasoner(item_id, results):
            res = results[f"{item_id}/reasoner"]
            ans = answer_of(res, task.parse)
            text = res.text if ans is not None else None
            finish(item_id, call_log("reasoner", reqs[item_id], res, ans), text, ans)

        send(hybrid.reasoner, list(reqs.values()), config, cache_path,
             on_result=gather({i: [f"{i}/reasoner"] for i in reqs}, on_reasoner))

"""The prompt and answer format are shared by training data and evaluation: changes must be deliberate."""

import hashlib

from fracto_core.answer_format import PROMPT_VERSION, format_answer, instruction_prompt, parse_answer
from fracto_core.vocabulary import canonical_names

# Snapshot: if you change the prompt on purpose, bump PROMPT_VERSION and update both values here.
PROMPT_SNAPSHOT = ("fracto-prompt-v1", "14e22bc720a69fe14f5bcdad953aec80cd8db9356ea7363e48da358f518a9513")


def test_prompt_snapshot():
    digest = hashlib.sha256(instruction_prompt().encode()).hexdigest()
    assert (PROMPT_VERSION, digest) == PROMPT_SNAPSHOT, (
        "the instruction prompt changed: bump PROMPT_VERSION and update PROMPT_SNAPSHOT")


def test_prompt_lists_every_canonical_label():
    prompt = instruction_prompt()
    for name in canonical_names():
        assert name in prompt


def test_round_trip_is_ok_and_ordered():
    text = format_answer({"river patterns", "cleavage facets"})
    assert text == '{"features": ["cleavage facets", "river patterns"]}'
    parsed = parse_answer(text)
    assert parsed.status == "ok"
    assert parsed.features == ("cleavage facets", "river patterns")


def test_empty_answer_is_valid():
    assert parse_answer(format_answer([])).status == "ok"
    assert parse_answer('{"features": []}').features == ()


def test_synonyms_are_mapped_and_fenced_json_accepted():
    parsed = parse_answer('Sure.\n```json\n{"features": ["Dimples", "striations"]}\n```')
    assert parsed.status == "mapped"
    assert parsed.features == ("equiaxed dimples", "fatigue striations")


def test_off_format_answers_are_unparseable_never_guessed():
    assert parse_answer("The image shows dimples.").status == "unparseable"
    assert parse_answer("The image shows dimples.").features == ()  # never read out of prose
    assert parse_answer('{"features": "dimples"}').status == "unparseable"
    assert parse_answer('{"features": ["dimples"').status == "unparseable"  # cut off
    assert parse_answer("").status == "unparseable" and parse_answer("").detail == "empty reply"
    assert parse_answer("   ").features == ()


def test_names_outside_the_vocabulary_are_kept_apart_not_fatal():
    bad = parse_answer('{"features": ["dimples", "martensite laths", "Martensite laths", 7, "river patterns"]}')
    assert bad.status == "off_vocabulary"
    assert bad.features == ("equiaxed dimples", "river patterns")  # the known names still count
    assert bad.unknown == ("martensite laths", "7")  # once each (case-insensitive), non-strings as JSON
    assert "outside the vocabulary" in bad.detail
    only = parse_answer('{"features": ["unicorn marks"]}')
    assert (only.status, only.features, only.unknown) == ("off_vocabulary", (), ("unicorn marks",))

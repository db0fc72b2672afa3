"""The user documentation against the code (issue 27): README.md, docs/*.md and llamafactory_configs/README.md.

- the builder's options table in docs/builder_options.md is what dataset_builders.config.options_markdown renders
  from the builder's parser (so a flag added, renamed or removed shows here);
- every command written in them (`python -m <project module> [subcommand] --flags`, `python benchmarks/x.py`,
  `bash|sbatch slurm/x.sh --flags [-- eval.run flags]`) names an entry point that exists, and each of its
  --flags is in that entry point's own `--help` (run for real, once per entry point);
- every docs/*.md page is linked from README.md, and every relative link resolves.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
OPTIONS = re.compile(r"<!-- options:begin -->\n(.*?)<!-- options:end -->", re.S)


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "llamafactory_configs" / "README.md"]


# --- commands in the text ---------------------------------------------------------------------------

_COMMAND = re.compile(r"python3? -m (?P<module>[\w.]+)(?P<rest>[^`\n]*)|python3? (?P<script>benchmarks/[\w/]+\.py)"
                      r"(?P<srest>[^`\n]*)|(?:bash|sbatch)(?: --?[\w-]+(?:=\S+)?)* (?P<slurm>slurm/[\w/]+\.sh)"
                      r"(?P<slrest>[^`\n]*)")
_END = re.compile(r"\s(?:&&|\|\||;|#|\|\s)|`")  # where a command written in prose or a shell line stops
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def _snippets(text: str) -> list[str]:
    """Code blocks (continuation lines joined) and inline code spans: where commands are written."""
    out: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        out += block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    out += re.findall(r"`([^`\n]+)`", prose)
    return out


def commands(text: str) -> list[tuple[str, str, list[str]]]:
    """(kind, target, words after it) of every project command in a markdown text; kind: module|script|slurm."""
    found = []
    for snippet in _snippets(text):
        for m in _COMMAND.finditer(snippet):
            kind = "module" if m["module"] else "script" if m["script"] else "slurm"
            target = m["module"] or m["script"] or m["slurm"]
            rest = m["rest"] if m["module"] else m["srest"] if m["script"] else m["slrest"]
            rest = _END.split(" " + (rest or ""))[0]
            if kind == "module" and target.split(".")[0] not in PACKAGES:
                continue  # python -m venv, pip, ...: not ours
            found.append((kind, target, rest.split()))
    return found


@lru_cache(maxsize=None)
def help_text(kind: str, target: str, sub: tuple[str, ...] = ()) -> tuple[int, str]:
    """(exit code, output) of the entry point's own --help (of its subcommand path ``sub``, if given)."""
    if kind == "slurm":
        cmd = ["bash", target]
    elif kind == "script":
        cmd = [sys.executable, target]
    else:
        cmd = [sys.executable, "-m", target]
    cmd += [*sub, "--help"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    return proc.returncode, proc.stdout + proc.stderr


def _subcommands(word: str) -> list[str]:
    return [w for w in re.split(r"\\?\|", word) if w] if re.fullmatch(r"[a-z][a-z-]*(\\?\|[a-z][a-z-]*)*", word) else []


def command_problems(kind: str, target: str, words: list[str]) -> list[str]:
    """What is wrong with one documented command: a missing entry point, subcommand or flag."""
    if kind in ("script", "slurm") and not (REPO / target).is_file():
        return [f"{target}: no such file"]
    own, passed_on = words, []
    if "--" in words:  # slurm/pipeline.sh and eval.sh pass what follows "--" to eval.run
        own, passed_on = words[:words.index("--")], words[words.index("--") + 1:]
    subs, problems = [()], []
    while kind == "module" and own and (names := _subcommands(own[0])):  # "benchmark export|agree|finish"
        deeper = []
        for path in subs:
            code, out = help_text(kind, target, path)
            choices = re.search(r"\{([\w,-]+)\}", out) if code == 0 else None  # argparse lists subcommands so
            if not choices:
                break
            valid = choices[1].split(",")
            problems += [f"{' '.join((target, *path))}: no subcommand {n}" for n in names if n not in valid]
            deeper += [(*path, n) for n in names if n in valid]
        else:
            subs, own = deeper, own[1:]
            continue
        break
    for sub in subs:
        code, out = help_text(kind, target, sub)
        label = " ".join((target, *sub))
        if code != 0:
            problems.append(f"{label} --help exits {code}: {out.strip()[-300:]}")
            continue
        known = set(_FLAG.findall(out))
        problems += [f"{label}: no flag {flag}" for w in own for flag in _FLAG.findall(w.split("=")[0])
                     if flag not in known]
    if passed_on:
        problems += command_problems("module", "eval.run", passed_on)
    return problems


def test_checker_catches_a_command_or_flag_that_no_longer_exists():
    text = ("Run `python -m dataset_builders.build --papers pdfs/ --no-such-flag` or\n```bash\n"
            "python -m eval.gone --x\nbash slurm/pipeline.sh --recipe R -- --benchmark B --nope\n"
            "python -m dataset_builders.review export\\|vanished --out O\n```\n")
    found = commands(text)
    assert [(k, t) for k, t, _ in found] == [("module", "eval.gone"), ("slurm", "slurm/pipeline.sh"),
                                            ("module", "dataset_builders.review"),
                                            ("module", "dataset_builders.build")]
    problems = [p for c in found for p in command_problems(*c)]
    assert any(p.startswith("eval.gone --help exits 1") for p in problems), problems
    assert "eval.run: no flag --nope" in problems and "dataset_builders.build: no flag --no-such-flag" in problems
    assert "dataset_builders.review: no subcommand vanished" in problems
    assert not any("--benchmark" in p or "--recipe" in p or "--papers" in p for p in problems), problems
    nested = command_problems("module", "dataset_builders.review",
                              ["benchmark", "export|agree|gone", "--out", "O", "--nope"])  # a subcommand's own ones
    assert "dataset_builders.review benchmark: no subcommand gone" in nested
    assert {"dataset_builders.review benchmark export: no flag --nope",
            "dataset_builders.review benchmark agree: no flag --nope"} <= set(nested)
    assert not any("--out" in p for p in nested), nested


def test_every_documented_command_and_flag_exists():
    found = sorted({(k, t, tuple(w)) for f in doc_files() for k, t, w in commands(f.read_text(encoding="utf-8"))})
    targets = {(k, t) for k, t, _ in found}
    assert {("module", "dataset_builders.build"), ("module", "eval.run"), ("slurm", "slurm/train.sh"),
            ("script", "benchmarks/bench_build.py")} <= targets and len(found) > 40
    with ThreadPoolExecutor(max_workers=2) as pool:  # warm the --help cache: each is a real process
        list(pool.map(lambda kt: help_text(*kt), sorted(targets)))
    problems = [p for k, t, w in found for p in command_problems(k, t, list(w))]
    assert problems == []


# --- the options table and the links ----------------------------------------------------------------

def test_builder_options_table_is_generated_from_the_code():
    from dataset_builders.build import build_parser
    from dataset_builders.config import BuildConfig, options_markdown

    page = (REPO / "docs" / "builder_options.md").read_text(encoding="utf-8")
    table = OPTIONS.search(page)
    assert table, "docs/builder_options.md lost its <!-- options:begin/end --> markers"
    assert table[1] == options_markdown(build_parser()), "regenerate the table: see docs/builder_options.md"
    for name in BuildConfig.model_fields:  # every setting has its row
        assert f"| `--{name.replace('_', '-')}` |" in table[1]


def test_readme_links_every_docs_page_and_links_resolve():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", readme))
    pages = {p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")}
    assert pages <= linked, f"not linked from README.md: {sorted(pages - linked)}"
    for f in doc_files():
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", f.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", link):
                continue
            target = (f.parent / link).resolve()
            assert target.exists(), f"{f.relative_to(REPO)} links {link}, which does not exist"


@pytest.mark.parametrize("claim", ["self-consistency", "accuracy on real papers"])
def test_readme_says_which_numbers_are_accuracy(claim):
    assert claim in (REPO / "README.md").read_text(encoding="utf-8").lower()

"""The README and the pages in docs/ stay true to the repository they describe.

Docs rot quietly: a renamed heading breaks every link to it, a new params.yaml key goes
undocumented, a moved module leaves the README's Layout naming a file that is gone. Each
test reads files only (no subprocess), so the quick loop runs them too, and each failure
names the page and the link, key or module to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PARAMS_PAGE = DOCS / "params.md"
LIBRARY = REPO / "src" / "stockclf"
#: Every page whose links are checked: the README, the reference pages, the benchmarks guide.
PAGES = [README, *sorted(DOCS.glob("*.md")), REPO / "benchmarks" / "README.md"]
#: The top-level folders a clone has; the README's Layout gives each a line.
FOLDERS = ("benchmarks/", "configs/", "data/", "docs/", "notebooks/", "src/", "stages/", "tests/")

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks: links and headings there are text."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: the rendered text in lowercase, punctuation
    dropped (word characters, hyphens and spaces stay), each space a hyphen."""
    text = re.sub(r"<[^>]+>", "", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text, not its target
    text = re.sub(r"[^\w\- ]", "", text.replace("`", "").strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> set[str]:
    """Every anchor of a page (read once a run); repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every inline and reference link outside code."""
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        text = INLINE_CODE.sub("", line)
        for match in LINK.finditer(text):
            yield number, match[1]
        reference = REFERENCE.match(text)
        if reference:
            yield number, reference[1]


def broken(page: Path, target: str) -> str | None:
    """Why a link does not resolve, or None when it does (external links are not fetched)."""
    if EXTERNAL.match(target):
        return None
    path_part, _, anchor = target.partition("#")
    destination = (page.parent / path_part).resolve() if path_part else page
    if not destination.exists():
        return f"no file {path_part}"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"no heading with anchor #{anchor} in {path_part or 'this page'}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_link_resolves(page: Path) -> None:
    problems = [
        f"{rel(page)}:{number}: ({target}) {why}"
        for number, target in links(page)
        if (why := broken(page, target)) is not None
    ]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_slug_rules_match_github() -> None:
    assert slug("Example: the default `dvc repro` on the bundled data") == (
        "example-the-default-dvc-repro-on-the-bundled-data"
    )
    assert slug("train_best and the test split") == "train_best-and-the-test-split"
    assert slug("On a GPU: `python -m benchmarks.gpu`") == "on-a-gpu-python--m-benchmarksgpu"
    assert slug("Data in memory, no loader workers") == "data-in-memory-no-loader-workers"


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [bad](#nowhere)\n")
    (tmp_path / "other.md").write_text("# Other\n")
    assert broken(page, "#title") is None
    assert broken(page, "other.md#other") is None
    assert broken(page, "https://example.org/nothing") is None  # external: not fetched
    assert broken(page, "missing.md") == "no file missing.md"
    assert broken(page, "#nowhere") == "no heading with anchor #nowhere in this page"
    assert broken(page, "other.md#title") == "no heading with anchor #title in other.md"
    assert [target for _, target in links(page)] == ["#title", "missing.md", "#nowhere"]


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for _, target in links(README)
        if not EXTERNAL.match(target) and not target.startswith("#")
    }
    unlinked = [rel(p) for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"README.md links no page {unlinked}"


# ------------------------------------------------------------------------------- params


def params_keys(params: dict[str, Any]) -> dict[str, Any]:
    """params.yaml as dotted keys, two levels deep: ``seed``, ``train.strategy``. Values
    below a section key (``tune.parameter_ranges``' entries) belong to that key's row."""
    keys: dict[str, Any] = {}
    for section, value in params.items():
        if isinstance(value, dict):
            for key, inner in value.items():
                keys[f"{section}.{key}"] = inner
        else:
            keys[section] = value
    return keys


def table_rows(page: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each table row outside code; ``\\|`` does not split a cell."""
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        if line.lstrip().startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            yield number, [c.strip() for c in cells]


def documented_params() -> dict[str, tuple[int, list[str]]]:
    """Rows of docs/params.md whose first cell is one code span: the key, its line, cells."""
    rows = {}
    for number, cells in table_rows(PARAMS_PAGE):
        match = re.fullmatch(r"`([^`]+)`", cells[0])
        if match:
            rows[match[1]] = (number, cells)
    return rows


@pytest.fixture(scope="module")
def repo_keys() -> dict[str, Any]:
    return params_keys(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")))


def test_every_params_key_has_a_row(repo_keys: dict[str, Any]) -> None:
    missing = sorted(set(repo_keys) - set(documented_params()))
    assert not missing, f"{rel(PARAMS_PAGE)}: no row for params.yaml key(s) {missing}"


def test_every_row_names_a_params_key(repo_keys: dict[str, Any]) -> None:
    stale = sorted(set(documented_params()) - set(repo_keys))
    assert not stale, f"{rel(PARAMS_PAGE)}: rows for keys params.yaml does not have: {stale}"


def test_documented_defaults_are_the_params_values(repo_keys: dict[str, Any]) -> None:
    """A default shown as one code span is what params.yaml says (read as YAML, so
    ``[a, b]``, ``null`` and ``"2013-01-01"`` compare as values, not spellings)."""
    wrong = []
    for key, (number, cells) in documented_params().items():
        shown = re.fullmatch(r"`([^`]+)`", cells[1]) if len(cells) > 1 else None
        if key in repo_keys and shown and yaml.safe_load(shown[1]) != repo_keys[key]:
            wrong.append(
                f"{rel(PARAMS_PAGE)}:{number}: {key} shows {shown[1]}, "
                f"params.yaml has {repo_keys[key]!r}"
            )
    assert not wrong, "\n".join(wrong)


def test_params_keys_are_dotted_two_levels_deep() -> None:
    keys = params_keys(
        {
            "seed": 1,
            "train": {"strategy": "auto"},
            "tune": {"parameter_ranges": {"lr_head": {"low": 0.1, "high": 1.0}}},
        }
    )
    assert set(keys) == {"seed", "train.strategy", "tune.parameter_ranges"}


# ------------------------------------------------------------------------------- layout


def layout_paths() -> dict[str, int]:
    """Paths the README's Layout section names: the first word of each unindented line of
    its code blocks (indented lines continue the line above), with their line numbers."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "## Layout")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    paths: dict[str, int] = {}
    fenced = False
    for number, line in enumerate(lines[start:end], start=start + 1):
        if FENCE.match(line):
            fenced = not fenced
        elif fenced and line.strip() and not line[0].isspace():
            paths[line.split()[0]] = number
    return paths


def library_entries() -> list[str]:
    """What the Layout must name: each module of the library, and each package as its folder
    (an ``__init__.py`` is described by its package's line)."""
    entries = []
    for module in sorted(LIBRARY.rglob("*.py")):
        if "__pycache__" in module.parts:
            continue
        entry = module.parent if module.name == "__init__.py" else module
        entries.append(rel(entry) + ("/" if entry.is_dir() else ""))
    return entries


def test_layout_names_every_library_module() -> None:
    named = layout_paths()
    missing = [entry for entry in library_entries() if entry not in named]
    assert not missing, "README.md, Layout: no line for " + ", ".join(missing)


def test_layout_names_every_top_level_folder() -> None:
    named = layout_paths()
    missing = [folder for folder in FOLDERS if folder not in named]
    assert not missing, "README.md, Layout: no line for " + ", ".join(missing)


def test_layout_names_only_what_exists() -> None:
    stale = [
        f"README.md:{number}: {path}"
        for path, number in layout_paths().items()
        if not (REPO / path).exists()
    ]
    assert not stale, "README.md, Layout names what does not exist:\n" + "\n".join(stale)

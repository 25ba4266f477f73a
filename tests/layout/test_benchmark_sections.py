"""Every BENCHMARKS.md section that README.md, the code, the scripts or the tests cite exists and holds a
table: a script that writes another's section (quality_bench.py once overwrote "Pruner replay") fails here."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CITATIONS = (
    re.compile(r"BENCHMARKS\.md(?:,\s*|\s+)[\"“]([A-Z][^\"”]{0,60})[\"”]"),  # BENCHMARKS.md, "Pruner replay"
    re.compile(r"[\"`]([^\"`]+)[\"`] (?:table|section) of (?:that markdown file|BENCHMARKS\.md)"),
    re.compile(r"^SECTION = \"#+ ([^\"]+)\"", re.M),  # the section a script writes
)


def sections(text: str) -> dict[str, str]:
    """Heading (## or ###) -> the text up to the next heading."""
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def citations() -> dict[str, set[str]]:
    files = [REPO / "README.md", *REPO.glob("search/**/*.py"), *REPO.glob("scripts/*.py")]
    files += [*REPO.glob("mnist_arch/*.py"), *REPO.glob("tests/*.py")]
    found: dict[str, set[str]] = {}
    for path in files:
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        for pattern in CITATIONS:
            for match in pattern.finditer(text):
                name = " ".join(match.group(1).split())  # a citation may wrap across lines
                found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def test_the_citations_are_found() -> None:
    cited = citations()
    assert {"Pruner replay", "Search quality", "Install and start-up", "Concurrent trials"} <= set(cited)


def test_every_cited_section_exists_with_a_table() -> None:
    present = sections((REPO / "BENCHMARKS.md").read_text())
    for name, where in sorted(citations().items()):
        assert name in present, f"BENCHMARKS.md has no section {name!r}, cited by {sorted(where)}"
        assert "|---" in present[name], f"BENCHMARKS.md's {name!r} holds no table (cited by {sorted(where)})"


def test_the_replay_section_holds_the_replay_table() -> None:
    body = sections((REPO / "BENCHMARKS.md").read_text())["Pruner replay"]
    assert "scripts/replay_pruners.py" in body and "| rungs (default) | 1 |" in body
    assert "quality_bench" not in body

"""What the README and the pages under docs/ state about the tool matches the tool."""

from __future__ import annotations

import re
from pathlib import Path

from sws.initialization import METHODS
from sws.layout import StageLayout
from sws.train_config import FLAG_OF

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def test_mapping_table_matches_the_expansion_guidance() -> None:
    layout = StageLayout.parse("3,3,4,3,3")
    rows = re.findall(r"^\| (\d+) \| `([\d,]+)`", README, flags=re.MULTILINE)
    assert len(rows) >= 6
    for depth, mapping in rows:
        assert ",".join(map(str, layout.mapping(int(depth)))) == mapping, depth


def test_the_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```bash\n{ci}\n```" in README


def test_the_init_choices_shown_are_sws_trains() -> None:
    """``--init {...}`` on the README and the training page lists exactly what ``sws train`` takes."""
    for text in (README, (DOCS / "training.md").read_text()):
        shown = re.findall(r"--init \{([a-z,-]+)\}", " ".join(text.split()))
        assert shown, "no --init {...} list"
        assert all(choices.split(",") == ["auto", *METHODS] for choices in shown), shown
    assert FLAG_OF["init"].rule is not None and all(FLAG_OF["init"].rule.test(m) for m in METHODS)


def test_every_method_is_named_in_the_readme_and_has_a_row_in_the_methods_table() -> None:
    pipeline = (DOCS / "pipeline.md").read_text()
    rows = set(re.findall(r"^\| `([a-z-]+)` \|", pipeline.split("## The methods")[1], flags=re.MULTILINE))
    assert set(METHODS) <= rows, set(METHODS) - rows
    assert all(f"`{method}`" in README for method in METHODS)


def test_the_code_layout_names_every_module() -> None:
    """Each module of ``src/sws`` appears in docs/code-layout.md's table (by path, or after a comma)."""
    table = (DOCS / "code-layout.md").read_text().split("## Which module holds what")[1]
    named = set(re.findall(r"`(?:src/sws/)?([a-z_]+\.py)`", table))
    modules = {path.name for path in (ROOT / "src" / "sws").glob("*.py")} - {"__init__.py"}
    assert modules <= named, sorted(modules - named)

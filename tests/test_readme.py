"""What the README states about the tool matches the tool."""

from __future__ import annotations

import re
from pathlib import Path

from sws.layout import StageLayout

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_mapping_table_matches_the_expansion_guidance() -> None:
    layout = StageLayout.parse("3,3,4,3,3")
    rows = re.findall(r"^\| (\d+) \| `([\d,]+)`", README, flags=re.MULTILINE)
    assert len(rows) >= 6
    for depth, mapping in rows:
        assert ",".join(map(str, layout.mapping(int(depth)))) == mapping, depth


def test_the_test_command_is_what_ci_runs() -> None:
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```bash\n{ci}\n```" in README

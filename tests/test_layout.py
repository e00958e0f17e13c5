"""The stage layout: parsing, validation, and the expansion guidance (default layer mapping)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sws.errors import LayoutError
from sws.layout import StageLayout, parse_mapping

PAPER = StageLayout((3, 3, 4, 3, 3))


@pytest.mark.parametrize("text", ["3,3,4,3,3", " 3, 3,4 ,3,3 ", "L16_33433", "aux_deit_small_patch16_224_L16_33433"])
def test_parses_the_paper_layout_in_every_spelling(text: str) -> None:
    assert StageLayout.parse(text) == PAPER


def test_layout_answers_its_questions() -> None:
    assert PAPER.depth == 16
    assert PAPER.num_stages == 5
    assert PAPER.stage_of(0) == 0 and PAPER.stage_of(7) == 2 and PAPER.stage_of(15) == 4
    assert PAPER.first_layer(2) == 6
    assert list(PAPER.layers_of(2)) == [6, 7, 8, 9]
    assert PAPER.suffix == "L16_33433"
    assert str(PAPER) == "3,3,4,3,3"
    assert StageLayout.parse("L20_10-10") == StageLayout((10, 10))
    assert StageLayout((10, 10)).suffix == "L20_10-10"


def test_paper_mapping_at_depth_12_and_own_layout_at_16() -> None:
    assert PAPER.mapping(12) == (0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4)
    assert PAPER.mapping(16) == PAPER.stage_index
    assert PAPER.stage_counts(16) == (3, 3, 4, 3, 3)


def test_mapping_below_the_number_of_stages_keeps_the_first_stages() -> None:
    assert PAPER.mapping(5) == (0, 1, 2, 3, 4)
    assert PAPER.mapping(3) == (0, 1, 2)
    assert PAPER.mapping(1) == (0,)


def test_deeper_descendants_grow_the_shortest_stages_first() -> None:
    assert PAPER.stage_counts(17) == (4, 3, 4, 3, 3)
    assert PAPER.stage_counts(20) == (4, 4, 4, 4, 4)


@given(
    counts=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=8),
    depth=st.integers(min_value=1, max_value=32),
)
def test_every_depth_gets_a_valid_mapping_in_stage_order(counts: list[int], depth: int) -> None:
    layout = StageLayout(tuple(counts))
    mapping = layout.mapping(depth)
    assert len(mapping) == depth
    assert all(0 <= stage < layout.num_stages for stage in mapping)
    assert list(mapping) == sorted(mapping)
    if depth >= layout.num_stages:
        assert set(mapping) == set(range(layout.num_stages))
    assert layout.validate_mapping(mapping, depth) == mapping
    # the stage counts never differ by more than they did in the Aux-Net, towards balance
    got = layout.stage_counts(depth)
    assert max(got) - min(got) <= max(max(counts) - min(counts), 1)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("3,0,4", "at least 1"),
        ("abc", "cannot read stage layout"),
        ("", "empty"),
        ("3,-1", "at least 1"),
        ("L15_33433", "says 15 layers"),
    ],
)
def test_bad_layouts_name_the_problem(text: str, words: str) -> None:
    with pytest.raises(LayoutError, match=words):
        StageLayout.parse(text)


def test_explicit_mapping_is_validated() -> None:
    assert PAPER.validate_mapping("0,0,1,2,3,4", depth=6) == (0, 0, 1, 2, 3, 4)
    assert parse_mapping("'0,0,0,1,1,1,2,2,3,3,4,4'") == PAPER.mapping(12)
    with pytest.raises(LayoutError, match="has 6 entries but the descendant has 12"):
        PAPER.validate_mapping("0,0,1,2,3,4", depth=12)
    with pytest.raises(LayoutError, match="names learngene layer 5, but layout 3,3,4,3,3 has only 5"):
        PAPER.validate_mapping("0,1,2,3,4,5")
    with pytest.raises(LayoutError, match="cannot read layer mapping"):
        PAPER.validate_mapping("0,x")
    with pytest.raises(LayoutError, match="layers from 1 to 1000"):
        PAPER.mapping(0)

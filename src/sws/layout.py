"""The stage layout: how an Aux-Net's layers group into weight-sharing stages.

A layout such as ``3,3,4,3,3`` says that a 16-layer Aux-Net has five stages, the first three layers
sharing one block, the next three another, and so on. The same value is the *expansion guidance*:
it decides which learngene layer each layer of a descendant network (Des-Net) copies.

Everything else in sws asks a :class:`StageLayout` its questions (``layout.stage_of(7)``,
``layout.mapping(12)``); nothing else parses or validates layouts.

Expansion guidance (the default layer mapping for a Des-Net of depth ``L``)
    Start from the Aux-Net's own per-stage layer counts. To make the descendant shallower, remove
    one layer at a time from the stage that has the most layers, the latest such stage on a tie.
    To make it deeper, add one layer at a time to the stage that has the fewest, the earliest such
    stage on a tie. Both steps move the stages towards equal length, and the mapping lists the
    stages in order, each as many times as its count. ``3,3,4,3,3`` gives
    ``0,0,0,1,1,1,2,2,3,3,4,4`` at depth 12 and itself at depth 16. Below the number of stages the
    same rule empties the last stages first, so a depth-3 descendant of ``3,3,4,3,3`` copies stages
    ``0,1,2``.

Example:
    >>> layout = StageLayout.parse("3,3,4,3,3")
    >>> layout.mapping(12)
    (0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4)
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from sws.errors import LayoutError
from sws.parsing import comma_separated_ints

# The deepest network sws builds or plans: far beyond any ViT trained (the paper's reach 24 layers),
# low enough that a mistyped depth is refused at once instead of running for minutes.
MAX_DEPTH = 1000

# ``L16_33433`` (one digit per stage, as the paper's model names) or ``L20_5-5-5-5``.
_SUFFIX_PATTERN = re.compile(r"L(\d+)_(\d+(?:-\d+)*)$")


@dataclass(frozen=True)
class StageLayout:
    """Layers per stage of an Aux-Net, e.g. ``StageLayout((3, 3, 4, 3, 3))``."""

    layers_per_stage: tuple[int, ...]

    def __post_init__(self) -> None:
        counts = self.layers_per_stage
        if not isinstance(counts, tuple) or not counts:
            raise LayoutError("a stage layout needs at least one stage, for example 3,3,4,3,3")
        for count in counts:
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise LayoutError(
                    f"stage layout {_join(counts)} has a stage with {count!r} layers; "
                    "every stage needs a whole number of layers, at least 1 (for example 3,3,4,3,3)"
                )
        if sum(counts) > MAX_DEPTH:
            raise LayoutError(
                f"stage layout {_join(counts)} has {sum(counts):,} layers; sws builds at most {MAX_DEPTH}"
            )

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def parse(cls, value: StageLayout | str | Iterable[int]) -> StageLayout:
        """Read a layout from ``"3,3,4,3,3"``, ``"L16_33433"``, a model name ending in such a
        suffix, a sequence of ints, or a layout (returned as it is)."""
        if isinstance(value, StageLayout):
            return value
        if isinstance(value, str):
            return cls._parse_text(value)
        try:
            counts = tuple(value)
        except TypeError:
            raise LayoutError(f"cannot read a stage layout from {value!r}; write it as 3,3,4,3,3") from None
        return cls(counts)

    @classmethod
    def _parse_text(cls, text: str) -> StageLayout:
        text = text.strip()
        match = _SUFFIX_PATTERN.search(text)
        if match:
            depth = int(match.group(1))
            body = match.group(2)
            counts = tuple(int(c) for c in (body.split("-") if "-" in body else body))
            layout = cls(counts)
            if layout.depth != depth:
                raise LayoutError(
                    f"layout suffix {match.group(0)} says {depth} layers but its stages add up to "
                    f"{layout.depth}; fix the suffix, for example L16_33433"
                )
            return layout
        return cls(tuple(comma_separated_ints(text, "stage layout", "3,3,4,3,3 or L16_33433", LayoutError)))

    @classmethod
    def from_model_name(cls, name: str) -> StageLayout | None:
        """The layout named by a model-name suffix (``aux_deit_small_patch16_224_L16_33433``), or
        ``None`` when the name carries none."""
        match = _SUFFIX_PATTERN.search(name)
        return cls._parse_text(match.group(0)) if match else None

    # -- questions ------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Number of layers of the Aux-Net."""
        return sum(self.layers_per_stage)

    @property
    def num_stages(self) -> int:
        """Number of stages, which is also the number of learngene layers."""
        return len(self.layers_per_stage)

    @cached_property
    def stage_index(self) -> tuple[int, ...]:
        """The stage of every Aux-Net layer, in order: ``(0, 0, 0, 1, ...)``."""
        return _counts_to_mapping(self.layers_per_stage)

    def stage_of(self, layer: int) -> int:
        """Which stage Aux-Net layer ``layer`` (0-based) belongs to."""
        if not 0 <= layer < self.depth:
            raise LayoutError(f"layer {layer} is outside this {self.depth}-layer layout ({self})")
        return self.stage_index[layer]

    def first_layer(self, stage: int) -> int:
        """The first Aux-Net layer of ``stage``."""
        self._check_stage(stage)
        return sum(self.layers_per_stage[:stage])

    def layers_of(self, stage: int) -> range:
        """The Aux-Net layers of ``stage``."""
        start = self.first_layer(stage)
        return range(start, start + self.layers_per_stage[stage])

    def stage_counts(self, depth: int) -> tuple[int, ...]:
        """Layers each stage gets in a Des-Net of ``depth`` layers (see the module docstring)."""
        check_depth(depth)
        counts = list(self.layers_per_stage)
        while sum(counts) > depth:
            most = max(counts)
            latest = max(i for i, c in enumerate(counts) if c == most)
            counts[latest] -= 1
        while sum(counts) < depth:
            fewest = min(counts)
            earliest = min(i for i, c in enumerate(counts) if c == fewest)
            counts[earliest] += 1
        return tuple(counts)

    def mapping(self, depth: int) -> tuple[int, ...]:
        """The default layer mapping for a Des-Net of ``depth`` layers: entry ``i`` is the
        learngene layer (stage) that descendant layer ``i`` copies."""
        return _counts_to_mapping(self.stage_counts(depth))

    def validate_mapping(self, mapping: Sequence[int] | str, depth: int | None = None) -> tuple[int, ...]:
        """Check an explicit layer mapping (``"0,0,1,2,3,4"`` or a sequence) and return it.

        Every entry must name a stage of this layout; when ``depth`` is given the mapping must have
        exactly that many entries. Any order is allowed: an explicit mapping is the user's choice.
        """
        values = parse_mapping(mapping)
        if depth is not None and len(values) != depth:
            raise LayoutError(
                f"layer mapping {_join(values)} has {len(values)} entries but the descendant has "
                f"{depth} layers; give one learngene layer per descendant layer"
            )
        bad = [v for v in values if not 0 <= v < self.num_stages]
        if bad:
            raise LayoutError(
                f"layer mapping {_join(values)} names learngene layer {bad[0]}, but layout {self} has "
                f"only {self.num_stages} (0 to {self.num_stages - 1})"
            )
        return values

    # -- spelling -------------------------------------------------------------------------------

    @property
    def suffix(self) -> str:
        """The model-name suffix, ``L16_33433`` (stages joined by ``-`` when one has 10 or more)."""
        counts = self.layers_per_stage
        body = "".join(map(str, counts)) if max(counts) < 10 else "-".join(map(str, counts))
        return f"L{self.depth}_{body}"

    def __str__(self) -> str:
        return _join(self.layers_per_stage)

    def _check_stage(self, stage: int) -> None:
        if not 0 <= stage < self.num_stages:
            raise LayoutError(f"stage {stage} is outside layout {self} (stages 0 to {self.num_stages - 1})")


def parse_mapping(mapping: Sequence[int] | str) -> tuple[int, ...]:
    """Read a layer mapping such as ``"0,0,0,1,1,1,2,2,3,3,4,4"`` (quotes and spaces allowed)."""
    if isinstance(mapping, str):
        values = tuple(comma_separated_ints(mapping, "layer mapping", "0,0,0,1,1,1,2,2,3,3,4,4", LayoutError))
    else:
        try:
            values = tuple(mapping)
        except TypeError:
            raise LayoutError(f"cannot read a layer mapping from {mapping!r}; write it as 0,0,1,2,3,4") from None
        wrong = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Integral)]
        if wrong:
            raise LayoutError(
                f"layer mapping {list(values)} holds {wrong[0]!r}; every entry is a learngene layer, a whole number"
            )
        values = tuple(int(v) for v in values)
    if not values:
        raise LayoutError("the layer mapping is empty; give one learngene layer per descendant layer")
    if len(values) > MAX_DEPTH:
        raise LayoutError(f"the layer mapping has {len(values):,} entries; sws builds at most {MAX_DEPTH} layers")
    return values


def check_depth(depth: object, what: str = "a descendant") -> int:
    """``depth`` if it is a whole number of layers from 1 to ``MAX_DEPTH``, else ``LayoutError``."""
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise LayoutError(
            f"depth {depth!r} of {what} is not allowed: give a whole number of layers from 1 to {MAX_DEPTH}"
        )
    return depth


def _counts_to_mapping(counts: Sequence[int]) -> tuple[int, ...]:
    return tuple(stage for stage, count in enumerate(counts) for _ in range(count))


def _join(values: Iterable[object]) -> str:
    return ",".join(str(v) for v in values)

"""One record of a training run, from its ``summary.json`` to the report, and the results of a study.

A :class:`RunRecord` is what the study and the report know of one ``sws train`` run (a source model
or a Des-Net): built from the run's ``summary.json`` by :meth:`RunRecord.from_summary`, written to
``results.json`` by :meth:`RunRecord.to_json` and read back by :meth:`RunRecord.from_json`, which
also reads the files of earlier versions. Each field has one meaning everywhere: ``top1`` is the
evaluation top-1 after every epoch (its last entry is the final top-1), ``flops`` the run's training
FLOPs (a teacher's forward passes included), ``width`` the Des-Net's width, always filled.

:class:`Results` is a whole study: what it measured (``meta``), the source models, the Des-Nets by
depth, width and method, the budget study's longer runs and the parameters and pre-training each
method needs; ``results.json`` is its JSON.

Example:
    >>> results = Results.load("runs/pipeline/results.json")
    >>> {(r.depth, r.method): r.final_top1 for r in results.records}
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sws.errors import ConfigError


@dataclass
class RunRecord:
    """One training run: its model, size, top-1 per epoch and what it cost."""

    model: str
    params: int
    top1: list[float]  # evaluation top-1 (%) after every epoch
    images: int  # training images seen over all epochs
    flops: float  # training FLOPs, a teacher's forward passes included
    seconds: float  # wall-clock seconds of training (the only field that varies between equal runs)
    init_top1: float | None = None  # top-1 as initialized, before training (--eval-init)
    init: dict[str, Any] = field(default_factory=dict)  # how the model was initialized
    depth: int | None = None  # a Des-Net's layers, width and method
    width: int | None = None
    method: str | None = None

    @property
    def final_top1(self) -> float:
        return self.top1[-1]

    @property
    def epochs(self) -> int:
        return len(self.top1)

    def flops_until(self, epoch: int | None) -> float:
        """The training FLOPs up to ``epoch`` (from 1; the whole run when ``None``)."""
        return self.flops / self.epochs * (epoch or self.epochs)

    def first_epoch_reaching(self, target: float) -> int | None:
        """The first epoch (from 1) whose top-1 reaches ``target``; ``None`` if none does."""
        return next((epoch for epoch, top1 in enumerate(self.top1, start=1) if top1 >= target), None)

    @classmethod
    def from_summary(cls, summary: dict[str, Any], **where: Any) -> RunRecord:
        """The record of a finished run from its ``summary.json`` (``where``: depth, width, method)."""
        return cls(
            model=summary["model"],
            params=summary["params"],
            top1=list(summary["top1"]),
            images=summary["train_images"],
            flops=summary["train_flops"],
            seconds=summary["train_seconds"],
            init_top1=(summary.get("init") or {}).get("top1"),
            init=summary.get("init") or {},
            **where,
        )

    @classmethod
    def from_json(cls, value: dict[str, Any], width: int | None = None) -> RunRecord:
        """A record of ``results.json``, of this version or an earlier one (sws 0.2 kept a source's
        final top-1 as one number and no model name for Des-Nets); ``width`` fills a missing one."""
        top1 = value["top1"]
        values = {name: value[name] for name in _FIELDS if name in value}
        values.update(
            model=value.get("model", ""),
            top1=[top1] if isinstance(top1, (int, float)) else list(top1),
            init=value.get("init") or {},
        )
        if values.get("width") is None and value.get("depth") is not None:
            values["width"] = width
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["epochs"] = self.epochs
        return values


_FIELDS = {f.name for f in dataclasses.fields(RunRecord)}


@dataclass
class Results:
    """What a study measured: ``meta`` (data, seed, depths, widths, methods, layout, ...), the source
    models by role, the Des-Nets, the budget study's longer runs, the parameters each method stores
    and the pre-training FLOPs it spends to initialize every size."""

    meta: dict[str, Any]
    sources: dict[str, RunRecord] = field(default_factory=dict)
    records: list[RunRecord] = field(default_factory=list)
    budget: list[RunRecord] = field(default_factory=list)
    stored_params: dict[str, int] = field(default_factory=dict)
    pretraining_flops: dict[str, float] = field(default_factory=dict)

    @property
    def base_width(self) -> int | None:
        return self.meta.get("base_width")

    def des_nets(self, method: str, width: int | None = None) -> dict[int, RunRecord]:
        """``method``'s Des-Nets at ``width`` (the base width by default), by depth."""
        width = width or self.base_width
        return {r.depth: r for r in self.records if r.method == method and r.width in (width, None)}

    def epochs_by_method(self) -> str:
        """``6 epochs (scratch, scratch-kd: 3)``: the Des-Nets' epochs, the most common first."""
        by_method: dict[str | None, set[int]] = {}
        for record in self.records:
            by_method.setdefault(record.method, set()).add(record.epochs)
        spelled = {method: "/".join(map(str, sorted(counts))) for method, counts in by_method.items()}
        if not spelled:
            return f"{self.meta['des_net_epochs']} epochs"
        values = list(spelled.values())
        common = max(values, key=values.count)
        grouped: dict[str, list[str]] = {}
        for method, value in spelled.items():
            if value != common:
                grouped.setdefault(value, []).append(str(method))
        others = [f"{', '.join(methods)}: {value}" for value, methods in grouped.items()]
        return f"{common} epochs" + (f" ({'; '.join(others)})" if others else "")

    def to_json(self) -> dict[str, Any]:
        budget = [r.to_json() for r in self.budget]
        return {
            "meta": self.meta,
            "sources": {key: record.to_json() for key, record in self.sources.items()},
            "stored_params": self.stored_params,
            "pretraining_flops": self.pretraining_flops,
            "records": [r.to_json() for r in self.records],
            "budget": budget,
            # sws 0.1's name for the longer scratch runs, kept for the scripts that read it
            "scratch_to_match": [r for r in budget if r["method"] == "scratch"],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Results:
        """``results.json`` of this version or an earlier one."""
        meta = dict(value["meta"])
        width = meta.get("base_width")
        return cls(
            meta=meta,
            sources={key: RunRecord.from_json(record) for key, record in (value.get("sources") or {}).items()},
            records=[RunRecord.from_json(r, width) for r in value.get("records") or []],
            budget=[RunRecord.from_json(r, width) for r in value.get("budget") or []],
            stored_params=dict(value.get("stored_params") or {}),
            pretraining_flops=dict(value.get("pretraining_flops") or {}),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Results:
        """Read a ``results.json`` (or the one in a run folder)."""
        path = Path(path)
        path = path / "results.json" if path.is_dir() else path
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"no results.json at {path}; give the folder of an sws pipeline or compare") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not text, so not the results.json of an sws study") from None
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            reason = f"{type(error).__name__}: {str(error)[:120]}"
            raise ConfigError(f"{path} is not the results.json of an sws study ({reason})") from None


def as_results(results: Results | dict[str, Any]) -> Results:
    """``results`` as :class:`Results` (a ``results.json`` mapping is read)."""
    return results if isinstance(results, Results) else Results.from_json(results)


__all__ = ["Results", "RunRecord", "as_results"]

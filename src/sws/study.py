"""The study engine behind ``sws pipeline`` and ``sws compare``: source models, Des-Nets by depth and
initialization method, and the report, each step in its own place under the run folder.

1. ``teacher/``              train the teacher (skipped when the config gives teacher weights)
2. ``aux/``                  distill the Aux-Net from the teacher (``tleg_aux/`` and ``ancestry/`` for
                             the methods that need a TLEG Aux-Net or a full ViT; same recipe)
3. ``learngene.safetensors`` extract the learngene
4. ``desnets/<method>_d<L>/`` for every depth and method: initialize a Des-Net (see
                             ``sws.initialization.METHODS``) and fine-tune it with the same recipe
5. ``report.md``, ``results.json``, ``*.png``   the comparison (``sws.report``)

A step whose output exists is skipped; a training step that was interrupted resumes from its
checkpoint, so re-running the same command finishes the job. Every step's ``sws train`` flags are
parsed before the first step runs, so a bad config value is refused at once.

Example:
    >>> study = Study(load_config("mnist5k"), "runs/pipeline")
    >>> results = study.run(["sws", "scratch"], [4, 6, 8, 12])
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sws.distributed import Processes, barrier
from sws.errors import ConfigError
from sws.extraction import extract
from sws.initialization import METHODS, InitOptions, check_methods
from sws.layout import StageLayout
from sws.report import source_record, write_report
from sws.study_config import train_flags
from sws.train import train
from sws.train_config import parse_args

SUMMARY_NAME = "summary.json"


@dataclass
class TrainStep:
    """One ``sws train`` run of a study, in its own folder. Des-Net steps know their method and depth."""

    key: str
    title: str
    out_dir: Path
    argv: list[str]
    method: str | None = None
    depth: int | None = None
    long_run: bool = False  # a longer run than the recipe's, for the training-cost comparison

    @property
    def done(self) -> bool:
        return (self.out_dir / SUMMARY_NAME).is_file()

    @property
    def interrupted(self) -> bool:
        return not self.done and (self.out_dir / "checkpoint.pth").is_file()

    def summary(self) -> dict[str, Any]:
        return json.loads((self.out_dir / SUMMARY_NAME).read_text())

    def record(self) -> dict[str, Any]:
        """What the report keeps of a Des-Net's run."""
        summary = self.summary()
        return {
            "depth": self.depth,
            "method": self.method,
            "params": summary["params"],
            "top1": summary["top1"],
            "images": summary["train_images"],
            "flops": summary["train_flops"],
            "seconds": summary["train_seconds"],
            "init": summary["init"],
        }


class Study:
    """The artifacts of one run folder (teacher, Aux-Nets, learngenes, Des-Nets) and how to make each.

    Args:
        config: A study config (``sws.study_config``).
        run_dir: Where the source artifacts live (teacher, Aux-Nets, learngenes, ancestry).
        out_dir: Where the Des-Nets and the report go (default: ``run_dir``).
        sources: Artifacts given from outside (``learngene``, ``tleg_learngene``, ``ancestry``,
            ``teacher``) instead of being trained here.
        log: Where progress lines go (rank 0 prints, other processes pass a no-op).
    """

    def __init__(
        self,
        config: dict[str, Any],
        run_dir: str | Path,
        out_dir: str | Path | None = None,
        sources: dict[str, str | None] | None = None,
        log: Callable[..., None] = print,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.out_dir = Path(out_dir) if out_dir else self.run_dir
        self.sources = {k: str(v) for k, v in (sources or {}).items() if v}
        self.log = log

    # -- the steps ------------------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        c = self.config
        common = {
            "data-set": c.get("data_set"),
            "data-path": c.get("data_path"),
            "input-size": c.get("input_size"),
            "seed": c.get("seed", 0),
            "device": c.get("device", "auto"),
        }
        return {**common, **(c.get("train") or {})}

    def teacher_step(self) -> TrainStep | None:
        teacher = self.config.get("teacher") or {}
        if self.sources.get("teacher") or teacher.get("path") or teacher.get("pretrained"):
            return None
        argv = train_flags(self._common(), {"model": teacher["model"]}, teacher.get("train"))
        return TrainStep("teacher", f"teacher {teacher['model']}", self.run_dir / "teacher", argv)

    def teacher_path(self) -> str | None:
        """The teacher's weights: given, trained here, or ``None`` for timm's pretrained hub."""
        teacher = self.config.get("teacher") or {}
        given = self.sources.get("teacher") or teacher.get("path")
        if given:
            return str(given)
        return None if teacher.get("pretrained") else str(self.run_dir / "teacher" / "checkpoint.pth")

    def _distilled(self, key: str, title: str, model: dict[str, Any]) -> TrainStep:
        """An Aux-Net (or ancestry) trained with the Aux-Net's recipe, distilled from the teacher."""
        aux = self.config["aux"]
        teacher = self.config.get("teacher") or {}
        distill = {"teacher-model": teacher.get("model"), "teacher-path": self.teacher_path()}
        argv = train_flags(self._common(), distill, aux.get("train"), model)
        return TrainStep(key, title, self.run_dir / key, argv)

    def _aux_depth(self) -> int:
        return StageLayout.parse(self.config["aux"]["layout"]).depth

    def _source_step(self, source: str) -> TrainStep:
        """The training step that makes a source (``learngene``: the Aux-Net; ``tleg_learngene``: the
        TLEG Aux-Net; ``ancestry``: a full-depth ViT)."""
        aux = self.config["aux"]
        kwargs = dict(aux.get("model_kwargs") or {})
        if source == "learngene":
            model = {"model": aux["model"], "layout": aux.get("layout"), "model-kwargs": kwargs}
            return self._distilled("aux", f"Aux-Net {aux.get('layout', '')} (distillation)", model)
        if source == "tleg_learngene":
            depth = (self.config.get("tleg") or {}).get("depth", self._aux_depth())
            model = {"model": "tleg_aux_net", "model-kwargs": {**kwargs, "depth": depth}}
            return self._distilled("tleg_aux", "TLEG Aux-Net (distillation)", model)
        depth = (self.config.get("ancestry") or {}).get("depth", self._aux_depth())
        model = {"model": "des_net", "model-kwargs": {**kwargs, "depth": depth}}
        return self._distilled("ancestry", "ancestry ViT (full depth, distillation)", model)

    def source_path(self, source: str) -> Path:
        """Where a source lives: given from outside, or what its training step leaves."""
        if source in self.sources:
            return Path(self.sources[source])
        return {
            "learngene": self.run_dir / "learngene.safetensors",
            "tleg_learngene": self.run_dir / "tleg_aux" / "learngene.safetensors",
            "ancestry": self.run_dir / "ancestry" / "checkpoint.pth",
        }[source]

    def des_net_step(self, method: str, depth: int, epochs: int | None = None) -> TrainStep:
        """A Des-Net of ``depth`` layers initialized by ``method`` and trained with the Des-Net recipe
        (for ``epochs``, by default the recipe's)."""
        des = self.config["des_net"]
        kwargs = {**(self.config["aux"].get("model_kwargs") or {}), "depth": depth}
        init: dict[str, Any] = {"init": method}
        source = METHODS[method].source
        if source is not None:
            init[METHODS[method].source_flag] = str(self.source_path(source))
        argv = train_flags(
            self._common(),
            des.get("train"),
            {"epochs": des["epochs"]},
            (des.get("methods") or {}).get(method) or {},
            {"epochs": epochs} if epochs else None,
            {"model": "des_net", "model-kwargs": kwargs},
            init,
        )
        key = f"{method}_d{depth}" if not epochs else f"{method}_{epochs}ep_d{depth}"
        title = f"Des-Net depth {depth}, {method}" + (f", {epochs} epochs (to match SWS)" if epochs else "")
        return TrainStep(key, title, self.out_dir / "desnets" / key, argv, method, depth, long_run=bool(epochs))

    def scratch_to_match_steps(self, methods: Sequence[str], depths: Sequence[int]) -> list[TrainStep]:
        """Longer from-scratch runs that show how many epochs scratch needs to reach SWS's accuracy
        (the config's ``cost`` section: depths, or ``all``, and epochs)."""
        cost = self.config.get("cost") or {}
        if not cost.get("epochs") or not {"sws", "scratch"} <= set(methods):
            return []
        chosen = depths if cost.get("depths") == "all" else [d for d in cost.get("depths", []) if d in depths]
        return [self.des_net_step("scratch", d, epochs=int(cost["epochs"])) for d in chosen]

    def needed_sources(self, methods: Sequence[str]) -> list[str]:
        """The sources the methods need that were not given, in the order they are trained."""
        wanted = {METHODS[m].source for m in methods} - {None} - set(self.sources)
        return [s for s in ("learngene", "tleg_learngene", "ancestry") if s in wanted]

    def source_steps(self, methods: Sequence[str]) -> list[TrainStep]:
        """The training steps that the given methods' Des-Nets need first (the teacher among them when
        a source must be distilled)."""
        needed = self.needed_sources(methods)
        teacher = self.teacher_step()
        steps = [teacher] if needed and teacher is not None else []
        return steps + [self._source_step(source) for source in needed]

    def plan(self, methods: Sequence[str], depths: Sequence[int]) -> tuple[list[TrainStep], list[TrainStep]]:
        """The source steps, and the Des-Net steps (the longer scratch runs last); every step's flags
        parsed once, so that a bad value is refused before anything runs."""
        check_methods(methods)
        des_nets = [self.des_net_step(m, d) for d in depths for m in methods]
        steps = (self.source_steps(methods), des_nets + self.scratch_to_match_steps(methods, depths))
        for step in (*steps[0], *steps[1]):
            try:
                parse_args([*step.argv, "--output_dir", str(step.out_dir)])
            except ConfigError as error:
                raise ConfigError(f"the config's {step.title} step: {error}") from None
        return steps

    # -- running --------------------------------------------------------------------------------

    def run(self, methods: Sequence[str], depths: Sequence[int], processes: Processes | None = None) -> dict[str, Any]:
        """Make every missing artifact, train every Des-Net, and (rank 0) write the report. Under
        torchrun every process runs every training step; rank 0 alone writes files."""
        processes = processes or Processes(torch.device("cpu"))
        sources, des_nets = self.plan(methods, depths)
        extracts = "learngene" in self.needed_sources(methods)
        total = len(sources) + len(des_nets) + int(extracts)
        started = time.perf_counter()
        index = 0
        for step in sources:
            index += 1
            self._run_step(step, f"[step {index}/{total} {_clock(started)}]")
            if step.key == "aux":
                index += 1
                if processes.is_main:
                    self._extract_learngene(f"[step {index}/{total} {_clock(started)}]")
                barrier(processes)
        for step in des_nets:
            index += 1
            self._run_step(step, f"[step {index}/{total} {_clock(started)}]")
        if not processes.is_main:
            return {}
        recipe_runs = [s for s in des_nets if not s.long_run]
        results = self.collect(methods, depths, sources, recipe_runs, [s for s in des_nets if s.long_run])
        write_report(results, self.out_dir)
        self.log(f"[{_clock(started)}] report: {self.out_dir / 'report.md'}")
        return results

    def _run_step(self, step: TrainStep, prefix: str) -> None:
        prefix = f"{prefix} {step.title}"
        if step.done:
            self.log(f"{prefix}: done, skipped ({step.out_dir})")
            return
        argv = [*step.argv, "--output_dir", str(step.out_dir)]
        if step.interrupted:
            argv += ["--resume", "auto"]
            self.log(f"{prefix}: resuming from {step.out_dir / 'checkpoint.pth'}")
        else:
            self.log(f"{prefix} -> {step.out_dir}")
        train(parse_args(argv))

    def _extract_learngene(self, prefix: str) -> None:
        path = self.source_path("learngene")
        prefix = f"{prefix} extract the learngene"
        if path.is_file():
            self.log(f"{prefix}: done, skipped ({path})")
            return
        gene = extract(self.run_dir / "aux" / "checkpoint.pth")
        gene.save(path)
        self.log(f"{prefix} -> {path} ({gene.num_params:,} parameters, layout {gene.layout})")

    def collect(
        self,
        methods: Sequence[str],
        depths: Sequence[int],
        sources: list[TrainStep],
        des_nets: list[TrainStep],
        long_runs: Sequence[TrainStep] = (),
    ) -> dict[str, Any]:
        """Everything the report needs, from the steps' summaries and the source files."""
        source_records: dict[str, Any] = {}
        teacher = self.teacher_step()
        if teacher is not None and teacher.done:
            source_records["teacher"] = source_record(teacher.summary())
        for step in sources:
            if step.key != "teacher" and step.done:
                source_records[step.key] = source_record(step.summary())
        return {
            "meta": {
                "data_set": self.config.get("data_set"),
                "data_path": self.config.get("data_path"),
                "input_size": self.config.get("input_size"),
                "seed": self.config.get("seed", 0),
                "depths": list(depths),
                "methods": list(methods),
                "des_net_epochs": self.config["des_net"]["epochs"],
                "layout": self.config["aux"].get("layout"),
            },
            "sources": source_records,
            "stored_params": self.stored_parameters(methods),
            "records": [step.record() for step in des_nets],
            "scratch_to_match": [step.record() for step in long_runs],
        }

    def stored_parameters(self, methods: Sequence[str]) -> dict[str, int]:
        """Parameters each method keeps to initialize every depth."""
        stored = {}
        for name in methods:
            method = METHODS[name]
            recipe = (self.config["des_net"].get("methods") or {}).get(name) or {}
            options = InitOptions(inherit_layers=recipe.get("inherit-layers"))
            path = self.source_path(method.source) if method.source else None
            stored[name] = method.stored_params(path, options)
        return stored


def _clock(started: float) -> str:
    seconds = int(time.perf_counter() - started)
    return f"{seconds // 60}:{seconds % 60:02d}"


__all__ = ["Study", "TrainStep"]

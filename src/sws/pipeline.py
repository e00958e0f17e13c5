"""``sws pipeline``: the whole SWS pipeline, and the same Des-Nets trained from scratch, in one command.

Steps, each a ``sws train`` run (or a file) in its own place under the run folder:

1. ``teacher/``              train the teacher (skipped when the config gives teacher weights)
2. ``aux/``                  distill the Aux-Net from the teacher
3. ``learngene.safetensors`` extract the learngene
4. ``desnets/<method>_d<L>/`` for every depth and method: initialize a Des-Net (``sws``: expand the
                             learngene; ``scratch``: random) and fine-tune it with the same recipe
5. ``report.md``, ``results.json``, ``*.png``   the comparison (``sws.report``)

A step whose output exists is skipped; a training step that was interrupted resumes from its
checkpoint, so re-running the same command finishes the job. ``sws compare`` adds other
initializations (TLEG, layer selection, last-layer inheritance) with the source models they need
(``tleg_aux/``, ``ancestry/``), trained with the Aux-Net's recipe.

Run it::

    sws pipeline                                        # built-in MNIST5K, a few minutes on a laptop
    sws pipeline --data-path DIR                        # any ImageFolder with train/ and val/
    torchrun --nproc_per_node=4 -m sws pipeline --config paper_imagenet --data-path /data/imagenet \\
        --set teacher.path=levit_384.pth                # the paper's setting
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from sws.distributed import Processes, barrier
from sws.errors import ConfigError
from sws.fileio import write_text_atomic
from sws.study_config import METHODS, apply_overrides, load_config, packaged_configs, train_flags

SUMMARY_NAME = "summary.json"


@dataclass
class TrainStep:
    """One ``sws train`` run of a study, in its own folder."""

    key: str
    title: str
    out_dir: Path
    argv: list[str]

    @property
    def done(self) -> bool:
        return (self.out_dir / SUMMARY_NAME).is_file()

    @property
    def interrupted(self) -> bool:
        return not self.done and (self.out_dir / "checkpoint.pth").is_file()

    def summary(self) -> dict[str, Any]:
        return json.loads((self.out_dir / SUMMARY_NAME).read_text())


class Study:
    """The artifacts of one run folder (teacher, Aux-Nets, learngenes, Des-Nets) and how to make
    each, so that ``sws pipeline`` and ``sws compare`` share them.

    Args:
        config: A study config (``sws.study_config``).
        run_dir: Where the source artifacts live (teacher, Aux-Nets, learngenes, ancestry).
        out_dir: Where the Des-Nets and the report go (default: ``run_dir``).
        sources: Artifacts given from outside (``learngene``, ``tleg_learngene``, ``ancestry``,
            ``teacher``) instead of being trained here.
    """

    def __init__(
        self,
        config: dict[str, Any],
        run_dir: str | Path,
        out_dir: str | Path | None = None,
        sources: dict[str, str] | None = None,
        log: Any = print,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.out_dir = Path(out_dir) if out_dir else self.run_dir
        self.sources = {k: v for k, v in (sources or {}).items() if v}
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

    def aux_step(self) -> TrainStep:
        aux = self.config["aux"]
        model = {"model": aux["model"], "layout": aux.get("layout"), "model-kwargs": aux.get("model_kwargs")}
        return self._distilled("aux", f"Aux-Net {aux.get('layout', '')} (distillation)", model)

    def tleg_step(self) -> TrainStep:
        aux, tleg = self.config["aux"], self.config.get("tleg") or {}
        kwargs = {**(aux.get("model_kwargs") or {}), "depth": tleg.get("depth", self._aux_depth())}
        model = {"model": "tleg_aux_net", "model-kwargs": kwargs}
        return self._distilled("tleg_aux", "TLEG Aux-Net (distillation)", model)

    def ancestry_step(self) -> TrainStep:
        aux, ancestry = self.config["aux"], self.config.get("ancestry") or {}
        kwargs = {**(aux.get("model_kwargs") or {}), "depth": ancestry.get("depth", self._aux_depth())}
        return self._distilled(
            "ancestry", "ancestry ViT (full depth, distillation)", {"model": "des_net", "model-kwargs": kwargs}
        )

    def _aux_depth(self) -> int:
        from sws.layout import StageLayout

        return StageLayout.parse(self.config["aux"]["layout"]).depth

    def learngene_path(self) -> Path:
        return Path(self.sources.get("learngene") or self.run_dir / "learngene.safetensors")

    def tleg_learngene_path(self) -> Path:
        return Path(self.sources.get("tleg_learngene") or self.run_dir / "tleg_aux" / "learngene.safetensors")

    def ancestry_path(self) -> Path:
        return Path(self.sources.get("ancestry") or self.run_dir / "ancestry" / "checkpoint.pth")

    def des_net_step(self, method: str, depth: int, epochs: int | None = None) -> TrainStep:
        """A Des-Net of ``depth`` layers initialized by ``method`` and trained with the Des-Net recipe
        (for ``epochs``, by default the recipe's)."""
        des = self.config["des_net"]
        aux = self.config["aux"]
        kwargs = {**(aux.get("model_kwargs") or {}), "depth": depth}
        init: dict[str, Any] = {"init": method}
        if method == "sws":
            init["load-gene"] = str(self.learngene_path())
        elif method == "tleg":
            init["load-gene"] = str(self.tleg_learngene_path())
        elif method in ("select", "inherit"):
            init["ancestry"] = str(self.ancestry_path())
        recipe = (des.get("methods") or {}).get(method) or {}
        argv = train_flags(
            self._common(),
            des.get("train"),
            {"epochs": des["epochs"]},
            recipe,
            {"epochs": epochs} if epochs else None,
            {"model": "des_net", "model-kwargs": kwargs},
            init,
        )
        key = f"{method}_d{depth}" if not epochs else f"{method}_{epochs}ep_d{depth}"
        return TrainStep(
            key,
            f"Des-Net depth {depth}, {method}" + (f", {epochs} epochs (to match SWS)" if epochs else ""),
            self.out_dir / "desnets" / key,
            argv,
        )

    def scratch_to_match_steps(self, methods: Sequence[str], depths: Sequence[int]) -> list[TrainStep]:
        """Longer from-scratch runs that show how many epochs scratch needs to reach SWS's accuracy
        (the config's ``cost`` section: depths, or ``all``, and epochs)."""
        cost = self.config.get("cost") or {}
        if not cost.get("epochs") or not {"sws", "scratch"} <= set(methods):
            return []
        chosen = depths if cost.get("depths") == "all" else [d for d in cost.get("depths", []) if d in depths]
        return [self.des_net_step("scratch", d, epochs=int(cost["epochs"])) for d in chosen]

    def source_steps(self, methods: Sequence[str]) -> list[TrainStep]:
        """The training steps that the given methods' Des-Nets need first."""
        needs_teacher = any(
            (m == "sws" and "learngene" not in self.sources)
            or (m == "tleg" and "tleg_learngene" not in self.sources)
            or (m in ("select", "inherit") and "ancestry" not in self.sources)
            for m in methods
        )
        steps: list[TrainStep] = []
        teacher = self.teacher_step()
        if needs_teacher and teacher is not None:
            steps.append(teacher)
        if "sws" in methods and "learngene" not in self.sources:
            steps.append(self.aux_step())
        if "tleg" in methods and "tleg_learngene" not in self.sources:
            steps.append(self.tleg_step())
        if {"select", "inherit"} & set(methods) and "ancestry" not in self.sources:
            steps.append(self.ancestry_step())
        return steps

    # -- running --------------------------------------------------------------------------------

    def run(self, methods: Sequence[str], depths: Sequence[int], processes: Processes | None = None) -> dict[str, Any]:
        """Make every missing artifact, train every Des-Net, and (rank 0) write the report. Under
        torchrun every process runs every training step; rank 0 alone writes files."""
        processes = processes or Processes(torch.device("cpu"))
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown methods {unknown}; choose from {list(METHODS)}")
        sources = self.source_steps(methods)
        des_nets = [self.des_net_step(m, d) for d in depths for m in methods]
        long_runs = self.scratch_to_match_steps(methods, depths)
        des_nets += long_runs
        total = len(sources) + len(des_nets) + (1 if "sws" in methods and "learngene" not in self.sources else 0)
        started = time.perf_counter()
        index = 0
        for step in sources:
            index += 1
            self._run_step(step, index, total, started)
            if step.key == "aux":
                index += 1
                if processes.is_main:
                    self._extract_learngene(index, total, started)
                barrier(processes)
        for step in des_nets:
            index += 1
            self._run_step(step, index, total, started)
        if not processes.is_main:
            return {}
        results = self.collect(methods, depths, sources, [s for s in des_nets if s not in long_runs], long_runs)
        from sws.report import write_report

        write_report(results, self.out_dir)
        self.log(f"[{_clock(started)}] report: {self.out_dir / 'report.md'}")
        return results

    def _run_step(self, step: TrainStep, index: int, total: int, started: float) -> None:
        from sws.train import train
        from sws.train_config import parse_args

        prefix = f"[step {index}/{total} {_clock(started)}] {step.title}"
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

    def _extract_learngene(self, index: int, total: int, started: float) -> None:
        from sws.learngene import extract

        path = self.learngene_path()
        prefix = f"[step {index}/{total} {_clock(started)}] extract the learngene"
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
        from sws.report import source_record

        source_records: dict[str, Any] = {}
        teacher = self.teacher_step()
        if teacher is not None and teacher.done:
            source_records["teacher"] = source_record(teacher.summary())
        for step in sources:
            if step.key != "teacher" and step.done:
                source_records[step.key] = source_record(step.summary())
        stored = self._stored_parameters(methods)
        records = [self._record(step) for step in des_nets]
        scratch_to_match = [self._record(step) for step in long_runs]
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
            "stored_params": stored,
            "records": records,
            "scratch_to_match": scratch_to_match,
        }

    @staticmethod
    def _record(step: TrainStep) -> dict[str, Any]:
        summary = step.summary()
        return {
            "depth": int(step.key.rsplit("_d", 1)[1]),
            "method": step.key.split("_", 1)[0],
            "params": summary["params"],
            "top1": summary["top1"],
            "images": summary["train_images"],
            "flops": summary["train_flops"],
            "seconds": summary["train_seconds"],
            "init": summary["init"],
        }

    def _stored_parameters(self, methods: Sequence[str]) -> dict[str, int]:
        """Parameters each method keeps to initialize every depth."""
        from sws.learngene import Learngene

        stored: dict[str, int] = {}
        for method in methods:
            if method == "sws":
                stored[method] = Learngene.load(self.learngene_path()).num_params
            elif method == "tleg":
                stored[method] = Learngene.load(self.tleg_learngene_path()).num_params
            elif method in ("select", "inherit"):
                from sws.initialization import DEFAULT_INHERIT_LAYERS, load_ancestry

                ancestry = load_ancestry(self.ancestry_path())
                if method == "select":
                    stored[method] = sum(p.numel() for p in ancestry.parameters())
                else:
                    k = (self.config["des_net"].get("methods", {}).get("inherit") or {}).get(
                        "inherit-layers", DEFAULT_INHERIT_LAYERS
                    )
                    blocks = sum(p.numel() for b in ancestry.blocks[-k:] for p in b.parameters())
                    stored[method] = blocks + sum(p.numel() for p in ancestry.norm.parameters())
            else:
                stored[method] = 0
        return stored


def _clock(started: float) -> str:
    seconds = int(time.perf_counter() - started)
    return f"{seconds // 60}:{seconds % 60:02d}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sws pipeline",
        description="Teacher, Aux-Net, learngene, Des-Nets of several depths and the same Des-Nets from scratch, "
        "with a report. Re-running resumes.",
    )
    add_study_arguments(p)
    return p


def add_study_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help=f"YAML file or packaged config {packaged_configs()}")
    p.add_argument("--data-path", default=None, help="ImageFolder with train/ and val/ (sets --data-set FOLDER)")
    p.add_argument("--data-set", default=None, help="MNIST5K (default), DIGITS, FOLDER, IMNET, CIFAR10, ...")
    p.add_argument("--output_dir", "--output-dir", dest="output_dir", default=None, help="run folder")
    p.add_argument("--depths", default=None, help="Des-Net depths, e.g. 4,6,8,12")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto, cpu, cuda")
    p.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change any config value, e.g. --set aux.train.epochs=10 (repeatable)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config file, then the flags, then ``--set`` assignments."""
    config = load_config(args.config)
    if args.data_path:
        config["data_path"] = args.data_path
        config["data_set"] = args.data_set or "FOLDER"
    elif args.data_set:
        config["data_set"] = args.data_set
    for key in ("output_dir", "seed", "device"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.depths:
        try:
            config["depths"] = [int(d) for d in str(args.depths).split(",") if d.strip()]
        except ValueError:
            raise ConfigError(f"--depths takes whole numbers separated by commas, not {args.depths!r}") from None
    return apply_overrides(config, args.assignments)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = resolve_config(args)
    if args.print_config:
        print(yaml.safe_dump(config, sort_keys=False))
        return 0
    run_pipeline(config)
    return 0


def run_pipeline(config: dict[str, Any]) -> dict[str, Any]:
    """Run the whole pipeline of ``config`` (see the module docstring); returns the results."""
    from sws.distributed import init_processes, shutdown

    processes = init_processes(config.get("device", "auto"))
    try:
        run_dir = Path(config.get("output_dir") or "runs/pipeline")
        if processes.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run_dir / "pipeline.yaml", yaml.safe_dump(config, sort_keys=False))
        log = print if processes.is_main else (lambda *a, **k: None)
        methods = config.get("methods") or ["sws", "scratch"]
        study = Study(config, run_dir, log=log)
        return study.run(methods, config["depths"], processes)
    finally:
        shutdown(processes)

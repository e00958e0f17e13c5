"""The study engine behind ``sws pipeline`` and ``sws compare``: source models, Des-Nets by depth and
initialization method, and the report, each step in its own place under the run folder.

1. ``teacher/``              train the teacher (skipped when the config gives teacher weights)
2. ``aux/``                  distill the Aux-Net from the teacher (``tleg_aux/`` and ``ancestry/`` for
                             the methods that need a TLEG Aux-Net or a full ViT; same recipe)
3. ``learngene.safetensors`` extract the learngene
4. ``desnets/<method>_d<L>/`` for every depth and method: initialize a Des-Net (see
                             ``sws.initialization.METHODS``) and fine-tune it with the same recipe
5. ``report.md``, ``results.json``, ``*.png``   the comparison (``sws.report``)

Every step is an ``sws train`` run whose settings are a mapping of flag values, built from the
config and validated once, before the first step runs (``sws.train_config.build_args``). A step
whose output exists is skipped; a training step that was interrupted resumes from its checkpoint,
so re-running the same command finishes the job; a folder whose steps ran with other settings is
refused before anything runs.

**Across data sets.** A study may train its Des-Nets on other data than its sources: the *source*
study (the run folder that holds the teacher, the Aux-Nets, the learngenes, the ancestry and the
pre-trained models of every size, with its own config) hands its artifacts to a *target* study
(the Des-Nets' config and folder). Source steps are planned, checked and reused with the source's
config, never the target's; a Des-Net on other data gets a new classifier.

Example:
    >>> study = Study(load_config("mnist5k"), "runs/pipeline")
    >>> results = study.run(["sws", "scratch"], [4, 6, 8, 12])
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from sws.distributed import Processes, barrier
from sws.errors import ConfigError
from sws.extraction import extract, load_learngene
from sws.initialization import METHODS, InitOptions, check_methods
from sws.layout import StageLayout
from sws.records import Results, RunRecord
from sws.report import write_report
from sws.run_files import changed_settings, saved_form
from sws.study_config import BUDGET_BASELINES, data_of
from sws.train import train
from sws.train_config import DEFAULTS, build_args, flag_of, merge_settings

SUMMARY_NAME = "summary.json"


@dataclass
class TrainStep:
    """One ``sws train`` run of a study, in its own folder, with its settings (a mapping of flag
    values). Des-Net steps know their method, depth and width, and whether they run the recipe or
    the budget study."""

    key: str
    title: str
    out_dir: Path
    settings: dict[str, Any]
    method: str | None = None
    depth: int | None = None
    width: int | None = None
    role: str = "recipe"  # "recipe" (the Des-Net recipe), "budget" (the budget study's longer runs), "source"
    args: argparse.Namespace | None = field(default=None, repr=False)  # the validated settings (Study.plan)

    @property
    def done(self) -> bool:
        return (self.out_dir / SUMMARY_NAME).is_file()

    @property
    def interrupted(self) -> bool:
        return not self.done and (self.out_dir / "checkpoint.pth").is_file()

    def validated(self) -> argparse.Namespace:
        """The step's ``sws train`` settings, checked (once; a bad value names the step)."""
        if self.args is None:
            where = f"the config's {self.title} step"
            self.args = build_args({**self.settings, "output_dir": str(self.out_dir)}, where)
        return self.args

    def summary(self) -> dict[str, Any]:
        return json.loads((self.out_dir / SUMMARY_NAME).read_text())

    def changed_flags(self) -> dict[str, tuple[Any, Any]]:
        """The settings of the run already in this step's folder that differ from the step's, as
        ``{setting: (then, now)}``; empty when nothing ran here or nothing changed."""
        saved_path = self.out_dir / "args.yaml"
        if not saved_path.is_file():
            return {}
        saved = yaml.safe_load(saved_path.read_text()) or {}
        return changed_settings(saved, saved_form(self.validated()))

    def record(self) -> RunRecord:
        """What the report keeps of this step's run."""
        return RunRecord.from_summary(self.summary(), depth=self.depth, width=self.width, method=self.method)


@dataclass
class Plan:
    """The steps of a study, in the order they run."""

    sources: list[TrainStep]
    des_nets: list[TrainStep]
    budget: list[TrainStep]

    def all(self) -> list[TrainStep]:
        """Every step once (the budget study may reuse a recipe run, a source a budget run)."""
        unique = {step.out_dir: step for step in [*self.sources, *self.des_nets, *self.budget]}
        return list(unique.values())


class Study:
    """The artifacts of one run folder (teacher, Aux-Nets, learngenes, Des-Nets) and how to make each.

    Args:
        config: A study config (``sws.study_config``): the Des-Nets' data and recipes.
        run_dir: Where this study's own source artifacts live (teacher, Aux-Nets, learngenes, ancestry).
        out_dir: Where the Des-Nets and the report go (default: ``run_dir``).
        sources: Artifacts given from outside (``learngene``, ``tleg_learngene``, ``ancestry``,
            ``teacher``) instead of being trained here.
        log: Where progress lines go (rank 0 prints, other processes pass a no-op).
        source: The study whose artifacts initialize these Des-Nets when they train on other data
            (its config and folder); by default this study is its own source.
    """

    def __init__(
        self,
        config: dict[str, Any],
        run_dir: str | Path,
        out_dir: str | Path | None = None,
        sources: dict[str, str | None] | None = None,
        log: Callable[..., None] = print,
        source: Study | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.out_dir = Path(out_dir) if out_dir else self.run_dir
        self.given = {k: str(v) for k, v in (sources or {}).items() if v}
        self.log = log
        self.source = source or self

    @property
    def across_data_sets(self) -> bool:
        """Whether the Des-Nets train on other data than the source models learnt from."""
        return data_of(self.config) != data_of(self.source.config)

    # -- shapes ---------------------------------------------------------------------------------

    @property
    def base_width(self) -> int:
        """The Aux-Net's (and learngene's) width."""
        return int(self._aux_kwargs().get("embed_dim", 384))

    @property
    def widths(self) -> list[int]:
        """The Des-Net widths of the study (the config's ``widths``, else the Aux-Net's)."""
        return [int(w) for w in self.config.get("widths") or [self.base_width]]

    def _aux_kwargs(self) -> dict[str, Any]:
        return dict(self.config["aux"].get("model_kwargs") or {})

    def model_kwargs(self, width: int | None = None) -> dict[str, Any]:
        """The Aux-Net's model arguments at ``width``, keeping its head dimension."""
        kwargs = self._aux_kwargs()
        if width is None or width == self.base_width:
            return kwargs
        head_dim = self.base_width // int(kwargs.get("num_heads", 6))
        if width % head_dim:
            raise ConfigError(
                f"width {width} is not a multiple of the Aux-Net's head dimension {head_dim}; "
                f"choose widths such as {head_dim}, {2 * head_dim}, {3 * head_dim}"
            )
        return {**kwargs, "embed_dim": width, "num_heads": width // head_dim}

    # -- the sources ----------------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        """The settings every step of this study shares: its data, seed, device and ``train`` flags."""
        c = self.config
        common = {
            "data-set": c.get("data_set"),
            "data-path": c.get("data_path"),
            "input-size": c.get("input_size"),
            "seed": c.get("seed", 0),
            "device": c.get("device", "auto"),
        }
        present = {key: value for key, value in common.items() if value is not None}
        return merge_settings(present, c.get("train"), where="the config's train")

    def teacher_step(self) -> TrainStep | None:
        teacher = self.config.get("teacher") or {}
        if self.given.get("teacher") or teacher.get("path") or teacher.get("pretrained") or not teacher:
            return None
        settings = merge_settings(self._common(), {"model": teacher["model"]}, teacher.get("train"))
        return TrainStep("teacher", f"teacher {teacher['model']}", self.run_dir / "teacher", settings, role="source")

    def teacher_path(self) -> str | None:
        """The teacher's weights: given, trained here, or ``None`` for timm's pretrained hub."""
        teacher = self.config.get("teacher") or {}
        given = self.given.get("teacher") or teacher.get("path")
        if given:
            return str(given)
        trained_here = teacher and not teacher.get("pretrained")  # no teacher section: no teacher at all
        return str(self.run_dir / "teacher" / "checkpoint.pth") if trained_here else None

    def distillation_flags(self) -> dict[str, Any]:
        """The teacher and the Aux-Net's distillation settings, for every run that learns from it."""
        teacher = self.config.get("teacher") or {}
        aux_train = merge_settings(self.config["aux"].get("train"), where="the config's aux.train")
        settings = {k: v for k, v in aux_train.items() if k.startswith("distillation_")}
        named = {"teacher_model": teacher.get("model"), "teacher_path": self.teacher_path()}
        return {**{k: v for k, v in named.items() if v is not None}, **settings}

    def _distilled(self, key: str, title: str, model: dict[str, Any]) -> TrainStep:
        """An Aux-Net (or ancestry) trained with the Aux-Net's recipe, distilled from the teacher."""
        aux = self.config["aux"]
        teacher = {k: v for k, v in self.distillation_flags().items() if k.startswith("teacher")}
        settings = merge_settings(self._common(), teacher, aux.get("train"), model)
        return TrainStep(key, title, self.run_dir / key, settings, role="source")

    def _aux_depth(self) -> int:
        return StageLayout.parse(self.config["aux"]["layout"]).depth

    def source_key(self, method: str, depth: int, width: int | None = None) -> str | None:
        """Which source a method's Des-Net of ``depth`` and ``width`` starts from: ``learngene``,
        ``learngene@<width>`` (an Aux-Net of that width), ``tleg_learngene``, ``ancestry``,
        ``pretrained@<depth>`` (or ``@<depth>x<width>``: a model of that size trained on the source
        data) or none."""
        source = METHODS[method].source
        at_base = width in (None, self.base_width)
        if source == "width_learngene":
            return "learngene" if at_base else f"learngene@{width}"
        if source == "pretrained":
            return f"pretrained@{depth}" if at_base else f"pretrained@{depth}x{width}"
        return source

    def source_step(self, key: str) -> TrainStep:
        """The training step that makes a source (see ``source_key``), with this study's config."""
        if key.startswith("pretrained@"):
            return self._pretraining_step(key)
        aux = self.config["aux"]
        name, _, width = key.partition("@")
        kwargs = self.model_kwargs(int(width) if width else None)
        if name == "learngene":
            model = {"model": aux["model"], "layout": aux.get("layout"), "model_kwargs": kwargs}
            folder = f"aux_w{width}" if width else "aux"
            return self._distilled(folder, f"Aux-Net {aux.get('layout', '')}, width {kwargs['embed_dim']}", model)
        if name == "tleg_learngene":
            depth = (self.config.get("tleg") or {}).get("depth", self._aux_depth())
            model = {"model": "tleg_aux_net", "model_kwargs": {**kwargs, "depth": depth}}
            return self._distilled("tleg_aux", "TLEG Aux-Net (distillation)", model)
        depth = (self.config.get("ancestry") or {}).get("depth", self._aux_depth())
        model = {"model": "des_net", "model_kwargs": {**kwargs, "depth": depth}}
        return self._distilled("ancestry", "ancestry ViT (full depth, distillation)", model)

    def _pretraining_step(self, key: str) -> TrainStep:
        """A model of one size trained from scratch on this study's data with the budget study's
        full budget (else scratch's own recipe), in the run folder: the budget study's (or the
        recipe's) own run when it has one (the same folder), reused."""
        size = key.partition("@")[2]
        depth, _, width = size.partition("x")
        epochs = self.pretraining_epochs()
        recipe = epochs == self.des_net_epochs("scratch", int(depth))  # no budget study: scratch's recipe run
        step = self.des_net_step("scratch", int(depth), int(width) if width else None, None if recipe else epochs)
        step.out_dir = self.run_dir / "desnets" / step.out_dir.name  # the run's, also when a comparison is elsewhere
        step.key = f"pretrained_d{depth}" + (f"_w{width}" if width else "")
        step.title = f"pre-trained Des-Net depth {depth}" + (f", width {width}" if width else "") + f", {epochs} epochs"
        step.role = "source"
        return step

    def pretraining_epochs(self) -> int:
        """How long a pre-trained model of every size trains: the budget study's full budget, else
        scratch's own recipe."""
        budget = self.config.get("budget") or {}
        return int(budget.get("epochs") or self.des_net_epochs("scratch", 0))

    def source_path(self, key: str) -> Path:
        """Where a source lives: given from outside, or what the source study's step leaves."""
        if key in self.given:
            return Path(self.given[key])
        return self.source.own_source_path(key)

    def own_source_path(self, key: str) -> Path:
        if key.startswith("learngene@"):
            return self.run_dir / f"aux_w{key.partition('@')[2]}" / "learngene.safetensors"
        if key.startswith("pretrained@"):
            return self.source_step(key).out_dir / "checkpoint.pth"
        return {
            "learngene": self.run_dir / "learngene.safetensors",
            "tleg_learngene": self.run_dir / "tleg_aux" / "learngene.safetensors",
            "ancestry": self.run_dir / "ancestry" / "checkpoint.pth",
        }[key]

    def needed_sources(self, methods: Sequence[str], depths: Sequence[int]) -> list[str]:
        """The sources the methods need at the study's depths and widths that were not given, in
        training order."""
        wanted = {self.source_key(m, d, w) for m in methods for d in depths for w in self.widths}
        keys = wanted - {None} - set(self.given)
        order = ["learngene", *(f"learngene@{w}" for w in self.widths), "tleg_learngene", "ancestry"]
        order += sorted((key for key in keys if key.startswith("pretrained@")), key=_size_order)
        return [key for key in order if key in keys]

    def source_steps(self, methods: Sequence[str], depths: Sequence[int]) -> list[TrainStep]:
        """The training steps that the methods' Des-Nets need first: the source study's (its teacher
        among them when a source must be distilled), and this study's teacher when a method learns
        from it."""
        needed = self.needed_sources(methods, depths)
        distilled = [key for key in needed if not key.startswith("pretrained@")]
        if self.across_data_sets:
            self._check_distilled_sources_exist(distilled, methods, depths)
            distilled = []  # they exist: nothing is distilled on the source data for another data set
        steps = []
        for study, wants in ((self.source, bool(distilled)), (self, any(METHODS[m].distills for m in methods))):
            teacher = study.teacher_step()
            if wants and teacher is not None and all(s.out_dir != teacher.out_dir for s in steps):
                if study is not self.source:  # a teacher of the target data, for the methods that distill
                    teacher.key, teacher.title = "target_teacher", f"{teacher.title} on the target data"
                steps.append(teacher)
        made = [self.source.source_step(key) for key in needed]
        if self.across_data_sets:  # distilled sources are reused as they are (their runs reported when there);
            made = [step for step in made if step.done or step.method is not None]  # a missing size is pre-trained
        return steps + made

    def _check_distilled_sources_exist(
        self, keys: Sequence[str], methods: Sequence[str], depths: Sequence[int]
    ) -> None:
        """On other data, a learngene, TLEG learngene or ancestry comes from the source run as it is:
        one the run lacks is refused (distilling it means the source's teacher and data, a job for a
        study of the source itself), naming the method and the command that makes it."""
        for key in keys:
            path = self.source_path(key)
            if path.is_file():
                continue
            method = next(m for m in methods for d in depths for w in self.widths if self.source_key(m, d, w) == key)
            raise ConfigError(
                f"the source run {self.source.run_dir} has no {key.replace('_', ' ')} ({path}) for method {method}; "
                f"make it there first (sws compare --run-dir {self.source.run_dir} --methods {method}), or give "
                "the file (--learngene, --tleg-learngene, --ancestry)"
            )

    # -- the Des-Nets ---------------------------------------------------------------------------

    def des_net_step(self, method: str, depth: int, width: int | None = None, epochs: int | None = None) -> TrainStep:
        """A Des-Net of ``depth`` layers (and ``width``, by default the Aux-Net's) initialized by
        ``method`` and trained with the Des-Net recipe, for ``epochs`` (a budget-study run) or the
        recipe's epochs."""
        width = width or self.base_width
        init: dict[str, Any] = {"init": method, "eval_init": True}
        source = self.source_key(method, depth, width)
        if source is not None:
            init[METHODS[method].source_flag] = str(self.source_path(source))
        if source is not None and self.across_data_sets:
            init["new_head"] = True  # the target's classes are not the source's, even when as many
        recipe = self.des_net_recipe(method, depth)
        settings = merge_settings(
            self._common(),
            recipe,
            self._width_lr(recipe, width),
            self.distillation_flags() if METHODS[method].distills else None,
            {"epochs": epochs} if epochs else None,
            {"model": "des_net", "model_kwargs": {**self.model_kwargs(width), "depth": depth}},
            init,
        )
        at_width = "" if width == self.base_width else f"_w{width}"
        key = f"{method}{at_width}_d{depth}" if not epochs else f"{method}_{epochs}ep{at_width}_d{depth}"
        title = f"Des-Net depth {depth}" + (f", width {width}" if at_width else "") + f", {method}"
        title += f", {epochs} epochs (budget study)" if epochs else ""
        role = "budget" if epochs else "recipe"
        return TrainStep(key, title, self.out_dir / "desnets" / key, settings, method, depth, width, role)

    def des_net_recipe(self, method: str, depth: int) -> dict[str, Any]:
        """The ``sws train`` settings of ``method``'s Des-Nets of ``depth`` layers: ``des_net.epochs``
        and ``des_net.train``, then the method's own, then the method's ``at_depth`` entry for that
        depth, where one depth trains best with other flags (the Fashion-MNIST study's depth 4,
        shallower than the five stages it is expanded from, takes a larger learning rate). A method
        may train its own number of epochs (the Fashion-MNIST study's short scratch runs)."""
        des = self.config["des_net"]
        own = dict((des.get("methods") or {}).get(method) or {})
        at_depth = own.pop("at_depth", None) or {}
        where = f"the config's des_net.methods.{method}"
        return merge_settings({"epochs": des["epochs"]}, des.get("train"), own, at_depth.get(depth), where=where)

    def des_net_epochs(self, method: str, depth: int) -> int:
        """How many epochs ``method``'s Des-Net of ``depth`` layers trains with the recipe."""
        return int(self.des_net_recipe(method, depth)["epochs"])

    def _width_lr(self, recipe: dict[str, Any], width: int) -> dict[str, Any] | None:
        """At another width than the Aux-Net's, the recipe's learning rate times ``base / width``
        (the config's ``des_net.width_lr_scaling``, on by default): AdamW's step for a wider layer
        should shrink with its width (as muP prescribes), or fine-tuning a grown Des-Net undoes the
        function it started from. Every method at that width gets the same rule."""
        if width == self.base_width or not self.config["des_net"].get("width_lr_scaling", True):
            return None
        lr = {**self._common(), **recipe}.get("lr", DEFAULTS["lr"])
        return {"lr": float(lr) * self.base_width / width}

    def budget_steps(self, methods: Sequence[str], depths: Sequence[int]) -> list[TrainStep]:
        """The budget study (the config's ``budget`` section): at its depths (or ``all``), scratch (and
        ``scratch-kd`` when compared, unless ``baselines`` leaves it out) trained with a full budget of
        ``epochs``, and SWS fine-tuned for ``sws_epochs``, long enough to meet it."""
        budget = self.config.get("budget") or {}
        if not budget.get("epochs") or not {"sws", "scratch"} <= set(methods):
            return []
        chosen = depths if budget.get("depths") == "all" else [d for d in budget.get("depths") or [] if d in depths]
        full = [m for m in budget.get("baselines", BUDGET_BASELINES) if m in methods]
        steps = [self._budget_sws_step(d, budget.get("sws_epochs")) for d in chosen]
        steps += [self.des_net_step(m, d, epochs=int(budget["epochs"])) for d in chosen for m in full]
        return steps + self._budget_check_steps(budget, chosen)

    def _budget_check_steps(self, budget: dict[str, Any], chosen: Sequence[int]) -> list[TrainStep]:
        """``budget.check_depths`` (those of the budget study's depths): scratch trained twice the full
        budget there, to see whether it is full (a scratch run still improving flatters SWS's ratio)."""
        epochs = 2 * int(budget["epochs"])
        return [self.des_net_step("scratch", d, epochs=epochs) for d in budget.get("check_depths") or [] if d in chosen]

    def _budget_sws_step(self, depth: int, sws_epochs: int | None) -> TrainStep:
        """The budget study's SWS run at ``depth``: the recipe's own run when it trains as long."""
        recipe_epochs = self.des_net_epochs("sws", depth)
        if not sws_epochs or int(sws_epochs) == recipe_epochs:
            return self.des_net_step("sws", depth)
        return self.des_net_step("sws", depth, epochs=int(sws_epochs))

    def plan(self, methods: Sequence[str], depths: Sequence[int]) -> Plan:
        """Every step of the study, each one's settings validated once, so that a bad value is
        refused before anything runs."""
        check_methods(methods)
        des_nets = [self.des_net_step(m, d, w) for w in self.widths for d in depths for m in methods]
        plan = Plan(self.source_steps(methods, depths), des_nets, self.budget_steps(methods, depths))
        for step in plan.all():
            step.validated()
        return plan

    # -- running --------------------------------------------------------------------------------

    def run(self, methods: Sequence[str], depths: Sequence[int], processes: Processes | None = None) -> Results | None:
        """Make every missing artifact, train every Des-Net, and (rank 0) write the report. Under
        torchrun every process runs every training step; rank 0 alone writes files."""
        processes = processes or Processes(torch.device("cpu"))
        plan = self.plan(methods, depths)
        check_unchanged(plan.all())
        extracts = "learngene" in self.needed_sources(methods, depths)
        total = len(plan.all()) + int(extracts)
        started = time.perf_counter()
        index = 0
        for step in plan.all():
            index += 1
            self._run_step(step, f"[step {index}/{total} {_clock(started)}]")
            if step.key == "aux" and step.out_dir == self.source.run_dir / "aux":
                index += 1
                if processes.is_main:
                    self.source.extract_learngene(f"[step {index}/{total} {_clock(started)}]", self.log)
                barrier(processes)
        if not processes.is_main:
            return None
        results = self.collect(methods, depths, plan)
        write_report(results, self.out_dir)
        self.log(f"[{_clock(started)}] report: {self.out_dir / 'report.md'}")
        return results

    def _run_step(self, step: TrainStep, prefix: str) -> None:
        prefix = f"{prefix} {step.title}"
        if step.done:
            self.log(f"{prefix}: done, skipped ({step.out_dir})")
            return
        args = step.validated()
        if step.interrupted:
            args = argparse.Namespace(**{**vars(args), "resume": "auto"})
            self.log(f"{prefix}: resuming from {step.out_dir / 'checkpoint.pth'}")
        else:
            self.log(f"{prefix} -> {step.out_dir}")
        train(args)

    def extract_learngene(self, prefix: str, log: Callable[..., None]) -> None:
        path = self.own_source_path("learngene")
        prefix = f"{prefix} extract the learngene"
        if path.is_file():
            log(f"{prefix}: done, skipped ({path})")
            return
        saved = self.run_dir / "aux" / "learngene.safetensors"  # what the Aux-Net's run left
        gene = load_learngene(saved) if saved.is_file() else extract(self.run_dir / "aux" / "checkpoint.pth")
        gene.save(path)
        log(f"{prefix} -> {path} ({gene.num_params:,} parameters, layout {gene.layout})")

    def collect(self, methods: Sequence[str], depths: Sequence[int], plan: Plan) -> Results:
        """Everything the report needs, from the steps' summaries and the source files."""
        teacher = self.source.teacher_step()
        steps = [teacher] if teacher is not None else []
        sources = {step.key: step.record() for step in [*steps, *plan.sources] if step.done}
        return Results(
            meta=self._meta(methods, depths),
            sources=sources,
            records=[step.record() for step in plan.des_nets],
            budget=[step.record() for step in plan.budget],
            stored_params=self.stored_parameters(methods, depths),
            pretraining_flops=self.pretraining_flops(methods, depths, sources),
        )

    def _meta(self, methods: Sequence[str], depths: Sequence[int]) -> dict[str, Any]:
        train = merge_settings(self.config.get("train"))
        meta = {
            **data_of(self.config),
            "input_size": self.config.get("input_size"),
            "train_subset": train.get("train_subset"),
            "holdout": train.get("holdout"),
            "seed": self.config.get("seed", 0),
            "depths": list(depths),
            "widths": self.widths,
            "base_width": self.base_width,
            "methods": list(methods),
            "des_net_epochs": self.config["des_net"]["epochs"],
            "layout": self.config["aux"].get("layout"),
        }
        if self.across_data_sets:
            meta["source"] = {**data_of(self.source.config), "run_dir": str(self.source.run_dir)}
        return meta

    def stored_parameters(self, methods: Sequence[str], depths: Sequence[int]) -> dict[str, int]:
        """Parameters each method keeps to initialize every Des-Net of the study (every depth and
        width): the distinct sources it reads, counted once each. Where the recipe inherits more
        layers at one depth (``at_depth``), the largest slice is what serves them all."""
        stored = {}
        for name in methods:
            method = METHODS[name]
            inherited = [self.des_net_recipe(name, d).get("inherit_layers") for d in depths]
            given = [int(layers) for layers in inherited if layers is not None]
            options = InitOptions(inherit_layers=max(given) if given else None)
            keys = {self.source_key(name, d, w) for d in depths for w in self.widths}
            paths = [self.source_path(key) for key in keys if key is not None] or [None]
            stored[name] = sum(method.stored_params(path, options) for path in paths)
        return stored

    def pretraining_flops(
        self, methods: Sequence[str], depths: Sequence[int], sources: dict[str, RunRecord]
    ) -> dict[str, float | None]:
        """Training FLOPs each method spends on the source data before its Des-Nets train: every
        distinct source it reads, trained in the source study (an Aux-Net with its teacher's forward
        passes, a pre-trained model of every size); the teacher's own training is counted apart.
        ``None`` where a source was given from outside (its cost is not known here)."""
        flops: dict[str, float | None] = {}
        for name in methods:
            keys = {self.source_key(name, d, w) for d in depths for w in self.widths} - {None}
            if keys & set(self.given):
                flops[name] = None
                continue
            steps = [self.source.source_step(key) for key in keys]
            flops[name] = float(sum(sources[s.key].flops for s in steps if s.key in sources))
        return flops


def _size_order(key: str) -> tuple[int, ...]:
    return tuple(int(part) for part in key.partition("@")[2].split("x"))


def check_unchanged(steps: Sequence[TrainStep]) -> None:
    """Refuse, before anything runs, a run folder whose finished or interrupted steps were trained
    with other settings than the config gives now: skipping them would report the old recipe's
    results as the new one's, and resuming them would mix two recipes in one run."""
    stale = [(step, changed) for step in steps if (changed := step.changed_flags())]
    if not stale:
        return
    lines = [
        f"  {step.out_dir}: "
        + ", ".join(f"{flag_of(key)} {then!r} then, {now!r} now" for key, (then, now) in changed.items())
        for step, changed in stale
    ]
    raise ConfigError(
        "these steps already ran with other flags than the config gives now:\n"
        + "\n".join(lines)
        + "\ngive another --output_dir for the new recipe, or delete those folders to retrain them (the other "
        "steps are kept)"
    )


def _clock(started: float) -> str:
    seconds = int(time.perf_counter() - started)
    return f"{seconds // 60}:{seconds % 60:02d}"


__all__ = ["Plan", "Study", "TrainStep"]

"""``sws compare``: Des-Nets of several depths initialized in several ways, trained alike, reported.

A thin command line over the study engine (``sws.study``). Methods (``sws.initialization.METHODS``):
``sws`` (the learngene, grown or shrunk to ``--widths``), ``sws-per-width`` (an Aux-Net distilled at
each width), ``tleg`` (TLEG's linear expansion), ``select`` (evenly spaced layers of a full
pre-trained ViT), ``inherit`` (its last layers on random ones), ``pretrain-finetune`` (a model of
every size pre-trained on the source data), ``scratch`` and ``scratch-kd`` (scratch, trained with
the teacher). Give a pipeline run folder and what a method needs is reused from it or trained into
it with its recipe (a TLEG Aux-Net, a full-depth ancestry ViT, a pre-trained model of every size);
or give the files::

    sws compare --run-dir runs/pipeline --methods sws,tleg,select,scratch
    sws compare --learngene small.learngene.safetensors --data-path DIR --depths 6,8,12 --epochs 10 \\
        --methods sws,scratch --output_dir runs/compare

**On data the sources never saw.** Given a run folder and another data set (``--data-set``,
``--data-path``), the Des-Nets train on that target while every source stays the run's own,
planned and checked with the run's config: the learngene, the TLEG learngene, the ancestry and the
pre-trained models of every size are reused (or trained there, on the source data), and the
Des-Nets get a new classifier. The target takes its own image size when it has one (the position
embedding is resampled), else the source's::

    sws compare --run-dir runs/fashion --data-set MNIST5K --methods sws,scratch,pretrain-finetune --epochs 6

It writes ``report.md``, ``results.json``, ``top1_vs_epoch.png``, ``top1_vs_params.png`` and, with a
budget study, ``top1_vs_flops.png`` (see ``sws.report``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sws.data import native_size
from sws.distributed import run_processes
from sws.errors import ConfigError
from sws.extraction import load_learngene
from sws.fileio import run_folder
from sws.initialization import METHODS, check_methods
from sws.parsing import Parser
from sws.records import Results
from sws.study import Study
from sws.study_config import (
    add_study_arguments,
    apply_data_flags,
    data_of,
    load_config,
    resolve_config,
    set_des_net_epochs,
    validate_config,
)

SOURCE_FLAGS = ("learngene", "tleg_learngene", "ancestry", "teacher")
# settings of a run's `train` section that belong to its data, not to the recipe
DATA_SETTINGS = ("train_subset", "train-subset", "holdout", "num_classes", "num-classes")


def build_parser() -> Parser:
    p = Parser(
        prog="sws compare",
        description="Compare ways to initialize Des-Nets of several depths, on the run's data or another data set; "
        "writes report.md, results.json, plots.",
    )
    p.add_argument("--run-dir", default=None, help="a pipeline run folder: reuse (or add) its teacher and sources")
    p.add_argument("--learngene", default=None, help="SWS learngene file (instead of the run folder's)")
    p.add_argument("--tleg-learngene", default=None, help="TLEG learngene file")
    p.add_argument("--ancestry", default=None, help="full pre-trained ViT for select/inherit (checkpoint or folder)")
    p.add_argument("--teacher", default=None, help="teacher checkpoint, if sources must be trained")
    p.add_argument("--methods", default=None, help=f"comma-separated, from {','.join(METHODS)} (default sws,scratch)")
    p.add_argument("--epochs", default=None, help="epochs of every Des-Net")
    add_study_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    methods = check_methods(m.strip() for m in (args.methods or "sws,scratch").split(","))
    run_dir = _run_dir(args)
    source_config = _source_config(run_dir)
    config = _config(args, run_dir, source_config)
    out_dir = _out_dir(args, run_dir, methods, config, source_config)
    sources = {key: getattr(args, key) for key in SOURCE_FLAGS}
    study = make_study(config, run_dir, out_dir, sources, source_config)
    study.plan(methods, config["depths"])
    if args.print_config:
        print(yaml.safe_dump(config, sort_keys=False))
        return 0
    compare(config, methods, run_dir, out_dir, sources, source_config)
    return 0


def _run_dir(args: argparse.Namespace) -> Path:
    """The run folder whose sources are reused (``--run-dir``, else the ``--output_dir``)."""
    if args.run_dir is not None:
        run_dir = Path(args.run_dir)
        if not run_dir.is_dir():
            what = "is a file" if run_dir.exists() else "does not exist"
            raise ConfigError(
                f"--run-dir {run_dir} {what}; give the folder of a `sws pipeline` run, or --output_dir to start anew"
            )
        return run_dir
    if args.output_dir is None:
        raise ConfigError("give --run-dir (a pipeline run) or --output_dir (where to train and report)")
    return Path(args.output_dir)


def _source_config(run_dir: Path) -> dict[str, Any] | None:
    """The config a run folder was made with (its ``pipeline.yaml``), or ``None``."""
    saved = run_dir / "pipeline.yaml"
    return load_config(saved) if saved.is_file() else None


def _config(args: argparse.Namespace, run_dir: Path, source_config: dict[str, Any] | None) -> dict[str, Any]:
    """The Des-Nets' config: the run folder's own (or ``--config``), the data flags, on other data
    the target's own image size and none of the source's data settings, Des-Nets shaped like a given
    learngene, then the other flags."""
    saved = run_dir / "pipeline.yaml"

    def on_target(config: dict[str, Any]) -> dict[str, Any]:
        config = apply_data_flags(config, args)
        if source_config is not None and data_of(config) != data_of(source_config):
            config = for_other_data(config)
        return _fit_to_learngene(config, args.learngene) if args.learngene else config

    config = resolve_config(args, saved if saved.is_file() else None, prepare=on_target)
    if args.epochs is not None:
        set_des_net_epochs(config, _epochs(args.epochs))
    validate_config(config)
    return config


def for_other_data(config: dict[str, Any]) -> dict[str, Any]:
    """A source run's config turned to another data set: the target's own image size when it has
    one (else the source's), no subset, hold-out or class count of the source's data, and no budget
    study (the source's measured its own data; ``--set budget=...`` asks for one on the target)."""
    size = native_size(config.get("data_set"))
    if size is not None:
        config["input_size"] = size
    train = config.get("train") or {}
    config["train"] = {key: value for key, value in train.items() if key not in DATA_SETTINGS}
    config["budget"] = {}
    return config


def _epochs(text: str) -> int:
    if not text.strip().isdecimal() or int(text) < 1:
        raise ConfigError(f"--epochs {text}: give a whole number of epochs, at least 1")
    return int(text)


def _out_dir(
    args: argparse.Namespace,
    run_dir: Path,
    methods: Sequence[str],
    config: dict[str, Any],
    source_config: dict[str, Any] | None,
) -> Path:
    """Where the comparison writes: ``--output_dir``, else a folder of the run named by the methods
    (and the target data, on other data)."""
    if args.output_dir:
        return Path(args.output_dir)
    name = f"compare_{'_'.join(methods)}"
    if source_config is not None and data_of(config) != data_of(source_config):
        name += f"_on_{Path(str(config.get('data_set'))).name.lower()}"
    return run_dir / name


def _fit_to_learngene(config: dict[str, Any], path: str) -> dict[str, Any]:
    """Des-Nets take the width, heads and patch size of the given learngene."""
    gene = load_learngene(path)
    a = gene.architecture
    kwargs = dict(config["aux"].get("model_kwargs") or {})
    kwargs.update(embed_dim=a.embed_dim, num_heads=a.num_heads, mlp_ratio=a.mlp_ratio, patch_size=a.patch_size)
    config["aux"]["model_kwargs"] = kwargs
    if getattr(gene, "layout", None) is not None:
        config["aux"]["layout"] = str(gene.layout)
    return config


def make_study(
    config: dict[str, Any],
    run_dir: str | Path,
    out_dir: str | Path,
    sources: dict[str, str | None] | None = None,
    source_config: dict[str, Any] | None = None,
    log: Any = print,
) -> Study:
    """The study of ``config``'s Des-Nets in ``out_dir``, its sources in ``run_dir``: the run's own
    study when both train on the same data, else a target study whose source is the run's."""
    if source_config is None or data_of(source_config) == data_of(config):
        return Study(config, run_dir, out_dir, sources, log=log)
    source = Study(source_config, run_dir, log=log)
    return Study(config, out_dir, out_dir, sources, log=log, source=source)


def compare(
    config: dict[str, Any],
    methods: Sequence[str],
    run_dir: str | Path,
    out_dir: str | Path,
    sources: dict[str, str | None] | None = None,
    source_config: dict[str, Any] | None = None,
) -> Results | None:
    """Train every (depth, method) Des-Net of ``config`` and write the report; returns the results."""
    with run_processes(config.get("device", "auto")) as processes, run_folder(out_dir, processes.is_main):
        study = make_study(config, run_dir, out_dir, sources, source_config, log=processes.print)
        return study.run(methods, config["depths"], processes)


__all__ = ["compare", "for_other_data", "main", "make_study"]

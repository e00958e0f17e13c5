"""``sws compare``: Des-Nets of several depths initialized in several ways, trained alike, reported.

A thin command line over the study engine (``sws.study``). Methods (``sws.initialization.METHODS``):
``sws`` (the learngene, grown or shrunk to ``--widths``), ``sws-per-width`` (an Aux-Net distilled at
each width), ``tleg`` (TLEG's linear expansion), ``select`` (evenly spaced layers of a full
pre-trained ViT), ``inherit`` (its last layers on random ones), ``scratch`` and ``scratch-kd``
(scratch, trained with the teacher). Give a pipeline
run folder and what a method needs is reused from it or trained into it with the Aux-Net's recipe
(a TLEG Aux-Net, a full-depth ancestry ViT); or give the files::

    sws compare --run-dir runs/pipeline --methods sws,tleg,select,scratch
    sws compare --learngene small.learngene.safetensors --data-path DIR --depths 6,8,12 --epochs 10 \\
        --methods sws,scratch --output_dir runs/compare

It writes ``report.md``, ``results.json``, ``top1_vs_epoch.png``, ``top1_vs_params.png`` and, with a
budget study, ``top1_vs_flops.png`` (see ``sws.report``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sws.distributed import run_processes
from sws.errors import ConfigError
from sws.extraction import load_learngene
from sws.fileio import run_folder
from sws.initialization import METHODS, check_methods
from sws.parsing import Parser
from sws.study import Study
from sws.study_config import add_study_arguments, resolve_config, set_des_net_epochs, validate_config

SOURCE_FLAGS = ("learngene", "tleg_learngene", "ancestry", "teacher")


def build_parser() -> Parser:
    p = Parser(
        prog="sws compare",
        description="Compare ways to initialize Des-Nets of several depths; writes report.md, results.json, plots.",
    )
    p.add_argument("--run-dir", default=None, help="a pipeline run folder: reuse (or add) its teacher and sources")
    p.add_argument("--learngene", default=None, help="SWS learngene file (instead of the run folder's)")
    p.add_argument("--tleg-learngene", default=None, help="TLEG learngene file")
    p.add_argument("--ancestry", default=None, help="full pre-trained ViT for select/inherit (checkpoint or folder)")
    p.add_argument("--teacher", default=None, help="teacher checkpoint, if sources must be trained")
    p.add_argument("--methods", default=None, help=f"comma-separated, from {','.join(METHODS)} (default sws,scratch)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of every Des-Net")
    add_study_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_dir, out_dir = _folders(args)
    config = _config(args, run_dir)
    methods = check_methods(m.strip() for m in (args.methods or "sws,scratch").split(","))
    sources = {key: getattr(args, key) for key in SOURCE_FLAGS}
    Study(config, run_dir, out_dir, sources).plan(methods, config["depths"])
    if args.print_config:
        print(yaml.safe_dump(config, sort_keys=False))
        return 0
    compare(config, methods, run_dir, out_dir, sources)
    return 0


def _folders(args: argparse.Namespace) -> tuple[Path, Path]:
    """The run folder whose sources are reused, and the folder the comparison writes."""
    if args.run_dir is not None:
        run_dir = Path(args.run_dir)
        if not run_dir.is_dir():
            what = "is a file" if run_dir.exists() else "does not exist"
            raise ConfigError(
                f"--run-dir {run_dir} {what}; give the folder of a `sws pipeline` run, or --output_dir to start anew"
            )
    elif args.output_dir is None:
        raise ConfigError("give --run-dir (a pipeline run) or --output_dir (where to train and report)")
    else:
        run_dir = Path(args.output_dir)
    methods = (args.methods or "sws,scratch").replace(",", "_")
    out_dir = Path(args.output_dir) if args.output_dir else run_dir / f"compare_{methods}"
    return run_dir, out_dir


def _config(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """The run folder's own config when it has one, then the flags; Des-Nets shaped like the given
    learngene."""
    saved = run_dir / "pipeline.yaml"
    config = resolve_config(args, saved if saved.is_file() else None)
    if args.epochs is not None:
        set_des_net_epochs(config, args.epochs)
    if args.learngene:
        config = _fit_to_learngene(config, args.learngene)
    validate_config(config)
    return config


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


def compare(
    config: dict[str, Any],
    methods: Sequence[str],
    run_dir: str | Path,
    out_dir: str | Path,
    sources: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Train every (depth, method) Des-Net of ``config`` and write the report; returns the results."""
    with run_processes(config.get("device", "auto")) as processes, run_folder(out_dir, processes.is_main):
        study = Study(config, run_dir, out_dir, sources, log=processes.print)
        return study.run(methods, config["depths"], processes)


__all__ = ["compare", "main"]

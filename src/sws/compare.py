"""``sws compare``: Des-Nets of several depths, initialized by several methods, trained alike, reported.

Methods: ``sws`` (expand the learngene), ``tleg`` (expand a TLEG learngene), ``select`` (evenly
spaced layers of a full pre-trained ViT), ``inherit`` (its last layers on random ones) and
``scratch``. Give a pipeline run folder and what a method needs is reused from it or trained into
it with the Aux-Net's recipe (a TLEG Aux-Net, a full-depth ancestry ViT); or give the files::

    sws compare --run-dir runs/pipeline --methods sws,tleg,select,scratch
    sws compare --learngene small.learngene.safetensors --data-path DIR --depths 6,8,12 --epochs 10 \\
        --methods sws,scratch --output_dir runs/compare

It writes ``report.md``, ``results.json``, ``top1_vs_epoch.png`` and ``top1_vs_params.png`` (see
``sws.report``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sws.errors import ConfigError
from sws.pipeline import Study, add_study_arguments, resolve_config
from sws.study_config import METHODS, validate_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    config = _config(args)
    if args.print_config:
        print(yaml.safe_dump(config, sort_keys=False))
        return 0
    methods = [m.strip() for m in (args.methods or "sws,scratch").split(",") if m.strip()]
    compare(
        config,
        methods,
        run_dir=args.run_dir,
        out_dir=args.output_dir,
        sources={
            "learngene": args.learngene,
            "tleg_learngene": args.tleg_learngene,
            "ancestry": args.ancestry,
            "teacher": args.teacher,
        },
    )
    return 0


def _config(args: argparse.Namespace) -> dict[str, Any]:
    saved = Path(args.run_dir) / "pipeline.yaml" if args.run_dir else None
    if saved is not None and saved.is_file() and args.config is None:
        args.config = str(saved)
    output_dir = args.output_dir
    args.output_dir = None  # the study's output folder is handled by compare(), not the config
    config = resolve_config(args)
    args.output_dir = output_dir
    if args.epochs is not None:
        config["des_net"]["epochs"] = args.epochs
    if args.learngene:
        config = _fit_to_learngene(config, args.learngene)
    validate_config(config)
    return config


def _fit_to_learngene(config: dict[str, Any], path: str) -> dict[str, Any]:
    """Des-Nets take the width, heads and patch size of the given learngene."""
    from sws.learngene import load_learngene

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
    run_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    sources: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Train every (depth, method) Des-Net of ``config`` and write the report; returns the results."""
    from sws.distributed import init_processes, shutdown

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown --methods {unknown}; choose from {','.join(METHODS)}")
    if run_dir is None and out_dir is None:
        raise ConfigError("give --run-dir (a pipeline run) or --output_dir (where to train and report)")
    run_dir = Path(run_dir) if run_dir else Path(out_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / f"compare_{'_'.join(methods)}"
    processes = init_processes(config.get("device", "auto"))
    try:
        log = print if processes.is_main else (lambda *a, **k: None)
        study = Study(config, run_dir, out_dir, sources={k: v for k, v in (sources or {}).items() if v}, log=log)
        return study.run(methods, config["depths"], processes)
    finally:
        shutdown(processes)


__all__ = ["compare", "main"]

"""``sws pipeline``: the whole SWS pipeline, and the same Des-Nets trained from scratch, in one command.

A thin command line over the study engine (``sws.study``): teacher, Aux-Net, learngene, Des-Nets
of every depth by every method of the config (``sws`` and ``scratch`` by default), and the report.
Re-running the same command skips what is done and resumes what was interrupted.

Run it::

    sws pipeline                                        # built-in MNIST5K, a few minutes on a laptop
    sws pipeline --data-path DIR                        # any ImageFolder with train/ and val/
    torchrun --nproc_per_node=4 -m sws pipeline --config paper_imagenet --data-path /data/imagenet \\
        --set teacher.path=levit_384.pth                # the paper's setting
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sws.distributed import run_processes
from sws.fileio import run_folder, write_text_atomic
from sws.parsing import Parser
from sws.records import Results
from sws.study import Study
from sws.study_config import add_study_arguments, resolve_config

DEFAULT_RUN_DIR = "runs/pipeline"


def build_parser() -> Parser:
    p = Parser(
        prog="sws pipeline",
        description="Teacher, Aux-Net, learngene, Des-Nets of several depths and the same Des-Nets from scratch, "
        "with a report. Re-running resumes.",
    )
    add_study_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = resolve_config(args)
    if args.output_dir:
        config["output_dir"] = args.output_dir
    methods = config.get("methods") or ["sws", "scratch"]
    Study(config, config.get("output_dir") or DEFAULT_RUN_DIR).plan(methods, config["depths"])
    if args.print_config:
        print(yaml.safe_dump(config, sort_keys=False))
        return 0
    run_pipeline(config)
    return 0


def run_pipeline(config: dict[str, Any]) -> Results | None:
    """Run the whole pipeline of ``config`` in its ``output_dir``; returns the results."""
    run_dir = Path(config.get("output_dir") or DEFAULT_RUN_DIR)
    with run_processes(config.get("device", "auto")) as processes, run_folder(run_dir, processes.is_main):
        if processes.is_main:
            write_text_atomic(run_dir / "pipeline.yaml", yaml.safe_dump(config, sort_keys=False))
        study = Study(config, run_dir, log=processes.print)
        return study.run(config.get("methods") or ["sws", "scratch"], config["depths"], processes)

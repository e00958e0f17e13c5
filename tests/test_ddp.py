"""DDP on CPU: two gloo processes under torchrun train an epoch in lockstep."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import FAST, TINY_VIT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """Two gloo processes on this CPU, one thread each, on a free port."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "PYTHONPATH": str(Path(__file__).parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    command = [sys.executable, *launcher, f"--master_port={_free_port()}", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_processes_train_identically_and_see_the_whole_data_set(image_folder, tmp_path) -> None:
    run = tmp_path / "run"
    worker = Path(__file__).with_name("ddp_worker.py")
    args = f"--model aux_net --layout 2,1 --data-path {image_folder} --epochs 1 --no-repeated-aug --output_dir {run}"
    result = torchrun(str(worker), str(tmp_path), *args.split(), *TINY_VIT, *FAST)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    # 96 training images: each process saw half, and together the whole set
    assert ranks[0]["summary"]["train_images"] == 96
    # rank 0 alone writes the log, one record for the epoch
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0]
    assert records[0]["train_images"] == 96 and records[0]["eval_images"] == 24
    assert result.stdout.count("sws train:") == 1  # only rank 0 prints


def test_the_pipeline_runs_under_torchrun(image_folder, tmp_path) -> None:
    from tests.test_pipeline import TINY

    run = tmp_path / "run"
    args = f"-m sws pipeline --data-path {image_folder} --output_dir {run} --set teacher.train.batch-size=16"
    result = torchrun(*args.split(), *TINY)
    results = json.loads((run / "results.json").read_text())
    assert len(results["records"]) == 4 and results["budget"]
    assert result.stdout.count("report:") == 1  # rank 0 reports, once
    summary = json.loads((run / "aux" / "summary.json").read_text())
    # 96 images split over 2 processes: 48 each, one full batch of 32 each (drop_last), 64 together
    assert summary["train_images"] == 64

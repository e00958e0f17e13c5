"""What training promises at scale and under failure, each shown by a run that could break it:
EMA and weights agree across processes, two processes equal one with twice the batch, resume is
exact for several processes, a kill in the middle of a checkpoint write loses nothing, and --eval
reports the checkpoint's own accuracy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from sws.checkpoint import load_checkpoint
from sws.train import train
from sws.train_config import parse_args
from tests.conftest import FAST, kill_at_line
from tests.test_ddp import torchrun
from tests.test_run_folder import interrupted_after

WORKER = str(Path(__file__).with_name("ddp_worker.py"))
INTERRUPTED_WORKER = str(Path(__file__).with_name("ddp_interrupted_worker.py"))
TINY_DES = ["--model", "des_net", "--model-kwargs", "depth=2", "embed_dim=32", "num_heads=2", "patch_size=4"]
# no random augmentation and no dropout, so that only the split of the batch differs between runs
DETERMINISTIC = ["--hflip", "0", "--crop-pad", "0", "--color-jitter", "0", "--no-repeated-aug", "--seed", "5"]
# a constant learning rate, whose schedule does not depend on the number of epochs
CONSTANT_LR = ["--sched", "step", "--decay-epochs", "100", "--lr", "1e-3", "--unscale-lr"]
# augmentation and mixup on, so that each process's random state matters on resume
RANDOM_AUG = ["--aa", "rand-m9-mstd0.5-inc1", "--reprob", "0.25", "--mixup", "0.8", "--seed", "3"]


def _ranks(folder: Path) -> list[dict]:
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def test_every_process_holds_the_same_ema_after_an_epoch(image_folder, tmp_path) -> None:
    args = [*TINY_DES, *FAST, "--data-path", str(image_folder), "--epochs", "1", "--no-repeated-aug"]
    torchrun(WORKER, str(tmp_path), *args, "--model-ema", "--model-ema-decay", "0.9")
    first, second = _ranks(tmp_path)
    for key, value in first["ema"].items():
        assert torch.equal(value, second["ema"][key]), key


def _one_process(image_folder, out, batch: int, *more: str) -> dict[str, torch.Tensor]:
    args = [*TINY_DES, *FAST, *DETERMINISTIC, *CONSTANT_LR, "--data-path", str(image_folder), "--epochs", "1"]
    return train(parse_args([*args, "--batch-size", str(batch), "--output_dir", str(out), *more])).model.state_dict()


def _two_processes(image_folder, out, batch: int, *more: str) -> dict[str, torch.Tensor]:
    args = [*TINY_DES, *FAST, *DETERMINISTIC, *CONSTANT_LR, "--data-path", str(image_folder), "--epochs", "1"]
    torchrun(WORKER, str(out.parent), *args, "--batch-size", str(batch), "--output_dir", str(out), *more)
    first, second = _ranks(out.parent)
    assert all(torch.equal(v, second["state"][k]) for k, v in first["state"].items())
    return first["state"]


def test_two_processes_update_like_one_with_twice_the_batch(image_folder, tmp_path) -> None:
    """AdamW, 6 updates: a gradient summed instead of averaged over processes would move the weights
    by a different amount."""
    for accumulation in ("1", "2"):
        folder = tmp_path / f"acc{accumulation}"
        folder.mkdir()
        one = _one_process(image_folder, folder / "one", 16, "--accumulation-step", accumulation)
        two = _two_processes(image_folder, folder / "two" / "run", 8, "--accumulation-step", accumulation)
        for key, value in one.items():
            assert torch.allclose(value, two[key], atol=2e-6, rtol=1e-5), (accumulation, key)


def test_resume_is_exact_with_several_processes(image_folder, tmp_path) -> None:
    args = [*TINY_DES, *FAST, *RANDOM_AUG, *CONSTANT_LR, "--data-path", str(image_folder), "--batch-size", "8"]
    torchrun(WORKER, str(tmp_path), *args, "--epochs", "2", "--output_dir", str(tmp_path / "whole"))
    resumed = tmp_path / "resumed"
    torchrun(INTERRUPTED_WORKER, "1", *args, "--epochs", "2", "--output_dir", str(resumed))
    assert load_checkpoint(resumed / "checkpoint.pth")["epoch"] == 0 and not (resumed / "summary.json").exists()
    torchrun(WORKER, str(tmp_path), *args, "--epochs", "2", "--output_dir", str(resumed), "--resume", "auto")
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pth")
    again = load_checkpoint(resumed / "checkpoint.pth")
    assert len(again["rng"]) == 2  # one random state per process
    assert [r["epoch"] for r in again["history"]] == [0, 1]
    for key, value in whole["model"].items():
        assert torch.equal(value, again["model"][key]), key


def test_ema_is_saved_and_restored_on_resume(image_folder, tmp_path) -> None:
    args = [*TINY_DES, *FAST, *CONSTANT_LR, "--data-path", str(image_folder), "--model-ema", "--model-ema-decay", "0.9"]
    whole = train(parse_args([*args, "--epochs", "2", "--output_dir", str(tmp_path / "whole")]))
    with interrupted_after(1):
        train(parse_args([*args, "--epochs", "2", "--output_dir", str(tmp_path / "resumed")]))
    resumed = train(parse_args([*args, "--epochs", "2", "--output_dir", str(tmp_path / "resumed"), "--resume", "auto"]))
    for key, value in whole.ema.state_dict().items():
        assert torch.equal(value, resumed.ema.state_dict()[key]), key
    assert not all(torch.equal(v, whole.model.state_dict()[k]) for k, v in whole.ema.state_dict().items())


def test_eval_reports_the_checkpoints_own_top1(image_folder, tmp_path) -> None:
    args = [*TINY_DES, *FAST, "--data-path", str(image_folder)]
    run = train(parse_args([*args, "--epochs", "2", "--output_dir", str(tmp_path / "run")]))
    evaluated = train(parse_args([*args, "--eval", "--resume", str(tmp_path / "run" / "checkpoint.pth")]))
    assert evaluated.summary["eval"]["top1"] == run.history[-1]["eval_top1"]
    assert evaluated.summary["eval"]["images"] == 24


# A child that dies by SIGKILL in the middle of writing its second checkpoint, as a machine that
# loses power would, leaving a half-written temporary file.
DYING_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    writes = 0
    real_save = torch.save

    def save_then_die(obj, f, *args, **kwargs):
        global writes
        writes += 1
        if writes == 2:  # f is the open temporary file
            f.write(b"PK\\x03\\x04 half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save_then_die
    from sws.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_a_kill_during_a_checkpoint_write_loses_nothing(image_folder, tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [*TINY_DES, *FAST, *RANDOM_AUG, "--data-path", str(image_folder), "--epochs", "3", "--batch-size", "8"]
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, "-m", "sws", "train", *args, "--output_dir", str(reference)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    killed = tmp_path / "killed"
    died = subprocess.run([sys.executable, "-c", DYING_WRITER, "train", *args, "--output_dir", str(killed)], env=env,
                          capture_output=True)  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    assert list(killed.glob(".checkpoint.pth.*.sws-tmp")), "the kill did not land inside the write"
    assert load_checkpoint(killed / "checkpoint.pth")["epoch"] == 0  # the last good checkpoint is whole
    resume = [sys.executable, "-m", "sws", "train", *args, "--output_dir", str(killed), "--resume", "auto"]
    subprocess.run(resume, env=env, check=True, capture_output=True)
    assert not [p.name for p in killed.rglob("*") if "tmp" in p.name]
    assert [r["epoch"] for r in load_checkpoint(killed / "checkpoint.pth")["history"]] == [0, 1, 2]
    expected = load_checkpoint(reference / "checkpoint.pth")["model"]
    for key, value in load_checkpoint(killed / "checkpoint.pth")["model"].items():
        assert torch.equal(value, expected[key]), key


def test_a_pipeline_step_killed_mid_training_resumes(image_folder, tmp_path) -> None:
    from tests.test_pipeline import TINY

    run = tmp_path / "run"
    command = [sys.executable, "-m", "sws", "pipeline", "--data-path", str(image_folder), "--output_dir", str(run),
               *TINY, "--depths", "1", "--set", "aux.train.epochs=3", "--set", "budget={epochs: 0}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    kill_at_line(command, env, "epoch 2/3 [")  # the teacher trains 1 epoch: this is the Aux-Net's second
    assert not (run / "aux" / "summary.json").exists()
    assert load_checkpoint(run / "aux" / "checkpoint.pth")["epoch"] == 0
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "Aux-Net 1,1, width 16: resuming from" in finished.stdout
    history = load_checkpoint(run / "aux" / "checkpoint.pth")["history"]
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert (run / "report.md").is_file()

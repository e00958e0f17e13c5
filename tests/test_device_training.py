"""Training on the device-resident path: the same run as through the DataLoader where it must be,
and every promise of the loop kept (NaN stop, exact resume, DDP sharding)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sws.checkpoint import load_checkpoint
from sws.cli import main
from sws.distill import DistillationLoss
from sws.train import train
from sws.train_config import parse_args
from tests.conftest import FAST, kill_at_line
from tests.test_ddp import torchrun
from tests.test_run_folder import interrupted_after

TINY_DES = ["--model", "des_net", "--model-kwargs", "depth=2", "embed_dim=32", "num_heads=2", "patch_size=4"]
BUILTIN = ["--data-set", "DIGITS", "--input-size", "8", "--model-kwargs", "depth=2", "embed_dim=32", "num_heads=2",
           "patch_size=4"]  # fmt: skip


def _digits_args(out: Path, *more: str) -> list[str]:
    return ["--model", "des_net", *FAST, *BUILTIN, "--epochs", "1", "--output_dir", str(out), *more]


def test_auto_holds_small_data_on_the_device_and_off_keeps_the_loader(image_folder, tmp_path, capsys) -> None:
    args = [*TINY_DES, *FAST, "--data-path", str(image_folder), "--epochs", "1"]
    assert main(["train", *args, "--output_dir", str(tmp_path / "a")]) == 0
    assert "on the device" in capsys.readouterr().out
    assert main(["train", *args, "--output_dir", str(tmp_path / "b"), "--data-on-device", "off"]) == 0
    assert "through a DataLoader" in capsys.readouterr().out


def test_eval_top1_is_identical_on_both_paths_for_the_same_weights(tmp_path) -> None:
    run = train(parse_args(_digits_args(tmp_path / "run")))
    checkpoint = str(tmp_path / "run" / "checkpoint.pth")
    on = train(parse_args([*_digits_args(tmp_path / "e1", "--eval", "--resume", checkpoint), "--data-on-device", "on"]))
    off = train(
        parse_args([*_digits_args(tmp_path / "e2", "--eval", "--resume", checkpoint), "--data-on-device", "off"])
    )
    assert on.summary["eval"]["top1"] == off.summary["eval"]["top1"] == run.history[-1]["eval_top1"]
    assert on.summary["eval"]["loss"] == pytest.approx(off.summary["eval"]["loss"], rel=1e-6)


def test_on_refuses_in_one_line_what_it_cannot_hold(image_folder, tmp_path, capsys) -> None:
    args = [*TINY_DES, *FAST, "--data-path", str(image_folder), "--epochs", "1", "--output_dir", str(tmp_path / "o")]
    assert main(["train", *args, "--data-on-device", "on", "--aa", "v0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data-on-device on:" in err[0], err
    assert main(["train", *args, "--aa", "v0"]) == 0  # auto falls back to the loader, saying why
    assert "data through the DataLoader" in capsys.readouterr().out


def test_a_nan_at_a_known_step_stops_the_run_and_keeps_the_checkpoint(image_folder, tmp_path, monkeypatch, capsys):
    args = [*TINY_DES, *FAST, "--data-path", str(image_folder), "--output_dir", str(tmp_path / "run"),
            "--batch-size", "8", "--print-freq", "3"]  # fmt: skip
    with interrupted_after(1):
        main(["train", *args, "--epochs", "3"])
    before = (tmp_path / "run" / "checkpoint.pth").read_bytes()
    real_forward, calls = DistillationLoss.forward, []

    def nan_at_step_5(self, inputs, outputs, labels):
        calls.append(1)
        loss = real_forward(self, inputs, outputs, labels)
        return loss * float("nan") if len(calls) == 5 else loss  # the resumed run starts at epoch 2

    monkeypatch.setattr(DistillationLoss, "forward", nan_at_step_5)
    assert main(["train", *args, "--epochs", "3", "--resume", "auto"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    # progress (and the check) every 4 steps: seen at step 8, the first non-finite loss at step 5
    assert "the training loss became nan at epoch 2, step 5 (seen at step 8)" in err, err
    assert (tmp_path / "run" / "checkpoint.pth").read_bytes() == before


@pytest.mark.parametrize("data_on_device", ["on", "off"])
def test_resume_after_sigkill_is_exact_on_both_paths(data_on_device, image_folder, tmp_path) -> None:
    extra = ["--mixup", "0.8", "--aa", "rand-m9-mstd0.5-inc1", "--reprob", "0.25", "--batch-size", "8",
             "--print-freq", "12", "--seed", "7", "--epochs", "3", "--data-on-device", data_on_device]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def command(out, *more):
        args = [*TINY_DES, *FAST, "--data-path", str(image_folder), "--output_dir", str(out), *extra, *more]
        return [sys.executable, "-m", "sws", "train", *args]

    subprocess.run(command(tmp_path / "reference"), env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    kill_at_line(command(killed), env, "epoch 2/3 [")
    assert [r["epoch"] for r in load_checkpoint(killed / "checkpoint.pth")["history"]] == [0]
    subprocess.run(command(killed, "--resume", "auto"), env=env, check=True, capture_output=True)
    resumed = load_checkpoint(killed / "checkpoint.pth")
    assert [r["epoch"] for r in resumed["history"]] == [0, 1, 2]
    for key, value in load_checkpoint(tmp_path / "reference" / "checkpoint.pth")["model"].items():
        assert torch.equal(resumed["model"][key], value), key


def test_a_ddp_epoch_on_the_device_sees_every_sample_once(image_folder, tmp_path) -> None:
    run = tmp_path / "run"
    worker = str(Path(__file__).with_name("ddp_worker.py"))
    args = [*TINY_DES, *FAST, "--data-path", str(image_folder), "--epochs", "1", "--no-repeated-aug",
            "--data-on-device", "on", "--output_dir", str(run)]  # fmt: skip
    result = torchrun(worker, str(tmp_path), *args)
    assert "on the device" in result.stdout
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    record = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    assert record["train_images"] == 96 and record["eval_images"] == 24


def test_compile_composes_with_weight_sharing_ema_distillation_and_resume(image_folder, tmp_path) -> None:
    """--compile on a weight-shared Aux-Net, with EMA and distillation, checkpointed and resumed."""
    teacher = tmp_path / "teacher"
    assert main(["train", "--model", "test_resnet", *FAST, "--data-path", str(image_folder), "--epochs", "1",
                 "--output_dir", str(teacher)]) == 0  # fmt: skip
    run = tmp_path / "aux"
    args = ["train", "--model", "aux_net", "--layout", "2,1", "--model-kwargs", "embed_dim=16", "num_heads=2",
            "patch_size=4", *FAST, "--data-path", str(image_folder), "--compile", "--model-ema",
            "--model-ema-decay", "0.9", "--teacher-model", "test_resnet", "--teacher-path",
            str(teacher / "checkpoint.pth"), "--distillation-type", "soft", "--output_dir", str(run)]  # fmt: skip
    with interrupted_after(1):
        main([*args, "--epochs", "2"])
    assert main([*args, "--epochs", "2", "--resume", "auto"]) == 0
    checkpoint = load_checkpoint(run / "checkpoint.pth")
    assert [r["epoch"] for r in checkpoint["history"]] == [0, 1]
    assert "_orig_mod" not in "".join(checkpoint["model"])  # the plain module's names: loads without compile
    assert (
        checkpoint["model"]["blocks.1.attn.qkv.weight"].data_ptr()
        == checkpoint["model"]["blocks.0.attn.qkv.weight"].data_ptr()
    )
    ema = checkpoint["model_ema"]
    assert all(torch.isfinite(v).all() for v in ema.values())
    assert any(not torch.equal(ema[k], v) for k, v in checkpoint["model"].items() if k in ema)
    assert (run / "learngene.safetensors").is_file()

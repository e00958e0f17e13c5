"""A run's folder is never overwritten by accident: ``sws train`` in a folder that holds a finished
or interrupted run does nothing, continues it, or refuses in one line naming what differs; a resumed
run keeps one recipe and one model."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

import sws.train
from sws.checkpoint import load_checkpoint, save_checkpoint
from sws.cli import main
from sws.learngene import Learngene
from sws.run_files import changed_settings, saved_form
from sws.train import train
from sws.train_config import parse_args
from tests.conftest import FAST, TINY_VIT
from tests.test_files_and_errors import snapshot


class Interrupted(Exception):
    """What stops a run in these tests where a kill would stop it in life."""


@contextlib.contextmanager
def interrupted_after(epochs: int) -> Iterator[None]:
    """The run in this block stops once ``epochs`` epochs are saved, leaving its folder as a kill
    would (a checkpoint, no summary)."""
    real = sws.train.train_one_epoch

    def train_until(model, loader, opt, epoch, *args, **kwargs):
        if epoch >= epochs:
            raise Interrupted(epoch)
        return real(model, loader, opt, epoch, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sws.train, "train_one_epoch", train_until)
        with pytest.raises(Interrupted):
            yield


def des_args(data: Path, out: Path, epochs: int = 1, *more: str) -> list[str]:
    model = ["--model", "des_net", "--model-kwargs", "depth=1", "embed_dim=32", "num_heads=2", "patch_size=4"]
    return [*model, *FAST, "--data-path", str(data), "--epochs", str(epochs), "--output_dir", str(out), *more]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, image_folder) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    train(parse_args(des_args(image_folder, run)))
    return run


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    """A copy of a finished one-epoch run, for a test to change."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if "Warning" not in line]
    assert len(lines) == 1 and lines[0].startswith("sws: error: "), lines
    return lines[0]


def test_a_finished_run_with_the_same_flags_is_left_as_it_is(run, image_folder, capsys) -> None:
    before = snapshot(run)
    result = train(parse_args(des_args(image_folder, run)))
    assert snapshot(run) == before
    assert "holds this run, finished at top-1" in capsys.readouterr().out
    assert result.summary == json.loads((run / "summary.json").read_text())
    assert result.history == load_checkpoint(run / "checkpoint.pth")["history"]
    saved = load_checkpoint(run / "checkpoint.pth")["model"]
    assert all(torch.equal(v, saved[k]) for k, v in result.model.state_dict().items())
    assert main(["train", *des_args(image_folder, run, 1, "--resume", "auto", "--print-freq", "5")]) == 0
    assert snapshot(run) == before


def test_a_finished_run_is_not_trained_again_with_other_flags(run, image_folder, capsys) -> None:
    before = snapshot(run)
    assert main(["train", *des_args(image_folder, run, 1, "--seed", "5")]) == 2
    line = _error_line(capsys)
    assert "holds a finished run made with other flags (--seed 0 then, 5 now)" in line and "--overwrite" in line
    assert snapshot(run) == before


def test_overwrite_removes_the_summary_before_anything_else(run, image_folder, monkeypatch) -> None:
    """The summary means "done" to a pipeline: a kill just after the start must not leave it beside
    the checkpoint that the new run is about to replace."""
    before = snapshot(run)

    def killed(*args, **kwargs):
        raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(sws.train, "build_run", killed)
        with pytest.raises(Interrupted):
            main(["train", *des_args(image_folder, run, 1, "--seed", "5", "--overwrite")])
    assert not (run / "summary.json").exists()
    assert snapshot(run) == {k: v for k, v in before.items() if k != "summary.json"}
    assert main(["train", *des_args(image_folder, run, 1, "--seed", "5", "--overwrite")]) == 0
    assert [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()] == [0]
    assert load_checkpoint(run / "checkpoint.pth")["args"]["seed"] == 5


def test_an_interrupted_run_continues_only_with_resume_and_its_own_flags(image_folder, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    with interrupted_after(1):
        train(parse_args(des_args(image_folder, run, 2)))
    assert not (run / "summary.json").exists()
    capsys.readouterr()
    assert main(["train", *des_args(image_folder, run, 2)]) == 2
    line = _error_line(capsys)
    assert "holds an interrupted run" in line and "--resume auto continues it" in line and "--overwrite" in line
    assert main(["train", *des_args(image_folder, run, 3, "--resume", "auto")]) == 2
    assert "made with other flags (--epochs 2 then, 3 now)" in _error_line(capsys)
    assert main(["train", *des_args(image_folder, run, 2, "--resume", "auto", "--overwrite")]) == 2
    assert "give one of them" in _error_line(capsys)
    # flags that change how the run goes, not what it learns, may differ
    assert main(["train", *des_args(image_folder, run, 2, "--resume", "auto", "--print-freq", "3")]) == 0
    assert [r["epoch"] for r in load_checkpoint(run / "checkpoint.pth")["history"]] == [0, 1]


def test_a_checkpoint_written_with_other_flags_is_not_resumed(finished_run, image_folder, tmp_path, capsys) -> None:
    other = des_args(
        image_folder, tmp_path / "other", 1, "--lr", "1e-3", "--resume", str(finished_run / "checkpoint.pth")
    )
    assert main(["train", *other]) == 2
    line = _error_line(capsys)
    assert "checkpoint.pth was written with other flags (--lr 0.0005 then, 0.001 now)" in line, line
    assert not (tmp_path / "other").exists()


def _aux_args(data: Path, out: Path, layout: str, *more: str) -> list[str]:
    return ["--model", "aux_net", "--layout", layout, *TINY_VIT, *FAST, "--data-path", str(data), "--epochs", "1",
            "--output_dir", str(out), *more]  # fmt: skip


@pytest.mark.parametrize("how", ["resume", "eval", "resume an older checkpoint"])
def test_another_models_checkpoint_is_refused_even_when_its_shapes_load(how, image_folder, tmp_path, capsys) -> None:
    """Aux-Nets of layouts 2,1 and 1,2 list the same tensors of the same shapes, shared differently."""
    source = tmp_path / "source"
    train(parse_args(_aux_args(image_folder, source, "2,1")))
    checkpoint = source / "checkpoint.pth"
    if how == "resume an older checkpoint":  # no flags saved: only the model can be compared
        state = load_checkpoint(checkpoint, "resume")
        del state["args"]
        save_checkpoint(checkpoint, state)
    more = ["--eval"] if how == "eval" else []
    capsys.readouterr()
    assert main(["train", *_aux_args(image_folder, tmp_path / "other", "1,2", "--resume", str(checkpoint), *more)]) == 2
    line = _error_line(capsys)
    if how == "resume":
        assert "--layout '2,1' then, '1,2' now" in line, line
    else:
        assert "holds model aux_net" in line and "'layout': '2,1'" in line and "'layout': '1,2'" in line, line


def test_changed_settings_counts_what_a_run_learns_only() -> None:
    saved = {"seed": 0, "device": "cpu", "data_path": "/old/data", "load_gene": "/a/gene.safetensors", "lr": 0.001}
    now = {"seed": 5, "device": "cuda", "data_path": "/moved/data", "load_gene": "/a/other.safetensors", "lr": 0.001,
           "overwrite": True, "flag_added_since": 1}  # fmt: skip
    assert changed_settings(saved, now) == {
        "seed": (0, 5),
        "load_gene": ("/a/gene.safetensors", "/a/other.safetensors"),
    }


def test_flags_given_now_compare_equal_to_the_same_flags_saved_in_args_yaml(finished_run, image_folder) -> None:
    saved = yaml.safe_load((finished_run / "args.yaml").read_text())
    now = saved_form(parse_args(des_args(image_folder, finished_run)))
    assert changed_settings(saved, now) == {}
    assert isinstance(now["model_kwargs"], dict)  # --model-kwargs pairs, as args.yaml holds them


def test_an_aux_net_checkpoint_resumed_at_its_end_in_another_folder_leaves_its_learngene(image_folder, tmp_path):
    train(parse_args(_aux_args(image_folder, tmp_path / "source", "1,1")))
    checkpoint = tmp_path / "source" / "checkpoint.pth"
    result = train(parse_args(_aux_args(image_folder, tmp_path / "again", "1,1", "--resume", str(checkpoint))))
    assert result.history == load_checkpoint(checkpoint)["history"]
    again, source = (Learngene.load(tmp_path / name / "learngene.safetensors") for name in ("again", "source"))
    assert again.training == source.training and again.tensors.keys() == source.tensors.keys()
    assert all(torch.equal(v, source.tensors[k]) for k, v in again.tensors.items())

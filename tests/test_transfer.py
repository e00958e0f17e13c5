"""A learngene carries to data it never saw: a tiny source run, then Des-Nets on another data set with
another class count and image size, against models of every size pre-trained on the source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sws.checkpoint import load_checkpoint
from sws.cli import main
from sws.learngene import Learngene
from tests.conftest import TINY_STUDY, write_image_folder

SOURCE = [
    *TINY_STUDY,
    "--set", "des_net.epochs=1",
    "--set", "budget={depths: [1], epochs: 2, sws_epochs: 1}",
    "--depths", "1",
    "--device", "cpu",
]  # fmt: skip


@pytest.fixture(scope="module")
def source(image_folder, tmp_path_factory) -> Path:
    """A finished source run: teacher, Aux-Net, learngene, and scratch's 2-epoch budget run at depth 1."""
    run = tmp_path_factory.mktemp("source") / "run"
    assert main(["pipeline", "--data-path", str(image_folder), "--output_dir", str(run), *SOURCE]) == 0
    return run


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    """Another data set: four classes (one the source never saw) of 24 px images."""
    root = tmp_path_factory.mktemp("target")
    return write_image_folder(root, classes=("grey", "blue", "red", "green"), train_per_class=12, size=24, seed=1)


def transfer(source: Path, target: Path, out: Path, methods: str = "sws,scratch,pretrain-finetune") -> int:
    argv = ["compare", "--run-dir", str(source), "--data-path", str(target), "--output_dir", str(out)]
    return main([*argv, "--methods", methods, "--depths", "1,2", "--epochs", "1", "--set", "input_size=24"])


@pytest.fixture(scope="module")
def study(source, target, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("transfer") / "out"
    assert transfer(source, target, out) == 0
    return out


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_des_nets_on_the_target_get_a_new_head_and_a_resampled_position_embedding(study) -> None:
    for method in ("sws", "pretrain-finetune"):
        init = _summary(study / "desnets" / f"{method}_d2")["init"]
        assert init["head"] == "new" and init["pos_embed"].startswith("resampled")
        weights = load_file(str(study / "desnets" / f"{method}_d2" / "model" / "model.safetensors"))
        assert weights["head.weight"].shape == (4, 16)  # the target's four classes
        assert weights["pos_embed"].shape == (1, 36, 16)  # 24 px in patches of 4
    assert _summary(study / "desnets" / "sws_d2")["init"]["pos_embed"] == "resampled 4x4 -> 6x6"
    # the source's budget study measured the source's data; the target runs only its Des-Nets
    assert sorted(p.name for p in (study / "desnets").iterdir()) == sorted(
        f"{m}_d{d}" for m in ("sws", "scratch", "pretrain-finetune") for d in (1, 2)
    )


def test_sizes_the_source_lacks_are_pre_trained_there_and_reused_on_a_rerun(source, target, study, capsys) -> None:
    pretrained = {d: source / "desnets" / f"scratch_2ep_d{d}" for d in (1, 2)}
    assert all((p / "summary.json").is_file() for p in pretrained.values())  # depth 1: the budget run; 2: new
    assert _summary(pretrained[2])["data_set"] == "FOLDER" and _summary(pretrained[2])["epochs"] == 2
    finetune = _summary(study / "desnets" / "pretrain-finetune_d1")["init"]["checkpoint"]
    assert Path(finetune) == pretrained[1] / "checkpoint.pth"
    stamps = {p: p.stat().st_mtime_ns for p in source.rglob("checkpoint.pth")}
    capsys.readouterr()
    assert transfer(source, target, study) == 0
    assert "sws train:" not in capsys.readouterr().out  # nothing trained again, source or target
    assert {p: p.stat().st_mtime_ns for p in source.rglob("checkpoint.pth")} == stamps


def test_the_report_counts_what_each_route_stores_and_pre_trains(source, study) -> None:
    results = json.loads((study / "results.json").read_text())
    gene = Learngene.load(source / "learngene.safetensors")
    pretrained = [source / "desnets" / f"scratch_2ep_d{d}" for d in (1, 2)]
    weights = [load_checkpoint(p / "checkpoint.pth")["model"] for p in pretrained]
    every_size = sum(t.numel() for w in weights for t in w.values())
    aux_flops = _summary(source / "aux")["train_flops"]
    assert results["stored_params"] == {"sws": gene.num_params, "scratch": 0, "pretrain-finetune": every_size}
    assert results["pretraining_flops"] == {
        "sws": aux_flops,
        "scratch": 0.0,
        "pretrain-finetune": sum(_summary(p)["train_flops"] for p in pretrained),
    }
    assert results["meta"]["source"]["data_set"] == "FOLDER" and results["meta"]["data_path"] != str(source)
    report = (study / "report.md").read_text()
    assert "the sources learnt on **FOLDER**" in report
    ratio = every_size / gene.num_params
    assert f"SWS against pre-training every size: **{ratio:.1f}x** fewer parameters stored" in report
    assert "| SWS (learngene) | the learngene |" in report and "## Final top-1 by method" in report


def test_sws_starts_from_the_learngene_on_the_target(source, study) -> None:
    gene = Learngene.load(source / "learngene.safetensors")
    des = load_file(str(study / "desnets" / "sws_d2" / "model" / "model.safetensors"))
    init = _summary(study / "desnets" / "sws_d2")["init"]
    assert init["learngene"] == str(source / "learngene.safetensors") and init["mapping"] == [0, 1]
    # one fine-tune epoch moves every weight a little; the blocks still sit near the learngene's
    moved = (des["blocks.1.mlp.fc2.weight"] - gene.tensors["stages.1.mlp.fc2.weight"]).abs().max()
    assert moved < 0.05


@pytest.mark.parametrize(
    ("remove", "methods", "words"),
    [
        ("learngene.safetensors", "sws,scratch", "has no learngene"),
        (None, "sws,tleg", "has no tleg learngene"),
    ],
)
def test_a_source_run_without_what_a_method_needs_is_refused_in_one_line(
    source, target, tmp_path, capsys, remove, methods, words
) -> None:
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("pipeline.yaml", "learngene.safetensors"):
        (run / name).write_bytes((source / name).read_bytes())
    if remove:
        (run / remove).unlink()
    capsys.readouterr()
    assert transfer(run, target, tmp_path / "out", methods) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "sws compare --run-dir" in err[0], err
    assert not (run / "aux").exists() and not (run / "tleg_aux").exists()  # nothing distilled on the source


def test_a_learngene_whose_channels_cannot_be_fitted_to_the_target_is_refused(source, target, tmp_path, capsys):
    gene = Learngene.load(source / "learngene.safetensors")
    weight = gene.tensors["patch_embed.proj.weight"]
    gene.tensors["patch_embed.proj.weight"] = torch.cat([weight, weight[:, :1]], dim=1)[:, :2]  # 2 channels
    gene.architecture, gene.training = gene.architecture.replace(in_chans=2), {}
    bad = gene.save(tmp_path / "two_channels.safetensors")
    capsys.readouterr()
    argv = ["compare", "--run-dir", str(source), "--data-path", str(target), "--output_dir", str(tmp_path / "o")]
    assert main([*argv, "--learngene", str(bad), "--methods", "sws", "--depths", "1", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2-channel images and cannot be fitted to 3" in err[0], err

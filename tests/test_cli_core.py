"""The command line for learngene files: one clear line per bad input, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from sws.cli import main
from sws.learngene import Learngene, SWSLearngene
from tests.conftest import perturbed_aux_net
from tests.test_official import official_state, write_official_checkpoint


@pytest.fixture
def gene_path(tiny_arch, tmp_path):
    return SWSLearngene.from_aux_net(perturbed_aux_net("3,3,4,3,3", tiny_arch)).save(tmp_path / "g.safetensors")


def test_import_official_info_and_expand(tmp_path, capsys) -> None:
    ckpt = tmp_path / "checkpoint.pth"
    write_official_checkpoint(ckpt, official_state(stages=5))
    out = tmp_path / "small.safetensors"
    assert main(["import-official", str(ckpt), "--out", str(out)]) == 0
    assert "layout 3,3,4,3,3" in capsys.readouterr().out
    assert main(["info", str(out), "--depths", "6,12", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "sws" and info["layout"] == "3,3,4,3,3"
    assert info["depths"]["12"]["mapping"] == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4]
    assert info["architecture"]["num_heads"] == 12
    assert main(["info", str(out), "--depths", "6"]) == 0
    text = capsys.readouterr().out
    assert "3,3,4,3,3" in text and "0,0,1,2,3,4" in text
    assert main(["expand", str(out), "--depth", "8", "--num-classes", "3", "--out", str(tmp_path / "des")]) == 0
    assert "8-layer Des-Net" in capsys.readouterr().out
    assert (tmp_path / "des" / "model.safetensors").is_file()


def test_expand_with_explicit_layers_source(gene_path, tmp_path, capsys) -> None:
    args = ["expand", str(gene_path), "--depth", "6", "--layers-source", "0,0,1,2,3,4", "--out", str(tmp_path / "d")]
    assert main(args) == 0
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["sws"]["expansion"]["mapping"] == [0, 0, 1, 2, 3, 4]
    assert config["model_args"]["depth"] == 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["expand", "{gene}", "--depth", "12", "--layers-source", "0,0,1", "--out", "{tmp}/o"], "has 3 entries"),
        (
            ["expand", "{gene}", "--depth", "3", "--layers-source", "0,1,9", "--out", "{tmp}/o"],
            "names learngene layer 9",
        ),
        (["expand", "{gene}", "--depth", "3", "--num-heads", "5", "--out", "{tmp}/o"], "does not split into 5"),
        (["info", "{tmp}/missing.safetensors"], "no learngene or checkpoint"),
        (["info", "{tmp}/truncated.safetensors"], "truncated"),
        (["import-official", "{tmp}/official.pth", "--layout", "3,0,4", "--out", "{tmp}/x"], "at least 1"),
        (["import-official", "{tmp}/official.pth", "--layout", "abc", "--out", "{tmp}/x"], "cannot read stage layout"),
        (["import-official", "{tmp}/official.pth", "--layout", "4,4,4", "--out", "{tmp}/x"], "has 3 stages"),
        (["extract", "{tmp}/official.pth", "--out", "{tmp}/x"], "written by the official SWS code"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(argv, message, gene_path, tmp_path, capsys) -> None:
    data = gene_path.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    write_official_checkpoint(tmp_path / "official.pth", official_state(stages=5))
    argv = [a.format(gene=gene_path, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sws: error: ") and message in err
    assert "\n" not in err and "Traceback" not in err


def test_console_script_runs_as_a_module(gene_path) -> None:
    result = subprocess.run([sys.executable, "-m", "sws", "info", str(gene_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "sws (stage-wise weight sharing)" in result.stdout


def test_extract_from_a_training_checkpoint(tiny_arch, tmp_path, capsys) -> None:
    from sws.checkpoint import save_checkpoint

    aux = perturbed_aux_net("2,2", tiny_arch)
    kwargs = {"layout": "2,2", **{k: v for k, v in tiny_arch.to_dict().items() if k != "norm_eps"}}
    save_checkpoint(
        tmp_path / "checkpoint.pth",
        {
            "model": aux.state_dict(),
            "model_name": "aux_net",
            "model_kwargs": kwargs,
            "epoch": 4,
            "args": {"teacher_model": "resnet18", "epochs": 5, "distillation_type": "soft"},
            "best_top1": 91.5,
        },
    )
    out = tmp_path / "g.safetensors"
    assert main(["extract", str(tmp_path / "checkpoint.pth"), "--out", str(out)]) == 0
    gene = Learngene.load(out)
    assert gene.training["teacher_model"] == "resnet18" and gene.training["epochs_completed"] == 5
    assert gene.training["best_top1"] == 91.5
    assert all(torch.equal(gene.tensors[f"stages.1.{k}"], v) for k, v in aux.stage_blocks[1].state_dict().items())

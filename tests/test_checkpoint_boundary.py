"""Every checkpoint is checked at the boundary: a file with the right container and wrong contents,
a damaged file, weights of another width or in a pickle, each ends in one line naming the file and
what is wrong, for every command that reads it; and any file name works."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from sws.checkpoint import load_checkpoint, read_weights_file, save_checkpoint
from sws.cli import main
from sws.expansion import save_des_net
from sws.models import create_model
from tests.conftest import FAST, TINY_VIT


def _aux_args(data: Path, out: Path, *more: str) -> list[str]:
    return ["train", "--model", "aux_net", "--layout", "1,1", *TINY_VIT, *FAST, "--data-path", str(data),
            "--epochs", "1", "--output_dir", str(out), *more]  # fmt: skip


@pytest.fixture(scope="module")
def aux_checkpoint(tmp_path_factory, image_folder) -> dict:
    run = tmp_path_factory.mktemp("aux") / "run"
    assert main(_aux_args(image_folder, run)) == 0
    return load_checkpoint(run / "checkpoint.pth", "resume")


def _qkv(checkpoint: dict) -> str:
    return next(k for k in checkpoint["model"] if k.endswith("qkv.weight"))


def _set(entry: str, value) -> Callable[[dict], None]:
    def change(checkpoint: dict) -> None:
        checkpoint[entry] = value

    return change


def _drop(entry: str) -> Callable[[dict], None]:
    return lambda checkpoint: checkpoint.pop(entry)


def _wrong_shape(checkpoint: dict) -> None:
    checkpoint["model"][_qkv(checkpoint)] = torch.zeros(3, 5)


def _unknown_names(checkpoint: dict) -> None:
    checkpoint["model"] = {f"x.{k}": v for k, v in checkpoint["model"].items()}


def _extra_tensor(checkpoint: dict) -> None:
    checkpoint["model"]["extra.weight"] = torch.zeros(2)


def _kwargs_that_build_nothing(checkpoint: dict) -> None:
    checkpoint["model_kwargs"] = {**checkpoint["model_kwargs"], "embed_dim": "wide"}


def _one_param_group(checkpoint: dict) -> None:
    checkpoint["optimizer"]["param_groups"] = checkpoint["optimizer"]["param_groups"][:1] * 3


ALL = ("info", "extract", "resume", "finetune", "teacher")
LEARNGENE = ("info", "extract")
# (what is wrong, how to make it, the commands that read it, words their one line holds)
CASES = [
    ("model empty", _set("model", {}), ALL, "'model'"),
    ("model a list", _set("model", [1, 2]), ALL, "'model'"),
    ("model of wrong shapes", _wrong_shape, ALL, "qkv.weight is (3, 5)"),
    ("model of unknown names", _unknown_names, ALL, "lacks"),
    ("model with a tensor more", _extra_tensor, ("info", "extract", "resume", "teacher"), "extra.weight"),
    ("epoch abc", _set("epoch", "abc"), (*LEARNGENE, "resume"), "'epoch'"),
    ("epoch missing", _drop("epoch"), ("resume",), "'epoch'"),
    ("model_kwargs a list", _set("model_kwargs", [1, 2]), ALL, "'model_kwargs'"),
    ("model_kwargs that build nothing", _kwargs_that_build_nothing, ("info", "extract", "teacher"), "'model_kwargs'"),
    ("model_kwargs of another model", _kwargs_that_build_nothing, ("resume",), "holds model aux_net"),
    ("model_name a number", _set("model_name", 5), ALL, "'model_name'"),
    ("model_name unknown", _set("model_name", "no_such_net"), ("info", "extract", "teacher"), "'model_name'"),
    ("data a list", _set("data", [1, 2]), LEARNGENE, "'data'"),
    ("args garbage", _set("args", "abc"), (*LEARNGENE, "resume"), "'args'"),
    ("optimizer missing", _drop("optimizer"), ("resume",), "'optimizer'"),
    ("optimizer garbage", _set("optimizer", "abc"), ("resume",), "'optimizer'"),
    ("optimizer of other parameter groups", _one_param_group, ("resume",), "'optimizer'"),
    ("lr_scheduler missing", _drop("lr_scheduler"), ("resume",), "'lr_scheduler'"),
    ("lr_scheduler garbage", _set("lr_scheduler", {"t_initial": "abc", "x": 1}), ("resume",), "'lr_scheduler'"),
    ("init missing", _drop("init"), ("resume",), "'init'"),
    ("init garbage", _set("init", [1]), ("resume",), "'init'"),
    ("history garbage", _set("history", "abc"), ("resume",), "'history'"),
    ("rng garbage", _set("rng", [{"python": 1}]), ("resume",), "'rng'"),
    ("best_top1 garbage", _set("best_top1", "high"), (*LEARNGENE, "resume"), "'best_top1'"),
]
PARAMS = [pytest.param(name, change, command, words, id=f"{command}: {name}")
          for name, change, commands, words in CASES for command in commands]  # fmt: skip


def _command(command: str, checkpoint: Path, data: Path, work: Path) -> list[str]:
    out = work / "out"
    return {
        "info": ["info", str(checkpoint)],
        "extract": ["extract", str(checkpoint), "--out", str(work / "g.safetensors")],
        "resume": _aux_args(data, out, "--resume", str(checkpoint)),
        "finetune": _aux_args(data, out, "--finetune", str(checkpoint)),
        "teacher": _aux_args(data, out, "--teacher-path", str(checkpoint), "--distillation-type", "soft"),
    }[command]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if "Warning" not in line]
    assert len(lines) == 1 and lines[0].startswith("sws: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("name", "change", "command", "words"), PARAMS)
def test_a_checkpoint_with_wrong_contents_is_one_line_naming_the_file_and_entry(
    name, change, command, words, aux_checkpoint, image_folder, tmp_path, capsys
) -> None:
    checkpoint = {k: (dict(v) if isinstance(v, dict) else v) for k, v in aux_checkpoint.items()}
    change(checkpoint)
    path = save_checkpoint(tmp_path / "bad.pth", checkpoint)
    capsys.readouterr()
    assert main(_command(command, path, image_folder, tmp_path)) == 2
    line = _one_error_line(capsys)
    assert "bad.pth" in line and words in line, line
    assert not (tmp_path / "out").exists() and not (tmp_path / "g.safetensors").exists()


def test_a_file_that_is_no_checkpoint_dict_is_refused_by_resume(image_folder, tmp_path, capsys) -> None:
    path = tmp_path / "bad.pth"
    torch.save([1, 2, 3], path)
    assert main(_command("resume", path, image_folder, tmp_path)) == 2
    assert "bad.pth holds [1, 2, 3], not a checkpoint dict" in _one_error_line(capsys)


def _flip_inside_the_largest_tensor(path: Path, count: int = 64) -> None:
    with zipfile.ZipFile(path) as archive:
        tensors = [info for info in archive.infolist() if "/data/" in info.filename]  # not data.pkl
        largest = max(tensors, key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    start = largest.header_offset + 30 + len(largest.filename) + 64  # past the local header and its padding
    start += (largest.file_size - count) // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["info", "resume", "teacher"])
def test_flipped_bytes_inside_a_checkpoint_are_refused_as_corrupt(command, aux_checkpoint, image_folder, tmp_path,
                                                                   capsys) -> None:  # fmt: skip
    path = save_checkpoint(tmp_path / "bad.pth", aux_checkpoint)
    _flip_inside_the_largest_tensor(path)
    assert main(_command(command, path, image_folder, tmp_path)) == 2
    line = _one_error_line(capsys)
    assert "bad.pth is corrupt: the CRC of its record" in line, line


def _des_args(data: Path, out: Path, width: int, *more: str) -> list[str]:
    model = ["--model", "des_net", "--model-kwargs", "depth=1", f"embed_dim={width}", "num_heads=2", "patch_size=4"]
    return ["train", *model, *FAST, "--data-path", str(data), "--epochs", "1", "--output_dir", str(out), *more]


def test_finetune_of_another_width_is_one_line(image_folder, tmp_path, capsys) -> None:
    assert main(_des_args(image_folder, tmp_path / "wide", 32)) == 0
    capsys.readouterr()
    assert (
        main(_des_args(image_folder, tmp_path / "narrow", 16, "--finetune", str(tmp_path / "wide" / "checkpoint.pth")))
        == 2
    )
    line = _one_error_line(capsys)
    assert "checkpoint.pth does not fit the model" in line and "where the model's is" in line, line


@pytest.mark.parametrize("flag", ["--ancestry", "--finetune"])
def test_a_timm_folder_of_pickled_weights_is_one_line(flag, image_folder, tmp_path, capsys) -> None:
    model = create_model("des_net", depth=2, embed_dim=32, num_heads=2, patch_size=4, img_size=16, num_classes=3)
    folder = save_des_net(model, tmp_path / "ancestry")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    more = ["--init", "select", "--ancestry", str(folder)] if flag == "--ancestry" else ["--finetune", str(folder)]
    assert main(_des_args(image_folder, tmp_path / "out", 32, *more)) == 2
    assert "holds a pickled pytorch_model.bin" in _one_error_line(capsys)


def test_eval_of_a_checkpoint_with_epochs_0_evaluates(image_folder, tmp_path, capsys) -> None:
    assert main(_des_args(image_folder, tmp_path / "run", 32)) == 0
    capsys.readouterr()
    args = _des_args(image_folder, tmp_path / "e", 32, "--eval", "--resume", str(tmp_path / "run" / "checkpoint.pth"))
    args[args.index("--epochs") + 1] = "0"
    assert main(args) == 0
    assert "eval: top-1" in capsys.readouterr().out


def test_checkpoints_and_weights_under_a_non_utf8_name_are_written_and_read(aux_checkpoint, tmp_path) -> None:
    from safetensors.torch import save

    folder = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9-\xff"))  # Latin-1 bytes: no UTF-8 name
    folder.mkdir()
    path = save_checkpoint(folder / "checkpoint.pth", aux_checkpoint)
    assert load_checkpoint(path, "resume")["epoch"] == aux_checkpoint["epoch"]
    (folder / "weights.safetensors").write_bytes(save({"w": torch.ones(2)}))
    assert torch.equal(read_weights_file(folder / "weights.safetensors")["w"], torch.ones(2))

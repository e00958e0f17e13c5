"""Nothing a user owns is lost, and every bad input gets one clear line.

Each case of the table runs one ``sws`` command against a folder of files the user already has:
the command must exit with code 2, print exactly one line on stderr that names the problem (no
traceback), and leave every file that was there byte for byte, adding none.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from sws.checkpoint import load_checkpoint
from sws.cli import main
from sws.fileio import RunLock, sniff_format
from sws.learngene import SWSLearngene
from tests.conftest import FAST, TINY_VIT, perturbed_aux_net
from tests.test_official import official_state, write_official_checkpoint


@pytest.fixture(scope="module")
def aux_run(tmp_path_factory, image_folder) -> Path:
    """A finished one-epoch Aux-Net run (checkpoint, learngene, logs) on 3-channel images."""
    run = tmp_path_factory.mktemp("aux") / "run"
    args = ["train", "--model", "aux_net", "--layout", "1,1", *TINY_VIT, *FAST, "--epochs", "1"]
    assert main([*args, "--data-path", str(image_folder), "--output_dir", str(run)]) == 0
    return run


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file under ``root`` with its bytes (special files by kind), and every folder."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_dir():
            found[key] = "folder"
        elif path.is_file():
            found[key] = path.read_bytes()
        else:
            found[key] = "special"
    return found


def _gene(workdir: Path, arch_overrides: dict | None = None) -> Path:
    from sws.architecture import ViTArchitecture

    arch = ViTArchitecture(embed_dim=32, num_heads=2, patch_size=4, img_size=16, num_classes=3, in_chans=1)
    arch = arch.replace(**(arch_overrides or {}))
    return SWSLearngene.from_aux_net(perturbed_aux_net("1,1", arch)).save(workdir / "gene.safetensors")


def _nan_gene(workdir: Path) -> Path:
    path = _gene(workdir)
    from safetensors.torch import load_file, save_file

    with __import__("safetensors").safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    tensors["norm.weight"][0] = float("nan")
    save_file(tensors, str(path), metadata=metadata)
    return path


def _pickle_named_safetensors(workdir: Path) -> Path:
    path = workdir / "weights.safetensors"
    torch.save({"w": torch.ones(3)}, path)
    return path


def _fresh_train(data: Path, out: Path, *more: str) -> list[str]:
    model = ["--model", "des_net", "--model-kwargs", "depth=1", "embed_dim=32", "num_heads=2", "patch_size=4"]
    return ["train", *model, *FAST, "--data-path", str(data), "--epochs", "1", "--output_dir", str(out), *more]


# (name, setup(workdir, aux_run, image_folder) -> argv, words the error line must contain)
Case = tuple[str, Callable[[Path, Path, Path], list[str]], str]
CASES: list[Case] = [
    # --- outputs that hold what users own
    ("expand into a folder holding files", lambda w, a, d: (
        (w / "out").mkdir(), (w / "out" / "notes.txt").write_text("mine"),
        ["expand", str(_gene(w)), "--depth", "2", "--out", str(w / "out")])[-1], "already holds files"),
    ("expand into the run folder of its own learngene", lambda w, a, d: (
        shutil.copytree(a, w / "run"),
        ["expand", str(w / "run" / "learngene.safetensors"), "--depth", "3", "--out", str(w / "run")])[-1],
     "already holds files"),
    ("expand over a file", lambda w, a, d: (
        (w / "taken").write_text("mine"), ["expand", str(_gene(w)), "--depth", "2", "--out", str(w / "taken")])[-1],
     "is a file"),
    ("expand into the current folder", lambda w, a, d: (
        os.chdir(w), ["expand", str(_gene(w)), "--depth", "2", "--out", "."])[-1], "already holds files"),
    ("expand --overwrite onto its own input", lambda w, a, d: (
        (w / "out").mkdir(), (w / "out" / "x").write_text("x"),
        shutil.copy(_gene(w), w / "out" / "model.safetensors"),
        ["expand", str(w / "out" / "model.safetensors"), "--depth", "2", "--out", str(w / "out"), "--overwrite"])[-1],
     "would replace the input"),
    ("extract over an existing file", lambda w, a, d: (
        (w / "g.safetensors").write_text("mine"),
        ["extract", str(a / "checkpoint.pth"), "--out", str(w / "g.safetensors")])[-1], "already exists"),
    ("extract into an existing folder", lambda w, a, d: (
        (w / "dir").mkdir(), ["extract", str(a / "checkpoint.pth"), "--out", str(w / "dir")])[-1], "is a folder"),
    ("extract onto a device", lambda w, a, d: (
        os.mkfifo(w / "pipe"), ["extract", str(a / "checkpoint.pth"), "--out", str(w / "pipe"), "--overwrite"])[-1],
     "not a regular file"),
    ("expand below a file", lambda w, a, d: (
        (w / "f").write_text("mine"), ["expand", str(_gene(w)), "--depth", "2", "--out", str(w / "f" / "des")])[-1],
     "is a file, so"),
    ("train --output_dir naming a file", lambda w, a, d: (
        (w / "f").write_text("mine"), _fresh_train(d, w / "f"))[-1], "is a file"),
    ("pipeline --output_dir naming a file", lambda w, a, d: (
        (w / "f").write_text("mine"),
        ["pipeline", "--output_dir", str(w / "f"), "--data-path", str(d), "--device", "cpu"])[-1], "is a file"),
    ("compare --run-dir naming a file", lambda w, a, d: (
        (w / "f").write_text("mine"), ["compare", "--run-dir", str(w / "f")])[-1], "is a file"),
    ("compare --run-dir that does not exist", lambda w, a, d: ["compare", "--run-dir", str(w / "nothing")],
     "does not exist"),
    ("a second run on a folder in use", lambda w, a, d: (
        (w / "busy").mkdir(), _fresh_train(d, w / "busy"))[-1], "in use by another sws run"),
    # --- inputs that are not what they claim
    ("info on a folder", lambda w, a, d: ["info", str(w)], "not a file"),
    ("info on a pickled state dict named .safetensors", lambda w, a, d: ["info", str(_pickle_named_safetensors(w))],
     "neither an official SWS nor an official TLEG"),
    ("expand a pickled state dict named .safetensors", lambda w, a, d: [
        "expand", str(_pickle_named_safetensors(w)), "--depth", "2", "--out", str(w / "des")],
     "neither an official SWS nor an official TLEG"),
    ("train --load-gene of a torch file named .safetensors", lambda w, a, d: _fresh_train(
        d, w / "o", "--load-gene", str(_pickle_named_safetensors(w))), "neither an official SWS nor an official TLEG"),
    ("info on random bytes named .pth", lambda w, a, d: (
        (w / "x.pth").write_bytes(os.urandom(300)), ["info", str(w / "x.pth")])[-1], "neither a learngene"),
    ("train --load-gene of JSON named .pth", lambda w, a, d: (
        (w / "x.pth").write_text('{"a": 1}'), _fresh_train(d, w / "o", "--load-gene", str(w / "x.pth")))[-1],
     "neither a learngene"),
    ("info on a learngene holding NaN", lambda w, a, d: ["info", str(_nan_gene(w))], "NaN"),
    ("import-official of an sws checkpoint", lambda w, a, d: [
        "import-official", str(a / "checkpoint.pth"), "--out", str(w / "g.safetensors")], "sws extract"),
    # --- arguments that would reach libraries unchecked
    ("expand --mean of 3 values for 1 channel", lambda w, a, d: [
        "expand", str(_gene(w)), "--depth", "2", "--out", str(w / "des"), "--mean", "0.5", "0.5", "0.5"],
     "1-channel"),
    ("train --model-kwargs foo=1", lambda w, a, d: _fresh_train(
        d, w / "o", "--model-kwargs", "depth=1", "embed_dim=32", "num_heads=2", "patch_size=4", "foo=1"),
     "does not take the argument 'foo'"),
    ("train --num_workers -1", lambda w, a, d: _fresh_train(d, w / "o", "--num_workers", "-1"), "--num_workers"),
    ("train --epochs abc", lambda w, a, d: _fresh_train(d, w / "o", "--epochs", "abc"), "--epochs 'abc'"),
    ("a 1-channel teacher on 3-channel data", lambda w, a, d: _fresh_train(
        d, w / "o", "--teacher-model", "test_resnet", "--teacher-path", str(_one_channel_teacher(w)),
        "--distillation-type", "soft"), "teacher cannot read"),
    ("an empty item in --layout", lambda w, a, d: _fresh_train(d, w / "o", "--model", "aux_net", "--layout", "3,,3"),
     "empty item"),
    ("an empty --layout", lambda w, a, d: _fresh_train(d, w / "o", "--model", "aux_net", "--layout", ""),
     "--layout is empty"),
    ("an empty item in --layers-source", lambda w, a, d: _fresh_train(
        d, w / "o", "--load-gene", str(a / "learngene.safetensors"), "--layers-source", "0,,1"), "empty item"),
    ("--data-path naming a file", lambda w, a, d: (
        (w / "f").write_text("x"), _fresh_train(w / "f", w / "o"))[-1], "is a file"),
    ("--eval without weights", lambda w, a, d: _fresh_train(d, w / "o", "--eval"), "--eval evaluates trained"),
    ("a config value of the wrong type", lambda w, a, d: [
        "pipeline", "--set", "aux.train.epochs=abc", "--print-config", "--output_dir", str(w / "p")],
     "aux.train epochs 'abc' is not allowed: give a whole number"),
    ("an empty item in --depths", lambda w, a, d: ["pipeline", "--depths", "4,,8", "--print-config"], "empty item"),
]  # fmt: skip


def _one_channel_teacher(workdir: Path) -> Path:
    """An sws checkpoint of a teacher for 1-channel images (the data here has 3): it rebuilds its
    own model, so only running it shows the mismatch."""
    from sws.models import create_model

    kwargs = {"num_classes": 3, "in_chans": 1}
    state = create_model("test_resnet", **kwargs).state_dict()
    path = workdir / "gray_teacher.pth"
    torch.save({"model": state, "model_name": "test_resnet", "model_kwargs": kwargs}, path)
    return path


@pytest.mark.parametrize(("name", "setup", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_keeps_every_file(
    name, setup, words, aux_run, image_folder, tmp_path, capsys, monkeypatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(tmp_path)
    argv = setup(workdir, aux_run, image_folder)
    lock = RunLock(workdir / "busy") if name == "a second run on a folder in use" else None
    before = snapshot(workdir)
    capsys.readouterr()
    if lock is not None:
        lock.__enter__()
    try:
        code = main(argv)
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if "Warning" not in line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("sws: error: "), err
    assert words in lines[0], lines[0]
    assert "Traceback" not in err
    after = snapshot(workdir)
    assert after == before, sorted(set(after) ^ set(before)) or "a file changed"


def test_the_table_covers_each_command_that_writes() -> None:
    commands = {argv_head for _, setup, _ in CASES for argv_head in [_head(setup)]}
    assert {"expand", "extract", "train", "pipeline", "compare", "info", "import-official"} <= commands


def _head(setup) -> str:
    import inspect

    source = inspect.getsource(setup)
    for command in ("import-official", "expand", "extract", "pipeline", "compare", "info"):
        if f'"{command}"' in source:
            return command
    return "train"


def test_expand_overwrite_replaces_only_its_own_files(aux_run, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    gene = aux_run / "learngene.safetensors"
    assert main(["expand", str(gene), "--depth", "2", "--out", str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    modes = {stat.S_IMODE((out / name).stat().st_mode) for name in ("model.safetensors", "config.json")}
    assert len(modes) == 1  # both written with the usual mode


def test_a_file_at_out_becomes_the_folder_only_with_overwrite(aux_run, tmp_path) -> None:
    target = tmp_path / "taken"
    target.write_text("mine")
    assert main(["expand", str(aux_run / "learngene.safetensors"), "--depth", "2", "--out", str(target)]) == 2
    assert target.read_text() == "mine"
    assert main(["expand", str(aux_run / "learngene.safetensors"), "--depth", "2", "--out", str(target),
                 "--overwrite"]) == 0  # fmt: skip
    assert (target / "model.safetensors").is_file()


@pytest.mark.parametrize("residue", range(256))
def test_the_format_sniffer_reads_a_safetensors_header_of_any_length(residue, tmp_path) -> None:
    """safetensors files start with their header length; a length of 128 mod 256 starts with 0x80,
    the byte that marks a pickle."""
    length = 256 + residue
    header = b'{"__metadata__":{"a":"' + b"x" * (length - 25) + b'"}}'
    assert len(header) == length
    path = tmp_path / "g.safetensors"
    path.write_bytes(length.to_bytes(8, "little") + header)
    assert sniff_format(path) == "safetensors"


@pytest.mark.parametrize("residue", range(0, 256, 8))
def test_a_learngene_is_read_back_whatever_its_header_length(residue, tmp_path) -> None:
    """safetensors pads its header to a multiple of 8: pad the metadata so that the header length
    takes each of those residues modulo 256, 128 among them."""
    from sws.learngene import Learngene

    gene = SWSLearngene.from_aux_net(perturbed_aux_net("1,1", _tiny_arch()))
    base_length = _header_length(gene, tmp_path, "")
    padding = (residue - base_length) % 256
    gene.source = "x" * padding
    path = gene.save(tmp_path / "g.safetensors")
    assert int.from_bytes(path.read_bytes()[:8], "little") % 256 == residue
    assert sniff_format(path) == "safetensors"
    assert Learngene.load(path).source == gene.source


def _tiny_arch():
    from sws.architecture import ViTArchitecture

    return ViTArchitecture(embed_dim=8, num_heads=2, patch_size=4, img_size=8, num_classes=2)


def _header_length(gene, folder: Path, source: str) -> int:
    gene.source = source
    path = gene.save(folder / "probe.safetensors")
    return int.from_bytes(path.read_bytes()[:8], "little")


def test_a_full_disk_is_reported_as_such_and_the_old_file_stays(aux_run, tmp_path, capsys) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        (disk / "g.safetensors").write_bytes(b"the old file")
        argv = ["extract", str(aux_run / "checkpoint.pth"), "--out", str(disk / "g.safetensors"), "--overwrite"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no space left on device" in err[0], err
        assert (disk / "g.safetensors").read_bytes() == b"the old file"
        assert [p.name for p in disk.iterdir()] == ["g.safetensors"]  # no temporary file left
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_during_torch_save_becomes_no_space_left(monkeypatch, tmp_path) -> None:
    """torch.save on a full disk raises ``RuntimeError ... unexpected pos``; sws says what it means."""
    import errno

    import sws.fileio as fileio
    from sws.checkpoint import save_checkpoint

    (tmp_path / "checkpoint.pth").write_bytes(b"epoch 1")

    def full_save(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed; unexpected pos 128 vs 64")  # fmt: skip

    monkeypatch.setattr(torch, "save", full_save)
    monkeypatch.setattr(fileio, "_disk_full", lambda folder: True)
    with pytest.raises(OSError) as raised:
        save_checkpoint(tmp_path / "checkpoint.pth", {"epoch": 2})
    assert raised.value.errno == errno.ENOSPC
    assert (tmp_path / "checkpoint.pth").read_bytes() == b"epoch 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth"]


def test_official_tleg_names_need_no_depth_flag(tmp_path) -> None:
    from tests.test_tleg import official_tleg_state

    for name in ("aux_deit_small_patch16_224", "aux_deit_base_patch16_224"):
        path = tmp_path / f"{name}.pth"
        write_official_checkpoint(path, official_tleg_state(), model=name)
        assert main(["import-official", str(path), "--out", str(tmp_path / f"{name}.safetensors")]) == 0
        from sws.learngene import Learngene

        assert Learngene.load(tmp_path / f"{name}.safetensors").aux_depth == 12


def test_expanded_des_nets_record_the_training_data_normalization(aux_run, tmp_path) -> None:
    """The DIGITS-like case: an Aux-Net trained on data with its own mean/std passes them through the
    learngene to the Des-Net's config.json, where timm's resolve_data_config reads them."""
    import json

    import timm

    gene = aux_run / "learngene.safetensors"
    out = tmp_path / "des"
    assert main(["expand", str(gene), "--depth", "2", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    recorded = load_checkpoint(aux_run / "checkpoint.pth")["data"]
    assert config["pretrained_cfg"]["mean"] == recorded["mean"] and config["pretrained_cfg"]["std"] == recorded["std"]
    model = timm.create_model(f"local-dir:{out}", pretrained=True)
    resolved = timm.data.resolve_data_config({}, model=model)
    assert list(resolved["mean"]) == recorded["mean"]


def test_default_official_sws_checkpoint_still_imports(tmp_path) -> None:
    path = tmp_path / "checkpoint.pth"
    write_official_checkpoint(path, official_state(stages=5))
    assert main(["import-official", str(path), "--out", str(tmp_path / "g.safetensors")]) == 0


def test_a_killed_expands_leftovers_go_with_the_next_write_of_that_name_and_only_they(tmp_path) -> None:
    import subprocess
    import sys

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a process that has ended: its temporaries are a killed write's
    stale = tmp_path / f".des.{ended.pid}-abcdefgh.sws-tmp"
    (stale / "model.safetensors").parent.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    alive = tmp_path / f".des.{os.getpid()}-abcdefgh.sws-tmp"  # a write in progress (this process)
    alive.mkdir()
    mine = [tmp_path / "notes.sws-tmp", tmp_path / ".des.sws-tmp", tmp_path / ".other.12-abcdefgh.sws-tmp"]
    for path in mine:
        path.write_text("a user's file")
    gene = _gene(tmp_path)
    assert main(["expand", str(gene), "--depth", "2", "--out", str(tmp_path / "des")]) == 0
    assert not stale.exists() and alive.is_dir() and all(path.read_text() == "a user's file" for path in mine)
    assert (tmp_path / "des" / "model.safetensors").is_file()

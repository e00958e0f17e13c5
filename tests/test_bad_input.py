"""Every kind of bad input gets one line naming it, never a traceback, a hang or a lost file.

A table per kind of input, each case named as the claim it checks. A command-line case runs
``sws.cli.main(argv)`` in this process and must exit with code 2 and print exactly one line on
stderr, ``sws: error: ...``, that names the offending flag, field or value; a library case must
raise sws's own error (``SWSError``). Where refusing would be wrong the test states the right
outcome instead (a finished run is not retrained, a user's files are kept, a path of any bytes
works, ``--eval`` with ``--epochs 0`` evaluates).

Every case runs under a guard (``tests.bad_inputs.guarded``): an alarm after 60 s and a cap on the
memory it may add, so that a depth of 10**9 fails the case by name instead of taking the machine.
The valid files that the bad ones are made from are built once per module: a tiny ImageFolder, a
tiny learngene, a one-epoch Aux-Net run and an official checkpoint.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from sws.architecture import ViTArchitecture
from sws.aux_net import AuxNet
from sws.checkpoint import load_checkpoint
from sws.cli import main
from sws.data import build_datasets
from sws.errors import SWSError
from sws.expansion import expand, initialize_from_learngene, save_des_net
from sws.extraction import extract, load_learngene
from sws.layout import StageLayout
from sws.learngene import Learngene, SWSLearngene
from sws.models import create_model
from sws.official import import_official, load_official_checkpoint
from sws.study import Study
from sws.study_config import apply_overrides, load_config
from sws.width import change_width
from tests.bad_inputs import (
    TouchOnUnpickle,
    architecture,
    drop_entry,
    entries,
    flip_bytes_in_tensor,
    model_entry,
    raised_by,
    rewrite_checkpoint,
    rewrite_learngene,
    run_cli,
    set_entry,
    training,
    write_fashion,
    write_yaml,
)
from tests.conftest import FAST, TINY_VIT, perturbed_aux_net, write_image_folder
from tests.test_official import official_state, write_official_checkpoint
from tests.test_tleg import official_tleg_state

ARCH = ViTArchitecture(embed_dim=32, num_heads=2, patch_size=4, img_size=16, num_classes=3, in_chans=3)
DES = ["--model", "des_net", "--model-kwargs", "depth=1", "embed_dim=32", "num_heads=2", "patch_size=4"]
DES2 = ["--model", "des_net", "--model-kwargs", "depth=2", "embed_dim=32", "num_heads=2", "patch_size=4"]
AUX = ["--model", "aux_net", "--layout", "1,1", *TINY_VIT]
BIG = str(10**9)
TWO_TO_THE_80 = str(2**80)


@dataclass
class Files:
    """Valid inputs, built once; every bad input is a changed copy of one of them."""

    root: Path
    data: Path  # ImageFolder: 3 colour classes of 16 px images, 16 train and 4 val each
    gene: Path  # SWS learngene, layout 1,1, width 32, 3 classes, 3 channels, 16 px, with a training record
    gene1: Path  # the same for 1-channel images
    gene2: Path  # the same for 2-channel images (no rule fits them to 3)
    run: Path  # a finished one-epoch Aux-Net run on ``data`` (checkpoint.pth, learngene.safetensors, ...)
    checkpoint: dict[str, Any]  # the run's checkpoint, read
    official: Path  # an official SWS Aux-Net checkpoint (5 stages, width 48)
    official_checkpoint: dict[str, Any]  # the same, read
    official_tleg: Path  # an official TLEG Aux-Net checkpoint (8 layers)
    config: dict[str, Any]  # the packaged mnist5k study config


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    root = tmp_path_factory.mktemp("bad_input")
    data = write_image_folder(root / "data", train_per_class=16, val_per_class=4)
    record = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "epochs": 1}
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("1,1", ARCH), training=record).save(root / "gene.safetensors")
    gene1 = SWSLearngene.from_aux_net(perturbed_aux_net("1,1", ARCH.replace(in_chans=1))).save(
        root / "gene1.safetensors"
    )
    gene2 = SWSLearngene.from_aux_net(perturbed_aux_net("1,1", ARCH.replace(in_chans=2))).save(
        root / "gene2.safetensors"
    )
    run = root / "run"
    assert main(["train", *AUX, *FAST, "--data-path", str(data), "--epochs", "1", "--output_dir", str(run)]) == 0
    official = root / "official.pth"
    write_official_checkpoint(official, official_state(stages=5))
    official_tleg = root / "tleg.pth"
    write_official_checkpoint(official_tleg, official_tleg_state(), model="aux_deit_small_patch16_224_L8")
    return Files(
        root=root,
        data=data,
        gene=gene,
        gene1=gene1,
        gene2=gene2,
        run=run,
        checkpoint=load_checkpoint(run / "checkpoint.pth"),
        official=official,
        official_checkpoint=load_official_checkpoint(official),
        official_tleg=official_tleg,
        config=load_config("mnist5k"),
    )


# -- command lines --------------------------------------------------------------------------------

Setup = Callable[[Files, Path], list[str]]


def train(
    f: Files, w: Path, *more: str, model: list[str] = DES, epochs: tuple[str, ...] = ("--epochs", "1")
) -> list[str]:
    """``sws train`` of a tiny model on the tiny ImageFolder for one epoch, then ``more``."""
    return ["train", *model, *FAST, "--data-path", str(f.data), *epochs, "--output_dir", str(w / "out"), *more]


def expand_argv(f: Files, w: Path, *more: str, gene: Path | None = None) -> list[str]:
    return ["expand", str(gene or f.gene), "--depth", "2", "--out", str(w / "des"), *more]


def pipeline(w: Path, *more: str) -> list[str]:
    return ["pipeline", "--print-config", "--output_dir", str(w / "p"), *more]


def compare(w: Path, *more: str) -> list[str]:
    return ["compare", "--print-config", "--output_dir", str(w / "c"), *more]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def cli(case_id: str, setup: Setup, *words: str, forbid: tuple[str, ...] = (), success_ok: bool = False) -> Any:
    """A command-line case: ``setup(files, workdir)`` returns the argv; the one error line must name
    one of ``words`` (case-insensitive) and none of ``forbid``. ``success_ok``: exit 0 is right too."""
    return pytest.param(setup, words, forbid, success_ok, id=case_id)


def train_value(flags: str, *words: str, model: list[str] = DES) -> Any:
    return cli(f"train {flags}", lambda f, w: train(f, w, *flags.split(), model=model), *words)


# 2. numbers that would hang or take all the memory
HUGE = [
    cli(f"info --depths {BIG}", lambda f, w: ["info", str(f.gene), "--depths", BIG], BIG, "--depths"),
    cli(f"pipeline --depths {BIG} --print-config", lambda f, w: pipeline(w, "--depths", BIG), BIG, "depth"),
    cli(f"pipeline --set depths=[{BIG}] --print-config", lambda f, w: pipeline(w, "--set", f"depths=[{BIG}]"),
        BIG, "depth"),
    cli(f"compare --depths {BIG} --print-config", lambda f, w: compare(w, "--depths", BIG), BIG, "depth"),
    cli("expand --depth 100000000", lambda f, w: expand_argv(f, w, "--depth", "100000000"), "100000000", "--depth"),
    cli("expand --img-size 1000000", lambda f, w: expand_argv(f, w, "--img-size", "1000000"), "1000000", "--img-size"),
    cli("expand --width 10000000", lambda f, w: expand_argv(f, w, "--width", "10000000"), "10000000", "--width"),
    cli(f"expand --num-classes {BIG}", lambda f, w: expand_argv(f, w, "--num-classes", BIG), BIG, "--num-classes"),
    cli("expand --width 64 --width-seed 2**80", lambda f, w: expand_argv(f, w, "--width", "64", "--width-seed",
                                                                         TWO_TO_THE_80), "--width-seed"),
    train_value("--input-size 1000000", "--input-size", "1000000"),
    cli("train --seed 2**80", lambda f, w: train(f, w, "--seed", TWO_TO_THE_80), "--seed"),
    cli("pipeline --seed 2**80 --print-config", lambda f, w: pipeline(w, "--seed", TWO_TO_THE_80), "seed"),
    cli("train --model-kwargs depth=100000000", lambda f, w: train(
        f, w, "--model-kwargs", "depth=100000000", "embed_dim=32", "num_heads=2", "patch_size=4"), "depth"),
    cli("train --model-kwargs embed_dim=100000000", lambda f, w: train(
        f, w, "--model-kwargs", "depth=1", "embed_dim=100000000", "num_heads=2", "patch_size=4"), "embed_dim"),
]  # fmt: skip

# 3. values of sws train's flags that cannot work
TRAIN_VALUES = [
    train_value("--drop 2", "--drop"),
    train_value("--drop -1", "--drop"),
    train_value("--drop nan", "--drop"),
    train_value("--drop-path 5", "--drop-path"),
    train_value("--drop-path -0.5", "--drop-path"),
    train_value("--smoothing 2", "--smoothing"),
    train_value("--smoothing -1", "--smoothing"),
    train_value("--min-lr -1", "--min-lr"),
    train_value("--opt bogus", "--opt", "bogus"),
    train_value("--sched bogus", "--sched", "bogus"),
    train_value("--aa garbage", "--aa", "garbage"),
    train_value("--remode garbage --reprob 0.5", "--remode", "garbage"),
    train_value("--cutmix-minmax 0.5", "--cutmix-minmax"),
    train_value("--cutmix-minmax 0.8 0.2", "--cutmix-minmax"),
    train_value("--cutmix-minmax 0.1 0.2 0.3", "--cutmix-minmax"),
    train_value("--train-interpolation garbage", "--train-interpolation", "garbage"),
    train_value("--recount 0 --reprob 0.5", "--recount"),
    train_value("--mixup-mode garbage --mixup 0.8", "--mixup-mode", "garbage"),
    train_value("--mixup -1", "--mixup"),
    train_value("--cutmix -1", "--cutmix"),
    train_value("--mixup-prob 2 --mixup 0.8", "--mixup-prob"),
    train_value("--mixup-switch-prob -1 --mixup 0.8", "--mixup-switch-prob"),
    train_value("--hflip 2", "--hflip"),
    train_value("--hflip -0.5", "--hflip"),
    train_value("--lr 0", "--lr"),
    train_value("--lr -1", "--lr"),
    train_value("--lr nan", "--lr"),
    train_value("--lr inf", "--lr"),
    train_value("--warmup-lr -1", "--warmup-lr"),
    train_value("--warmup-epochs -1", "--warmup-epochs"),
    train_value("--batch-size 0", "--batch-size"),
    train_value("--epochs -1", "--epochs"),
    train_value("--epochs 0", "--epochs"),
    train_value("--accumulation-step 0", "--accumulation-step"),
    train_value("--clip-grad -1", "--clip-grad"),
    train_value("--eval-crop-ratio 0", "--eval-crop-ratio"),
    train_value("--eval-crop-ratio 2", "--eval-crop-ratio"),
    train_value("--model-ema --model-ema-decay 2", "--model-ema-decay"),
    train_value("--model-ema --model-ema-decay -1", "--model-ema-decay"),
    train_value("--distillation-tau 0", "--distillation-tau"),
    train_value("--distillation-alpha 2", "--distillation-alpha"),
    train_value("--opt-betas 1 2 3", "--opt-betas"),
    train_value("--opt-betas 2 0.999", "--opt-betas"),
    train_value("--opt-eps -1", "--opt-eps"),
    train_value("--weight-decay -1", "--weight-decay"),
    train_value("--weight-decay nan", "--weight-decay"),
    train_value("--color-jitter -1", "--color-jitter"),
    train_value("--reprob 2", "--reprob"),
    train_value("--num-classes 0", "--num-classes"),
    train_value("--num-classes -1", "--num-classes"),
    train_value("--decay-rate -1 --sched step", "--decay-rate"),
    train_value("--decay-epochs 0 --sched step", "--decay-epochs"),
    train_value("--print-freq -1", "--print-freq"),
    train_value("--input-size 0", "--input-size"),
    train_value("--train-subset 0", "--train-subset"),
    train_value("--holdout 0", "--holdout"),
    train_value("--crop-pad -1", "--crop-pad"),
    train_value("--device bogus", "--device", "bogus"),
    train_value("--model bogus", "bogus"),
    train_value("--layout 0,1", "layout", "0,1", model=AUX),
    train_value("--layout 3,,3", "empty item", model=AUX),
    cli("train --model-kwargs depth=abc", lambda f, w: train(
        f, w, "--model-kwargs", "depth=abc", "embed_dim=32", "num_heads=2", "patch_size=4"), "depth", "abc"),
    cli("train --model-kwargs num_heads=0", lambda f, w: train(
        f, w, "--model-kwargs", "depth=1", "embed_dim=32", "num_heads=0", "patch_size=4"), "num_heads"),
    cli("train --model-kwargs embed_dim=-32", lambda f, w: train(
        f, w, "--model-kwargs", "depth=1", "embed_dim=-32", "num_heads=2", "patch_size=4"), "embed_dim"),
    cli("train --model-kwargs depth=0", lambda f, w: train(
        f, w, "--model-kwargs", "depth=0", "embed_dim=32", "num_heads=2", "patch_size=4"), "depth", "layer"),
    cli("train --model-kwargs mlp_ratio=x", lambda f, w: train(
        f, w, "--model-kwargs", "depth=1", "embed_dim=32", "num_heads=2", "patch_size=4", "mlp_ratio=x"),
        "mlp_ratio"),
    cli("train --resume of another model's checkpoint", lambda f, w: train(
        f, w, "--resume", str(f.run / "checkpoint.pth")), "checkpoint.pth", "another model"),
    cli("train --resume of a folder", lambda f, w: train(f, w, "--resume", str(f.run)), "not a file", "run"),
    cli("train --layers-source 0,9 --load-gene", lambda f, w: train(
        f, w, "--load-gene", str(f.gene), "--layers-source", "0,9", model=DES2), "0,9", "9"),
    cli("train --load-gene of a 2-channel learngene on 3-channel data", lambda f, w: train(
        f, w, "--load-gene", str(f.gene2)), "in_chans", "channel"),
    cli("train --init select --ancestry that does not exist", lambda f, w: train(
        f, w, "--init", "select", "--ancestry", str(w / "no-such-model")), "no-such-model"),
    cli("train --distillation-type soft --teacher-model bogus", lambda f, w: train(
        f, w, "--distillation-type", "soft", "--teacher-model", "bogus", "--teacher-path", str(f.run / "args.yaml")),
        "bogus", "args.yaml"),
]  # fmt: skip

# 3. expand, info, import-official, extract and the top level
OTHER_COMMANDS = [
    cli("expand --std 0 (1-channel learngene)", lambda f, w: expand_argv(f, w, "--std", "0", gene=f.gene1), "--std"),
    cli("expand --std 0.5 0 0.5", lambda f, w: expand_argv(f, w, "--std", "0.5", "0", "0.5"), "--std"),
    cli("expand --std -1 -1 -1", lambda f, w: expand_argv(f, w, "--std", "-1", "-1", "-1"), "--std"),
    cli("expand --mean nan nan nan", lambda f, w: expand_argv(f, w, "--mean", "nan", "nan", "nan"), "--mean"),
    cli("expand --depth 0", lambda f, w: expand_argv(f, w, "--depth", "0"), "depth", "layer"),
    cli("expand --depth -1", lambda f, w: expand_argv(f, w, "--depth", "-1"), "depth", "layer"),
    cli("expand --num-heads 0", lambda f, w: expand_argv(f, w, "--num-heads", "0"), "num_heads", "--num-heads"),
    cli("expand --num-classes -1", lambda f, w: expand_argv(f, w, "--num-classes", "-1"), "num_classes",
        "--num-classes"),
    cli("expand --img-size 0", lambda f, w: expand_argv(f, w, "--img-size", "0"), "img_size", "--img-size"),
    cli("expand --img-size 17", lambda f, w: expand_argv(f, w, "--img-size", "17"), "17"),
    cli("expand --width 0", lambda f, w: expand_argv(f, w, "--width", "0"), "embed_dim", "--width"),
    cli("expand --width -32", lambda f, w: expand_argv(f, w, "--width", "-32"), "embed_dim", "--width"),
    cli("expand --layers-source 0,9", lambda f, w: expand_argv(f, w, "--layers-source", "0,9"), "9"),
    cli("expand --layers-source 0 (one entry for 2 layers)", lambda f, w: expand_argv(f, w, "--layers-source", "0"),
        "entries", "mapping"),
    cli("expand --layers-source 0.0,1.0", lambda f, w: expand_argv(f, w, "--layers-source", "0.0,1.0"), "0.0,1.0"),
    cli("expand --layers-source=-1,0", lambda f, w: expand_argv(f, w, "--layers-source=-1,0"), "-1"),
    cli("info --depths 3,,4", lambda f, w: ["info", str(f.gene), "--depths", "3,,4"], "empty item",
        forbid=("invalid",)),
    cli("info --depths 0", lambda f, w: ["info", str(f.gene), "--depths", "0"], "0", "layer"),
    cli("info --depths x", lambda f, w: ["info", str(f.gene), "--depths", "x"], "--depths", forbid=("invalid _",)),
    cli("import-official --aux-depth -3 (TLEG)", lambda f, w: [
        "import-official", str(f.official_tleg), "--aux-depth", "-3", "--out", str(w / "g.safetensors")],
        "--aux-depth", "-3"),
    cli("import-official --aux-depth 0 (TLEG)", lambda f, w: [
        "import-official", str(f.official_tleg), "--aux-depth", "0", "--out", str(w / "g.safetensors")],
        "--aux-depth"),
    cli("import-official --aux-depth -3 (SWS)", lambda f, w: [
        "import-official", str(f.official), "--aux-depth", "-3", "--out", str(w / "g.safetensors")],
        "--aux-depth", "-3"),
    cli("import-official --num-heads 0", lambda f, w: [
        "import-official", str(f.official), "--num-heads", "0", "--out", str(w / "g.safetensors")],
        "num_heads", "--num-heads"),
    cli("import-official --num-heads -2", lambda f, w: [
        "import-official", str(f.official), "--num-heads", "-2", "--out", str(w / "g.safetensors")],
        "num_heads", "--num-heads"),
    cli("extract --ema of a run without EMA", lambda f, w: [
        "extract", str(f.run / "checkpoint.pth"), "--ema", "--out", str(w / "g.safetensors")], "ema"),
    cli("sws bogus", lambda f, w: ["bogus"], "bogus"),
    cli("sws with no command", lambda f, w: [], "command"),
    cli("compare --methods nope", lambda f, w: compare(w, "--methods", "nope"), "nope"),
    cli("compare --methods sws,bogus", lambda f, w: compare(w, "--methods", "sws,bogus"), "bogus"),
    cli("compare --run-dir that does not exist", lambda f, w: [
        "compare", "--run-dir", str(w / "no-such-run"), "--methods", "sws,tleg"], "no-such-run"),
    cli("compare --epochs 0", lambda f, w: compare(w, "--epochs", "0"), "epochs"),
    cli("compare --epochs -1", lambda f, w: compare(w, "--epochs", "-1"), "epochs"),
    cli("compare --learngene that does not exist", lambda f, w: compare(
        w, "--learngene", str(w / "none.safetensors")), "none.safetensors"),
    cli("compare --widths 33", lambda f, w: compare(w, "--widths", "33"), "33"),
    cli("compare --depths 0", lambda f, w: compare(w, "--depths", "0"), "depths"),
]  # fmt: skip


# 4. study configs: the packaged mnist5k config with one thing changed, by file and by --set
def set_key(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value

    return change


def drop_key(key: str) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        del config[key]

    return change


CONFIG_DEFECTS = [  # (claim, change of the config, the same as --set or None, words)
    ("depths: 5", set_key("depths", 5), "depths=5", ("depths",)),
    ("methods: 3", set_key("methods", 3), "methods=3", ("methods",)),
    ("aux: [1, 2]", set_key("aux", [1, 2]), "aux=[1, 2]", ("aux",)),
    ("des_net: 1", set_key("des_net", 1), "des_net=1", ("des_net",)),
    ("des_net.methods: [a]", set_key("des_net.methods", ["a"]), "des_net.methods=[a]", ("des_net", "methods")),
    ("teacher: null", set_key("teacher", None), "teacher=null", ("teacher",)),
    ("train: 'x'", set_key("train", "x"), "train=x", ("train",)),
    ("budget: {epochs: abc}", set_key("budget", {"epochs": "abc"}), "budget={epochs: abc}", ("epochs", "abc")),
    ("train.batch-size: [1]", set_key("train.batch-size", [1]), "train.batch-size=[1]", ("batch-size", "batch_size")),
    ("train.lr: null", set_key("train.lr", None), "train.lr=null", ("lr",)),
    ("aux.train.epochs: 2.5", set_key("aux.train.epochs", 2.5), "aux.train.epochs=2.5", ("epochs", "2.5")),
    ("no aux section", drop_key("aux"), "aux=null", ("aux",)),
    ("depths: [true]", set_key("depths", [True]), "depths=[true]", ("depths", "true")),
    ("des_net.epochs: null", set_key("des_net.epochs", None), "des_net.epochs=null", ("epochs",)),
    ("des_net.methods.nope: {lr: 1}", set_key("des_net.methods.nope", {"lr": 1}), "des_net.methods.nope={lr: 1}",
     ("nope",)),
    ("aux.layout: 3,,3", set_key("aux.layout", "3,,3"), "aux.layout=3,,3", ("3,,3", "empty item")),
    ("aux.model_kwargs.embed_dim: abc", set_key("aux.model_kwargs.embed_dim", "abc"),
     "aux.model_kwargs.embed_dim=abc", ("embed_dim", "abc")),
    ("seed: abc", set_key("seed", "abc"), "seed=abc", ("seed", "abc")),
    ("seed: 2**80", set_key("seed", 2**80), f"seed={2**80}", ("seed",)),
    ("device: bogus", set_key("device", "bogus"), "device=bogus", ("device", "bogus")),
    ("widths: [33]", set_key("widths", [33]), "widths=[33]", ("33",)),
    ("train.lr: -1", set_key("train.lr", -1), "train.lr=-1", ("lr",)),
    ("input_size: 0", set_key("input_size", 0), "input_size=0", ("input", "size")),
    ("teacher.train.epochs: 0", set_key("teacher.train.epochs", 0), "teacher.train.epochs=0", ("epochs",)),
    ("des_net.methods.sws.at_depth: {4: {lr: abc}}", set_key("des_net.methods.sws.at_depth", {4: {"lr": "abc"}}),
     "des_net.methods.sws.at_depth={4: {lr: abc}}", ("lr", "abc")),
    ("aux.model_kwargs.num_heads: 3 (64 wide)", set_key("aux.model_kwargs.num_heads", 3),
     "aux.model_kwargs.num_heads=3", ("heads", "3")),
    ("aux.model_kwargs.patch_size: 5 (28 px)", set_key("aux.model_kwargs.patch_size", 5),
     "aux.model_kwargs.patch_size=5", ("patch", "5")),
    ("aux.layout: 0", set_key("aux.layout", 0), "aux.layout=0", ("layout", "0")),
    ("aux.layout: 1001", set_key("aux.layout", 1001), "aux.layout=1001", ("layout", "1001", "1,001")),
    ("des_net.methods.sws.at_depth: {x: {lr: 1}}", set_key("des_net.methods.sws.at_depth", {"x": {"lr": 1}}),
     "des_net.methods.sws.at_depth={x: {lr: 1}}", ("at_depth", "x")),
]  # fmt: skip


def _config_file(f: Files, w: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    config = copy.deepcopy(f.config)
    change(config)
    return write_yaml(w / "study.yaml", config)


NOT_UTF8 = b"depths: [4, 6]\n# caf\xe9 \xff\xfe\n"
YAML_ERRORS = {"an unclosed bracket": "depths: [4, 6\n", "a tab indent": "aux:\n\t- x\n", "a: b: c": "a: b: c\n"}

CONFIG_FILES = [
    *(cli(f"pipeline --config with {claim}", lambda f, w, c=change: pipeline(w, "--config", str(_config_file(f, w, c))),
          *words) for claim, change, _, words in CONFIG_DEFECTS),
    *(cli(f"pipeline --set {assignment}", lambda f, w, a=assignment: pipeline(w, "--set", a), *words)
      for _, _, assignment, words in CONFIG_DEFECTS if assignment),
    cli("pipeline --set 'depths=[4,' (not YAML)", lambda f, w: pipeline(w, "--set", "depths=[4,"), "depths", "yaml"),
    cli("report of a learngene file", lambda f, w: ["report", str(f.gene)], "gene.safetensors", "results.json"),
    cli("report of a folder without results.json", lambda f, w: ["report", str(w)], "results.json"),
    cli("compare --set depths=5", lambda f, w: compare(w, "--set", "depths=5"), "depths"),
    cli("pipeline --config of non-UTF-8 bytes", lambda f, w: (
        (w / "bytes.yaml").write_bytes(NOT_UTF8), pipeline(w, "--config", str(w / "bytes.yaml")))[-1], "bytes.yaml"),
    cli("compare --config of non-UTF-8 bytes", lambda f, w: (
        (w / "bytes.yaml").write_bytes(NOT_UTF8), compare(w, "--config", str(w / "bytes.yaml")))[-1], "bytes.yaml"),
    cli("train --config of non-UTF-8 bytes", lambda f, w: (
        (w / "bytes.yaml").write_bytes(NOT_UTF8), train(f, w, "--config", str(w / "bytes.yaml")))[-1], "bytes.yaml"),
    *(cli(f"pipeline --config with {what}", lambda f, w, t=text: (
        (w / "bad.yaml").write_text(t), pipeline(w, "--config", str(w / "bad.yaml")))[-1], "bad.yaml", "yaml")
      for what, text in YAML_ERRORS.items()),
    *(cli(f"train --config with {what}", lambda f, w, t=text: (
        (w / "bad.yaml").write_text(t), train(f, w, "--config", str(w / "bad.yaml")))[-1], "bad.yaml", "yaml")
      for what, text in YAML_ERRORS.items()),
]  # fmt: skip

TRAIN_CONFIG_DEFECTS = [  # (claim, the YAML mapping of flags, words, argv without these flags)
    ("epochs: 2.5", {"epochs": 2.5}, ("epochs",), "no-epochs"),
    ("lr: null", {"lr": None}, ("lr",), ""),
    ("lr: abc", {"lr": "abc"}, ("lr",), ""),
    ("lr: [1]", {"lr": [1]}, ("lr",), ""),
    ("seed: 1.5", {"seed": 1.5}, ("seed",), ""),
    ("drop: 2", {"drop": 2}, ("drop",), ""),
    ("model-kwargs: x", {"model-kwargs": "x"}, ("model-kwargs", "model_kwargs"), "no-model-kwargs"),
    ("opt-betas: 0.9", {"opt-betas": 0.9}, ("opt-betas", "opt_betas"), ""),
    ("model-ema: 'false' (a string)", {"model-ema": "false"}, ("model-ema", "model_ema"), ""),
    ("smoothing: -1", {"smoothing": -1}, ("smoothing",), ""),
]


def _train_with_config(f: Files, w: Path, values: dict[str, Any], without: str) -> list[str]:
    path = write_yaml(w / "train.yaml", values)
    model = ["--model", "des_net"] if without == "no-model-kwargs" else DES
    epochs = () if without == "no-epochs" else ("--epochs", "1")
    return train(f, w, "--config", str(path), model=model, epochs=epochs)


TRAIN_CONFIGS = [
    cli(f"train --config with {claim}", lambda f, w, v=values, x=without: _train_with_config(f, w, v, x), *words)
    for claim, values, words, without in TRAIN_CONFIG_DEFECTS
]

# 5. learngene files whose metadata is well-formed JSON with bad values
METADATA_DEFECTS = [  # (claim, change, words)
    ("architecture mlp_ratio 'x'", architecture(mlp_ratio="x"), ("mlp_ratio",)),
    ("architecture mlp_ratio null", architecture(mlp_ratio=None), ("mlp_ratio",)),
    ("architecture mlp_ratio -2", architecture(mlp_ratio=-2.0), ("mlp_ratio",)),
    ("architecture norm_eps 'x'", architecture(norm_eps="x"), ("norm_eps",)),
    ("architecture norm_eps -1", architecture(norm_eps=-1.0), ("norm_eps",)),
    ("architecture qkv_bias 'yes'", architecture(qkv_bias="yes"), ("qkv_bias",)),
    ("architecture num_classes 'x'", architecture(num_classes="x"), ("num_classes",)),
    ("architecture embed_dim 32.0", architecture(embed_dim=32.0), ("embed_dim",)),
    ("training mean 5", training(mean=5), ("mean",)),
    ("training mean 'abc'", training(mean="abc"), ("mean",)),
    ("training mean of 2 values for 3 channels", training(mean=[0.5, 0.5]), ("mean",)),
    ("training std 0", training(std=[0.0, 0.0, 0.0]), ("std",)),
    ("format_version '²'", entries(format_version="²"), ("format_version", "version")),
    ("format_version '-1'", entries(format_version="-1"), ("format_version", "version")),
    ("aux_depth 'abc'", entries(aux_depth="abc"), ("aux_depth",)),
    ("aux_depth -5 (the layout says 2)", entries(aux_depth="-5"), ("aux_depth",)),
    ("no architecture", entries(architecture=None), ("architecture",)),
    ("architecture a JSON list", entries(architecture="[1, 2]"), ("architecture",)),
    ("no layout", entries(layout=None), ("layout",)),
    ("training a JSON list", entries(training="[1, 2]"), ("training",)),
]


def _bad_gene(f: Files, w: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    return rewrite_learngene(f.gene, w / "bad.safetensors", change)


LEARNGENE_METADATA = [
    *(cli(f"info: learngene {claim}", lambda f, w, c=change: ["info", str(_bad_gene(f, w, c))], *words)
      for claim, change, words in METADATA_DEFECTS),
    *(cli(f"expand: learngene {claim}", lambda f, w, c=change: expand_argv(f, w, gene=_bad_gene(f, w, c)), *words)
      for claim, change, words in METADATA_DEFECTS),
    *(cli(f"train --load-gene: learngene {claim}", lambda f, w, c=change: train(
        f, w, "--load-gene", str(_bad_gene(f, w, c)), model=DES2), *words)
      for claim, change, words in METADATA_DEFECTS),
    cli("info of a truncated learngene", lambda f, w: (
        (w / "half.safetensors").write_bytes(f.gene.read_bytes()[: f.gene.stat().st_size // 2]),
        ["info", str(w / "half.safetensors")])[-1], "half.safetensors"),
    cli("expand of a truncated learngene", lambda f, w: (
        (w / "half.safetensors").write_bytes(f.gene.read_bytes()[: f.gene.stat().st_size // 2]),
        expand_argv(f, w, gene=w / "half.safetensors"))[-1], "half.safetensors"),
]  # fmt: skip

# 6. checkpoints written by sws train with one entry changed
READ_BY_INFO = ("info", "extract", "train --teacher-path")
RESUMED = ("train --resume", "train --eval --resume")
CHECKPOINT_COMMANDS: dict[str, Callable[[Files, Path, Path], list[str]]] = {
    "info": lambda f, w, p: ["info", str(p)],
    "extract": lambda f, w, p: ["extract", str(p), "--out", str(w / "g.safetensors")],
    "train --resume": lambda f, w, p: train(f, w, "--resume", str(p), model=AUX, epochs=("--epochs", "2")),
    "train --eval --resume": lambda f, w, p: train(f, w, "--eval", "--resume", str(p), model=AUX),
    "train --finetune": lambda f, w, p: train(f, w, "--finetune", str(p), model=AUX),
    "train --teacher-path": lambda f, w, p: train(
        f, w, "--teacher-model", "aux_net", "--teacher-path", str(p), "--distillation-type", "soft"),
}  # fmt: skip
ALL_CHECKPOINT_COMMANDS = tuple(CHECKPOINT_COMMANDS)


def _renamed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"foo.{k}": v for k, v in state.items()}


def _shrunk(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.zeros(1) for k in state}


CHECKPOINT_DEFECTS = [  # (claim, change, words besides the file name, commands that read the entry)
    ("model empty", set_entry("model", {}), ("model",), ALL_CHECKPOINT_COMMANDS),
    ("model not a dict", set_entry("model", "x"), ("model",), ALL_CHECKPOINT_COMMANDS),
    ("model of wrong shapes", model_entry(_shrunk), ("model", "shape"), ALL_CHECKPOINT_COMMANDS),
    ("model of unknown names", model_entry(_renamed), ("model", "foo."), ALL_CHECKPOINT_COMMANDS),
    ("model_kwargs a list", set_entry("model_kwargs", [1, 2]), ("model_kwargs",), READ_BY_INFO),
    ("model_name bogus", set_entry("model_name", "bogus"), ("bogus",), READ_BY_INFO),
    ("data a list", set_entry("data", [1, 2]), ("data",), ("info", "extract")),
    ("epoch 'abc'", set_entry("epoch", "abc"), ("epoch",), ("info", "extract", "train --resume")),
    ("epoch missing", drop_entry("epoch"), ("epoch",), ("train --resume",)),
    ("optimizer missing", drop_entry("optimizer"), ("optimizer",), ("train --resume",)),
    ("optimizer garbage", set_entry("optimizer", "x"), ("optimizer",), ("train --resume",)),
    ("lr_scheduler missing", drop_entry("lr_scheduler"), ("lr_scheduler",), ("train --resume",)),
    ("lr_scheduler garbage", set_entry("lr_scheduler", "x"), ("lr_scheduler",), ("train --resume",)),
    ("init garbage", set_entry("init", "x"), ("init",), RESUMED),
    ("history a string", set_entry("history", "abc"), ("history",), ("train --resume",)),
    ("rng garbage", set_entry("rng", "x"), ("rng",), ("train --resume",)),
    ("best_top1 'abc'", set_entry("best_top1", "abc"), ("best_top1",), ("train --resume",)),
    ("a list", lambda c: [1, 2], ("list",), ("info", "extract", "train --resume", "train --finetune",
                                            "train --teacher-path")),
]  # fmt: skip


def _bad_checkpoint(f: Files, w: Path, claim: str, change: Callable[[dict[str, Any]], Any]) -> Path:
    return rewrite_checkpoint(f.checkpoint, w / f"{slug(claim)}.pth", change)


CHECKPOINTS = [
    cli(f"{command}: checkpoint {claim}", lambda f, w, c=claim, ch=change, cmd=command: CHECKPOINT_COMMANDS[cmd](
        f, w, _bad_checkpoint(f, w, c, ch)), f"{slug(claim)}.pth", *words)
    for claim, change, words, commands in CHECKPOINT_DEFECTS
    for command in commands
]  # fmt: skip
CHECKPOINTS += [
    # sws 0.1's checkpoints lack ``init``: resuming one may work, or be refused in one line
    cli("train --resume: checkpoint init missing", lambda f, w: CHECKPOINT_COMMANDS["train --resume"](
        f, w, _bad_checkpoint(f, w, "init missing", drop_entry("init"))), "init", success_ok=True),
    cli("extract --ema: checkpoint model_ema garbage", lambda f, w: [
        "extract", str(_bad_checkpoint(f, w, "model_ema garbage", set_entry("model_ema", "x"))), "--ema",
        "--out", str(w / "g.safetensors")], "model_ema", "ema"),
    cli("info of a truncated checkpoint", lambda f, w: (
        (w / "half.pth").write_bytes((f.run / "checkpoint.pth").read_bytes()[:5000]),
        ["info", str(w / "half.pth")])[-1], "half.pth"),
]  # fmt: skip


def _flipped(f: Files, w: Path) -> Path:
    path = w / "flipped.pth"
    shutil.copyfile(f.run / "checkpoint.pth", path)
    return flip_bytes_in_tensor(path, f.checkpoint["model"]["blocks.0.attn.qkv.weight"])


CORRUPT = ("corrupt", "damaged", "checksum", "crc")
CHECKPOINTS += [
    cli(f"{command}: 64 flipped bytes inside a tensor of the checkpoint", lambda f, w, cmd=command: (
        CHECKPOINT_COMMANDS[cmd](f, w, _flipped(f, w))), *CORRUPT)
    for command in ("info", "extract", "train --resume", "train --finetune")
]  # fmt: skip


# 7. official checkpoints of the wrong shapes
def _official_model(edit: Callable[[dict[Any, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(checkpoint: dict[str, Any]) -> None:
        edit(checkpoint["model"])

    return change


OFFICIAL_DEFECTS = [  # (claim, change of the official checkpoint, words)
    ("a 2-D patch projection", _official_model(lambda s: s.update({"patch_embed.proj.weight": torch.randn(48, 48)})),
     ("patch_embed.proj.weight",)),
    ("a 1-D pos_embed", _official_model(lambda s: s.update({"pos_embed": torch.randn(16 * 48)})), ("pos_embed",)),
    ("a non-tensor value", _official_model(lambda s: s.update({"norm.weight": "x"})), ("norm.weight",)),
    ("an int key", _official_model(lambda s: s.update({12345: torch.ones(1)})), ("12345",)),
    ("a 0-D head weight", _official_model(lambda s: s.update({"head.weight": torch.tensor(1.0)})), ("head.weight",)),
    ("a pos_embed of another width", _official_model(lambda s: s.update({"pos_embed": torch.randn(1, 16, 40)})),
     ("pos_embed",)),
    ("a qkv weight of the wrong shape", _official_model(
        lambda s: s.update({"blocks.block.attn.qkv.instances.0.weight": torch.randn(10, 48)})), ("qkv",)),
    ("a model entry that is a list", set_entry("model", [1, 2]), ("model",)),
    ("args that are a string", set_entry("args", "x"), ("args", "model name", "--num-heads")),
]  # fmt: skip


def _bad_official(f: Files, w: Path, claim: str, change: Callable[[dict[str, Any]], Any]) -> Path:
    return rewrite_checkpoint(f.official_checkpoint, w / f"{slug(claim)}.pth", change)


def _other_width_checkpoint(w: Path) -> Path:
    model = create_model("des_net", depth=1, embed_dim=48, num_heads=2, patch_size=4, img_size=16, num_classes=3)
    torch.save({"model": model.state_dict()}, w / "wide.pth")
    return w / "wide.pth"


def _ancestry_folder(f: Files, w: Path, pickled: Any = None) -> Path:
    """A timm hub folder of a 2-layer Des-Net whose weights are a pickled ``pytorch_model.bin``
    instead of ``model.safetensors``."""
    folder = save_des_net(expand(Learngene.load(f.gene), 2), w / "ancestry")
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save({**weights, **({"extra": pickled} if pickled is not None else {})}, folder / "pytorch_model.bin")
    return folder


OFFICIAL = [
    *(cli(f"import-official: official checkpoint with {claim}", lambda f, w, c=claim, ch=change: [
        "import-official", str(_bad_official(f, w, c, ch)), "--out", str(w / "g.safetensors")],
        f"{slug(claim)}.pth", *words) for claim, change, words in OFFICIAL_DEFECTS),
    *(cli(f"info: official checkpoint with {claim}", lambda f, w, c=claim, ch=change: [
        "info", str(_bad_official(f, w, c, ch))], f"{slug(claim)}.pth", *words)
      for claim, change, words in OFFICIAL_DEFECTS),
    cli("train --finetune of a checkpoint of another width", lambda f, w: train(
        f, w, "--finetune", str(_other_width_checkpoint(w))), "wide.pth", "48"),
    # a timm folder may hold pytorch_model.bin: reading it weights-only is as right as refusing it
    cli("train --init select --ancestry of a folder holding a pickled pytorch_model.bin", lambda f, w: train(
        f, w, "--init", "select", "--ancestry", str(_ancestry_folder(f, w)), model=DES2),
        "pytorch_model.bin", "model.safetensors", success_ok=True),
]  # fmt: skip


# 8. data files
def _fashion(change: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], Path]:
    return lambda w: write_fashion(w / "fashion", change)


def _labels_200(a: dict[str, np.ndarray]) -> None:
    a["train_labels"][0] = 200


def _val_labels_10(a: dict[str, np.ndarray]) -> None:
    a["val_labels"][0] = 10


FASHION_DEFECTS = [  # (claim, change of the four arrays, words)
    ("labels out of range (200 of 10 classes)", _labels_200, ("200",)),
    ("validation labels out of range (10 of 10 classes)", _val_labels_10, ("10", "t10k-labels")),
    ("training images of rank 2", lambda a: a.update(train_images=a["train_images"].reshape(32, 784)),
     ("train-images", "rank", "dimension")),
    ("training images of rank 4", lambda a: a.update(train_images=a["train_images"].reshape(32, 2, 28, 14)),
     ("train-images", "rank", "dimension")),
    ("32 training images and 30 labels", lambda a: a.update(train_labels=a["train_labels"][:30]),
     ("train-labels", "train-images", "30")),
    ("labels of rank 2", lambda a: a.update(train_labels=a["train_labels"].reshape(16, 2)), ("train-labels", "label")),
]  # fmt: skip


def _folder_with_extra_val_class(f: Files, w: Path) -> Path:
    root = Path(shutil.copytree(f.data, w / "data"))
    (root / "val" / "purple").mkdir()
    shutil.copyfile(root / "val" / "red" / "000.png", root / "val" / "purple" / "000.png")
    return root


def _folder_with_a_broken_image(f: Files, w: Path) -> Path:
    root = Path(shutil.copytree(f.data, w / "data"))
    (root / "train" / "red" / "000.png").write_bytes(b"not a png")
    return root


DATA = [
    *(cli(f"train --data-set FASHION_MNIST: {claim}", lambda f, w, c=change: train(
        f, w, "--data-set", "FASHION_MNIST", "--data-path", str(_fashion(c)(w))), *words)
      for claim, change, words in FASHION_DEFECTS),
    cli("train --data-set FOLDER: val/ holding a class that train/ lacks", lambda f, w: train(
        f, w, "--data-path", str(_folder_with_extra_val_class(f, w))), "purple"),
    cli("train --data-set FOLDER: a training image that is not an image", lambda f, w: train(
        f, w, "--data-path", str(_folder_with_a_broken_image(f, w))), "000.png"),
]  # fmt: skip

CLI_CASES = [
    *HUGE,
    *TRAIN_VALUES,
    *OTHER_COMMANDS,
    *CONFIG_FILES,
    *TRAIN_CONFIGS,
    *LEARNGENE_METADATA,
    *CHECKPOINTS,
    *OFFICIAL,
    *DATA,
]


@pytest.mark.parametrize(("setup", "words", "forbid", "success_ok"), CLI_CASES)
def test_bad_input_gets_one_line_naming_it(
    setup, words, forbid, success_ok, files, tmp_path, capsys, monkeypatch, request
) -> None:
    monkeypatch.chdir(tmp_path)
    case = request.node.callspec.id
    result = run_cli(case, setup(files, tmp_path), capsys)
    if success_ok and result.code == 0:
        return
    result.assert_refused(words, forbid)


# -- the library ----------------------------------------------------------------------------------

Call = Callable[[Files, Path], Any]


def lib(case_id: str, call: Call, *words: str) -> Any:
    """A library case: ``call(files, workdir)`` must raise ``SWSError`` naming one of ``words``."""
    return pytest.param(call, words, id=f"library: {case_id}")


def _gene(f: Files) -> Learngene:
    return Learngene.load(f.gene)


def _aux_net(layout: str) -> AuxNet:
    return AuxNet(layout, **ARCH.to_dict())


def _gene_of_layout(layout: str) -> Learngene:
    return SWSLearngene.from_aux_net(perturbed_aux_net(layout, ARCH))


def _plan(config: dict[str, Any], w: Path) -> Any:
    """What ``sws pipeline --print-config`` does with a config: parse every step's flags."""
    return Study(config, w / "p").plan(config.get("methods") or ["sws", "scratch"], config["depths"])


def _des_net(depth: int = 2) -> Any:
    return create_model("des_net", depth=depth, **ARCH.to_dict())


LIBRARY = [
    lib("StageLayout.mapping(10**9)", lambda f, w: StageLayout.parse("3,3,4,3,3").mapping(10**9), BIG),
    lib("Learngene.describe([10**9])", lambda f, w: _gene(f).describe([10**9]), BIG),
    lib("expand(gene, depth=10**8)", lambda f, w: expand(_gene(f), 10**8), "100000000"),
    lib("expand(gene, 2, img_size=10**6)", lambda f, w: expand(_gene(f), 2, img_size=10**6), "1000000"),
    lib("expand(gene, 2, embed_dim=10**7)", lambda f, w: expand(_gene(f), 2, embed_dim=10**7), "10000000"),
    lib("expand(gene, 2, num_classes=10**9)", lambda f, w: expand(_gene(f), 2, num_classes=10**9), BIG),
    lib("expand(gene, 2, mapping=[0.0, 1.0])", lambda f, w: expand(_gene(f), 2, mapping=[0.0, 1.0]), "0.0"),
    lib("expand(gene, 2, mapping=[0.5, 1])", lambda f, w: expand(_gene(f), 2, mapping=[0.5, 1]), "0.5"),
    lib("expand(gene, 2, mapping=[True, False])", lambda f, w: expand(_gene(f), 2, mapping=[True, False]), "True"),
    lib("StageLayout.validate_mapping([0.0, 1.0])", lambda f, w: StageLayout((1, 1)).validate_mapping([0.0, 1.0]),
        "0.0"),
    lib("initialize_from_learngene(Des-Net, gene, [0.0, 1.0])", lambda f, w: initialize_from_learngene(
        _des_net(), _gene(f), [0.0, 1.0]), "0.0"),
    lib("initialize_from_learngene(Aux-Net 2, learngene 1,1): shared layers would get stages 0 and 1",
        lambda f, w: initialize_from_learngene(_aux_net("2"), _gene(f)), "stage", "share"),
    lib("initialize_from_learngene(Aux-Net 2,1, learngene 1,1,1)", lambda f, w: initialize_from_learngene(
        _aux_net("2,1"), _gene_of_layout("1,1,1")), "stage", "share"),
    lib("initialize_from_learngene(Aux-Net 2, learngene 1,1, mapping 0,1)", lambda f, w: initialize_from_learngene(
        _aux_net("2"), _gene(f), [0, 1]), "stage", "share"),
    lib("create_model('aux_deit_tiny_patch16_224_L16_33433', layout='2,2')", lambda f, w: create_model(
        "aux_deit_tiny_patch16_224_L16_33433", layout="2,2"), "layout", "2,2"),
    lib("create_model('aux_deit_tiny_patch16_224_L12_444', layout='2,2')", lambda f, w: create_model(
        "aux_deit_tiny_patch16_224_L12_444", layout="2,2"), "layout", "2,2"),
    lib("create_model('deit_tiny_patch16_224_L9', depth=3)", lambda f, w: create_model(
        "deit_tiny_patch16_224_L9", depth=3), "depth"),
    lib("create_model('tleg_aux_deit_tiny_patch16_224_L8', depth=3)", lambda f, w: create_model(
        "tleg_aux_deit_tiny_patch16_224_L8", depth=3), "depth"),
    lib("import_official(TLEG, aux_depth=-3)", lambda f, w: import_official(f.official_tleg, aux_depth=-3),
        "aux_depth", "-3"),
    lib("import_official(TLEG, aux_depth=0)", lambda f, w: import_official(f.official_tleg, aux_depth=0),
        "aux_depth"),
    lib("ViTArchitecture(mlp_ratio='x')", lambda f, w: ViTArchitecture(mlp_ratio="x"), "mlp_ratio"),
    lib("ViTArchitecture(mlp_ratio=None)", lambda f, w: ViTArchitecture(mlp_ratio=None), "mlp_ratio"),
    lib("ViTArchitecture(mlp_ratio=-2)", lambda f, w: ViTArchitecture(mlp_ratio=-2.0), "mlp_ratio"),
    lib("ViTArchitecture(norm_eps='x')", lambda f, w: ViTArchitecture(norm_eps="x"), "norm_eps"),
    lib("ViTArchitecture(qkv_bias='yes')", lambda f, w: ViTArchitecture(qkv_bias="yes"), "qkv_bias"),
    lib("ViTArchitecture(num_classes='x')", lambda f, w: ViTArchitecture(num_classes="x"), "num_classes"),
    lib("change_width(gene, 0)", lambda f, w: change_width(_gene(f), 0), "embed_dim"),
    lib("change_width(gene, 10**7)", lambda f, w: change_width(_gene(f), 10**7), "10000000"),
    lib("apply_overrides(config, ['depths=[4,'])", lambda f, w: apply_overrides(f.config, ["depths=[4,"]), "depths"),
    lib("load_config(a file of non-UTF-8 bytes)", lambda f, w: load_config(
        (w / "bytes.yaml").write_bytes(NOT_UTF8) and w / "bytes.yaml"), "bytes.yaml"),
    lib("load_checkpoint(64 flipped bytes inside a tensor)", lambda f, w: load_checkpoint(_flipped(f, w)), *CORRUPT),
    lib("build_datasets('FOLDER'): val/ holding a class that train/ lacks", lambda f, w: build_datasets(
        "FOLDER", _folder_with_extra_val_class(f, w)), "purple"),
    *(lib(f"Learngene.load: learngene {claim}", lambda f, w, c=change: Learngene.load(_bad_gene(f, w, c)), *words)
      for claim, change, words in METADATA_DEFECTS),
    *(lib(f"load_learngene: checkpoint {claim}", lambda f, w, c=claim, ch=change: load_learngene(
        _bad_checkpoint(f, w, c, ch)), *words) for claim, change, words, commands in CHECKPOINT_DEFECTS
      if "info" in commands),
    *(lib(f"extract(dict): checkpoint {claim}", lambda f, w, ch=change: extract(_edited(f, ch)), *words)
      for claim, change, words, commands in CHECKPOINT_DEFECTS if "extract" in commands and claim != "a list"),
    *(lib(f"import_official: official checkpoint with {claim}", lambda f, w, c=claim, ch=change: import_official(
        _bad_official(f, w, c, ch)), *words) for claim, change, words in OFFICIAL_DEFECTS),
    *(lib(f"build_datasets('FASHION_MNIST'): {claim}", lambda f, w, c=change: build_datasets(
        "FASHION_MNIST", _fashion(c)(w)), *words) for claim, change, words in FASHION_DEFECTS),
    *(lib(f"Study.plan: config with {claim}", lambda f, w, c=change: _plan(load_config(_config_file(f, w, c)), w),
          *words) for claim, change, _, words in CONFIG_DEFECTS),
]  # fmt: skip


def _edited(f: Files, change: Callable[[dict[str, Any]], Any]) -> Any:
    edited = copy.deepcopy(f.checkpoint)
    replaced = change(edited)
    return edited if replaced is None else replaced


@pytest.mark.parametrize(("call", "words"), LIBRARY)
def test_the_library_raises_its_own_error_naming_the_problem(call, words, files, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    case = request.node.callspec.id
    error = raised_by(case, lambda: call(files, tmp_path))
    if error is None:
        pytest.fail(f"{case}: accepted silently (no error)", pytrace=False)
    if not isinstance(error, SWSError):
        pytest.fail(f"{case}: raised {type(error).__name__}, not an SWSError: {str(error)[:300]}", pytrace=False)
    message = str(error).lower()
    assert any(word.lower() in message for word in words), f"{case}: names none of {list(words)}: {error}"


def test_the_tables_hold_a_hundred_cases_and_cover_every_command() -> None:
    assert len(CLI_CASES) + len(LIBRARY) >= 100
    ids = [case.id for case in CLI_CASES]
    assert len(set(ids)) == len(ids), "case names are claims: each one once"
    heads = {case_id.split(":")[0].split()[0] for case_id in ids}
    assert {"train", "expand", "info", "import-official", "extract", "pipeline", "compare"} <= heads


# -- 1. what must not be lost or silently wrong ---------------------------------------------------


def _finished_run(files: Files, tmp_path: Path, capsys) -> tuple[list[str], Path]:
    argv = train(files, tmp_path)
    run_cli("a first run", argv, capsys).assert_succeeded()
    return argv, tmp_path / "out"


def test_a_finished_run_of_other_flags_is_refused_naming_the_flag_and_kept(files, tmp_path, capsys) -> None:
    argv, out = _finished_run(files, tmp_path, capsys)
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pth", "log.jsonl")}
    result = run_cli("train over a finished run with --seed 5", [*argv, "--seed", "5"], capsys)
    after = {name: (out / name).read_bytes() for name in before}
    assert after == before, "the finished run's checkpoint.pth or log.jsonl changed"
    result.assert_refused(("--seed", "seed"))


def test_overwrite_retrains_a_finished_run_of_other_flags(files, tmp_path, capsys) -> None:
    argv, out = _finished_run(files, tmp_path, capsys)
    run_cli("train --overwrite over a finished run with --seed 5", [*argv, "--seed", "5", "--overwrite"],
            capsys).assert_succeeded()  # fmt: skip
    assert load_checkpoint(out / "checkpoint.pth")["args"]["seed"] == 5


def test_the_same_flags_on_a_finished_run_retrain_nothing(files, tmp_path, capsys) -> None:
    argv, out = _finished_run(files, tmp_path, capsys)
    stamp = (out / "checkpoint.pth").stat().st_mtime_ns
    log = (out / "log.jsonl").read_bytes()
    run_cli("the same train command again", argv, capsys).assert_succeeded()
    assert (out / "checkpoint.pth").stat().st_mtime_ns == stamp, "the finished run was trained again"
    assert (out / "log.jsonl").read_bytes() == log


def test_training_keeps_the_users_files_whose_names_end_in_sws_tmp(files, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    mine = {out / "notes.sws-tmp": "mine", out / "sub" / "results.sws-tmp": "mine too"}
    for path, text in mine.items():
        path.write_text(text)
    result = run_cli("train into a folder holding *.sws-tmp files of the user's", train(files, tmp_path), capsys)
    lost = [str(path.relative_to(tmp_path)) for path, text in mine.items() if not path.is_file()]
    assert not lost, f"training deleted the user's files {lost}"
    assert all(path.read_text() == text for path, text in mine.items())
    if result.code != 0:
        result.assert_refused(("sws-tmp", str(out)))


def test_eval_of_a_checkpoint_with_epochs_0_evaluates(files, tmp_path, capsys) -> None:
    argv = train(files, tmp_path, "--eval", "--resume", str(files.run / "checkpoint.pth"), model=AUX,
                 epochs=("--epochs", "0"))  # fmt: skip
    result = run_cli("train --eval --resume CKPT --epochs 0", argv, capsys)
    result.assert_succeeded()
    assert "top-1" in result.out


def test_a_learngene_in_a_folder_named_with_byte_0xff_loads_with_sws_info(files, tmp_path, capsys) -> None:
    folder = tmp_path / os.fsdecode(b"\xff")
    folder.mkdir()
    shutil.copyfile(files.gene, folder / "gene.safetensors")
    result = run_cli("info of a learngene under a folder named b'\\xff'", ["info", str(folder / "gene.safetensors")],
                     capsys)  # fmt: skip
    result.assert_succeeded()
    assert "layout" in result.out


def test_training_into_a_folder_named_with_byte_0xff_runs(files, tmp_path, capsys) -> None:
    out = tmp_path / os.fsdecode(b"\xff") / "run"
    argv = [*train(files, tmp_path), "--output_dir", str(out)]
    run_cli("train --output_dir under a folder named b'\\xff'", argv, capsys).assert_succeeded()
    assert (out / "checkpoint.pth").is_file()


# -- inputs that would run code -------------------------------------------------------------------

TAG = '!!python/object/apply:os.system ["touch {marker}"]'
MARKER_CASES = [
    pytest.param(lambda f, w, m: pipeline(w, "--set", f"aux.train.lr={TAG.format(marker=m)}"),
                 id="pipeline --set with a !!python tag"),
    pytest.param(lambda f, w, m: compare(w, "--set", f"aux.train.lr={TAG.format(marker=m)}"),
                 id="compare --set with a !!python tag"),
    pytest.param(lambda f, w, m: train(f, w, "--model-kwargs", "depth=1", "embed_dim=32", "num_heads=2",
                                       "patch_size=4", f"k={TAG.format(marker=m)}"),
                 id="train --model-kwargs k=!!python tag"),
    pytest.param(lambda f, w, m: train(f, w, "--teacher-model", "test_resnet", "--distillation-type", "soft",
                                       "--teacher-model-kwargs", f"k={TAG.format(marker=m)}"),
                 id="train --teacher-model-kwargs k=!!python tag"),
    pytest.param(lambda f, w, m: train(f, w, "--config", str(
        (w / "tag.yaml").write_text(f"lr: {TAG.format(marker=m)}\n") and w / "tag.yaml")),
                 id="train --config holding a !!python tag"),
    pytest.param(lambda f, w, m: pipeline(w, "--config", str(
        (w / "tag.yaml").write_text(f"depths: [4]\nseed: {TAG.format(marker=m)}\n") and w / "tag.yaml")),
                 id="pipeline --config holding a !!python tag"),
    pytest.param(lambda f, w, m: train(f, w, "--init", "select", "--ancestry", str(
        _ancestry_folder(f, w, TouchOnUnpickle(m))), model=DES2),
                 id="train --ancestry of a timm folder whose pytorch_model.bin runs code"),
    pytest.param(lambda f, w, m: (torch.save({"model": TouchOnUnpickle(m), "model_name": "x"}, w / "evil.pth"),
                                  train(f, w, "--resume", str(w / "evil.pth")))[-1],
                 id="train --resume of a pickle that runs code"),
    pytest.param(lambda f, w, m: (torch.save({"model": TouchOnUnpickle(m)}, w / "evil.pth"),
                                  ["info", str(w / "evil.pth")])[-1],
                 id="info of a pickle that runs code"),
]  # fmt: skip


@pytest.mark.parametrize("setup", MARKER_CASES)
def test_input_that_would_run_code_is_refused_and_runs_nothing(setup, files, tmp_path, capsys, request) -> None:
    marker = tmp_path / "pwned"
    case = request.node.callspec.id
    result = run_cli(case, setup(files, tmp_path, marker), capsys)
    assert not marker.exists(), f"{case}: the input ran code (the marker file was created)"
    result.assert_refused(())


def test_a_python_tag_in_overrides_runs_nothing_in_the_library(files, tmp_path) -> None:
    marker = tmp_path / "pwned"
    assignment = f"aux.train.lr={TAG.format(marker=marker)}"
    error = raised_by("apply_overrides with a !!python tag", lambda: apply_overrides(files.config, [assignment]))
    assert not marker.exists()
    assert isinstance(error, SWSError), f"raised {type(error).__name__}: {error}"


# -- the bad files are bad for the reason their names give ----------------------------------------


def test_the_unchanged_copies_of_the_valid_files_are_accepted(files, tmp_path) -> None:
    """Each maker, asked to change nothing, gives a file that sws accepts: the bad cases fail for
    their one change, not for the way they were written."""
    assert Learngene.load(rewrite_learngene(files.gene, tmp_path / "g.safetensors", lambda m: None)).layout
    assert load_learngene(rewrite_checkpoint(files.checkpoint, tmp_path / "c.pth", lambda c: None)).layout
    assert import_official(rewrite_checkpoint(files.official_checkpoint, tmp_path / "o.pth", lambda c: None)).layout
    train_set, val_set, spec = build_datasets("FASHION_MNIST", write_fashion(tmp_path / "fashion"))
    assert (len(train_set), len(val_set), spec.num_classes) == (32, 10, 10)
    config = load_config(_config_file(files, tmp_path, lambda c: None))
    assert _plan(config, tmp_path).des_nets
    assert yaml.safe_load(yaml.safe_dump(config)) == config

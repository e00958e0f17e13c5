"""The flags of ``sws train``: the official SWS/DeiT command line, plus a YAML config file.

The names and meanings are those of the official code (DeiT's ``main.py`` with SWS's
``--load-gene`` and ``--layers-source``), so the paper's commands run as written once
``python -m torch.distributed.launch --use_env main.py`` becomes ``torchrun ... -m sws train``.
Defaults are DeiT's except where a laptop needs otherwise (``--device auto``; ``--input-size``
defaults to the data's own size for the built-in data; ``--num_workers`` is capped at the CPU
count).

``--config FILE`` reads a YAML mapping whose keys are flag names (``batch-size`` or
``batch_size``); the command line wins over the file.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sws.distill import DISTILLATION_TYPES
from sws.errors import ConfigError, first_line
from sws.initialization import METHODS
from sws.layout import StageLayout, parse_mapping
from sws.parsing import Parser

INIT_METHODS = ("auto", *METHODS)


def _model_kwargs(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--model-kwargs takes key=value pairs, not {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="sws train",
        description="Distill an Aux-Net from a teacher, or fine-tune a Des-Net (official SWS/DeiT flags).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", help="YAML file of flag values; the command line wins")

    g = p.add_argument_group("model")
    g.add_argument("--model", default="deit_small_patch16_224_L12", help="model name (timm, Aux-Net or Des-Net)")
    g.add_argument(
        "--model-kwargs",
        nargs="*",
        type=_model_kwargs,
        default=[],
        metavar="KEY=VALUE",
        help="extra model arguments, e.g. embed_dim=64 num_heads=2 patch_size=7",
    )
    g.add_argument("--layout", help="stage layout of an Aux-Net built by name 'aux_net' (e.g. 3,3,4,3,3)")
    g.add_argument("--input-size", type=int, default=None, help="image size (default: the data's own, else 224)")
    g.add_argument("--drop", type=float, default=0.0, help="dropout rate")
    g.add_argument("--drop-path", type=float, default=0.1, help="stochastic depth rate")
    g.add_argument("--num-classes", type=int, default=None, help="classes, for data sets that do not list them")

    g = p.add_argument_group("initialization")
    g.add_argument("--load-gene", default="", help="learngene file or official/sws Aux-Net checkpoint to expand")
    g.add_argument("--layers-source", default=None, help="layer mapping, e.g. 0,0,0,1,1,1,2,2,3,3,4,4")
    g.add_argument(
        "--init",
        default="auto",
        choices=INIT_METHODS,
        help="initialization: sws/tleg from --load-gene, select/inherit from --ancestry, or scratch",
    )
    g.add_argument("--ancestry", default="", help="full pre-trained ViT (checkpoint or timm folder) for select/inherit")
    g.add_argument("--inherit-layers", type=int, default=None, help="layers 'inherit' copies from the ancestry's top")
    g.add_argument("--finetune", default="", help="start from a model checkpoint (head of another size dropped)")

    g = p.add_argument_group("optimization")
    g.add_argument("--batch-size", type=int, default=64, help="batch size per process")
    g.add_argument("--epochs", type=int, default=300)
    g.add_argument("--accumulation-step", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--opt", default="adamw", help="optimizer (timm name)")
    g.add_argument("--opt-eps", type=float, default=1e-8)
    g.add_argument("--opt-betas", type=float, nargs="+", default=None)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--clip-grad", type=float, default=None, help="clip gradient norm (default: no clipping)")
    g.add_argument("--sched", default="cosine", help="learning-rate schedule (timm name)")
    g.add_argument("--lr", type=float, default=5e-4, help="learning rate for a global batch of 512")
    g.add_argument("--unscale-lr", action="store_true", help="use --lr as given, not scaled by global batch / 512")
    g.add_argument("--warmup-lr", type=float, default=1e-6)
    g.add_argument("--min-lr", type=float, default=1e-5)
    g.add_argument("--warmup-epochs", type=int, default=5)
    g.add_argument("--decay-epochs", type=float, default=30)
    g.add_argument("--decay-rate", type=float, default=0.1)
    g.add_argument("--sched-on-updates", action="store_true", help="step the schedule every update, not every epoch")
    g.add_argument("--model-ema", action="store_true", default=True, help="keep an EMA of the weights")
    g.add_argument("--no-model-ema", action="store_false", dest="model_ema")
    g.add_argument("--model-ema-decay", type=float, default=0.99996)
    g.add_argument("--model-ema-eval", action="store_true", help="also evaluate the EMA weights every epoch")
    g.add_argument(
        "--amp",
        default="auto",
        choices=("auto", "none", "bf16", "fp16"),
        help="autocast: auto = bf16 on GPUs that have it, else fp16; none on CPU",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the model")

    g = p.add_argument_group("augmentation and regularization")
    g.add_argument("--color-jitter", type=float, default=0.3)
    g.add_argument("--aa", default="rand-m9-mstd0.5-inc1", help="RandAugment policy (timm), or none")
    g.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")
    g.add_argument("--train-interpolation", default="bicubic")
    g.add_argument("--hflip", type=float, default=None, help="horizontal flip probability (default: the data's)")
    g.add_argument("--repeated-aug", action="store_true", default=True, help="repeated augmentation (distributed)")
    g.add_argument("--no-repeated-aug", action="store_false", dest="repeated_aug")
    g.add_argument("--reprob", type=float, default=0.25, help="random erasing probability")
    g.add_argument("--remode", default="pixel")
    g.add_argument("--recount", type=int, default=1)
    g.add_argument("--mixup", type=float, default=0.8)
    g.add_argument("--cutmix", type=float, default=1.0)
    g.add_argument("--cutmix-minmax", type=float, nargs="+", default=None)
    g.add_argument("--mixup-prob", type=float, default=1.0)
    g.add_argument("--mixup-switch-prob", type=float, default=0.5)
    g.add_argument("--mixup-mode", default="batch")
    g.add_argument("--eval-crop-ratio", type=float, default=0.875)
    g.add_argument(
        "--crop-pad",
        type=int,
        default=None,
        help="images of 32 px or less: padding of the random crop (default size/8; 0: no crop)",
    )

    g = p.add_argument_group("distillation")
    g.add_argument("--teacher-model", default="", help="teacher (timm name), e.g. levit_384")
    g.add_argument("--teacher-path", default="", help="teacher weights: safetensors, torch file, or sws checkpoint")
    g.add_argument("--teacher-model-kwargs", nargs="*", type=_model_kwargs, default=[], metavar="KEY=VALUE")
    g.add_argument("--distillation-type", default="none", choices=DISTILLATION_TYPES)
    g.add_argument("--distillation-alpha", type=float, default=0.5)
    g.add_argument("--distillation-tau", type=float, default=1.0)

    g = p.add_argument_group("data")
    g.add_argument("--data-path", default=None, help="data root (ImageFolder with train/ and val/, or download dir)")
    g.add_argument(
        "--data-set",
        default="IMNET",
        help="IMNET, FOLDER, MNIST5K, DIGITS, FASHION_MNIST, SYNTHETIC[-size], CIFAR, CIFAR10 or a timm name",
    )
    g.add_argument("--train-subset", type=int, default=None, help="train on a stratified subset of N images")
    g.add_argument(
        "--holdout",
        type=int,
        default=None,
        help="validate on N held-out training images instead of the validation split (for tuning a recipe)",
    )
    g.add_argument(
        "--data-on-device",
        default="auto",
        choices=("auto", "on", "off"),
        help="hold the data on the training device and augment whole batches there: auto when every process can "
        "hold it in a quarter of its free memory, every augmentation has a batched version and (on a CPU) no "
        "--num_workers were asked for; on: always, or stop saying why; off: the DataLoader",
    )
    g.add_argument(
        "--num_workers",
        type=int,
        default=None,
        help="DataLoader processes (default 10, capped at the CPU count); asking for some on a CPU keeps "
        "--data-on-device auto on the DataLoader",
    )
    g.add_argument("--pin-mem", action="store_true", default=True)
    g.add_argument("--no-pin-mem", action="store_false", dest="pin_mem")

    g = p.add_argument_group("run")
    g.add_argument("--output_dir", default="", help="where checkpoints and logs go (nothing is saved if empty)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--resume", default="", help="checkpoint to resume from, or 'auto' (the output_dir's)")
    g.add_argument("--overwrite", action="store_true", help="start afresh in an --output_dir that holds another run")
    g.add_argument("--eval", action="store_true", help="only evaluate (the --resume/--finetune/--load-gene model)")
    g.add_argument(
        "--eval-init", action="store_true", help="also evaluate the initialized model before training (its init top-1)"
    )
    g.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard (output_dir/tensorboard)")
    g.add_argument("--print-freq", type=int, default=0, help="progress lines per epoch when not a terminal (0: 10)")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse flags, with ``--config FILE`` values as defaults that the command line overrides."""
    parser = build_parser()
    first, _ = parser.parse_known_args(argv)
    if first.config:
        parser.set_defaults(**read_config_file(first.config, parser))
    args = parser.parse_args(argv)
    validate(args)
    return args


def read_config_file(path: str | os.PathLike[str], parser: argparse.ArgumentParser) -> dict[str, Any]:
    """A YAML mapping of flag names to values, checked against the parser's flags."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML ({first_line(error)})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must be a mapping of flag names to values")
    known = {action.dest for action in parser._actions}
    result = {}
    for key, value in values.items():
        dest = str(key).lstrip("-").replace("-", "_")
        if dest not in known:
            raise ConfigError(f"config file {path} sets unknown flag {key!r}; see `sws train --help`")
        if dest in ("model_kwargs", "teacher_model_kwargs") and isinstance(value, dict):
            value = list(value.items())
        result[dest] = value
    return result


def validate(args: argparse.Namespace) -> None:
    """Refuse flag values that cannot work, with the fix in the message."""
    checks = [
        (args.batch_size >= 1, "--batch-size must be at least 1"),
        (args.epochs >= 1 or args.eval, "--epochs must be at least 1"),
        (args.accumulation_step >= 1, "--accumulation-step must be at least 1"),
        (args.lr > 0, "--lr must be positive"),
        (0.0 <= args.distillation_alpha <= 1.0, "--distillation-alpha must be between 0 and 1"),
        (args.distillation_tau > 0, "--distillation-tau must be positive"),
        (args.clip_grad is None or args.clip_grad > 0, "--clip-grad must be positive"),
        (args.input_size is None or args.input_size >= 1, "--input-size must be positive"),
        (0.0 < args.eval_crop_ratio <= 1.0, "--eval-crop-ratio must be in (0, 1]"),
        (args.warmup_epochs >= 0, "--warmup-epochs must be 0 or more"),
        (
            args.num_workers is None or args.num_workers >= 0,
            "--num_workers must be 0 (load in the main process) or more",
        ),
        (args.train_subset is None or args.train_subset >= 1, "--train-subset must be at least 1"),
        (args.holdout is None or args.holdout >= 1, "--holdout must be at least 1"),
        (args.layout is None or bool(args.layout.strip()), "--layout is empty; give layers per stage, e.g. 3,3,4,3,3"),
        (0.0 <= args.reprob <= 1.0, "--reprob must be between 0 and 1"),
        (args.crop_pad is None or args.crop_pad >= 0, "--crop-pad must be 0 or more"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if args.layout:
        StageLayout.parse(args.layout)  # refuses a malformed layout before anything is built
    if args.layers_source:
        parse_mapping(args.layers_source)
    if args.distillation_type != "none" and not (args.teacher_model or args.teacher_path):
        raise ConfigError(f"--distillation-type {args.distillation_type} needs --teacher-model (and --teacher-path)")
    if args.layers_source and not args.load_gene:
        raise ConfigError("--layers-source says which learngene layer each layer copies: give --load-gene too")
    if args.init in METHODS and METHODS[args.init].distills and args.distillation_type == "none":
        raise ConfigError(f"--init {args.init} trains with the teacher: give --teacher-model and --distillation-type")
    if args.init in ("sws", "tleg") and not args.load_gene:
        raise ConfigError(f"--init {args.init} expands a learngene: give --load-gene FILE")
    if args.init in ("select", "inherit") and not args.ancestry:
        raise ConfigError(f"--init {args.init} copies layers of a pre-trained model: give --ancestry CHECKPOINT")
    if args.eval and not (args.resume or args.finetune or args.load_gene or args.ancestry):
        raise ConfigError(
            "--eval evaluates trained weights: give --resume CHECKPOINT (or --finetune, --load-gene, --ancestry)"
        )

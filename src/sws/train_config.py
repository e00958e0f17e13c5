"""The settings of ``sws train``: one table of flags, and one function that turns a mapping into them.

The names and meanings are those of the official code (DeiT's ``main.py`` with SWS's
``--load-gene`` and ``--layers-source``), so the paper's commands run as written once
``python -m torch.distributed.launch --use_env main.py`` becomes ``torchrun ... -m sws train``.
Defaults are DeiT's except where a laptop needs otherwise (``--device auto``; ``--input-size``
defaults to the data's own size for the built-in data; ``--num_workers`` is capped at the CPU
count).

Every flag is one :class:`Flag` of ``FLAGS``: its spelling, kind, default, help and the values it
allows. The table builds the command-line parser and checks every value, whichever way it came:

- the command line: ``argv`` -> a mapping of the flags given -> :func:`build_args`;
- ``--config FILE`` (a YAML mapping of flag names, ``batch-size`` or ``batch_size``): its mapping
  under the command line's, then :func:`build_args`;
- a study step (``sws pipeline``, ``sws compare``): its settings mapping -> :func:`build_args`.

:func:`build_args` reads the defaults once, normalises every name once (:func:`setting_name`),
checks each value's type and range (naming the flag, the value and what is allowed) and then the
rules between flags, and returns the ``argparse.Namespace`` that ``sws.train.train`` takes.

Example:
    >>> build_args({"model": "aux_net", "layout": "3,3,4,3,3", "batch-size": 32}).batch_size
    32
"""

from __future__ import annotations

import argparse
import copy
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sws.augmentation import check_auto_augment, check_random_erasing_mode, check_train_interpolation
from sws.distill import DISTILLATION_TYPES
from sws.errors import ConfigError, first_line
from sws.initialization import METHODS
from sws.layout import StageLayout, parse_mapping
from sws.parsing import Parser

INIT_METHODS = ("auto", *METHODS)
# timm's create_scheduler_v2 builds these (plateau steps on a metric sws does not pass; "none" leaves
# no schedule for the loop to step)
SCHEDULES = ("cosine", "tanh", "step", "constant", "multistep", "poly", "wsd", "rsqrt")
MIXUP_MODES = ("batch", "pair", "elem")  # timm's Mixup modes
MAX_SEED = 2**31 - 1  # seed + rank seeds NumPy, which takes 32 bits


def _optimizers() -> list[str]:
    from timm.optim import list_optimizers

    return list_optimizers()


@dataclass(frozen=True)
class Rule:
    """What values a flag may take: ``test`` says whether a value is allowed, ``words`` says which
    are, in words (a function, so that a registry such as timm's optimizers is read when needed)."""

    test: Callable[[Any], bool]
    words: Callable[[], str]


def at_least(low: float) -> Rule:
    return Rule(lambda v: v >= low, lambda: f"at least {low:g}")


def above(low: float) -> Rule:
    return Rule(lambda v: v > low, lambda: f"above {low:g}")


def from_to(low: float, high: float, *, high_open: bool = False) -> Rule:
    if high_open:
        return Rule(lambda v: low <= v < high, lambda: f"from {low:g} up to (not including) {high:g}")
    return Rule(lambda v: low <= v <= high, lambda: f"from {low:g} to {high:g}")


def above_to(low: float, high: float) -> Rule:
    return Rule(lambda v: low < v <= high, lambda: f"above {low:g}, at most {high:g}")


def one_of(names: Sequence[str] | Callable[[], Iterable[str]]) -> Rule:
    """A name from a fixed list, or from a registry read when a value is checked (timm's optimizers)."""

    def allowed() -> list[str]:
        return list(names() if callable(names) else names)

    def words() -> str:
        choices = allowed()
        shown = ", ".join(choices[:12]) + (f", ... ({len(choices)} in all)" if len(choices) > 12 else "")
        return f"one of {shown}"

    return Rule(lambda v: v in allowed(), words)


# value kinds: what a flag holds, and how a text from the command line becomes one
INT, FLOAT, TEXT, SWITCH, NUMBERS, PAIRS = "int", "float", "str", "bool", "numbers", "pairs"


@dataclass(frozen=True)
class Flag:
    """One ``sws train`` flag.

    Attributes:
        option: Its spelling on the command line (``--batch-size``).
        kind: ``int``, ``float``, ``str``, ``bool`` (a switch), ``numbers`` (a list of floats) or
            ``pairs`` (``key=value`` words, a mapping in a config).
        default: Its value when not given; ``None`` means "not set" and is then also allowed.
        help: What it does, for ``--help``.
        group: Its heading in ``--help``.
        rule: The values allowed (numbers: a range; text: a choice), checked for every value.
        negation: The option that sets a default-on switch off (``--no-model-ema``).
        count: How many numbers a ``numbers`` flag takes (``None``: one or more).
    """

    option: str
    kind: str
    default: Any
    help: str
    group: str
    rule: Rule | None = None
    negation: str | None = None
    count: tuple[int, ...] | None = None

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")


def _flags(group: str, *rows: tuple[Any, ...]) -> list[Flag]:
    """A group of flags from rows of ``(option, kind, default, help[, rule[, negation or count]])``."""
    flags = []
    for option, kind, default, help_text, *rest in rows:
        extra: dict[str, Any] = {}
        if rest:
            extra["rule"] = rest[0]
        if len(rest) > 1:
            extra["negation" if kind == SWITCH else "count"] = rest[1]
        flags.append(Flag(option, kind, default, help_text, group, **extra))
    return flags


FLAGS: tuple[Flag, ...] = (
    *_flags(
        "settings",
        ("--config", TEXT, None, "YAML file of flag values; the command line wins"),
        ("--print-config", SWITCH, False, "print the resolved settings as YAML and exit (nothing is trained)"),
    ),
    *_flags(
        "model",
        ("--model", TEXT, "deit_small_patch16_224_L12", "model name (timm, Aux-Net or Des-Net)"),
        ("--model-kwargs", PAIRS, {}, "extra model arguments, e.g. embed_dim=64 num_heads=2 patch_size=7"),
        ("--layout", TEXT, None, "stage layout of an Aux-Net built by name 'aux_net' (e.g. 3,3,4,3,3)"),
        ("--input-size", INT, None, "image size (default: the data's own, else 224)", at_least(1)),
        ("--drop", FLOAT, 0.0, "dropout rate", from_to(0, 1, high_open=True)),
        ("--drop-path", FLOAT, 0.1, "stochastic depth rate", from_to(0, 1, high_open=True)),
        ("--num-classes", INT, None, "classes, for data sets that do not list them", at_least(1)),
    ),
    *_flags(
        "initialization",
        ("--load-gene", TEXT, "", "learngene file or official/sws Aux-Net checkpoint to expand"),
        ("--layers-source", TEXT, None, "layer mapping, e.g. 0,0,0,1,1,1,2,2,3,3,4,4"),
        ("--init", TEXT, "auto", "initialization: sws/tleg from --load-gene, select/inherit from --ancestry, "
         "pretrain-finetune from --finetune, or scratch", one_of(INIT_METHODS)),
        ("--ancestry", TEXT, "", "full pre-trained ViT (checkpoint or timm folder) for select/inherit"),
        ("--inherit-layers", INT, None, "layers 'inherit' copies from the ancestry's top", at_least(1)),
        ("--finetune", TEXT, "", "start from a model checkpoint (head of another size dropped)"),
        ("--new-head", SWITCH, False, "re-initialize the classifier even when the class count matches (the "
         "target data's classes are not the source's)"),
    ),
    *_flags(
        "optimization",
        ("--batch-size", INT, 64, "batch size per process", at_least(1)),
        ("--epochs", INT, 300, "epochs to train", Rule(lambda v: v >= 0, lambda: "at least 1 (0 only with --eval)")),
        ("--accumulation-step", INT, 1, "micro-batches per optimizer step", at_least(1)),
        ("--opt", TEXT, "adamw", "optimizer (timm name)", one_of(_optimizers)),
        ("--opt-eps", FLOAT, 1e-8, "optimizer epsilon", above(0)),
        ("--opt-betas", NUMBERS, None, "optimizer betas", from_to(0, 1, high_open=True), (2, 3)),
        ("--momentum", FLOAT, 0.9, "SGD momentum", from_to(0, 1, high_open=True)),
        ("--weight-decay", FLOAT, 0.05, "weight decay", at_least(0)),
        ("--clip-grad", FLOAT, None, "clip gradient norm (default: no clipping)", above(0)),
        ("--sched", TEXT, "cosine", "learning-rate schedule (timm name)", one_of(SCHEDULES)),
        ("--lr", FLOAT, 5e-4, "learning rate for a global batch of 512", above(0)),
        ("--unscale-lr", SWITCH, False, "use --lr as given, not scaled by global batch / 512"),
        ("--warmup-lr", FLOAT, 1e-6, "learning rate at the start of warmup", at_least(0)),
        ("--min-lr", FLOAT, 1e-5, "lowest learning rate of the schedule", at_least(0)),
        ("--warmup-epochs", INT, 5, "epochs of warmup", at_least(0)),
        ("--decay-epochs", FLOAT, 30, "epochs between decays (step schedules)", above(0)),
        ("--decay-rate", FLOAT, 0.1, "decay factor (step schedules)", above(0)),
        ("--sched-on-updates", SWITCH, False, "step the schedule every update, not every epoch"),
        ("--model-ema", SWITCH, True, "keep an EMA of the weights", None, "--no-model-ema"),
        ("--model-ema-decay", FLOAT, 0.99996, "EMA decay per update", from_to(0, 1)),
        ("--model-ema-eval", SWITCH, False, "also evaluate the EMA weights every epoch"),
        ("--amp", TEXT, "auto", "autocast: auto = bf16 on GPUs that have it, else fp16; none on CPU",
         one_of(("auto", "none", "bf16", "fp16"))),
        ("--compile", SWITCH, False, "torch.compile the model"),
    ),
    *_flags(
        "augmentation and regularization",
        ("--color-jitter", FLOAT, 0.3, "colour jitter strength", at_least(0)),
        ("--aa", TEXT, "rand-m9-mstd0.5-inc1", "RandAugment policy (timm), or none"),
        ("--smoothing", FLOAT, 0.1, "label smoothing", from_to(0, 1, high_open=True)),
        ("--train-interpolation", TEXT, "bicubic", "resampling of training crops (timm's names, or random)"),
        ("--hflip", FLOAT, None, "horizontal flip probability (default: the data's)", from_to(0, 1)),
        ("--repeated-aug", SWITCH, True, "repeated augmentation (distributed)", None, "--no-repeated-aug"),
        ("--reprob", FLOAT, 0.25, "random erasing probability", from_to(0, 1)),
        ("--remode", TEXT, "pixel", "random erasing fill: pixel, rand or const"),
        ("--recount", INT, 1, "random erasing boxes per image", at_least(1)),
        ("--mixup", FLOAT, 0.8, "mixup alpha (0: off)", at_least(0)),
        ("--cutmix", FLOAT, 1.0, "cutmix alpha (0: off)", at_least(0)),
        ("--cutmix-minmax", NUMBERS, None, "cutmix box ratio min and max (overrides --cutmix)", from_to(0, 1), (2,)),
        ("--mixup-prob", FLOAT, 1.0, "probability of mixup or cutmix per batch", from_to(0, 1)),
        ("--mixup-switch-prob", FLOAT, 0.5, "probability of cutmix instead of mixup", from_to(0, 1)),
        ("--mixup-mode", TEXT, "batch", "how mixup pairs images", one_of(MIXUP_MODES)),
        ("--eval-crop-ratio", FLOAT, 0.875, "centre-crop ratio of evaluation", above_to(0, 1)),
        ("--crop-pad", INT, None, "images of 32 px or less: padding of the random crop (default size/8; 0: no crop)",
         at_least(0)),
    ),
    *_flags(
        "distillation",
        ("--teacher-model", TEXT, "", "teacher (timm name), e.g. levit_384"),
        ("--teacher-path", TEXT, "", "teacher weights: safetensors, torch file, or sws checkpoint"),
        ("--teacher-model-kwargs", PAIRS, {}, "extra teacher arguments"),
        ("--distillation-type", TEXT, "none", "distillation from the teacher", one_of(DISTILLATION_TYPES)),
        ("--distillation-alpha", FLOAT, 0.5, "weight of the distillation loss", from_to(0, 1)),
        ("--distillation-tau", FLOAT, 1.0, "temperature of soft distillation", above(0)),
    ),
    *_flags(
        "data",
        ("--data-path", TEXT, None, "data root (ImageFolder with train/ and val/, or download dir)"),
        ("--data-set", TEXT, "IMNET", "IMNET, FOLDER, MNIST5K, DIGITS, FASHION_MNIST, SYNTHETIC[-size], CIFAR, "
         "CIFAR10 or a timm name"),
        ("--train-subset", INT, None, "train on a stratified subset of N images", at_least(1)),
        ("--holdout", INT, None, "validate on N held-out training images instead of the validation split (for "
         "tuning a recipe)", at_least(1)),
        ("--data-on-device", TEXT, "auto", "hold the data on the training device and augment whole batches there: "
         "auto when every process can hold it in a quarter of its free memory, every augmentation has a batched "
         "version and (on a CPU) no --num_workers were asked for; on: always, or stop saying why; off: the "
         "DataLoader", one_of(("auto", "on", "off"))),
        ("--num_workers", INT, None, "DataLoader processes (default 10, capped at the CPU count); asking for some "
         "on a CPU keeps --data-on-device auto on the DataLoader", at_least(0)),
        ("--pin-mem", SWITCH, True, "pinned memory for the DataLoader", None, "--no-pin-mem"),
    ),
    *_flags(
        "run",
        ("--output_dir", TEXT, "", "where checkpoints and logs go (nothing is saved if empty)"),
        ("--overwrite", SWITCH, False, "start afresh in an --output_dir that holds another run"),
        ("--device", TEXT, "auto", "auto, cpu, cuda, cuda:N or mps",
         Rule(lambda v: v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdecimal()),
              lambda: "auto, cpu, cuda, cuda:N or mps")),
        ("--seed", INT, 0, "random seed", from_to(0, MAX_SEED)),
        ("--resume", TEXT, "", "checkpoint to resume from, or 'auto' (the output_dir's)"),
        ("--eval", SWITCH, False, "only evaluate (the --resume/--finetune/--load-gene model)"),
        ("--eval-init", SWITCH, False, "also evaluate the initialized model before training (its init top-1)"),
        ("--tensorboard", SWITCH, False, "also log to TensorBoard (output_dir/tensorboard)"),
        ("--print-freq", INT, 0, "progress lines per epoch when not a terminal (0: 10)", at_least(0)),
    ),
)  # fmt: skip

# flags whose values timm parses: its own parsers check them (``sws.augmentation``)
TIMM_CHECKS: dict[str, Callable[[Any], Any]] = {
    "--aa": check_auto_augment,
    "--train-interpolation": check_train_interpolation,
    "--remode": check_random_erasing_mode,
}
FLAG_OF: dict[str, Flag] = {flag.dest: flag for flag in FLAGS}
DEFAULTS: dict[str, Any] = {flag.dest: flag.default for flag in FLAGS}
# a default-on switch turned off by its own name: ``no-model-ema: true`` in a config
_NEGATIONS = {flag.negation.lstrip("-").replace("-", "_"): flag.dest for flag in FLAGS if flag.negation}


def setting_name(key: Any) -> str:
    """The one spelling of a setting: ``--batch-size``, ``batch-size`` and ``batch_size`` are all
    ``batch_size``."""
    return str(key).strip().lstrip("-").replace("-", "_")


def flag_of(dest: str) -> str:
    """How the command line spells setting ``dest`` (``model_kwargs``: ``--model-kwargs``)."""
    return FLAG_OF[dest].option if dest in FLAG_OF else dest


def check_settings(settings: Mapping[Any, Any] | None, where: str = "") -> dict[str, Any]:
    """``settings`` with every name normalised and every value checked and converted to its flag's
    kind (a config section on its own: the rules between flags wait for :func:`build_args`).
    ``where`` names the mapping in messages (``the config's aux.train``); without it a setting is
    named by its command-line option."""
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{where or 'the settings'} must be a mapping of sws train flags to values, not {settings!r}")
    values: dict[str, Any] = {}
    for key, value in settings.items():
        dest = setting_name(key)
        label = f"{where} {key}" if where else flag_of(dest)
        if dest in _NEGATIONS:
            dest, value = _NEGATIONS[dest], not _to_switch(value, FLAG_OF[_NEGATIONS[dest]], label)
        if dest not in FLAG_OF:
            raise ConfigError(
                f"{where + ' sets ' if where else ''}unknown sws train flag {key!r}; see `sws train --help`"
            )
        values[dest] = _checked(FLAG_OF[dest], value, label)
    return values


def build_args(settings: Mapping[Any, Any] | None = None, where: str = "") -> argparse.Namespace:
    """The validated settings of one ``sws train`` run: the defaults, then ``settings`` (any
    spelling of the flag names, values of their kinds), every value and rule checked."""
    args = argparse.Namespace(**{**copy.deepcopy(DEFAULTS), **check_settings(settings, where)})  # no shared {}
    check_rules(args, where)
    return args


def merge_settings(*sections: Mapping[Any, Any] | None, where: str = "") -> dict[str, Any]:
    """One mapping from several (later ones win), names normalised and values checked."""
    merged: dict[str, Any] = {}
    for section in sections:
        merged.update(check_settings(section, where))
    return merged


def plain_args(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as plain values (for ``args.yaml`` and weights-only checkpoints)."""
    values = dict(vars(args))
    for key in ("model_kwargs", "teacher_model_kwargs"):
        values[key] = dict(values.get(key) or {})
    return values


def _where(where: str) -> str:
    return f"{where}: " if where else ""


def _checked(flag: Flag, value: Any, name: str) -> Any:
    """``value`` as ``flag``'s kind, or a ``ConfigError`` naming it, the value and what is allowed."""
    if value is None:
        if flag.default is None:
            return None
        raise ConfigError(f"{name} is empty (null); give {_what(flag)}, or leave it out for {flag.default!r}")
    converted = _CONVERT[flag.kind](value, flag, name)
    items = converted if flag.kind == NUMBERS else [converted]
    if flag.rule is not None and flag.kind not in (PAIRS, SWITCH):
        for item in items:
            if not flag.rule.test(item):
                raise ConfigError(f"{name} {_shown(value)} is not allowed: {_what(flag)}")
    if flag.option in TIMM_CHECKS:  # what timm itself reads decides, before anything is built
        TIMM_CHECKS[flag.option](converted)
    return converted


def _what(flag: Flag) -> str:
    kind = {INT: "a whole number", FLOAT: "a number", TEXT: "a text", SWITCH: "true or false"}.get(flag.kind)
    if flag.kind == NUMBERS:
        count = " or ".join(map(str, flag.count)) if flag.count else "one or more"
        kind = f"{count} numbers"
    elif flag.kind == PAIRS:
        kind = "key=value words (a mapping in a config)"
    rule = flag.rule.words() if flag.rule is not None else ""
    if flag.rule is not None and flag.kind == TEXT:
        return rule
    return f"{kind}, {rule}" if rule else kind


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _to_int(value: Any, flag: Flag, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdecimal():
        return int(value)
    raise ConfigError(f"{name} {_shown(value)!r} is not allowed: give {_what(flag)}")


def _to_float(value: Any, flag: Flag, name: str) -> float:
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ConfigError(f"{name} {_shown(value)!r} is not allowed: give {_what(flag)}")
    return number


def _to_text(value: Any, flag: Flag, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{name} {value!r} is not allowed: give {_what(flag)}")
    return str(value)


def _to_switch(value: Any, flag: Flag, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} {value!r} is not allowed: give true or false")
    return value


def _to_numbers(value: Any, flag: Flag, name: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name} {value!r} is not allowed: give {_what(flag)}")
    numbers = [_to_float(item, flag, name) for item in value]
    if flag.count is not None and len(numbers) not in flag.count:
        raise ConfigError(f"{name} {_shown(value)} has {len(numbers)} value(s): give {_what(flag)}")
    return numbers


def _to_pairs(value: Any, flag: Flag, name: str) -> dict[str, Any]:
    """``{"embed_dim": 64}``, ``["embed_dim=64"]`` (the command line) or ``[("embed_dim", 64)]``."""
    if isinstance(value, Mapping):
        return {str(key): item for key, item in value.items()}
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} {value!r} is not allowed: give {_what(flag)}")
    pairs: dict[str, Any] = {}
    for item in value:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            pairs[str(item[0])] = item[1]
        elif isinstance(item, str) and "=" in item:
            key, text = item.split("=", 1)
            pairs[key.strip()] = read_yaml_value(text, f"{name} {item!r}")
        else:
            raise ConfigError(f"{name} takes key=value pairs, not {item!r}")
    return pairs


_CONVERT: dict[str, Callable[[Any, Flag, str], Any]] = {
    INT: _to_int,
    FLOAT: _to_float,
    TEXT: _to_text,
    SWITCH: _to_switch,
    NUMBERS: _to_numbers,
    PAIRS: _to_pairs,
}


def read_yaml_value(text: str, what: str) -> Any:
    """A value written in YAML (``64``, ``[6, 12]``, ``{lr: 1.0e-3}``), read safely: tags that would
    build Python objects (``!!python/...``) are refused, never run."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} is not a YAML value ({first_line(error)})") from None


def check_rules(args: argparse.Namespace, where: str = "") -> None:
    """Refuse settings that cannot work together, with the fix in the message."""
    prefix = _where(where)
    if args.epochs < 1 and not args.eval:
        raise ConfigError(f"{prefix}--epochs must be at least 1 (0 only with --eval)")
    if args.layout is not None:
        if not args.layout.strip():
            raise ConfigError(f"{prefix}--layout is empty; give layers per stage, e.g. 3,3,4,3,3")
        StageLayout.parse(args.layout)  # refuses a malformed layout before anything is built
    if args.layers_source:
        parse_mapping(args.layers_source)
    if args.distillation_type != "none" and not (args.teacher_model or args.teacher_path):
        raise ConfigError(
            f"{prefix}--distillation-type {args.distillation_type} needs --teacher-model (and --teacher-path)"
        )
    if args.layers_source and not args.load_gene:
        raise ConfigError(f"{prefix}--layers-source says which learngene layer each layer copies: give --load-gene")
    method = METHODS.get(args.init)
    if method is not None and method.distills and args.distillation_type == "none":
        raise ConfigError(f"{prefix}--init {args.init} trains with the teacher: give --teacher-model and "
                          "--distillation-type")  # fmt: skip
    if method is not None and method.source_flag and not getattr(args, method.source_flag.replace("-", "_")):
        raise ConfigError(f"{prefix}--init {args.init} starts from {method.stores}: give --{method.source_flag}")
    if args.eval and not (args.resume or args.finetune or args.load_gene or args.ancestry):
        raise ConfigError(
            f"{prefix}--eval evaluates trained weights: give --resume CHECKPOINT (or --finetune, --load-gene, "
            "--ancestry)"
        )
    if args.cutmix_minmax is not None and not args.cutmix_minmax[0] < args.cutmix_minmax[1]:
        raise ConfigError(f"{prefix}--cutmix-minmax {_shown(args.cutmix_minmax)}: give the smaller ratio first")


def build_parser() -> argparse.ArgumentParser:
    """The command line, from ``FLAGS``: every value is read as text here and checked by
    :func:`build_args`; flags not given are left out (their defaults live in ``DEFAULTS``)."""
    p = Parser(
        prog="sws train",
        description="Distill an Aux-Net from a teacher, or fine-tune a Des-Net (official SWS/DeiT flags).",
        argument_default=argparse.SUPPRESS,
    )
    groups: dict[str, Any] = {}
    for flag in FLAGS:
        group = groups.setdefault(flag.group, p.add_argument_group(flag.group))
        shown = flag.default not in (None, "", False, {})
        help_text = flag.help + (f" (default: {flag.default})" if shown and flag.kind != SWITCH else "")
        if flag.kind == SWITCH:
            group.add_argument(flag.option, action="store_true", dest=flag.dest, help=help_text)
            if flag.negation:
                group.add_argument(flag.negation, action="store_false", dest=flag.dest, help=f"no {flag.option}")
        else:
            nargs = {NUMBERS: "+", PAIRS: "*"}.get(flag.kind)
            metavar = "KEY=VALUE" if flag.kind == PAIRS else None
            group.add_argument(flag.option, dest=flag.dest, nargs=nargs, metavar=metavar, help=help_text)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (with ``--config FILE`` values under it) as validated settings."""
    given = vars(build_parser().parse_args(argv))
    from_file = read_config_file(given["config"]) if given.get("config") else {}
    return build_args({**from_file, **given})


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping of flag names to values (checked by :func:`build_args` with the rest)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8 YAML") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML ({first_line(error)})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must be a mapping of flag names to values")
    return {**check_settings(values, f"config file {path}"), "config": str(path)}


__all__ = [
    "DEFAULTS",
    "FLAGS",
    "Flag",
    "build_args",
    "build_parser",
    "check_settings",
    "flag_of",
    "merge_settings",
    "parse_args",
    "plain_args",
    "setting_name",
]

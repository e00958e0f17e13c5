"""The configuration of ``sws pipeline`` and ``sws compare``: one YAML file, every value settable on
the command line.

A config names the data, the depths and methods to compare, and the ``sws train`` flags of each
step (teacher, Aux-Net, Des-Nets). Packaged configs are found by name (``--config mnist5k``, the
default, or ``--config paper_imagenet``); any YAML path works too. ``--set aux.train.epochs=10``
changes one value; the common ones have their own flags (``--data-path``, ``--output_dir``, ...).

See ``src/sws/configs/mnist5k.yaml`` for every key, with comments.
"""

from __future__ import annotations

import argparse
import copy
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sws.data import BUILTIN_DATASETS  # pointing such a config at a folder means an ImageFolder
from sws.errors import ConfigError, first_line
from sws.initialization import check_methods
from sws.parsing import comma_separated_ints
from sws.train_config import build_parser as build_train_parser

DEFAULT_CONFIG = "mnist5k"

# the budget study's full-budget runs from scratch; scratch-kd also runs where the study compares it
BUDGET_BASELINES = ("scratch", "scratch-kd")
TOP_LEVEL_KEYS = {
    "data_set",
    "data_path",
    "input_size",
    "output_dir",
    "seed",
    "device",
    "depths",
    "methods",
    "train",
    "teacher",
    "aux",
    "des_net",
    "tleg",
    "ancestry",
    "budget",
    "widths",
}


def packaged_configs() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in resources.files("sws.configs").iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A packaged config by name, or a YAML file by path."""
    name_or_path = name_or_path or DEFAULT_CONFIG
    path = Path(name_or_path)
    if path.is_file():
        text = path.read_text()
    elif str(name_or_path) in packaged_configs():
        text = (resources.files("sws.configs") / f"{name_or_path}.yaml").read_text()
    else:
        raise ConfigError(f"no config file {name_or_path}; give a YAML path or one of {packaged_configs()}")
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config {name_or_path} is not valid YAML ({first_line(error)})") from None
    validate_config(config, str(name_or_path))
    return config


def validate_config(config: dict[str, Any], where: str = "the config") -> None:
    if not isinstance(config, dict):
        raise ConfigError(f"{where} must be a YAML mapping")
    if "cost" in config:  # sws 0.1's name of the budget study: longer scratch runs at some depths
        cost = config.pop("cost") or {}
        config.setdefault("budget", {"depths": cost.get("depths", []), "epochs": cost.get("epochs")})
    unknown = sorted(set(config) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; known: {sorted(TOP_LEVEL_KEYS)}")
    if "methods" in config:
        check_methods(config["methods"], f"{where}'s methods")
    depths = config.get("depths", [])
    if not depths or not all(isinstance(d, int) and d >= 1 for d in depths):
        raise ConfigError(f"{where} needs depths, a list of whole numbers of layers (for example [4, 6, 8, 12])")
    budget = config.get("budget") or {}
    if not isinstance(budget, dict) or not set(budget) <= {"depths", "epochs", "sws_epochs", "baselines"}:
        raise ConfigError(
            f"{where}'s budget must be a mapping of depths, epochs, sws_epochs and baselines, not {budget!r}"
        )
    baselines = budget.get("baselines", list(BUDGET_BASELINES))
    if not isinstance(baselines, list) or "scratch" not in baselines or not set(baselines) <= set(BUDGET_BASELINES):
        raise ConfigError(
            f"{where}'s budget.baselines is {baselines!r}; give a list of {list(BUDGET_BASELINES)} that holds scratch"
        )
    for method, recipe in ((config.get("des_net") or {}).get("methods") or {}).items():
        recipe = {} if recipe is None else recipe  # an empty entry (`sws:`) gives no flags of its own
        if not isinstance(recipe, dict):
            raise ConfigError(
                f"{where}'s des_net.methods.{method} is {recipe!r}; give a mapping of sws train flags "
                "(for example {lr: 1.5e-3})"
            )
        at_depth = recipe.get("at_depth")
        if at_depth is not None and not (
            isinstance(at_depth, dict)
            and all(isinstance(d, int) and d >= 1 and isinstance(flags, dict) for d, flags in at_depth.items())
        ):
            raise ConfigError(
                f"{where}'s des_net.methods.{method}.at_depth is {at_depth!r}; give a mapping of depths to "
                "sws train flags (for example {4: {lr: 1.5e-3}})"
            )
    widths = config.get("widths")
    if widths is not None and not (widths and all(isinstance(w, int) and w >= 1 for w in widths)):
        raise ConfigError(f"{where} has widths {widths!r}; give a list of whole numbers (for example [32, 64, 128])")


def set_des_net_epochs(config: dict[str, Any], epochs: int) -> dict[str, Any]:
    """Every Des-Net of ``config`` trains ``epochs`` epochs: ``des_net.epochs`` is set and the
    epochs a method or one of its depths sets for itself are dropped (``sws compare --epochs``)."""
    des_net = config.setdefault("des_net", {})
    des_net["epochs"] = epochs
    (des_net.get("train") or {}).pop("epochs", None)
    for recipe in (des_net.get("methods") or {}).values():
        for flags in [recipe or {}, *((recipe or {}).get("at_depth") or {}).values()]:
            flags.pop("epochs", None)
    return config


def apply_overrides(config: dict[str, Any], assignments: Iterable[str]) -> dict[str, Any]:
    """``["aux.train.epochs=10", "depths=[6,12]"]``: values are read as YAML."""
    config = copy.deepcopy(config)
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"--set takes key=value (for example aux.train.epochs=10), not {assignment!r}")
        dotted, raw = assignment.split("=", 1)
        keys = dotted.strip().split(".")
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: {key} is not a section")
        node[keys[-1]] = yaml.safe_load(raw)
    validate_config(config, "the config after --set")
    return config


def train_flags(*sections: dict[str, Any] | None) -> list[str]:
    """``sws train`` arguments from flag mappings (later sections win): ``{'lr': 0.001,
    'unscale-lr': True}`` becomes ``['--lr', '0.001', '--unscale-lr']``; names are checked against
    ``sws train``'s flags."""
    parser = build_train_parser()
    options = {option: action for action in parser._actions for option in action.option_strings}
    merged: dict[str, Any] = {}
    for section in sections:
        for key, value in (section or {}).items():
            merged[_flag_name(key, options)] = value
    argv: list[str] = []
    for flag, value in merged.items():
        action = options[flag]
        if action.nargs == 0:  # store_true / store_false
            if value:
                argv.append(flag)
        elif value is None:
            continue
        elif isinstance(value, dict):
            argv += [flag, *(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, (list, tuple)):
            argv += [flag, *(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def _flag_name(key: str, options: dict[str, Any]) -> str:
    for candidate in (f"--{key}", f"--{key.replace('_', '-')}"):
        if candidate in options:
            return candidate
    raise ConfigError(f"the config sets unknown sws train flag {key!r}; see `sws train --help`")


def add_study_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that ``sws pipeline`` and ``sws compare`` share."""
    p.add_argument("--config", default=None, help=f"YAML file or packaged config {packaged_configs()}")
    p.add_argument("--data-path", default=None, help="ImageFolder with train/ and val/ (sets --data-set FOLDER)")
    p.add_argument("--data-set", default=None, help="MNIST5K (default), DIGITS, FASHION_MNIST, FOLDER, IMNET, ...")
    p.add_argument("--output_dir", "--output-dir", dest="output_dir", default=None, help="run folder")
    p.add_argument("--depths", default=None, help="Des-Net depths, e.g. 4,6,8,12")
    p.add_argument("--widths", default=None, help="Des-Net widths, e.g. 32,64,128 (default: the Aux-Net's)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto, cpu, cuda")
    p.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change any config value, e.g. --set aux.train.epochs=10 (repeatable)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def resolve_config(args: argparse.Namespace, config_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The config (``--config``, else ``config_file``, else the default), then the flags, then the
    ``--set`` assignments. The output folder is the caller's business."""
    config = load_config(args.config or config_file)
    data_set = args.data_set.upper() if args.data_set and "/" not in args.data_set else args.data_set
    if args.data_path:
        config["data_path"] = args.data_path
        config["data_set"] = data_set or (
            "FOLDER" if config.get("data_set") in BUILTIN_DATASETS else config["data_set"]
        )
    elif data_set:
        config["data_set"] = data_set
    for key in ("seed", "device"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.depths:
        config["depths"] = comma_separated_ints(args.depths, "--depths")
    if args.widths:
        config["widths"] = comma_separated_ints(args.widths, "--widths", "32,64,128")
    return apply_overrides(config, args.assignments)

"""The configuration of ``sws pipeline`` and ``sws compare``: one YAML file, every value settable on
the command line.

A config names the data, the depths and methods to compare, and the ``sws train`` flags of each
step (teacher, Aux-Net, Des-Nets). Packaged configs are found by name (``--config mnist5k``, the
default, or ``--config paper_imagenet``); any YAML path works too. ``--set aux.train.epochs=10``
changes one value; the common ones have their own flags (``--data-path``, ``--output_dir``, ...).

Every value is checked when the config is read (:func:`validate_config`): each section's type,
each key's type and range, and each flag mapping by ``sws train``'s own table
(``sws.train_config``), so that a wrong value is refused in one line naming it before anything
runs. See ``src/sws/configs/mnist5k.yaml`` for every key, with comments.
"""

from __future__ import annotations

import argparse
import copy
import os
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sws.architecture import ViTArchitecture
from sws.data import BUILTIN_DATASETS  # pointing such a config at a folder means an ImageFolder
from sws.errors import ConfigError, IncompatibleModelError, first_line
from sws.initialization import METHODS, check_methods
from sws.layout import MAX_DEPTH, StageLayout
from sws.parsing import comma_separated_ints
from sws.train_config import MAX_SEED, check_settings, read_yaml_value

DEFAULT_CONFIG = "mnist5k"

# the budget study's full-budget runs from scratch; scratch-kd also runs where the study compares it
BUDGET_BASELINES = ("scratch", "scratch-kd")


def packaged_configs() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in resources.files("sws.configs").iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A packaged config by name, or a YAML file by path."""
    name_or_path = name_or_path or DEFAULT_CONFIG
    path = Path(name_or_path)
    try:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
        elif str(name_or_path) in packaged_configs():
            text = (resources.files("sws.configs") / f"{name_or_path}.yaml").read_text(encoding="utf-8")
        else:
            raise ConfigError(f"no config file {name_or_path}; give a YAML path or one of {packaged_configs()}")
    except UnicodeDecodeError:
        raise ConfigError(f"config {name_or_path} is not UTF-8 text; save it as UTF-8 YAML") from None
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config {name_or_path} is not valid YAML ({first_line(error)})") from None
    validate_config(config, f"config {name_or_path}")
    return config


# -- the schema: one checker per kind of value --------------------------------------------------------


def _fail(where: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{where} is {value!r}; give {allowed}")


def _whole(low: int = 1, high: int | None = None) -> Callable[[Any, str], None]:
    def check(value: Any, where: str) -> None:
        too_high = high is not None and isinstance(value, int) and value > high
        if isinstance(value, bool) or not isinstance(value, int) or value < low or too_high:
            span = f"from {low} to {high:,}" if high is not None else f"at least {low}"
            raise _fail(where, value, f"a whole number {span}")

    return check


def _text(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise _fail(where, value, "a text")


def _switch(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise _fail(where, value, "true or false")


def _optional(check: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    def optional(value: Any, where: str) -> None:
        if value is not None:
            check(value, where)

    return optional


def _list_of(check: Callable[[Any, str], None], example: str) -> Callable[[Any, str], None]:
    def checked(value: Any, where: str) -> None:
        if not isinstance(value, list) or not value:
            raise _fail(where, value, f"a list, for example {example}")
        for item in value:
            check(item, where)

    return checked


def _flags(value: Any, where: str) -> None:
    """A mapping of ``sws train`` flags, every name and value checked by its table."""
    check_settings(value, where)


def _methods(value: Any, where: str) -> None:
    if not isinstance(value, list):
        raise _fail(where, value, f"a list of methods from {','.join(METHODS)}")
    check_methods(value, where)


_DEPTH = _whole(1, MAX_DEPTH)
_DEPTHS = _list_of(_DEPTH, "[4, 6, 8, 12]")

# section -> {key: checker}; a section is a mapping (or left out, or null where it may be)
SECTIONS: dict[str, dict[str, Callable[[Any, str], None]]] = {
    "teacher": {"model": _text, "path": _optional(_text), "pretrained": _switch, "train": _flags},
    "aux": {
        "model": _text,
        "layout": lambda v, w: _layout(v, w),
        "model_kwargs": lambda v, w: _model_kwargs(v, w),
        "train": _flags,
    },
    "des_net": {"epochs": _whole(1), "width_lr_scaling": _switch, "train": _flags, "methods": lambda v, w: None},
    "tleg": {"depth": _DEPTH},
    "ancestry": {"depth": _DEPTH},
    "budget": {
        "depths": lambda v, w: None if v == "all" else _DEPTHS(v, w),
        "epochs": _whole(0),  # 0: no budget study
        "sws_epochs": _whole(1),
        "baselines": lambda v, w: _baselines(v, w),
        "check_depths": _DEPTHS,
    },
}
TOP_LEVEL: dict[str, Callable[[Any, str], None]] = {
    "data_set": _optional(_text),
    "data_path": _optional(_text),
    "input_size": _optional(_whole(1)),
    "output_dir": _optional(_text),
    "seed": _whole(0, MAX_SEED),
    "device": _text,
    "depths": _DEPTHS,
    "methods": _methods,
    "widths": _optional(_list_of(_whole(1), "[32, 64, 128]")),
    "train": _flags,
}
REQUIRED = {"depths": None, "aux": ("model", "layout"), "des_net": ("epochs",)}


def _layout(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _fail(where, value, "layers per stage, for example 3,3,4,3,3")
    StageLayout.parse(str(value))  # YAML reads a one-stage layout (3) as a number


def _model_kwargs(value: Any, where: str) -> None:
    """The Aux-Net's shape: the study builds every model from it, so its numbers are checked here."""
    for key, item in _mapping(value, where).items():
        if key in ("embed_dim", "num_heads", "patch_size", "img_size", "in_chans"):
            _whole(1)(item, f"{where}.{key}")
        elif key == "mlp_ratio" and (isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0):
            raise _fail(f"{where}.{key}", item, "a positive number")


def _mapping(value: Any, where: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _fail(where, value, "a mapping of keys to values")
    return value


def _baselines(value: Any, where: str) -> None:
    if not isinstance(value, list) or "scratch" not in value or not set(value) <= set(BUDGET_BASELINES):
        raise _fail(where, value, f"a list of {list(BUDGET_BASELINES)} that holds scratch")


def validate_config(config: Any, where: str = "the config") -> None:
    """Refuse a config whose sections, keys or values are not what sws reads, naming the first one."""
    _mapping(config, where)
    if "cost" in config:  # sws 0.1's name of the budget study: longer scratch runs at some depths
        cost = _mapping(config.pop("cost") or {}, f"{where}'s cost")
        config.setdefault("budget", {"depths": cost.get("depths", []), "epochs": cost.get("epochs")})
    known = set(TOP_LEVEL) | set(SECTIONS)
    unknown = sorted(map(str, set(config) - known))
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; known: {sorted(known)}")
    for key, needs in REQUIRED.items():
        if config.get(key) is None:
            raise ConfigError(f"{where} has no {key}; every config needs it (see `sws pipeline --print-config`)")
        for inner in needs or ():
            if _mapping(config[key], f"{where}'s {key}").get(inner) is None:
                raise ConfigError(f"{where}'s {key} has no {inner}; see `sws pipeline --print-config`")
    for key, check in TOP_LEVEL.items():
        if key in config:
            check(config[key], f"{where}'s {key}")
    for name, keys in SECTIONS.items():
        _check_section(config.get(name), name, keys, where)
    _check_methods_section((config.get("des_net") or {}).get("methods"), where)
    _check_shape(config, where)


def _check_shape(config: dict[str, Any], where: str) -> None:
    """The Aux-Net's shape and the input size fit together (heads divide the width, patches tile the
    images), so that a study is refused before its first step rather than at a later one."""
    kwargs = config["aux"].get("model_kwargs") or {}
    shape = {k: kwargs[k] for k in ("embed_dim", "num_heads", "patch_size", "mlp_ratio") if k in kwargs}
    shape["img_size"] = config.get("input_size") or shape.get("patch_size", 16)  # the data's own size is not known
    try:
        ViTArchitecture(**shape)
    except IncompatibleModelError as error:
        raise ConfigError(f"{where}'s aux.model_kwargs and input_size do not fit: {error}") from None


def _check_section(section: Any, name: str, keys: dict[str, Callable[[Any, str], None]], where: str) -> None:
    if section is None or section == {}:
        return
    _mapping(section, f"{where}'s {name}")
    unknown = sorted(map(str, set(section) - set(keys)))
    if unknown:
        raise ConfigError(f"{where}'s {name} has unknown keys {unknown}; known: {sorted(keys)}")
    for key, check in keys.items():
        if section.get(key) is not None or (key in section and check is _switch):
            check(section[key], f"{where}'s {name}.{key}")


def _check_methods_section(methods: Any, where: str) -> None:
    """``des_net.methods``: each method's own ``sws train`` flags, and ``at_depth`` ones for a depth."""
    if methods is None:
        return
    _mapping(methods, f"{where}'s des_net.methods")
    check_methods(methods, f"{where}'s des_net.methods")
    for method, recipe in methods.items():
        at = f"{where}'s des_net.methods.{method}"
        recipe = {} if recipe is None else _mapping(recipe, at)  # an empty entry (`sws:`) gives no flags
        at_depth = recipe.get("at_depth")
        _flags({k: v for k, v in recipe.items() if k != "at_depth"}, at)
        if at_depth is None:
            continue
        for depth, flags in _mapping(at_depth, f"{at}.at_depth").items():
            _DEPTH(depth, f"{at}.at_depth's key")
            _flags(_mapping(flags, f"{at}.at_depth.{depth}"), f"{at}.at_depth.{depth}")


def data_of(config: dict[str, Any]) -> dict[str, Any]:
    """What a config trains on: its data set and data path (two configs with the same are the same
    data, whatever their subsets)."""
    return {"data_set": config.get("data_set"), "data_path": config.get("data_path")}


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
    """``["aux.train.epochs=10", "depths=[6,12]"]``: values are read as YAML (safely)."""
    config = copy.deepcopy(config)
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"--set takes key=value (for example aux.train.epochs=10), not {assignment!r}")
        dotted, raw = assignment.split("=", 1)
        keys = dotted.strip().split(".")
        if not all(keys):
            raise ConfigError(f"--set {dotted}: a key is empty; write section.key=value")
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: {key} is not a section")
        node[keys[-1]] = read_yaml_value(raw, f"--set {assignment}")
    validate_config(config, "the config after --set")
    return config


def add_study_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that ``sws pipeline`` and ``sws compare`` share."""
    p.add_argument("--config", default=None, help=f"YAML file or packaged config {packaged_configs()}")
    p.add_argument("--data-path", default=None, help="ImageFolder with train/ and val/ (sets --data-set FOLDER)")
    p.add_argument("--data-set", default=None, help="MNIST5K (default), DIGITS, FASHION_MNIST, FOLDER, IMNET, ...")
    p.add_argument("--output_dir", "--output-dir", dest="output_dir", default=None, help="run folder")
    p.add_argument("--depths", default=None, help="Des-Net depths, e.g. 4,6,8,12")
    p.add_argument("--widths", default=None, help="Des-Net widths, e.g. 32,64,128 (default: the Aux-Net's)")
    p.add_argument("--seed", default=None, help="random seed")
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


def resolve_config(
    args: argparse.Namespace,
    config_file: str | os.PathLike[str] | None = None,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The config (``--config``, else ``config_file``, else the default), then the data flags (or
    ``prepare``, which applies them its own way), then the other flags, then the ``--set``
    assignments. The output folder is the caller's business."""
    config = load_config(args.config or config_file)
    config = prepare(config) if prepare is not None else apply_data_flags(config, args)
    if args.seed is not None:
        config["seed"] = _seed(args.seed)
    if args.device is not None:
        config["device"] = args.device
    if args.depths:
        config["depths"] = comma_separated_ints(args.depths, "--depths")
    if args.widths:
        config["widths"] = comma_separated_ints(args.widths, "--widths", "32,64,128")
    return apply_overrides(config, args.assignments)


def apply_data_flags(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``--data-set`` and ``--data-path``: a built-in data set's config pointed at a folder reads
    an ImageFolder there."""
    data_set = args.data_set.upper() if args.data_set and "/" not in args.data_set else args.data_set
    if args.data_path:
        config["data_path"] = args.data_path
        config["data_set"] = data_set or (
            "FOLDER" if config.get("data_set") in BUILTIN_DATASETS else config["data_set"]
        )
    elif data_set:
        config["data_set"] = data_set
    return config


def _seed(text: str) -> int:
    seed = comma_separated_ints(text, "--seed", "0")
    if len(seed) != 1 or not 0 <= seed[0] <= MAX_SEED:
        raise ConfigError(f"--seed {text}: give one whole number from 0 to {MAX_SEED:,}")
    return seed[0]

"""Building any model by name: timm's names, sws's registered ones, and SWS names of any shape.

The paper's names encode the shape: ``aux_deit_small_patch16_224_L16_33433`` is an Aux-Net at
DeiT-Small width whose 16 layers form stages 3,3,4,3,3; ``deit_small_patch16_224_L12`` is a
12-layer Des-Net. ``create_model`` understands such names for *any* layout or depth (not only the
registered ones) and otherwise defers to ``timm.create_model``. The generic names ``aux_net``,
``tleg_aux_net`` and ``des_net`` take the whole shape as keyword arguments.

Example:
    >>> create_model("aux_deit_tiny_patch16_224_L12_444", num_classes=10).layout
    StageLayout(layers_per_stage=(4, 4, 4))
    >>> create_model("des_net", depth=6, embed_dim=64, num_heads=2, patch_size=7, img_size=28)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import timm
import torch.nn as nn

from sws.architecture import ViTArchitecture
from sws.aux_net import AUX_NAME, AuxNet, aux_net_from_name, create_aux_net
from sws.des_net import DES_NAME, create_des_net, des_net_from_name
from sws.errors import ConfigError, UnknownModelArgument, first_line
from sws.tleg import TLEG_NAME, TLEGAuxNet, tleg_aux_net_from_name

# SWS names of any shape, each read by the one function of its kind (registered names build through it too)
NAMED: tuple[tuple[re.Pattern[str], Callable[..., nn.Module]], ...] = (
    (AUX_NAME, aux_net_from_name),
    (TLEG_NAME, tleg_aux_net_from_name),
    (DES_NAME, des_net_from_name),
)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build ``name`` with ``kwargs``: an SWS name of any shape, a generic sws name, or any timm
    model (``pretrained=True`` works for timm models when their weights can be reached). An argument
    the model does not take is refused with ``UnknownModelArgument``."""
    try:
        return _create_model(name, **kwargs)
    except TypeError as error:
        match = re.search(r"unexpected keyword argument '(\w+)'", str(error))
        if match is None:  # an argument of the wrong type, given twice, ...: the model's own words
            raise ConfigError(f"cannot build model {name} with {kwargs} ({first_line(error)})") from None
        raise UnknownModelArgument(
            f"model {name} does not take the argument {match.group(1)!r} (from --model-kwargs or the config); "
            "remove it or check its spelling",
            match.group(1),
        ) from None


def _create_model(name: str, **kwargs: Any) -> nn.Module:
    if timm.is_model(name):
        return timm.create_model(name, **kwargs)
    if name == "aux_net":
        return create_aux_net(**kwargs)
    if name == "tleg_aux_net":
        return TLEGAuxNet(**kwargs)
    if name == "des_net":
        if "depth" not in kwargs:
            raise ConfigError("model des_net needs a depth (--model-kwargs depth=12)")
        depth = kwargs.pop("depth")
        arch_fields = set(ViTArchitecture().to_dict())
        arch = ViTArchitecture(**{k: kwargs.pop(k) for k in list(kwargs) if k in arch_fields})
        return create_des_net(depth, arch, **kwargs)
    for pattern, build in NAMED:
        if pattern.match(name):
            return build(name, **kwargs)
    raise ConfigError(
        f"unknown model {name!r}: use a timm model name (timm.list_models()), an Aux-Net name such as "
        "aux_deit_small_patch16_224_L16_33433, a Des-Net name such as deit_small_patch16_224_L12, or "
        "aux_net/des_net with --model-kwargs"
    )


def is_vit_family(name: str) -> bool:
    """Whether ``name`` builds a ViT that takes ``img_size`` (SWS models and timm ViT/DeiT names)."""
    return bool(
        name in ("aux_net", "tleg_aux_net", "des_net")
        or any(pattern.match(name) for pattern, _ in NAMED)
        or name.startswith(("vit_", "deit_", "deit3_"))
    )


def is_aux_net(model: nn.Module) -> bool:
    """Whether ``model`` is an Aux-Net of any kind (its learngene can be extracted)."""
    return isinstance(model, (AuxNet, TLEGAuxNet))

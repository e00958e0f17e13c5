"""Des-Nets: the plain timm ViTs that a learngene initializes.

A descendant network is an ordinary timm ``VisionTransformer`` of any depth, shaped like the
Aux-Net (no class token, per-token final norm, average pooling) so that expansion preserves the
function. It is built through one of timm's own DeiT entry points, so a saved Des-Net reloads with
``timm.create_model('local-dir:DIR', pretrained=True)`` in a process that never imports sws.

The official code's names (``deit_small_patch16_224_L12`` and the other depths of tiny, small and
base) are registered here.

Example:
    >>> des = create_des_net(12, ViTArchitecture(embed_dim=384, num_heads=6))
    >>> len(des.blocks)
    12
"""

from __future__ import annotations

import re
from typing import Any

import timm
from timm.models import VisionTransformer

from sws.architecture import DEIT_WIDTHS, TIMM_NORM_EPS, ViTArchitecture, check_buildable, register_by_name
from sws.errors import ConfigError
from sws.layout import check_depth

# The registered Des-Net depths per DeiT width (the official code's names cover 6 to 16 layers).
REGISTERED_DEPTHS = range(1, 25)


def timm_base_name(architecture: ViTArchitecture) -> str:
    """The timm entry point a Des-Net is built through (and that its saved ``config.json`` names):
    timm's DeiT of the same width, else DeiT-Base; the saved model arguments override its shape."""
    for size, widths in DEIT_WIDTHS.items():
        if widths["embed_dim"] == architecture.embed_dim:
            return f"deit_{size}_patch16_224"
    return "deit_base_patch16_224"


def des_net_kwargs(architecture: ViTArchitecture, depth: int) -> dict[str, Any]:
    """JSON-serializable timm arguments of a Des-Net (timm's LayerNorm epsilon, 1e-6, always)."""
    return {**architecture.replace(norm_eps=TIMM_NORM_EPS).timm_kwargs(), "depth": depth}


def create_des_net(
    depth: int,
    architecture: ViTArchitecture | None = None,
    drop_path_rate: float = 0.0,
    **kwargs: Any,
) -> VisionTransformer:
    """Build a randomly initialized Des-Net of ``depth`` layers.

    ``kwargs`` go to timm's ``VisionTransformer`` (dropout rates, ...) or, when they name an
    architecture field (``embed_dim=192``), change the architecture.
    """
    check_depth(depth, "a Des-Net")
    architecture = architecture or ViTArchitecture()
    arch_fields = set(architecture.to_dict())
    changes = {k: kwargs.pop(k) for k in list(kwargs) if k in arch_fields}
    if changes:
        architecture = architecture.replace(**changes)
    check_buildable(architecture, depth, f"a {depth}-layer Des-Net")
    model_args = des_net_kwargs(architecture, depth)
    return timm.create_model(timm_base_name(architecture), drop_path_rate=drop_path_rate, **model_args, **kwargs)


# ``deit_small_patch16_224_L12``: DeiT width, patch size, image size and depth (the official names)
DES_NAME = re.compile(r"^deit_(tiny|small|base)_patch(\d+)_(\d+)_L(\d+)$")


def des_net_from_name(name: str, pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """The Des-Net that a name spells (any width word, patch and image size and depth, registered or
    not); ``kwargs`` override the shape (``img_size``: the data's)."""
    match = DES_NAME.match(name)
    if match is None:
        raise ConfigError(f"{name} is not a Des-Net name such as deit_small_patch16_224_L12")
    if pretrained:
        raise ConfigError(f"{name} has no released weights; initialize it with `sws expand` or --load-gene")
    for unused in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(unused, None)
    size, patch, img, depth = match.groups()
    architecture = ViTArchitecture(**DEIT_WIDTHS[size], patch_size=int(patch), img_size=int(img))
    return create_des_net(int(depth), architecture, **kwargs)


# the official code's names, ``deit_{tiny,small,base}_patch16_224_L{depth}``, each built through
# ``des_net_from_name``, the one reader of such names
register_by_name(
    __name__,
    des_net_from_name,
    {
        f"deit_{size}_patch16_224_L{depth}": (
            f"A {depth}-layer Des-Net at DeiT-{size.capitalize()} width (no class token)."
        )
        for size in DEIT_WIDTHS
        for depth in REGISTERED_DEPTHS
    },
)

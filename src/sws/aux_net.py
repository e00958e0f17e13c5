"""The Aux-Net: a ViT whose layers share one set of block weights per stage.

The paper's auxiliary network has 16 layers in five stages (``3,3,4,3,3``); the layers of a stage
share one block (norm1, qkv, proj, norm2, fc1, fc2), so the whole network holds only five blocks.
After training by distillation those five blocks are the learngene.

Sharing is structural: every layer position is its own timm ``Block`` whose weight-carrying
sub-modules *are* the sub-modules of the first block of its stage, while its stochastic-depth
modules stay its own. A forward pass is exactly a timm ``VisionTransformer`` forward pass, with no
hooks and no walking of the module tree; the state dict lists every position's keys (pointing at
the stage's tensors), so it loads into a plain 16-layer Des-Net of the same layout unchanged.

Example:
    >>> import sws, timm
    >>> model = timm.create_model("aux_deit_small_patch16_224_L16_33433")
    >>> len(model.stage_blocks)
    5
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import VisionTransformer, build_model_with_cfg, generate_default_cfgs
from timm.models.vision_transformer import Block

from sws.architecture import DEIT_WIDTHS, ViTArchitecture, check_buildable, register_by_name
from sws.errors import ConfigError
from sws.layout import StageLayout, check_depth

# Sub-modules of a timm Block that carry weights. A layer position shares these with the first
# block of its stage; its drop-path modules (one rate per position) are its own.
SHARED_BLOCK_PARTS = ("norm1", "attn", "ls1", "norm2", "mlp", "ls2")

# The arguments that make a network SWS-shaped; an Aux-Net refuses overrides of them.
_FIXED_ARGS = ("class_token", "global_pool", "fc_norm", "block_fn")

PAPER_LAYOUT = StageLayout((3, 3, 4, 3, 3))


class AuxNetBase(VisionTransformer):
    """What every auxiliary network shares: a timm ViT of ``depth`` layers with the SWS head (no
    class token, per-token final norm, average pooling). Subclasses tie its layers' weights.

    Args:
        depth: Layers.
        img_size, patch_size, in_chans, num_classes, embed_dim, num_heads, mlp_ratio, qkv_bias:
            As in timm's ``VisionTransformer``.
        drop_path_rate: Stochastic depth; the rate grows linearly over layer *positions* (DeiT's
            rule) even where positions share weights.
        norm_eps: LayerNorm epsilon (1e-6 as in timm/DeiT; the official SWS and TLEG code used 1e-5).
        **kwargs: Other ``VisionTransformer`` arguments (dropout rates, ``weight_init``, ...).
    """

    def __init__(
        self,
        depth: int,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 384,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        fixed = [name for name in _FIXED_ARGS if name in kwargs]
        if fixed:
            raise ConfigError(f"an Aux-Net sets {', '.join(fixed)} itself")
        architecture = ViTArchitecture(
            embed_dim=embed_dim,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            patch_size=patch_size,
            img_size=img_size,
            in_chans=in_chans,
            num_classes=num_classes,
            qkv_bias=qkv_bias,
            norm_eps=norm_eps,
        )
        check_depth(depth, "an Aux-Net")
        # timm builds every layer's block before they are tied, so the check counts them all
        check_buildable(architecture, depth, f"a {depth}-layer Aux-Net")
        super().__init__(depth=depth, drop_path_rate=drop_path_rate, **architecture.timm_kwargs(), **kwargs)

    @property
    def architecture(self) -> ViTArchitecture:
        """Width and input/output shape (read from the modules, so it follows ``reset_classifier``)."""
        return ViTArchitecture.of(self)


class AuxNet(AuxNetBase):
    """A ViT with stage-wise weight sharing (SWS's auxiliary network).

    Args:
        layout: Layers per stage, e.g. ``"3,3,4,3,3"`` (the paper's 16-layer Aux-Net).
        **kwargs: The architecture and ``VisionTransformer`` arguments of :class:`AuxNetBase`
            (``embed_dim``, ``num_heads``, ``patch_size``, ``drop_path_rate``, ``norm_eps``, ...).
    """

    def __init__(self, layout: StageLayout | str | Iterable[int] = PAPER_LAYOUT, **kwargs: Any) -> None:
        if "depth" in kwargs:
            raise ConfigError("an Aux-Net sets depth itself; give a stage layout instead")
        layout = StageLayout.parse(layout)
        super().__init__(depth=layout.depth, **kwargs)
        self.layout = layout
        self._share_stage_weights()

    def _share_stage_weights(self) -> None:
        """Point every layer's weight-carrying parts at those of its stage's first layer."""
        for position, stage in enumerate(self.layout.stage_index):
            owner = self.blocks[self.layout.first_layer(stage)]
            if position != self.layout.first_layer(stage):
                for part in SHARED_BLOCK_PARTS:
                    setattr(self.blocks[position], part, getattr(owner, part))

    @property
    def stage_blocks(self) -> list[Block]:
        """The one block per stage that owns the stage's weights (the learngene layers)."""
        return [self.blocks[self.layout.first_layer(s)] for s in range(self.layout.num_stages)]

    def extra_repr(self) -> str:
        return f"layout={self.layout}"


def create_aux_net(
    layout: StageLayout | str | Iterable[int] = PAPER_LAYOUT,
    embed_dim: int = 384,
    num_heads: int = 6,
    **kwargs: Any,
) -> AuxNet:
    """Build an Aux-Net for any stage layout and width, e.g. ``create_aux_net("2,2,2", 192, 3)``."""
    return AuxNet(layout=layout, embed_dim=embed_dim, num_heads=num_heads, **kwargs)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    # No released weights: sws trains Aux-Nets itself. DeiT's ImageNet normalization.
    return {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "fixed_input_size": True,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {f"aux_deit_{size}_patch16_224_{PAPER_LAYOUT.suffix}": _cfg() for size in DEIT_WIDTHS}
)


# ``aux_deit_small_patch16_224_L16_33433``: DeiT width, patch size, image size and stage layout
AUX_NAME = re.compile(r"^aux_deit_(tiny|small|base)_patch(\d+)_(\d+)_(L\d+_[\d-]+)$")


def aux_net_from_name(name: str, pretrained: bool = False, **kwargs: Any) -> AuxNet:
    """The Aux-Net that an SWS name spells (any width word, patch and image size and layout, registered
    or not); ``kwargs`` override the shape (``img_size``: the data's), except a ``layout`` that
    contradicts the name's."""
    match = AUX_NAME.match(name)
    if match is None:
        raise ConfigError(f"{name} is not an Aux-Net name such as aux_deit_small_patch16_224_L16_33433")
    if pretrained:
        raise ConfigError(
            f"{name} has no released weights; train one with `sws train --model {name}` "
            "or load a learngene with `sws expand`"
        )
    size, patch, img, suffix = match.groups()
    layout = StageLayout.parse(suffix)
    asked = kwargs.pop("layout", None)
    if asked is not None and StageLayout.parse(asked) != layout:
        raise ConfigError(
            f"model {name} has layout {layout} but --layout (or layout=) asks for {StageLayout.parse(asked)}; "
            f"drop one, or use the name aux_net with --layout"
        )
    for unused in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(unused, None)
    args = {**DEIT_WIDTHS[size], "patch_size": int(patch), "img_size": int(img), **kwargs}
    if name in default_cfgs:  # a registered name: its pretrained_cfg too (timm's distillation task needs one)
        return build_model_with_cfg(AuxNet, name, False, layout=layout, **args)
    return AuxNet(layout, **args)


register_by_name(
    __name__,
    aux_net_from_name,
    {
        f"aux_deit_{size}_patch16_224_{PAPER_LAYOUT.suffix}": (
            f"The paper's 16-layer Aux-Net (stages {PAPER_LAYOUT}) at DeiT-{size.capitalize()} width."
        )
        for size in DEIT_WIDTHS
    },
)


__all__ = ["AUX_NAME", "PAPER_LAYOUT", "SHARED_BLOCK_PARTS", "AuxNet", "aux_net_from_name", "create_aux_net"]

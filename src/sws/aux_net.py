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

from collections.abc import Iterable
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import VisionTransformer, build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import Block

from sws.architecture import DEIT_WIDTHS, ViTArchitecture
from sws.errors import ConfigError
from sws.layout import StageLayout

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


def _create_aux_net(variant: str, pretrained: bool = False, **kwargs: Any) -> AuxNet:
    if pretrained:
        raise ConfigError(
            f"{variant} has no released weights; train one with `sws train --model {variant}` "
            "or load a learngene with `sws expand`"
        )
    return build_model_with_cfg(AuxNet, variant, pretrained, **kwargs)


@register_model
def aux_deit_tiny_patch16_224_L16_33433(pretrained: bool = False, **kwargs: Any) -> AuxNet:
    """The paper's 16-layer Aux-Net (stages 3,3,4,3,3) at DeiT-Tiny width."""
    args = {"layout": PAPER_LAYOUT, "patch_size": 16, **DEIT_WIDTHS["tiny"]}
    return _create_aux_net("aux_deit_tiny_patch16_224_L16_33433", pretrained, **{**args, **kwargs})


@register_model
def aux_deit_small_patch16_224_L16_33433(pretrained: bool = False, **kwargs: Any) -> AuxNet:
    """The paper's Aux-S: 16 layers in stages 3,3,4,3,3 at DeiT-Small width."""
    args = {"layout": PAPER_LAYOUT, "patch_size": 16, **DEIT_WIDTHS["small"]}
    return _create_aux_net("aux_deit_small_patch16_224_L16_33433", pretrained, **{**args, **kwargs})


@register_model
def aux_deit_base_patch16_224_L16_33433(pretrained: bool = False, **kwargs: Any) -> AuxNet:
    """The paper's Aux-B: 16 layers in stages 3,3,4,3,3 at DeiT-Base width."""
    args = {"layout": PAPER_LAYOUT, "patch_size": 16, **DEIT_WIDTHS["base"]}
    return _create_aux_net("aux_deit_base_patch16_224_L16_33433", pretrained, **{**args, **kwargs})


__all__ = ["PAPER_LAYOUT", "SHARED_BLOCK_PARTS", "AuxNet", "create_aux_net"]

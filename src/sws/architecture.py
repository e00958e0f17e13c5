"""The shape that an Aux-Net, its learngene and its Des-Nets have in common.

Everything but the depth: width, heads, MLP ratio, patch and image size, channels and classes.
Both networks are ViTs without a class token whose final LayerNorm is applied to every token
before the tokens are averaged (the official SWS head), so a learngene moves between them without
any change of function.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from timm.models import register_model
from timm.models.vision_transformer import Block

from sws.cost import available_memory
from sws.errors import IncompatibleModelError

# Keyword arguments of timm's VisionTransformer that make it an SWS-shaped network: no class
# token, per-token final norm, average pooling. Kept in one place so the Aux-Net and every Des-Net
# agree.
SWS_HEAD_KWARGS: dict[str, Any] = {"class_token": False, "global_pool": "avg", "fc_norm": False}

# timm's own LayerNorm default; Des-Nets always use it so that timm alone can rebuild them.
TIMM_NORM_EPS = 1e-6

# DeiT widths and head counts (tiny 3, small 6, base 12; head dimension 64): the widths that the
# registered Aux-Net and Des-Net names use. The official small Aux-Net used 12 heads;
# `sws import-official` handles it.
DEIT_WIDTHS: dict[str, dict[str, int]] = {
    "tiny": {"embed_dim": 192, "num_heads": 3},
    "small": {"embed_dim": 384, "num_heads": 6},
    "base": {"embed_dim": 768, "num_heads": 12},
}


def square_size(size: int | tuple[int, int] | list[int]) -> int:
    """``224`` from ``224`` or ``(224, 224)``; sws models take square images and patches."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2 or size[0] != size[1]:
            raise IncompatibleModelError(f"sws supports square images and patches only, not {tuple(size)}")
        return size[0]
    return size


@dataclass(frozen=True)
class ViTArchitecture:
    """Width and input/output shape of an SWS-shaped ViT (everything except its depth)."""

    embed_dim: int = 384
    num_heads: int = 6
    mlp_ratio: float = 4.0
    patch_size: int = 16
    img_size: int = 224
    in_chans: int = 3
    num_classes: int = 1000
    qkv_bias: bool = True
    norm_eps: float = TIMM_NORM_EPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", square_size(self.img_size))
        object.__setattr__(self, "patch_size", square_size(self.patch_size))
        for name in ("embed_dim", "num_heads", "patch_size", "img_size", "in_chans"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IncompatibleModelError(f"{name} must be a positive whole number, not {value!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise IncompatibleModelError(
                f"num_classes must be 0 (no head) or a positive whole number, not {self.num_classes!r}"
            )
        for name in ("mlp_ratio", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise IncompatibleModelError(f"{name} must be a positive number, not {value!r}")
        if not isinstance(self.qkv_bias, bool):
            raise IncompatibleModelError(f"qkv_bias must be true or false, not {self.qkv_bias!r}")
        if self.mlp_hidden_dim < 1:
            raise IncompatibleModelError(f"mlp_ratio {self.mlp_ratio} leaves no MLP unit at width {self.embed_dim}")
        if self.embed_dim % self.num_heads:
            raise IncompatibleModelError(
                f"width {self.embed_dim} does not split into {self.num_heads} attention heads; "
                f"choose a head count that divides {self.embed_dim}"
            )
        if self.img_size % self.patch_size:
            raise IncompatibleModelError(
                f"image size {self.img_size} is not a multiple of patch size {self.patch_size}; "
                "choose an image size that the patches tile"
            )

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    def replace(self, **changes: Any) -> ViTArchitecture:
        return dataclasses.replace(self, **changes)

    def timm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for timm's ``VisionTransformer`` (all JSON-serializable except the
        norm layer, which is only passed when the epsilon differs from timm's default)."""
        kwargs: dict[str, Any] = {
            "img_size": self.img_size,
            "patch_size": self.patch_size,
            "in_chans": self.in_chans,
            "num_classes": self.num_classes,
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias,
            **SWS_HEAD_KWARGS,
        }
        if self.norm_eps != TIMM_NORM_EPS:
            from functools import partial

            from timm.layers import LayerNorm

            kwargs["norm_layer"] = partial(LayerNorm, eps=self.norm_eps)
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> ViTArchitecture:
        if not isinstance(values, dict):
            raise IncompatibleModelError(f"an architecture is a mapping of its fields, not {values!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(values) - known))
        if unknown:
            raise IncompatibleModelError(f"unknown architecture fields {unknown}; expected some of {sorted(known)}")
        return cls(**values)

    @classmethod
    def of(cls, model: nn.Module) -> ViTArchitecture:
        """Read the architecture of a timm ``VisionTransformer`` (or an Aux-Net)."""
        try:
            proj = model.patch_embed.proj
            block = model.blocks[0]
            embed_dim = proj.out_channels
            num_classes = model.head.out_features if isinstance(model.head, nn.Linear) else 0
            return cls(
                embed_dim=embed_dim,
                num_heads=block.attn.num_heads,
                mlp_ratio=block.mlp.fc1.out_features / embed_dim,
                patch_size=proj.kernel_size[0],
                img_size=model.patch_embed.img_size[0],
                in_chans=proj.in_channels,
                num_classes=num_classes,
                qkv_bias=block.attn.qkv.bias is not None,
                norm_eps=block.norm1.eps,
            )
        except AttributeError as error:
            raise IncompatibleModelError(
                f"{type(model).__name__} is not a ViT that sws understands ({error}); "
                "use an Aux-Net or a timm VisionTransformer"
            ) from None

    def check_fits(self, target: ViTArchitecture, what: str = "the requested model") -> None:
        """Raise unless learngene tensors of this shape can be copied into ``target``.

        Width, MLP width, patch size and qkv bias must agree; the head count may differ (the tensors
        have the same shape), the image size may differ (the position embedding is resampled) and so
        may the channels where the patch embedding can be fitted (``fit_patch_embed``); the
        classifier is copied only when the class counts agree.
        """
        problems = []
        for name, fix in (
            ("embed_dim", "use a model of the learngene's width"),
            ("mlp_hidden_dim", "use the learngene's MLP ratio"),
            ("patch_size", "use the learngene's patch size"),
            ("qkv_bias", "match the learngene's qkv bias"),
        ):
            mine, theirs = getattr(self, name), getattr(target, name)
            if mine != theirs:
                problems.append(f"{name} {theirs} != learngene's {mine} ({fix})")
        if not channels_fit(self.in_chans, target.in_chans):
            problems.append(_channels_problem(self.in_chans, target.in_chans))
        if problems:
            raise IncompatibleModelError(f"the learngene does not fit {what}: " + "; ".join(problems))


def channels_fit(trained: int, wanted: int) -> bool:
    """Whether a patch embedding trained on ``trained``-channel images can read ``wanted`` channels:
    the same, from 1 (replicated), from 3 (timm's rule) or to 1 (summed)."""
    return trained == wanted or trained in (1, 3) or (wanted == 1 and trained <= 3)


def _channels_problem(trained: int, wanted: int) -> str:
    return (
        f"its patch embedding reads {trained}-channel images and cannot be fitted to {wanted} (sws fits 1 or 3 "
        "channels to any number, and any number up to 3 to 1): convert the images to 1 or 3 channels"
    )


def fit_patch_embed(weight: torch.Tensor, in_chans: int) -> tuple[torch.Tensor, str]:
    """A patch projection for ``in_chans``-channel images from one trained on others, and what was done:
    from one channel it is replicated and divided by the count (a grey image copied to every channel
    gives the same embedding); from three, or to one, timm's ``adapt_input_conv`` (repeat and rescale,
    or sum: a grey image's embedding is kept)."""
    trained = weight.shape[1]
    if trained == in_chans:
        return weight, "kept"
    if not channels_fit(trained, in_chans):
        raise IncompatibleModelError(f"the patch embedding does not fit: {_channels_problem(trained, in_chans)}")
    if trained == 1:
        return weight.repeat(1, in_chans, 1, 1) / in_chans, f"{trained} -> {in_chans} (replicated)"
    from timm.models import adapt_input_conv

    return adapt_input_conv(in_chans, weight), f"{trained} -> {in_chans} ({'summed' if in_chans == 1 else 'repeated'})"


def fit_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], prefix_tokens: int = 0) -> tuple[torch.Tensor, str]:
    """A position embedding for a ``grid`` of patches after ``prefix_tokens`` class or register slots,
    from one of another grid, and what was done: prefix slots the model lacks are dropped (DeiT's
    fine-tuning rule) and the patch grid is resampled bicubically (timm's ``resample_abs_pos_embed``)."""
    from timm.layers import resample_abs_pos_embed

    if pos_embed.ndim != 3:
        raise IncompatibleModelError(f"a position embedding is (1, tokens, width), not {tuple(pos_embed.shape)}")
    tokens = pos_embed.shape[1]
    # the source's prefix slots: the model's count when the rest is a square grid, else the fewest that are
    counts = [prefix_tokens, *range(0, 9)]
    source_prefix = next((p for p in counts if 0 < tokens - p == math.isqrt(tokens - p) ** 2), None)
    if source_prefix is None:
        raise IncompatibleModelError(f"a position embedding of {tokens} tokens is not a square grid of patches")
    if source_prefix < prefix_tokens:
        raise IncompatibleModelError(
            f"the position embedding has {source_prefix} class/register slot(s) but the model needs {prefix_tokens}"
        )
    side = math.isqrt(tokens - source_prefix)
    if source_prefix > prefix_tokens:
        pos_embed = pos_embed[:, source_prefix - prefix_tokens :]
        source_prefix = prefix_tokens
    if (side, side) == tuple(grid) and source_prefix == prefix_tokens:
        return pos_embed, "copied"
    resampled = resample_abs_pos_embed(
        pos_embed, new_size=list(grid), old_size=[side, side], num_prefix_tokens=source_prefix
    )
    return resampled, f"resampled {side}x{side} -> {grid[0]}x{grid[1]}"


def block_tensor_shapes(architecture: ViTArchitecture) -> dict[str, torch.Size]:
    """Names and shapes of one transformer block's tensors (``attn.qkv.weight``, ...), read from a
    timm ``Block`` built on the meta device, so they follow timm exactly."""
    block = Block(
        dim=architecture.embed_dim,
        num_heads=architecture.num_heads,
        mlp_ratio=architecture.mlp_ratio,
        qkv_bias=architecture.qkv_bias,
        device="meta",
    )
    return {name: tensor.shape for name, tensor in block.state_dict().items()}


def outer_tensor_shapes(architecture: ViTArchitecture) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors outside the layers: embeddings, final norm and classifier."""
    a = architecture
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embed.proj.weight": (a.embed_dim, a.in_chans, a.patch_size, a.patch_size),
        "patch_embed.proj.bias": (a.embed_dim,),
        "pos_embed": (1, a.num_patches, a.embed_dim),
        "norm.weight": (a.embed_dim,),
        "norm.bias": (a.embed_dim,),
    }
    if a.num_classes:
        shapes["head.weight"] = (a.num_classes, a.embed_dim)
        shapes["head.bias"] = (a.num_classes,)
    return shapes


def des_net_num_params(architecture: ViTArchitecture, depth: int) -> int:
    """Parameters of a Des-Net of ``depth`` layers, counted from tensor shapes."""
    block = sum(math.prod(s) for s in block_tensor_shapes(architecture).values())
    outer = sum(math.prod(s) for s in outer_tensor_shapes(architecture).values())
    return outer + depth * block


def check_buildable(architecture: ViTArchitecture, depth: int, what: str) -> None:
    """Refuse, before any tensor is allocated, a network whose float32 weights alone exceed the memory
    this machine has available (a mistyped width, depth or image size would end in an allocator's
    traceback, or swap for minutes)."""
    params = des_net_num_params(architecture, depth)
    available = available_memory()
    if 4 * params > available:
        a = architecture
        raise IncompatibleModelError(
            f"{what} (depth {depth}, embed_dim {a.embed_dim}, img_size {a.img_size}, patch_size {a.patch_size}, "
            f"num_classes {a.num_classes}) has {params:,} parameters, {4 * params / 2**30:,.1f} GiB in float32, more "
            f"than the {available / 2**30:,.1f} GiB this machine has available; choose a smaller width, depth, image "
            "size or class count"
        )


def register_by_name(module_name: str, build: Callable[..., nn.Module], docs: dict[str, str]) -> None:
    """Register with timm one entry point per name of ``docs`` (name: docstring), each building through
    ``build(name, pretrained, **kwargs)``, the one reader of such names; each becomes an attribute of
    the module ``module_name`` too, as timm's own entry points are."""
    module = sys.modules[module_name]
    for name, doc in docs.items():

        def entrypoint(pretrained: bool = False, _name: str = name, **kwargs: Any) -> nn.Module:
            return build(_name, pretrained, **kwargs)

        entrypoint.__name__ = entrypoint.__qualname__ = name
        entrypoint.__module__ = module_name
        entrypoint.__doc__ = doc
        setattr(module, name, entrypoint)
        register_model(entrypoint)

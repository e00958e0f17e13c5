"""TLEG: the learngene as a linear expansion along depth (Xia et al., AAAI 2024).

"Transformer as Linear Expansion of Learngene": every tensor of layer ``l`` (of ``L``) of the
auxiliary network is ``base + (l / L) * slope``, for every block tensor (qkv, proj, fc1, fc2 and
both LayerNorms, weights and biases). The learngene is ``base`` and ``slope``; a descendant of
depth ``L'`` gets ``base + (l / L') * slope`` for ``l = 0 .. L'-1``.

The TLEG Aux-Net is a timm ``VisionTransformer`` whose block tensors are PyTorch
parametrizations computing that formula from one shared ``base`` and one shared ``slope`` per
tensor, so its forward pass is timm's and each shared tensor is one parameter.

Example:
    >>> aux = TLEGAuxNet(depth=16, embed_dim=64, num_heads=2)
    >>> gene = TLEGLearngene.from_aux_net(aux)
    >>> des = expand(gene, depth=12)
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from torch.nn.utils import parametrize

from sws.architecture import DEIT_WIDTHS, block_tensor_shapes, outer_tensor_shapes
from sws.aux_net import AuxNetBase
from sws.errors import ConfigError, IncompatibleModelError, LayoutError
from sws.layout import check_depth
from sws.learngene import Learngene, MappingLike, TensorDict, load_outer_tensors


class AlongDepth(nn.Module):
    """Parametrization ``weight = base + coefficient * slope`` with a shared ``slope``."""

    def __init__(self, slope: nn.Parameter, coefficient: float) -> None:
        super().__init__()
        self.slope = slope
        self.coefficient = coefficient

    def forward(self, base: torch.Tensor) -> torch.Tensor:
        return base + self.coefficient * self.slope


def _owner(block: nn.Module, tensor_name: str) -> tuple[nn.Module, str]:
    """``(block.attn.qkv, 'weight')`` for ``'attn.qkv.weight'``."""
    path, _, attribute = tensor_name.rpartition(".")
    return block.get_submodule(path), attribute


class TLEGAuxNet(AuxNetBase):
    """A ViT whose layer ``l`` of ``depth`` has block tensors ``base + (l / depth) * slope``.

    Args:
        depth: Layers of the Aux-Net.
        **kwargs: The architecture and ``VisionTransformer`` arguments of ``AuxNetBase``
            (``embed_dim``, ``num_heads``, ``patch_size``, ``norm_eps`` (the official TLEG code used
            1e-5), ...); the network has the SWS head, like the SWS Aux-Net.
    """

    def __init__(self, depth: int = 16, **kwargs: Any) -> None:
        super().__init__(depth=check_depth(depth, "a TLEG Aux-Net"), **kwargs)
        self._expand_linearly()

    def _expand_linearly(self) -> None:
        """Make every block tensor ``base + (l / depth) * slope``, with ``base`` the first block's
        tensor and one new ``slope`` per tensor."""
        depth = len(self.blocks)
        first = self.blocks[0]
        for name in list(first.state_dict()):
            module, attribute = _owner(first, name)
            base = getattr(module, attribute)
            slope = nn.Parameter(torch.zeros_like(base))
            if base.ndim > 1:
                trunc_normal_(slope, std=0.02)
            for layer, block in enumerate(self.blocks):
                target, _ = _owner(block, name)
                parametrize.register_parametrization(target, attribute, AlongDepth(slope, layer / depth), unsafe=True)
                target.parametrizations[attribute].original = base

    def base_and_slope(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The learngene tensors, keyed by timm ``Block`` tensor names."""
        first = self.blocks[0]
        bases, slopes = {}, {}
        for name in block_tensor_shapes(self.architecture):
            module, attribute = _owner(first, name)
            parametrization = module.parametrizations[attribute]
            bases[name] = parametrization.original
            slopes[name] = parametrization[0].slope
        return bases, slopes


# ``tleg_aux_deit_small_patch16_224_L16``: DeiT width, patch size, image size and depth
TLEG_NAME = re.compile(r"^tleg_aux_deit_(tiny|small|base)_patch(\d+)_(\d+)_L(\d+)$")


def tleg_aux_net_from_name(name: str, **kwargs: Any) -> TLEGAuxNet:
    """The TLEG Aux-Net that a name spells; ``kwargs`` override the shape."""
    match = TLEG_NAME.match(name)
    if match is None:
        raise ConfigError(f"{name} is not a TLEG Aux-Net name such as tleg_aux_deit_small_patch16_224_L16")
    size, patch, img, depth = match.groups()
    args = {**DEIT_WIDTHS[size], "patch_size": int(patch), "img_size": int(img), **kwargs}
    return TLEGAuxNet(depth=int(depth), **args)


class TLEGLearngene(Learngene):
    """A TLEG learngene: ``base.<tensor>`` and ``slope.<tensor>`` for every block tensor."""

    kind = "tleg"

    def layer_tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        block = block_tensor_shapes(self.architecture)
        return {f"{part}.{name}": tuple(shape) for part in ("base", "slope") for name, shape in block.items()}

    def default_mapping(self, depth: int) -> None:
        return None

    def layer_tensors(self, layer: int, depth: int) -> dict[str, torch.Tensor]:
        """Block tensors of layer ``layer`` of a ``depth``-layer network: ``base + (l/L) * slope``."""
        names = block_tensor_shapes(self.architecture)
        return {n: self.tensors[f"base.{n}"] + (layer / depth) * self.tensors[f"slope.{n}"] for n in names}

    def descendant_layers(self, depth: int, mapping: MappingLike = None) -> list[TensorDict]:
        if mapping is not None:
            raise LayoutError("a TLEG learngene has no layer mapping: each layer follows base + (l/L) * slope")
        return [self.layer_tensors(layer, depth) for layer in range(check_depth(depth))]

    def to_aux_net(self) -> TLEGAuxNet:
        model = TLEGAuxNet(depth=self.aux_depth, **self.architecture.to_dict())
        bases, slopes = model.base_and_slope()
        with torch.no_grad():
            load_outer_tensors(model, self.outer_tensors())
            for name in bases:
                bases[name].copy_(self.tensors[f"base.{name}"])
                slopes[name].copy_(self.tensors[f"slope.{name}"])
        return model.eval()

    @classmethod
    def from_aux_net(
        cls, model: TLEGAuxNet, training: dict[str, Any] | None = None, source: str = "sws extract"
    ) -> TLEGLearngene:
        if not isinstance(model, TLEGAuxNet):
            raise IncompatibleModelError(f"a TLEG learngene comes from a TLEGAuxNet, not {type(model).__name__}")
        outer = outer_tensor_shapes(model.architecture)
        tensors = {k: v for k, v in model.state_dict().items() if k in outer}
        bases, slopes = model.base_and_slope()
        tensors.update({f"base.{k}": v for k, v in bases.items()})
        tensors.update({f"slope.{k}": v for k, v in slopes.items()})
        tensors = {k: v.detach().to("cpu").clone() for k, v in tensors.items()}
        gene = cls(model.architecture, tensors, aux_depth=len(model.blocks), training=training, source=source)
        gene.check()
        return gene

    def _kind_metadata(self) -> dict[str, str]:
        return {}

    @classmethod
    def _from_metadata(cls, architecture, tensors, metadata, **common):  # type: ignore[no-untyped-def]
        return cls(architecture, tensors, **common)

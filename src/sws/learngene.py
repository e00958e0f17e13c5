"""The learngene file: what an Aux-Net passes on to its descendants.

A learngene is one ``.safetensors`` file: the learngene layers (for SWS one block per stage, stored
once and keyed by stage: ``stages.{s}.attn.qkv.weight``), the patch and position embedding
(``patch_embed.proj.*``, ``pos_embed``), the final norm (``norm.*``) and the classifier
(``head.*``, absent when the Aux-Net had none), with JSON metadata:

==================  ==============================================================================
``format``          ``sws.learngene``
``format_version``  ``1``
``kind``            ``sws`` (stage-wise weight sharing) or ``tleg`` (linear expansion)
``architecture``    width, heads, MLP ratio, patch and image size, channels, classes, norm epsilon
``layout``          the stage layout, e.g. ``3,3,4,3,3`` (the expansion guidance; ``sws`` only)
``aux_depth``       how many layers the Aux-Net had
``training``        how the Aux-Net was trained, when known (teacher, epochs, data, ...)
``source``          how the file was made (``sws extract``, ``sws import-official``)
==================  ==============================================================================

Loading checks the metadata against the tensors and refuses a truncated, foreign or pickled file.

Example:
    >>> gene = SWSLearngene.from_aux_net(aux_net)
    >>> gene.save("small.learngene.safetensors")
    >>> Learngene.load("small.learngene.safetensors").layout
    StageLayout(layers_per_stage=(3, 3, 4, 3, 3))
"""

from __future__ import annotations

import json
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from timm.models.vision_transformer import Block

import sws
from sws.architecture import ViTArchitecture
from sws.aux_net import AuxNet
from sws.errors import IncompatibleModelError, LearngeneFileError
from sws.fileio import atomic_path
from sws.layout import StageLayout

TensorDict = dict[str, torch.Tensor]
MappingLike = Sequence[int] | str | None

FORMAT_NAME = "sws.learngene"
FORMAT_VERSION = 1

# Tensors outside the layers: embeddings, final norm and classifier.
STEM_KEYS = ("patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed")
NORM_KEYS = ("norm.weight", "norm.bias")
HEAD_KEYS = ("head.weight", "head.bias")


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
    """Names and shapes of the embeddings, final norm and classifier."""
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


class Learngene(ABC):
    """Learngene layers plus embeddings, final norm and head, with what is known about them.

    Subclasses define the kind: how the layer tensors are named and how a descendant layer is made
    from them. ``Learngene.load`` returns the subclass that the file's ``kind`` names.
    """

    kind: ClassVar[str]
    _kinds: ClassVar[dict[str, type[Learngene]]] = {}

    def __init__(
        self,
        architecture: ViTArchitecture,
        tensors: dict[str, torch.Tensor],
        aux_depth: int,
        training: dict[str, Any] | None = None,
        source: str = "",
    ) -> None:
        self.architecture = architecture
        self.tensors = tensors
        self.aux_depth = aux_depth
        self.training = dict(training or {})
        self.source = source

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Learngene._kinds[cls.kind] = cls

    # -- what a kind defines --------------------------------------------------------------------

    @abstractmethod
    def layer_tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the learngene-layer tensors this learngene must hold."""

    @abstractmethod
    def default_mapping(self, depth: int) -> tuple[int, ...] | None:
        """The layer mapping used for a descendant of ``depth`` layers (``None`` when the kind has
        no mapping)."""

    @abstractmethod
    def descendant_layers(self, depth: int, mapping: MappingLike = None) -> list[TensorDict]:
        """The block tensors of every layer of a descendant of ``depth`` layers."""

    @abstractmethod
    def to_aux_net(self) -> nn.Module:
        """Rebuild the Aux-Net that this learngene came from (its function, in eval mode)."""

    @abstractmethod
    def _kind_metadata(self) -> dict[str, str]:
        """Kind-specific metadata entries."""

    @classmethod
    @abstractmethod
    def _from_metadata(
        cls, architecture: ViTArchitecture, tensors: dict[str, torch.Tensor], metadata: dict[str, str], **common: Any
    ) -> Learngene:
        """Rebuild from a file's tensors and metadata."""

    # -- shared behaviour -----------------------------------------------------------------------

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        return {**outer_tensor_shapes(self.architecture), **self.layer_tensor_shapes()}

    @property
    def num_params(self) -> int:
        """Parameters stored in the learngene file (what a user keeps to initialize every depth)."""
        return sum(t.numel() for t in self.tensors.values())

    @property
    def num_layer_params(self) -> int:
        """Parameters in the learngene layers alone."""
        return sum(self.tensors[name].numel() for name in self.layer_tensor_shapes())

    def outer_tensors(self) -> dict[str, torch.Tensor]:
        """Embeddings, final norm and (when present) classifier."""
        return {k: v for k, v in self.tensors.items() if k in outer_tensor_shapes(self.architecture)}

    def check(self) -> None:
        """Raise ``LearngeneFileError`` unless the tensors are exactly those the metadata implies."""
        expected = self.expected_shapes()
        missing = sorted(set(expected) - set(self.tensors))
        unexpected = sorted(set(self.tensors) - set(expected))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {_few(missing)}")
            if unexpected:
                parts.append(f"unexpected {_few(unexpected)}")
            raise LearngeneFileError(
                f"the {self.kind} learngene's tensors disagree with its metadata ({'; '.join(parts)}); "
                "the file was edited or written by another tool: extract it again"
            )
        for name, shape in expected.items():
            if tuple(self.tensors[name].shape) != tuple(shape):
                raise LearngeneFileError(
                    f"tensor {name} has shape {tuple(self.tensors[name].shape)} but the metadata implies "
                    f"{tuple(shape)}; the file is inconsistent: extract it again"
                )

    def metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "kind": self.kind,
            "architecture": json.dumps(self.architecture.to_dict()),
            "aux_depth": str(self.aux_depth),
            "training": json.dumps(self.training, default=str),
            "source": self.source,
            "sws_version": sws.__version__,
            **self._kind_metadata(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the learngene atomically (a temporary file renamed into place)."""
        self.check()
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.tensors.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=self.metadata())
        return Path(path)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Learngene:
        """Read and validate a learngene file, returning the subclass its ``kind`` names."""
        path = Path(path)
        metadata, tensors = _read_safetensors(path)
        if metadata.get("format") != FORMAT_NAME:
            raise LearngeneFileError(
                f"{path} is a safetensors file but not a learngene (no sws metadata); "
                "make one with `sws extract CHECKPOINT` or `sws import-official CHECKPOINT`"
            )
        version = metadata.get("format_version", "")
        if not version.isdigit() or int(version) > FORMAT_VERSION:
            raise LearngeneFileError(
                f"{path} has learngene format version {version!r}, newer than this sws reads "
                f"({FORMAT_VERSION}); upgrade sws"
            )
        kind = metadata.get("kind", "")
        if kind not in Learngene._kinds:
            raise LearngeneFileError(
                f"{path} is a learngene of unknown kind {kind!r}; this sws reads {sorted(Learngene._kinds)}"
            )
        try:
            architecture = ViTArchitecture.from_dict(json.loads(metadata["architecture"]))
            common = {
                "aux_depth": int(metadata["aux_depth"]),
                "training": json.loads(metadata.get("training") or "{}"),
                "source": metadata.get("source", ""),
            }
            gene = Learngene._kinds[kind]._from_metadata(architecture, tensors, metadata, **common)
        except (KeyError, ValueError, TypeError) as error:
            if isinstance(error, LearngeneFileError):
                raise
            raise LearngeneFileError(f"{path} has malformed learngene metadata ({error}); extract it again") from None
        gene.check()
        return gene

    def describe(self, depths: Sequence[int] = ()) -> dict[str, Any]:
        """What ``sws info`` prints: kind, layout, widths, parameter counts, mappings."""
        from sws.expansion import des_net_num_params

        info: dict[str, Any] = {
            "kind": self.kind,
            "architecture": self.architecture.to_dict(),
            "aux_depth": self.aux_depth,
            "params": self.num_params,
            "layer_params": self.num_layer_params,
            "training": self.training,
            "source": self.source,
            **{k: v for k, v in self._kind_metadata().items()},
        }
        info["depths"] = {
            str(d): {
                "mapping": (list(m) if (m := self.default_mapping(d)) is not None else None),
                "des_net_params": des_net_num_params(self.architecture, d),
            }
            for d in depths
        }
        return info


class SWSLearngene(Learngene):
    """An SWS learngene: one block per stage of the Aux-Net, and the stage layout."""

    kind = "sws"

    def __init__(
        self, architecture: ViTArchitecture, tensors: dict[str, torch.Tensor], layout: StageLayout, **common: Any
    ):
        common.setdefault("aux_depth", layout.depth)
        super().__init__(architecture, tensors, **common)
        self.layout = layout

    def layer_tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        block = block_tensor_shapes(self.architecture)
        return {
            f"stages.{s}.{name}": tuple(shape) for s in range(self.layout.num_stages) for name, shape in block.items()
        }

    def stage_tensors(self, stage: int) -> dict[str, torch.Tensor]:
        """Block tensors of learngene layer ``stage`` (names as in a timm ``Block``)."""
        prefix = f"stages.{stage}."
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def default_mapping(self, depth: int) -> tuple[int, ...]:
        return self.layout.mapping(depth)

    def descendant_layers(self, depth: int, mapping: MappingLike = None) -> list[TensorDict]:
        mapping = self.default_mapping(depth) if mapping is None else self.layout.validate_mapping(mapping, depth)
        return [self.stage_tensors(stage) for stage in mapping]

    def to_aux_net(self) -> AuxNet:
        model = AuxNet(self.layout, **self.architecture.to_dict())
        with torch.no_grad():
            load_outer_tensors(model, self.outer_tensors())
            for stage, block in enumerate(model.stage_blocks):
                block.load_state_dict(self.stage_tensors(stage))
        return model.eval()

    @classmethod
    def from_aux_net(
        cls, model: AuxNet, training: dict[str, Any] | None = None, source: str = "sws extract"
    ) -> SWSLearngene:
        """Take a trained Aux-Net apart into its learngene."""
        if not isinstance(model, AuxNet):
            raise IncompatibleModelError(
                f"extract needs an SWS Aux-Net, not {type(model).__name__}; train one with "
                "`sws train --model aux_deit_small_patch16_224_L16_33433`"
            )
        tensors = {k: v for k, v in model.state_dict().items() if k in outer_tensor_shapes(model.architecture)}
        for stage, block in enumerate(model.stage_blocks):
            tensors.update({f"stages.{stage}.{k}": v for k, v in block.state_dict().items()})
        tensors = {k: v.detach().to("cpu").clone() for k, v in tensors.items()}
        gene = cls(model.architecture, tensors, model.layout, training=training, source=source)
        gene.check()
        return gene

    def _kind_metadata(self) -> dict[str, str]:
        return {"layout": str(self.layout)}

    @classmethod
    def _from_metadata(cls, architecture, tensors, metadata, **common):  # type: ignore[no-untyped-def]
        return cls(architecture, tensors, StageLayout.parse(metadata["layout"]), **common)


def load_outer_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy embeddings, final norm and head (those present) into a model of the same shape."""
    state = model.state_dict()
    with torch.no_grad():
        for name, value in tensors.items():
            state[name].copy_(value)


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise LearngeneFileError(f"no learngene file at {path}; check the path")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80":
        raise LearngeneFileError(
            f"{path} is a pickled PyTorch file, not a learngene, and sws never unpickles one to find out; "
            "convert an official SWS checkpoint with `sws import-official`, or an sws training checkpoint "
            "with `sws extract`"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise LearngeneFileError(
            f"{path} is not a readable safetensors file ({error}); it may be truncated or corrupt: "
            "copy or extract it again"
        ) from None
    return metadata, tensors


def _few(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def warn_head_count_change(learngene_heads: int, model_heads: int) -> None:
    """Warn that copying a learngene into a model with another head count changes its function."""
    if learngene_heads != model_heads:
        warnings.warn(
            f"the learngene was trained with {learngene_heads} attention heads but the Des-Net has "
            f"{model_heads}: the tensors fit, but the network computes a different function until "
            "fine-tuned",
            stacklevel=3,
        )


# What a learngene records about the run that trained its Aux-Net (from the run's settings).
TRAINING_RECORD_KEYS = (
    "model",
    "epochs",
    "batch_size",
    "lr",
    "data_set",
    "input_size",
    "teacher_model",
    "distillation_type",
    "distillation_alpha",
    "distillation_tau",
    "seed",
)


def extract(source: nn.Module | dict[str, Any] | str | os.PathLike[str], use_ema: bool = False) -> Learngene:
    """Take a trained Aux-Net (a model, or an ``sws train`` checkpoint of one: its path or its loaded
    dict) apart into its learngene.

    Example:
        >>> extract("runs/aux/checkpoint.pth").save("aux.learngene.safetensors")
    """
    from sws.checkpoint import load_checkpoint, model_from_checkpoint
    from sws.tleg import TLEGAuxNet, TLEGLearngene

    training: dict[str, Any] = {}
    if isinstance(source, nn.Module):
        model, origin = source, "sws extract"
    else:
        checkpoint = source if isinstance(source, dict) else load_checkpoint(source)
        model = model_from_checkpoint(checkpoint, use_ema=use_ema)
        args = checkpoint.get("args") or {}
        training = {key: args[key] for key in TRAINING_RECORD_KEYS if args.get(key) is not None}
        training["epochs_completed"] = int(checkpoint.get("epoch", -1)) + 1
        if checkpoint.get("best_top1") is not None:
            training["best_top1"] = float(checkpoint["best_top1"])
        training["weights"] = "ema" if use_ema else "model"
        origin = "sws extract" if isinstance(source, dict) else f"sws extract {Path(source).name}"
    if isinstance(model, TLEGAuxNet):
        return TLEGLearngene.from_aux_net(model, training=training, source=origin)
    if isinstance(model, AuxNet):
        return SWSLearngene.from_aux_net(model, training=training, source=origin)
    raise IncompatibleModelError(
        f"the checkpoint holds a {type(model).__name__}, not an Aux-Net, so it has no learngene; "
        "extract from a run of `sws train --model aux_deit_small_patch16_224_L16_33433`"
    )


def load_learngene(path: str | os.PathLike[str], **official_options: Any) -> Learngene:
    """A learngene from any file users hold: a learngene file, an official SWS or TLEG Aux-Net
    checkpoint (``official_options`` go to ``import_official``), or an ``sws train`` checkpoint of
    an Aux-Net. Pickled files are read weights-only.
    """
    path = Path(path)
    if not path.is_file():
        raise LearngeneFileError(f"no learngene or checkpoint at {path}; check the path")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        return Learngene.load(path)
    from sws.official import import_official, load_official_checkpoint

    checkpoint = load_official_checkpoint(path)
    if "model_name" in checkpoint:  # written by sws train
        return extract(checkpoint, use_ema=bool(official_options.get("use_ema")))
    return import_official(checkpoint, **official_options)

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
import math
import os
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from sws.architecture import ViTArchitecture, block_tensor_shapes, des_net_num_params, outer_tensor_shapes
from sws.aux_net import AuxNet
from sws.errors import IncompatibleModelError, LearngeneFileError, caller_stacklevel, first_line
from sws.fileio import atomic_path, sniff_format
from sws.layout import StageLayout, check_depth
from sws.version import __version__

TensorDict = dict[str, torch.Tensor]
MappingLike = Sequence[int] | str | None

FORMAT_NAME = "sws.learngene"
FORMAT_VERSION = 1

# Tensors outside the layers: embeddings, final norm and classifier.
STEM_KEYS = ("patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed")
NORM_KEYS = ("norm.weight", "norm.bias")
HEAD_KEYS = ("head.weight", "head.bias")


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
    def num_layers_stored(self) -> int:
        """How many blocks' worth of tensors the learngene layers hold (SWS: one per stage; TLEG: two)."""
        return len(self.layer_tensor_shapes()) // len(block_tensor_shapes(self.architecture))

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
        not_finite = [name for name, tensor in self.tensors.items() if not torch.isfinite(tensor).all()]
        if not_finite:
            raise LearngeneFileError(
                f"the learngene holds NaN or infinite values (in {_few(sorted(not_finite))}); its Aux-Net diverged: "
                "extract it from an earlier checkpoint or retrain with a lower --lr"
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
            "sws_version": __version__,
            **self._kind_metadata(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the learngene atomically (a temporary file renamed into place)."""
        self.check()
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.tensors.items()}
        with atomic_path(path) as tmp:
            write_safetensors(tmp, tensors, self.metadata())
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
        if not re.fullmatch(r"[0-9]{1,6}", version):
            raise LearngeneFileError(
                f"{path} has learngene format version {version!r}, not a whole number; the file was edited or "
                "written by another tool: extract it again"
            )
        if int(version) > FORMAT_VERSION:
            raise LearngeneFileError(
                f"{path} has learngene format version {version}, newer than this sws reads ({FORMAT_VERSION}); "
                "upgrade sws"
            )
        kind = metadata.get("kind", "")
        if kind not in Learngene._kinds:
            raise LearngeneFileError(
                f"{path} is a learngene of unknown kind {kind!r}; this sws reads {sorted(Learngene._kinds)}"
            )
        try:
            architecture = ViTArchitecture.from_dict(json.loads(metadata["architecture"]))
            common = {
                "aux_depth": _aux_depth(metadata["aux_depth"]),
                "training": _training_metadata(json.loads(metadata.get("training") or "{}"), architecture),
                "source": metadata.get("source", ""),
            }
            gene = Learngene._kinds[kind]._from_metadata(architecture, tensors, metadata, **common)
        except KeyError as error:
            raise LearngeneFileError(f"{path} lacks the learngene metadata {error}; extract it again") from None
        except (ValueError, TypeError) as error:
            if isinstance(error, LearngeneFileError):
                raise
            raise LearngeneFileError(f"{path} has malformed learngene metadata ({error}); extract it again") from None
        gene.check()
        return gene

    def describe(self, depths: Sequence[int] = ()) -> dict[str, Any]:
        """What ``sws info`` prints: kind, layout, widths, parameter counts, mappings."""
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
            str(check_depth(d)): {
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
        layout = StageLayout.parse(metadata["layout"])
        if common["aux_depth"] != layout.depth:
            raise LearngeneFileError(
                f"the metadata says a {common['aux_depth']}-layer Aux-Net but layout {layout} has {layout.depth} layers"
            )
        return cls(architecture, tensors, layout, **common)


def load_outer_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy embeddings, final norm and head (those present) into a model of the same shape."""
    state = model.state_dict()
    with torch.no_grad():
        for name, value in tensors.items():
            state[name].copy_(value)


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise LearngeneFileError(f"no learngene file at {path}; check the path")
    kind = sniff_format(path)
    if kind in ("pickle", "torch-zip"):
        raise LearngeneFileError(
            f"{path} is a pickled PyTorch file, not a learngene, and sws never unpickles one to find out; "
            "convert an official SWS checkpoint with `sws import-official`, or an sws training checkpoint "
            "with `sws extract`"
        )
    if kind != "safetensors":
        raise LearngeneFileError(
            f"{path} is not a safetensors file (it does not start with a safetensors header that fits the file); "
            "it may be truncated or corrupt, or another kind of file: copy or extract it again"
        )
    try:
        return read_safetensors_bytes(path.read_bytes())
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise LearngeneFileError(
            f"{path} is not a readable safetensors file ({first_line(error)}); it may be truncated or corrupt: "
            "copy or extract it again"
        ) from None


def read_safetensors_bytes(data: bytes) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of a safetensors file's bytes. Read in Python rather than by path, so
    that any file name the system allows works (Rust takes only UTF-8 names)."""
    header_length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_length])
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("its metadata is not a mapping of strings")
    return dict(metadata), dict(safetensors_load(data))


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file through Python's own file (any name the system allows)."""
    path.write_bytes(safetensors_save(tensors, metadata=metadata))


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
            stacklevel=caller_stacklevel(),
        )


# What a learngene records about the run that trained its Aux-Net (the run's settings of these
# names; official checkpoints carry the same names in their ``args``).
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


def _aux_depth(text: str) -> int:
    """The ``aux_depth`` metadata entry: a whole number of layers."""
    if not re.fullmatch(r"[0-9]{1,6}", text.strip()):
        raise ValueError(f"aux_depth is {text!r}, not a whole number of layers")
    return check_depth(int(text), "the learngene's Aux-Net (aux_depth)")


def _training_metadata(training: Any, architecture: ViTArchitecture) -> dict[str, Any]:
    """A learngene's ``training`` record, checked where sws reads it: the normalization (``mean``,
    ``std``) that expansion writes into a Des-Net's ``config.json``, one finite number per channel
    (``std`` positive)."""
    if not isinstance(training, dict):
        raise ValueError(f"training is {training!r}, not a mapping")
    for key in ("mean", "std"):
        value = training.get(key)
        if value is None:
            continue
        numbers = isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
        )
        if not numbers or len(value) != architecture.in_chans or (key == "std" and min(value) <= 0):
            raise ValueError(
                f"training.{key} is {value!r}; it must be {architecture.in_chans} finite number(s), one per "
                "input channel" + (", all positive" if key == "std" else "")
            )
    return training


def training_record(settings: Any) -> dict[str, Any]:
    """The ``TRAINING_RECORD_KEYS`` entries of a run's settings (a mapping or a Namespace), as
    plain values."""
    get = settings.get if isinstance(settings, dict) else (lambda key: getattr(settings, key, None))
    record = {}
    for key in TRAINING_RECORD_KEYS:
        value = get(key)
        if value is not None:
            record[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return record

"""Knowledge distillation: DeiT's loss and the teacher model.

The Aux-Net learns from a stronger teacher (the paper: LeViT-384, soft distillation, alpha 1.0).
The loss is DeiT's, as the official SWS code uses it:

- ``soft``: KL divergence between the student's and the teacher's softened distributions at
  temperature ``tau``, times ``tau**2``, summed and divided by the number of logits
  (batch x classes);
- ``hard``: cross-entropy against the teacher's arg-max;
- the result is ``(1 - alpha) * base_loss + alpha * distillation_loss``.

The teacher is any timm model, with weights from a file (safetensors; a weights-only torch file
holding a state dict, a DeiT-style ``{'model': ...}`` dict or an ``sws train`` checkpoint; or the
original LeViT release, whose key names are mapped onto timm's) or from timm's pretrained hub.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from sws.checkpoint import ENTRIES, StateFit, is_sws_checkpoint, model_from_checkpoint, read_weights_file, show
from sws.errors import CheckpointError, ConfigError, UnknownModelArgument, first_line
from sws.models import create_model

DISTILLATION_TYPES = ("none", "soft", "hard")

# Keys that only the original LeViT release uses (timm names these stem.conv1.linear, ...).
_ORIGINAL_LEVIT_KEY = re.compile(r"^(patch_embed\.\d+\.c\.|blocks\.\d+\.m\.)")


class DistillationLoss(nn.Module):
    """DeiT's distillation loss wrapped around a base criterion.

    Args:
        base_criterion: Loss on the labels (cross-entropy, label smoothing or soft targets).
        teacher: The teacher (in eval mode, without gradients), or ``None`` for ``type='none'``.
        distillation_type: ``'none'``, ``'soft'`` or ``'hard'``.
        alpha: Weight of the distillation term (the base term gets ``1 - alpha``).
        tau: Temperature of soft distillation.
    """

    def __init__(
        self,
        base_criterion: nn.Module,
        teacher: nn.Module | None,
        distillation_type: str = "none",
        alpha: float = 0.5,
        tau: float = 1.0,
    ) -> None:
        super().__init__()
        if distillation_type not in DISTILLATION_TYPES:
            raise ConfigError(f"--distillation-type must be one of {DISTILLATION_TYPES}, not {distillation_type!r}")
        if distillation_type != "none" and teacher is None:
            raise ConfigError(f"{distillation_type} distillation needs a teacher: give --teacher-model")
        self.base_criterion = base_criterion
        self.teacher = teacher
        self.distillation_type = distillation_type
        self.alpha = alpha
        self.tau = tau

    def forward(self, inputs: torch.Tensor, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        base_loss = self.base_criterion(outputs, labels)
        if self.distillation_type == "none":
            return base_loss
        with torch.no_grad():
            teacher_outputs = self.teacher(inputs)
        distillation_loss = distillation_term(outputs, teacher_outputs, self.distillation_type, self.tau)
        return base_loss * (1 - self.alpha) + distillation_loss * self.alpha


def distillation_term(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, distillation_type: str, tau: float
) -> torch.Tensor:
    """The distillation part alone (see the module docstring)."""
    if distillation_type == "soft":
        kl = F.kl_div(
            F.log_softmax(student_logits / tau, dim=1),
            F.log_softmax(teacher_logits.float() / tau, dim=1),
            reduction="sum",
            log_target=True,
        )
        return kl * (tau * tau) / student_logits.numel()
    if distillation_type == "hard":
        return F.cross_entropy(student_logits, teacher_logits.argmax(dim=1))
    raise ConfigError(f"unknown distillation type {distillation_type!r}")


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: the teacher teaches, it does not learn."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def load_teacher(
    name: str,
    path: str | os.PathLike[str] | None,
    num_classes: int,
    in_chans: int,
    model_kwargs: dict[str, Any] | None = None,
    img_size: int | None = None,
) -> nn.Module:
    """Build the teacher ``name`` and load its weights (see the module docstring), frozen.

    A checkpoint written by ``sws train`` rebuilds its own model, so ``name`` may be empty then.
    Models whose constructor takes an image size (ViTs, LeViT) are built for ``img_size``.
    """
    model_kwargs = dict(model_kwargs or {})
    if img_size is not None:
        model_kwargs.setdefault("img_size", img_size)

    if path:
        path = Path(path)
        loaded = read_weights_file(path)
        if is_sws_checkpoint(loaded):  # an sws train checkpoint rebuilds its own model
            return freeze(model_from_checkpoint(loaded, where=path))
        state = loaded.get("model", loaded) if isinstance(loaded, dict) else loaded
        if not ENTRIES["model"].fits(state):
            raise CheckpointError(
                f"{path} holds {show(state)}, not a state dict for the teacher; give a file of its weights "
                "(safetensors, torch.save(model.state_dict()), or an sws train checkpoint)"
            )
        if not name:
            raise ConfigError("give --teacher-model: the teacher file does not say which model it holds")
        model = _create(name, num_classes=num_classes, in_chans=in_chans, **model_kwargs)
        if any(_ORIGINAL_LEVIT_KEY.match(key) for key in state):
            state = remap_original_levit(state, model)
        _load_teacher_state(model, state, path)
        return freeze(model)
    if not name:
        raise ConfigError("distillation needs a teacher: give --teacher-model (and --teacher-path)")
    try:
        model = _create(name, pretrained=True, num_classes=num_classes, in_chans=in_chans, **model_kwargs)
    except Exception as error:  # hub download errors come in many types
        raise CheckpointError(
            f"cannot fetch pretrained weights for teacher {name} ({type(error).__name__}: "
            f"{first_line(error)}); when offline pass --teacher-path FILE"
        ) from None
    return freeze(model)


def _create(name: str, **kwargs: Any) -> nn.Module:
    """``create_model``, dropping ``img_size`` for models whose constructor has no such argument
    (CNNs take any input size)."""
    try:
        return create_model(name, **kwargs)
    except UnknownModelArgument as error:
        if error.argument != "img_size":
            raise
        kwargs.pop("img_size")
        return create_model(name, **kwargs)


def _load_teacher_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    fit = StateFit.of(model, state)
    problem = fit.problem(unknown=False)
    if problem is not None:
        raise CheckpointError(
            f"teacher weights in {path} do not fit {type(model).__name__} ({problem}); "
            "check --teacher-model and that the teacher was trained on this data's classes"
        )
    model.load_state_dict(state, strict=False)
    if fit.unknown:
        warnings.warn(f"ignored {len(fit.unknown)} unexpected teacher tensors", stacklevel=2)


def remap_original_levit(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map the original LeViT release's key names onto timm's ``levit_*`` by position.

    Both list the same tensors in the same order (the non-persistent ``attention_bias_idxs`` aside),
    so the i-th original tensor is the i-th timm tensor; every shape is checked.
    """
    original = [(k, v) for k, v in state.items() if "attention_bias_idxs" not in k]
    target = [(k, v) for k, v in model.state_dict().items() if "attention_bias_idxs" not in k]
    if len(original) != len(target):
        raise CheckpointError(
            f"the original LeViT checkpoint has {len(original)} tensors but timm's model has {len(target)}; "
            "check --teacher-model (levit_384 for the paper's teacher) or pass timm's own LeViT weights"
        )
    remapped = {}
    for (original_key, value), (timm_key, reference) in zip(original, target, strict=True):
        if value.ndim == 2 and reference.ndim == 4:
            value = value[:, :, None, None]
        if value.shape != reference.shape:
            raise CheckpointError(
                f"original LeViT tensor {original_key} {tuple(value.shape)} does not fit timm's {timm_key} "
                f"{tuple(reference.shape)}; check --teacher-model"
            )
        remapped[timm_key] = value
    return remapped

"""Distillation: DeiT's loss on a hand-computed example, a frozen teacher, LeViT key remapping."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from sws.distill import DistillationLoss, distillation_term, load_teacher, remap_original_levit
from sws.errors import CheckpointError


def test_soft_loss_equals_a_hand_computed_value() -> None:
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]])
    teacher = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, -1.0]])
    tau = 2.0
    total = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist(), strict=True):
        s_norm = math.log(sum(math.exp(v / tau) for v in s_row))
        t_norm = math.log(sum(math.exp(v / tau) for v in t_row))
        for s, t in zip(s_row, t_row, strict=True):
            log_p_s, log_p_t = s / tau - s_norm, t / tau - t_norm
            total += math.exp(log_p_t) * (log_p_t - log_p_s)
    expected = total * tau * tau / student.numel()  # DeiT: summed KL x tau^2 / (batch x classes)
    assert distillation_term(student, teacher, "soft", tau).item() == pytest.approx(expected, rel=1e-6)


def test_hard_loss_is_cross_entropy_on_the_teacher_argmax_and_alpha_mixes() -> None:
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]])
    teacher_logits = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, -1.0]])
    hard = distillation_term(student, teacher_logits, "hard", 1.0)
    assert hard.item() == pytest.approx(torch.nn.functional.cross_entropy(student, torch.tensor([0, 0])).item())

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return teacher_logits

    labels = torch.tensor([1, 2])
    loss = DistillationLoss(torch.nn.CrossEntropyLoss(), Fixed(), "hard", alpha=0.25)(None, student, labels)
    base = torch.nn.functional.cross_entropy(student, labels)
    assert loss.item() == pytest.approx((0.75 * base + 0.25 * hard).item())


def test_teacher_is_frozen_and_outside_the_optimizer(image_folder, tmp_path) -> None:
    from sws.checkpoint import load_checkpoint
    from sws.cli import main
    from sws.distributed import Processes
    from sws.engine import train_one_epoch
    from sws.loaders import build_training_data
    from sws.train import build_model, build_optimization, build_teacher
    from sws.train_config import parse_args
    from tests.conftest import FAST, TINY_VIT

    data = ["--data-path", str(image_folder)]
    assert (
        main(["train", "--model", "test_resnet", *FAST, *data, "--epochs", "1", "--output_dir", str(tmp_path / "t")])
        == 0
    )
    args = parse_args(
        [
            *("--model", "aux_net", "--layout", "1,1", *TINY_VIT, *FAST, *data, "--epochs", "1"),
            *("--teacher-model", "test_resnet", "--teacher-path", str(tmp_path / "t" / "checkpoint.pth")),
            *("--distillation-type", "soft", "--distillation-alpha", "1.0"),
        ]
    )
    processes = Processes(torch.device("cpu"))
    loaders = build_training_data(args, processes)
    model, *_ = build_model(args, loaders, processes.device)
    teacher = build_teacher(args, loaders, processes.device)
    opt = build_optimization(args, model, teacher, loaders, processes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_one_epoch(model, loaders.train_loader, opt, 0, processes)
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the student learned
    in_optimizer = {id(p) for group in opt.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in in_optimizer for p in teacher.parameters())
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert not teacher.training
    saved = load_checkpoint(tmp_path / "t" / "checkpoint.pth")["model"]
    assert all(torch.equal(v, saved[k]) for k, v in teacher.state_dict().items())


def write_original_levit(path, num_classes: int = 1000, img_size: int = 224):
    """A random levit_384 saved under names shaped like the original LeViT release's
    (``patch_embed.0.c.weight``, ``blocks.N.m.qkv.c.weight``, ...), in timm's order."""
    model = timm.create_model("levit_384", num_classes=num_classes, img_size=img_size)
    state = {}
    for i, (key, value) in enumerate(model.state_dict().items()):
        if key.startswith("stem."):
            state[f"patch_embed.{i}.c.{key.rsplit('.', 1)[-1]}"] = value
        else:
            state[f"blocks.{i}.m.{key.replace('.', '_')}"] = value
    state["blocks.0.m.attention_bias_idxs"] = torch.zeros(4, dtype=torch.long)
    torch.save({"model": state}, path)
    return path


def test_original_levit_names_are_mapped_by_position(tmp_path) -> None:
    path = write_original_levit(tmp_path / "levit.pth", num_classes=10)
    teacher = load_teacher("levit_384", path, num_classes=10, in_chans=3)
    reference = torch.load(path, weights_only=True)["model"]
    originals = [v for k, v in reference.items() if "attention_bias_idxs" not in k]
    for value, (key, mine) in zip(originals, teacher.state_dict().items(), strict=False):
        assert torch.equal(value, mine), key


def test_original_levit_for_another_model_is_refused(tmp_path) -> None:
    model = timm.create_model("levit_128s", num_classes=10)
    state = {f"blocks.{i}.m.x": v for i, v in enumerate(model.state_dict().values())}
    with pytest.raises(CheckpointError, match="original LeViT"):
        remap_original_levit(state, timm.create_model("levit_384", num_classes=10))

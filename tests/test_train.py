"""sws train: the two phases end to end, the paper's command lines, resume, accumulation, clipping."""

from __future__ import annotations

import json

import pytest
import torch

from sws.checkpoint import load_checkpoint
from sws.cli import main
from sws.learngene import Learngene
from sws.train import train
from sws.train_config import parse_args
from tests.conftest import FAST, TINY_VIT


def _log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_teacher_aux_net_learngene_and_des_net_end_to_end(image_folder, tmp_path) -> None:
    data = ["--data-path", str(image_folder)]
    teacher = tmp_path / "teacher"
    assert (
        main(
            [
                "train",
                "--model",
                "test_resnet",
                *FAST,
                *data,
                "--epochs",
                "2",
                "--lr",
                "2e-3",
                "--unscale-lr",
                "--output_dir",
                str(teacher),
            ]
        )
        == 0
    )
    aux = tmp_path / "aux"
    assert (
        main(
            [
                "train",
                "--model",
                "aux_net",
                "--layout",
                "2,2",
                *TINY_VIT,
                *FAST,
                *data,
                "--epochs",
                "3",
                "--lr",
                "2e-3",
                "--unscale-lr",
                "--teacher-model",
                "test_resnet",
                "--teacher-path",
                str(teacher / "checkpoint.pth"),
                "--distillation-type",
                "soft",
                "--distillation-alpha",
                "0.5",
                "--output_dir",
                str(aux),
            ]
        )
        == 0
    )
    for name in (
        "checkpoint.pth",
        "best_checkpoint.pth",
        "log.jsonl",
        "summary.json",
        "args.yaml",
        "learngene.safetensors",
    ):
        assert (aux / name).is_file(), name
    records = _log(aux)
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    for key in (
        "eval_top1",
        "eval_top5",
        "eval_loss",
        "train_lr",
        "train_images_per_sec",
        "epoch_seconds",
        "peak_memory_mb",
    ):
        assert key in records[0], key
    gene_path = tmp_path / "gene.safetensors"
    assert main(["extract", str(aux / "checkpoint.pth"), "--out", str(gene_path)]) == 0
    gene = Learngene.load(gene_path)
    assert gene.training["teacher_model"] == "test_resnet" and gene.training["distillation_type"] == "soft"
    des = tmp_path / "des"
    assert (
        main(
            [
                "train",
                "--model",
                "des_net",
                "--model-kwargs",
                "depth=3",
                "embed_dim=32",
                "num_heads=2",
                "patch_size=4",
                *FAST,
                *data,
                "--epochs",
                "2",
                "--lr",
                "5e-4",
                "--unscale-lr",
                "--load-gene",
                str(gene_path),
                "--output_dir",
                str(des),
            ]
        )
        == 0
    )
    summary = json.loads((des / "summary.json").read_text())
    assert summary["init"]["method"] == "sws" and summary["init"]["mapping"] == [0, 0, 1]
    assert (des / "model" / "model.safetensors").is_file() and (des / "model" / "config.json").is_file()
    des_log = _log(des)
    assert des_log[-1]["train_loss"] < des_log[0]["train_loss"]


def test_paper_command_lines_run_scaled_down(tmp_path) -> None:
    """The README's Aux-S and Des-S commands with the launcher replaced and size, epochs, batch and
    data scaled down (the LeViT-384 teacher has random weights in the original release's key names)."""
    from tests.conftest import write_image_folder
    from tests.test_distill import write_original_levit

    image_folder = write_image_folder(tmp_path / "data", train_per_class=8, val_per_class=2)
    teacher_path = write_original_levit(tmp_path / "levit_384.pth", num_classes=3, img_size=32)
    aux_dir, des_dir = tmp_path / "aux_s", tmp_path / "des_s"
    aux_cmd = (
        f"--model aux_deit_small_patch16_224_L16_33433 --batch-size 4 --epochs 1 --warmup-epochs 5 "
        f"--data-path {image_folder} --output_dir {aux_dir} --weight-decay 0.05 --lr 5e-4 "
        f"--teacher-model levit_384 --teacher-path {teacher_path} --distillation-type soft --distillation-alpha 1.0"
    ).split()
    scale = ["--input-size", "32", "--num_workers", "0", "--device", "cpu"]
    assert main(["train", *aux_cmd, *scale]) == 0
    assert (aux_dir / "learngene.safetensors").is_file()
    des_cmd = [
        *(
            f"--model deit_small_patch16_224_L12 --batch-size 4 --epochs 1 --warmup-epochs 0 --weight-decay 0.05 "
            f"--lr 5e-5 --min-lr 1e-6 --data-path {image_folder} --data-set IMNET --seed 123 "
            f"--output_dir {des_dir} --load-gene {aux_dir / 'learngene.safetensors'}"
        ).split(),
        "--layers-source",
        "'0,0,0,1,1,1,2,2,3,3,4,4'",
    ]
    assert main(["train", *des_cmd, *scale]) == 0
    summary = json.loads((des_dir / "summary.json").read_text())
    assert summary["init"]["mapping"] == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4]


def _fast_run_args(image_folder, out, epochs, extra=()):
    return [
        "--model",
        "des_net",
        "--model-kwargs",
        "depth=2",
        "embed_dim=32",
        "num_heads=2",
        "patch_size=4",
        *FAST,
        "--data-path",
        str(image_folder),
        "--epochs",
        str(epochs),
        "--output_dir",
        str(out),
        "--seed",
        "7",
        "--lr",
        "1e-3",
        "--unscale-lr",
        *extra,
    ]


# Plain SGD at a constant rate, so that an update is exactly lr x gradient.
PLAIN_SGD = ["--opt", "momentum", "--momentum", "0", "--weight-decay", "0", "--sched", "step", "--decay-epochs", "100"]


def test_gradient_accumulation_equals_one_larger_batch(image_folder, tmp_path) -> None:
    # no random augmentation: augmentation is seeded per batch, and the batches differ here
    common = [*PLAIN_SGD, "--smoothing", "0", "--hflip", "0", "--crop-pad", "0", "--color-jitter", "0"]
    big = train(parse_args(_fast_run_args(image_folder, tmp_path / "big", 1, [*common, "--batch-size", "16"])))
    accumulated = [*common, "--batch-size", "8", "--accumulation-step", "2"]
    small = train(parse_args(_fast_run_args(image_folder, tmp_path / "acc", 1, accumulated)))
    assert big.history[0]["train_images"] == small.history[0]["train_images"] == 96
    for (name, a), b in zip(big.model.state_dict().items(), small.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), name


def test_clip_grad_bounds_the_update(image_folder, tmp_path) -> None:
    from sws.models import create_model

    clip = 1e-4
    common = [*PLAIN_SGD, "--batch-size", "96", "--lr", "0.5", "--clip-grad", str(clip)]
    torch.manual_seed(7)
    result = train(parse_args(_fast_run_args(image_folder, tmp_path / "clip", 1, common)))
    torch.manual_seed(7)
    initial = create_model("des_net", depth=2, embed_dim=32, num_heads=2, patch_size=4, img_size=16, num_classes=3)
    moved = torch.cat([(a - b).flatten() for a, b in zip(result.model.parameters(), initial.parameters(), strict=True)])
    assert 0 < moved.norm().item() <= 0.5 * clip * 1.001


def test_eval_reports_top1_top5_loss_and_speed(image_folder, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", *_fast_run_args(image_folder, run, 1)]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                *_fast_run_args(image_folder, tmp_path / "e", 1),
                "--eval",
                "--resume",
                str(run / "checkpoint.pth"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "top-1" in out and "top-5" in out and "loss" in out and "img/s" in out


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(image_folder, tmp_path, capsys) -> None:
    """Also under --overwrite: the old checkpoint is replaced only by the new run's first good one."""
    run = tmp_path / "run"
    assert main(["train", *_fast_run_args(image_folder, run, 1)]) == 0
    before = (run / "checkpoint.pth").read_bytes()
    checkpoint = str(run / "checkpoint.pth")
    nan_run = ["--lr", "1e30", "--finetune", checkpoint, "--overwrite"]
    assert main(["train", *_fast_run_args(image_folder, run, 3, nan_run)]) == 2
    err = capsys.readouterr().err
    assert "the training loss became" in err and "last good checkpoint is intact" in err
    assert (run / "checkpoint.pth").read_bytes() == before


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        ("missing", [], "does not exist"),
        ("empty_class", [], "has no images"),
        ("unreadable", [], "cannot read image"),
        ("teacher_misfit", [], "do not fit"),
        ("gene_misfit", [], "does not fit"),
    ],
)
def test_bad_input_is_a_clear_error(make, extra, message, image_folder, tmp_path, capsys) -> None:
    import shutil

    from tests.conftest import write_image_folder

    data = tmp_path / "data"
    args = _fast_run_args(data, tmp_path / "out", 1)
    if make == "missing":
        pass
    else:
        shutil.copytree(image_folder, data)
    if make == "empty_class":
        (data / "train" / "purple").mkdir()
    if make == "unreadable":
        (data / "train" / "red" / "000.png").write_bytes(b"not a png at all")
    if make == "teacher_misfit":
        wrong = tmp_path / "wrong_teacher.pth"
        other = write_image_folder(tmp_path / "two", classes=("red", "green"), train_per_class=16, val_per_class=4)
        assert (
            main(
                [
                    "train",
                    "--model",
                    "test_resnet",
                    *FAST,
                    "--data-path",
                    str(other),
                    "--epochs",
                    "1",
                    "--output_dir",
                    str(tmp_path / "t"),
                ]
            )
            == 0
        )
        torch.save(load_checkpoint(tmp_path / "t" / "checkpoint.pth")["model"], wrong)
        args += ["--teacher-model", "test_resnet", "--teacher-path", str(wrong), "--distillation-type", "soft"]
    if make == "gene_misfit":
        from sws.learngene import SWSLearngene
        from tests.conftest import perturbed_aux_net

        arch = __import__("sws").ViTArchitecture(embed_dim=32, num_heads=2, patch_size=8, img_size=16, num_classes=3)
        gene = SWSLearngene.from_aux_net(perturbed_aux_net("1,1", arch)).save(tmp_path / "g.safetensors")
        args += ["--load-gene", str(gene)]
    assert main(["train", *args, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sws: error: ") and message in err[-1], err[-1]


def test_resuming_another_model_is_a_clear_error(image_folder, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", *_fast_run_args(image_folder, run, 1)]) == 0
    other = [*_fast_run_args(image_folder, tmp_path / "other", 1), "--resume", str(run / "checkpoint.pth")]
    other[other.index("depth=2")] = "depth=3"
    assert main(["train", *other]) == 2
    err = capsys.readouterr().err
    assert "was written with other flags (--model-kwargs" in err and "'depth': 2" in err and "'depth': 3" in err, err

"""sws pipeline and sws compare on a very small study: steps skip when done and resume when
interrupted; the same seed gives the same results; every method lands in one report."""

from __future__ import annotations

import json

import pytest
import yaml

from sws.cli import main
from sws.report import results_without_timings
from tests.conftest import TINY_STUDY

TINY = [
    *TINY_STUDY,
    "--set", "des_net.epochs=2",
    "--set", "tleg.depth=2",
    "--set", "ancestry.depth=2",
    "--set", "des_net.methods.inherit={lr: 0.001, inherit-layers: 1}",
    "--set", "budget={depths: [1], epochs: 3, sws_epochs: 3}",
    "--depths", "1,2",
    "--device", "cpu",
]  # fmt: skip


def compare(run, out, methods: str, depths: str, epochs: int) -> int:
    args = f"compare --run-dir {run} --output_dir {out} --methods {methods} --depths {depths} --epochs {epochs}"
    return main(args.split())


@pytest.fixture(scope="module")
def tiny_run(image_folder, tmp_path_factory):
    run = tmp_path_factory.mktemp("pipeline") / "run"
    assert main(["pipeline", "--data-path", str(image_folder), "--output_dir", str(run), *TINY]) == 0
    return run


def test_pipeline_writes_every_step_and_the_report(tiny_run) -> None:
    for path in (
        "teacher/summary.json",
        "aux/summary.json",
        "learngene.safetensors",
        "pipeline.yaml",
        "desnets/sws_d1/summary.json",
        "desnets/scratch_d2/summary.json",
        "report.md",
        "results.json",
        "top1_vs_epoch.png",
        "top1_vs_params.png",
    ):
        assert (tiny_run / path).exists(), path
    results = json.loads((tiny_run / "results.json").read_text())
    assert {(r["depth"], r["method"]) for r in results["records"]} == {
        (1, "sws"),
        (1, "scratch"),
        (2, "sws"),
        (2, "scratch"),
    }
    for record in results["records"]:
        assert len(record["top1"]) == 2 and record["params"] > 0 and record["flops"] > 0 and record["images"] == 192
    assert results["sources"]["aux"]["model"] == "aux_net"
    assert results["stored_params"]["sws"] > 0
    # the budget study's longer runs: scratch with its full budget, SWS fine-tuned to meet it
    assert {(r["depth"], r["method"], len(r["top1"])) for r in results["budget"]} == {(1, "sws", 3), (1, "scratch", 3)}
    assert results["scratch_to_match"] == [r for r in results["budget"] if r["method"] == "scratch"]
    for record in results["records"]:  # sws 0.1's fields, and the new ones
        assert {"depth", "method", "params", "top1", "images", "flops", "seconds", "init", "width", "init_top1"} <= set(
            record
        )
    assert (tiny_run / "desnets" / "scratch_3ep_d1" / "summary.json").is_file()
    assert "## Training cost at matched accuracy" in (tiny_run / "report.md").read_text()
    assert (tiny_run / "top1_vs_flops.png").is_file()
    # every Des-Net was evaluated as initialized, before fine-tuning
    assert all(r["init_top1"] is not None for r in results["records"])


def test_a_second_run_skips_every_step(tiny_run, image_folder, capsys) -> None:
    before = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("checkpoint.pth")}
    results_before = json.loads((tiny_run / "results.json").read_text())
    assert main(["pipeline", "--data-path", str(image_folder), "--output_dir", str(tiny_run), *TINY]) == 0
    out = capsys.readouterr().out
    assert out.count("done, skipped") == 9  # teacher, aux, learngene, 4 Des-Nets, 2 budget runs
    assert "sws train:" not in out
    assert {p: p.stat().st_mtime_ns for p in tiny_run.rglob("checkpoint.pth")} == before
    assert json.loads((tiny_run / "results.json").read_text()) == results_before


def test_an_interrupted_step_resumes_from_its_checkpoint(tiny_run, image_folder, capsys) -> None:
    (tiny_run / "desnets" / "sws_d2" / "summary.json").unlink()  # as if killed before finishing
    (tiny_run / "learngene.safetensors").unlink()
    assert main(["pipeline", "--data-path", str(image_folder), "--output_dir", str(tiny_run), *TINY]) == 0
    out = capsys.readouterr().out
    assert "Des-Net depth 2, sws: resuming from" in out
    assert "extract the learngene ->" in out
    assert out.count("done, skipped") == 7
    summary = json.loads((tiny_run / "desnets" / "sws_d2" / "summary.json").read_text())
    assert summary["epochs"] == 2


def test_compare_twice_with_one_seed_gives_identical_results(tiny_run, tmp_path) -> None:
    outputs = []
    for name in ("first", "second"):
        out = tmp_path / name
        assert compare(tiny_run, out, "sws,scratch", "2", 2) == 0
        outputs.append(out)
    a, b = (json.loads((o / "results.json").read_text()) for o in outputs)
    assert results_without_timings(a) == results_without_timings(b)
    tables = [(o / "report.md").read_text().split("## Wall time")[0] for o in outputs]
    assert tables[0] == tables[1]


def test_compare_reports_every_method(tiny_run, tmp_path) -> None:
    out = tmp_path / "all"
    methods = "sws,tleg,select,inherit,scratch"
    assert compare(tiny_run, out, methods, "1,2", 1) == 0
    results = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in results["records"]} == set(methods.split(","))
    assert set(results["stored_params"]) == set(methods.split(","))
    # inherit keeps one layer (the config's inherit-layers) plus the final norm
    assert results["stored_params"]["inherit"] < results["stored_params"]["select"]
    inherit = next(r for r in results["records"] if r["method"] == "inherit" and r["depth"] == 2)
    assert inherit["init"]["layers"] == {"1": 1}
    assert (tiny_run / "tleg_aux" / "learngene.safetensors").is_file()
    assert (tiny_run / "ancestry" / "checkpoint.pth").is_file()
    report = (out / "report.md").read_text()
    for label in (
        "SWS (learngene)",
        "TLEG (linear expansion)",
        "layer selection",
        "last-layer inheritance",
        "from scratch",
    ):
        assert label in report


def test_compare_from_a_learngene_file_alone(tiny_run, image_folder, tmp_path) -> None:
    out = tmp_path / "from_file"
    gene = tiny_run / "learngene.safetensors"
    assert (
        main(
            [
                "compare",
                "--learngene",
                str(gene),
                "--data-path",
                str(image_folder),
                "--output_dir",
                str(out),
                "--depths",
                "3",
                "--epochs",
                "1",
                "--set",
                "input_size=16",
                "--set",
                "train.print-freq=1",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in results["records"]} == {"sws", "scratch"}
    sws_record = next(r for r in results["records"] if r["method"] == "sws")
    assert sws_record["init"]["learngene"] == str(gene) and sws_record["init"]["mapping"] == [0, 0, 1]
    assert not (out / "teacher").exists()  # nothing trained but the Des-Nets


def test_compare_across_widths_with_every_kind_of_method(tiny_run, tmp_path) -> None:
    """One learngene (width 16) grown to 32 and shrunk to 8, against scratch, scratch distilled from
    the teacher, and an Aux-Net distilled at each width (the paper's way)."""
    out = tmp_path / "widths"
    methods = "sws,scratch,scratch-kd,sws-per-width"
    argv = f"compare --run-dir {tiny_run} --output_dir {out} --methods {methods} --depths 2 --epochs 1"
    assert main([*argv.split(), "--widths", "8,16,32"]) == 0
    results = json.loads((out / "results.json").read_text())
    cells = {(r["width"], r["method"]): r for r in results["records"]}
    assert set(cells) == {(w, m) for w in (8, 16, 32) for m in methods.split(",")}
    # growing 16 -> 32 preserves the function: the same top-1 before fine-tuning as at width 16
    assert cells[(32, "sws")]["init_top1"] == cells[(16, "sws")]["init_top1"]
    assert "width 16->32" in cells[(32, "sws")]["init"]["width"]
    assert cells[(8, "sws")]["init"]["width"].startswith("width 16->8")
    assert (tiny_run / "aux_w32" / "learngene.safetensors").is_file() and not (tiny_run / "aux_w16").exists()
    stored = results["stored_params"]
    assert stored["sws-per-width"] > 2 * stored["sws"] and stored["scratch-kd"] == 0
    # the learning rate shrinks with the width: half at twice the width, double at half
    lrs = {w: yaml.safe_load((out / "desnets" / f"sws{'' if w == 16 else f'_w{w}'}_d2" / "args.yaml").read_text())["lr"]
           for w in (8, 16, 32)}  # fmt: skip
    assert lrs[8] == 2 * lrs[16] and lrs[32] == lrs[16] / 2
    kd = json.loads((out / "desnets" / "scratch-kd_d2" / "summary.json").read_text())
    assert kd["distillation"] == "soft" and kd["teacher"] == "test_resnet"
    report = (out / "report.md").read_text()
    assert "## Des-Nets of other widths from one learngene" in report
    assert "from scratch, distilled from the teacher" in report and "| SWS, one Aux-Net per width |" in report


def test_the_budget_study_reuses_the_recipe_run_when_its_sws_epochs_are_the_recipes(tmp_path) -> None:
    from sws.study import Study
    from sws.study_config import load_config

    config = load_config("mnist5k")
    config["budget"] = {"depths": [4], "epochs": 40, "sws_epochs": config["des_net"]["epochs"]}
    plan = Study(config, tmp_path).plan(["sws", "scratch"], [4, 6])
    sws_budget = next(step for step in plan.budget if step.method == "sws")
    assert sws_budget.out_dir == next(s for s in plan.des_nets if (s.method, s.depth) == ("sws", 4)).out_dir
    assert len(plan.all()) == len(plan.sources) + len(plan.des_nets) + 1  # only scratch's 40 epochs added
    config["budget"]["sws_epochs"] = 10
    assert len(Study(config, tmp_path).plan(["sws", "scratch"], [4, 6]).all()) == len(plan.all()) + 1


def test_the_budget_study_runs_the_baselines_it_names(tmp_path) -> None:
    from sws.errors import ConfigError
    from sws.study import Study
    from sws.study_config import load_config, validate_config

    config = load_config("mnist5k")
    config["budget"] = {"depths": "all", "epochs": 20, "sws_epochs": 4}
    methods = ["sws", "scratch", "scratch-kd"]
    full = {(s.method, s.depth) for s in Study(config, tmp_path).plan(methods, [4, 6]).budget}
    assert full == {(m, d) for m in methods for d in (4, 6)}
    config["budget"]["baselines"] = ["scratch"]  # scratch-kd's full budget left out (a CPU's time)
    assert {(s.method, s.depth) for s in Study(config, tmp_path).plan(methods, [4, 6]).budget} == {
        (m, d) for m in ("sws", "scratch") for d in (4, 6)
    }
    for bad in (["scratch-kd"], ["scratch", "tleg"], "scratch"):
        config["budget"]["baselines"] = bad
        with pytest.raises(ConfigError, match=r"budget\.baselines"):
            validate_config(config)


def test_a_methods_at_depth_entry_changes_that_depth_alone(tmp_path) -> None:
    from sws.errors import ConfigError
    from sws.study import Study
    from sws.study_config import load_config, validate_config

    config = load_config("mnist5k")
    config["budget"] = {"depths": [4], "epochs": 20, "sws_epochs": 6}
    config["des_net"]["methods"]["sws"] = {"lr": 5e-4, "at_depth": {4: {"lr": 1.5e-3}}}
    plan = Study(config, tmp_path).plan(["sws", "scratch"], [4, 6])

    def lr(step) -> float:
        return step.settings["lr"]

    lrs = {(s.method, s.depth, s.role): lr(s) for s in plan.all() if s.method}
    assert lrs[("sws", 4, "recipe")] == lrs[("sws", 4, "budget")] == 1.5e-3  # the budget study's run too
    assert lrs[("sws", 6, "recipe")] == 5e-4
    assert lrs[("scratch", 4, "recipe")] == config["des_net"]["methods"]["scratch"]["lr"]  # other methods keep theirs
    for bad in ([4], {"4": {"lr": 1e-3}}, {0: {"lr": 1e-3}}, {4: 1e-3}):
        config["des_net"]["methods"]["sws"]["at_depth"] = bad
        with pytest.raises(ConfigError, match=r"des_net\.methods\.sws\.at_depth"):
            validate_config(config)
    config["des_net"]["methods"]["sws"] = 5e-4  # a bare value, not a mapping of flags
    with pytest.raises(ConfigError, match=r"des_net\.methods\.sws is 0\.0005; give a mapping"):
        validate_config(config)


def test_stored_parameters_count_the_largest_inherited_slice_any_depth_uses(tmp_path, monkeypatch) -> None:
    import dataclasses

    import sws.study
    from sws.study import Study
    from sws.study_config import load_config

    counting = dataclasses.replace(sws.study.METHODS["inherit"], stored_params=lambda path, options: options.k)
    monkeypatch.setitem(sws.study.METHODS, "inherit", counting)
    config = load_config("mnist5k")
    config["des_net"]["methods"]["inherit"] = {"lr": 1e-3, "inherit-layers": 1, "at_depth": {4: {"inherit-layers": 3}}}
    study = Study(config, tmp_path)
    assert study.stored_parameters(["inherit"], [4, 6]) == {"inherit": 3}  # depth 4's three layers serve depth 6 too
    assert study.stored_parameters(["inherit"], [6, 8]) == {"inherit": 1}


def test_a_method_may_train_its_own_epochs_and_the_budget_study_reuses_swss(tmp_path) -> None:
    from sws.study import Study
    from sws.study_config import load_config, set_des_net_epochs

    config = load_config("mnist5k")
    config["des_net"]["epochs"] = 6  # SWS fine-tunes 6 epochs, scratch's early look trains 3
    config["des_net"]["methods"]["scratch"] = {"lr": 2e-3, "epochs": 3}
    config["budget"] = {"depths": [4], "epochs": 30, "sws_epochs": 6}
    plan = Study(config, tmp_path).plan(["sws", "scratch"], [4, 6])

    def epochs(step) -> int:
        return step.settings["epochs"]

    by_step = {(s.method, s.depth, s.role): epochs(s) for s in plan.all() if s.method}
    assert by_step == {
        ("sws", 4, "recipe"): 6,
        ("sws", 6, "recipe"): 6,
        ("scratch", 4, "recipe"): 3,
        ("scratch", 6, "recipe"): 3,
        ("scratch", 4, "budget"): 30,  # the budget study's SWS run is the recipe's own 6-epoch run
    }
    # sws compare --epochs N: every Des-Net trains N, whatever a method or depth sets for itself
    config["des_net"]["methods"]["sws"] = {"lr": 5e-4, "at_depth": {4: {"epochs": 9}}}
    set_des_net_epochs(config, 2)
    plan = Study(config, tmp_path).plan(["sws", "scratch"], [4, 6])
    assert {epochs(s) for s in plan.des_nets} == {2}


def test_a_run_folder_whose_steps_ran_with_other_flags_is_refused_before_anything_runs(tmp_path, monkeypatch) -> None:
    import yaml

    import sws.study
    from sws.errors import ConfigError
    from sws.study import Study
    from sws.study_config import load_config
    from sws.train_config import plain_args

    def ran(step, **then) -> None:
        """Leave in ``step``'s folder what a finished run with its flags (changed by ``then``) leaves."""
        step.out_dir.mkdir(parents=True)
        args = plain_args(step.validated())
        (step.out_dir / "args.yaml").write_text(yaml.safe_dump({**args, **then}))
        (step.out_dir / "summary.json").write_text("{}")

    config = load_config("mnist5k")
    study = Study(config, tmp_path)
    plan = study.plan(["sws", "scratch"], [4])
    sws_step = next(step for step in plan.des_nets if step.method == "sws")
    scratch_step = next(step for step in plan.des_nets if step.method == "scratch")
    moved_gene = str(tmp_path / "elsewhere" / "learngene.safetensors")  # a run folder copied from another
    ran(sws_step, num_workers=7, print_freq=1, load_gene=moved_gene)  # how it ran, not what it learnt
    ran(scratch_step, epochs=2, lr=0.123)
    assert sws_step.changed_flags() == {}
    assert scratch_step.changed_flags() == {"epochs": (2, 3), "lr": (0.123, 2e-3)}

    monkeypatch.setattr(sws.study, "train", lambda args: pytest.fail("a step ran before the check"))
    with pytest.raises(ConfigError) as refused:
        study.run(["sws", "scratch"], [4])
    message = str(refused.value)
    assert str(scratch_step.out_dir) in message and str(sws_step.out_dir) not in message
    assert "--epochs 2 then, 3 now" in message and "--lr 0.123 then, 0.002 now" in message
    assert "another --output_dir" in message

"""Every command in the README and in docs/ runs as written.

The commands come from the ```bash blocks of ``README.md`` and ``docs/*.md``: backslash-continued
lines are joined, comments dropped, ``&&`` chains split, ``torchrun ... -m sws`` and
``python -m sws`` read as ``sws``. Each is checked cheaply, in-process, without training:

- ``sws train ...``: its flags parse and validate (``sws.train_config.parse_args``); with
  ``--print-config`` it runs for real and prints every setting as YAML;
- ``sws pipeline ...`` and ``sws compare ...``: with ``--print-config`` they resolve and plan their
  config and return 0, in an empty folder where the ``--run-dir`` folder and the ``--learngene`` file
  they name exist; a ``--run-dir`` that a packaged config makes by default (``runs/fashion``) holds
  that config's ``pipeline.yaml`` and a learngene, as a finished run would, so that a comparison on
  another data set plans its target study against that source;
- ``sws info``, ``extract``, ``expand``, ``import-official``: they run for real on tiny files placed
  under the names the command uses (a learngene, an ``sws train`` checkpoint of an Aux-Net, an
  official SWS checkpoint);
- ``sws report RUN``: it runs for real on a small study's ``results.json`` placed there, written the
  way earlier versions wrote it, and leaves ``report.md`` where the command says;
- ``python benchmarks/X.py ...``: the script exists; one that names ``results.json`` files runs for
  real on copies of that small study's file; any other with an argument parser answers ``--help``
  and lists every flag the command gives; ``bash benchmarks/X.sh``: the script exists and parses
  (``bash -n``);
- set-up steps (``python3 -m venv``, activating it, ``pip``, ``apt-get``) are skipped, and so is
  ``python -m pytest``, the test command that ``tests/test_readme.py`` checks against ``.ci/run``.

Any other command fails its test, so that a new kind of command gets a check here. The README's
```python blocks run too, in an empty folder; docs/ pages' ```python blocks are not run.
"""

from __future__ import annotations

import json
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

import sws
from sws.checkpoint import save_checkpoint
from sws.cli import main
from sws.errors import SWSError
from sws.records import Results, RunRecord
from sws.study_config import load_config, packaged_configs
from sws.train_config import FLAGS, parse_args
from tests.test_official import official_state, write_official_checkpoint

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SETUP = ("python3 -m venv", "python -m venv", ". ", "source ", "pip ", "python -m pip", "python3 -m pip", "apt-get")
TEST_COMMAND = ("python -m pytest", "python3 -m pytest")
SHELL_OPERATORS = {"|", "||", ";", "&", ">", ">>", "<", "2>&1"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
TINY = {"embed_dim": 32, "num_heads": 2, "patch_size": 4, "img_size": 16, "num_classes": 5}
LAYOUT = "3,3,4,3,3"


@dataclass(frozen=True)
class Command:
    where: str  # page:line
    argv: tuple[str, ...]

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


def fenced_blocks(text: str, language: str) -> list[tuple[int, str]]:
    """(line number of the first line, contents) of every ```language block."""
    blocks, lines, start = [], [], None
    for number, line in enumerate(text.splitlines(), 1):
        if start is None and line.strip() == f"```{language}":
            start, lines = number + 1, []
        elif start is not None and line.strip() == "```":
            blocks.append((start, "\n".join(lines)))
            start = None
        elif start is not None:
            lines.append(line)
    return blocks


def logical_lines(block: str, first: int) -> list[tuple[int, str]]:
    """The block's lines with backslash continuations joined, each with its first line number."""
    joined: list[tuple[int, str]] = []
    pending, pending_start = "", first
    for offset, line in enumerate(block.splitlines()):
        if not pending:
            pending_start = first + offset
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append((pending_start, pending + line))
        pending = ""
    if pending:
        joined.append((pending_start, pending))
    return joined


def normalize(tokens: list[str]) -> list[str]:
    """Drop environment assignments; read ``torchrun ... -m sws`` and ``python -m sws`` as ``sws``."""
    while tokens and ENV_ASSIGNMENT.match(tokens[0]):
        tokens = tokens[1:]
    if tokens and tokens[0] in ("torchrun", "python", "python3") and "-m" in tokens:
        at = tokens.index("-m")
        if tokens[at + 1 : at + 2] == ["sws"] and all(t.startswith("-") for t in tokens[1:at]):
            tokens = ["sws", *tokens[at + 2 :]]
    if tokens[:2] == ["sws", "--traceback"]:
        tokens = ["sws", *tokens[2:]]
    return tokens


def commands_of(page: Path) -> list[Command]:
    found = []
    for start, block in fenced_blocks(page.read_text(), "bash"):
        for line_number, line in logical_lines(block, start):
            tokens = shlex.split(line, comments=True)
            segments: list[list[str]] = [[]]
            for token in tokens:
                if token == "&&":
                    segments.append([])
                else:
                    segments[-1].append(token)
            for segment in segments:
                text = " ".join(segment)
                if not segment or text.startswith(SETUP) or text.startswith(TEST_COMMAND):
                    continue
                found.append(Command(f"{page.relative_to(ROOT)}:{line_number}", tuple(normalize(segment))))
    return found


def all_commands() -> list[Command]:
    """Every command of every page, each distinct command once (at its first place)."""
    seen: dict[tuple[str, ...], Command] = {}
    for page in PAGES:
        for command in commands_of(page):
            seen.setdefault(command.argv, command)
    return list(seen.values())


COMMANDS = all_commands()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Tiny inputs for the commands that run for real: a learngene (stages 3,3,4,3,3, width 32), an
    ``sws train`` checkpoint of the same Aux-Net, and a checkpoint of the official SWS code."""
    folder = tmp_path_factory.mktemp("doc_inputs")
    torch.manual_seed(0)
    aux = sws.AuxNet(LAYOUT, **TINY)
    sws.SWSLearngene.from_aux_net(aux).save(folder / "learngene.safetensors")
    save_checkpoint(
        folder / "checkpoint.pth",
        {
            "model": aux.state_dict(),
            "model_name": "aux_net",
            "model_kwargs": {"layout": LAYOUT, **TINY},
            "epoch": 0,
            "args": {"epochs": 1},
            "best_top1": None,
        },
    )
    write_official_checkpoint(folder / "official.pth", official_state(stages=5))
    return {
        "learngene": folder / "learngene.safetensors",
        "train": folder / "checkpoint.pth",
        "official": folder / "official.pth",
    }


def place(source: Path, name: str) -> None:
    """Copy ``source`` to ``name`` (relative to the working folder), making its folders."""
    target = Path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def option_value(argv: tuple[str, ...], flag: str) -> str | None:
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(flag + "="):
            return token.split("=", 1)[1]
    return None


def default_run_dirs() -> dict[str, str]:
    """The run folder each packaged config makes by default (its ``output_dir``), and the config."""
    return {str(load_config(name).get("output_dir")): name for name in packaged_configs()}


def check_study(argv: tuple[str, ...], files: dict[str, Path]) -> int:
    run_dir = option_value(argv, "--run-dir")
    if run_dir:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        config = default_run_dirs().get(str(Path(run_dir)))
        if config is not None:  # a finished run of that config: its pipeline.yaml and learngene
            (Path(run_dir) / "pipeline.yaml").write_text(yaml.safe_dump(load_config(config), sort_keys=False))
            place(files["learngene"], str(Path(run_dir) / "learngene.safetensors"))
    learngene = option_value(argv, "--learngene")
    if learngene:
        place(files["learngene"], learngene)
    return main([*argv[1:], "--print-config"])


def check_file_command(argv: tuple[str, ...], files: dict[str, Path]) -> int:
    subcommand, source = argv[1], argv[2]
    if subcommand == "import-official":
        place(files["official"], source)
    elif subcommand == "extract" or source.endswith(".pth"):
        place(files["train"], source)
    else:
        place(files["learngene"], source)
    return main(list(argv[1:]))


def small_study(earlier_version: bool = False) -> dict:
    """The ``results.json`` of a small study: SWS and scratch at depths 4 and 6, a budget study with
    scratch trained twice its budget at depth 4. ``earlier_version``: as earlier versions wrote it
    (a source's ``top1`` one number, Des-Nets without a model name)."""

    def run(depth: int, method: str, top1: list[float]) -> RunRecord:
        epochs, init = len(top1), {"method": method}
        return RunRecord("des_net", 1000 * depth, top1, 100 * epochs, 1e9 * epochs, 1.0, 40.0, init, depth, 32, method)

    records = [run(d, m, [80.0, 90.0] if m == "sws" else [50.0, 60.0]) for d in (4, 6) for m in ("sws", "scratch")]
    budget = [r for r in records if r.method == "sws"] + [run(d, "scratch", [50.0, 70.0, 80.0, 85.0]) for d in (4, 6)]
    budget.append(run(4, "scratch", [50.0, 70.0, 80.0, 85.0, 86.0, 86.5, 86.5, 86.5]))
    sources = {
        "teacher": RunRecord("test_resnet", 5000, [97.0, 97.8], 200, 1e10, 1.0),
        "aux": RunRecord("aux_net", 3000, [90.0, 94.3], 200, 5e10, 1.0),
    }
    meta = dict(data_set="MNIST5K", data_path=None, input_size=28, seed=0, layout="3,3,4,3,3", depths=[4, 6])
    meta.update(widths=[32], base_width=32, methods=["sws", "scratch"], des_net_epochs=2)
    stored, pretraining = {"sws": 3000, "scratch": 0}, {"sws": 5e10, "scratch": 0.0}
    value = Results(meta, sources, records, budget, stored, pretraining).to_json()
    if earlier_version:
        for source in value["sources"].values():
            source["top1"] = source["top1"][-1]
        for record in value["records"]:
            del record["model"]
    return value


def place_results(name: str, earlier_version: bool = False) -> Path:
    """A small study's ``results.json`` at ``name`` (a file ending in .json, else a folder's)."""
    path = Path(name) if name.endswith(".json") else Path(name) / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(small_study(earlier_version)))
    return path


def check_report(argv: tuple[str, ...]) -> int:
    results = place_results(argv[2], earlier_version=True)
    code = main(list(argv[1:]))
    out = option_value(argv, "--out")
    assert (Path(out) if out else results.parent).joinpath("report.md").is_file(), "no report.md where it should be"
    return code


def check_print_config(argv: tuple[str, ...], capsys) -> int:
    capsys.readouterr()
    code = main(list(argv[1:]))
    printed = yaml.safe_load(capsys.readouterr().out)
    assert isinstance(printed, dict) and set(printed) == {flag.dest for flag in FLAGS}, "not every setting printed"
    return code


def check_python_script(argv: tuple[str, ...], monkeypatch, capsys) -> None:
    script = ROOT / argv[1]
    assert script.is_file(), f"{argv[1]} does not exist"
    results = [token for token in argv[2:] if token.endswith("results.json")]
    if results:  # a script that reads studies runs for real on copies of one
        for name in results:
            place_results(name)
        monkeypatch.setattr(sys, "argv", [str(script), *argv[2:]])
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(str(script), run_name="__main__")
        assert exited.value.code in (0, None), capsys.readouterr().out
        return
    if "argparse" not in script.read_text():
        return
    monkeypatch.setattr(sys, "argv", [str(script), *argv[2:], "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(script), run_name="__main__")
    assert exited.value.code in (0, None), capsys.readouterr().err
    usage = capsys.readouterr().out
    for flag in (token.split("=", 1)[0] for token in argv[2:] if token.startswith("--")):
        assert flag in usage, f"{argv[1]} has no flag {flag}"


def check_bash_script(argv: tuple[str, ...]) -> None:
    script = ROOT / argv[1]
    assert script.is_file(), f"{argv[1]} does not exist"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {' '.join(c.argv[:2])}" for c in COMMANDS])
def test_the_command_runs_as_written(command: Command, files, tmp_path, monkeypatch, capsys) -> None:
    argv = command.argv
    monkeypatch.chdir(tmp_path)
    operators = SHELL_OPERATORS.intersection(argv)
    assert not operators, f"{command.where}: `{command.text}` uses {operators}, which this test cannot check"
    if argv[:2] == ("sws", "train") and "--print-config" in argv:
        code = check_print_config(argv, capsys)
    elif argv[:2] == ("sws", "train"):
        try:
            parse_args(list(argv[2:]))
        except SWSError as error:
            pytest.fail(f"{command.where}: `{command.text}`: {error}")
        return
    elif argv[:1] == ("sws",) and len(argv) > 1 and argv[1] in ("pipeline", "compare"):
        code = check_study(argv, files)
    elif argv[:2] == ("sws", "report") and len(argv) > 2:
        code = check_report(argv)
    elif argv[:1] == ("sws",) and len(argv) > 2 and argv[1] in ("info", "extract", "expand", "import-official"):
        code = check_file_command(argv, files)
    elif argv[0] in ("python", "python3") and len(argv) > 1 and argv[1].startswith("benchmarks/"):
        check_python_script(argv, monkeypatch, capsys)
        return
    elif argv[0] == "bash" and len(argv) > 1 and argv[1].startswith("benchmarks/"):
        check_bash_script(argv)
        return
    else:
        pytest.fail(f"{command.where}: no check for `{command.text}`; add one to {Path(__file__).name}")
    assert code == 0, f"{command.where}: `{command.text}` exited {code}: {capsys.readouterr().err}"


def test_the_pages_hold_commands_of_every_kind() -> None:
    """The extraction finds what the pages show (a broken extractor would check nothing)."""
    kinds = {c.argv[1] if c.argv[0] == "sws" else c.argv[0] for c in COMMANDS}
    assert {"train", "pipeline", "compare", "info", "extract", "expand", "import-official", "report"} <= kinds
    assert any(c.argv[:2] == ("sws", "train") and "--print-config" in c.argv for c in COMMANDS)
    assert any(c.argv[:2] == ("sws", "compare") and "--data-set" in c.argv and "--run-dir" in c.argv for c in COMMANDS)
    assert {"python", "bash"} <= kinds
    readme = [c for c in COMMANDS if c.where.startswith("README.md")]
    assert any(c.argv == ("sws", "pipeline") for c in readme), "the set-up command's `sws pipeline`"


README_PYTHON = fenced_blocks((ROOT / "README.md").read_text(), "python")


@pytest.mark.parametrize("start, code", README_PYTHON, ids=[f"README.md:{start}" for start, _ in README_PYTHON])
def test_the_readme_python_example_runs(start: int, code: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md:{start}", "exec"), {"__name__": "readme_example"})

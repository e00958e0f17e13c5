"""The ``sws`` command line: thin wrappers over the library's functions.

    sws import-official CHECKPOINT --out LEARNGENE [--layout 3,3,4,3,3] [--num-heads N]
    sws extract CHECKPOINT --out LEARNGENE [--ema]
    sws expand LEARNGENE --depth L [--layers-source 0,0,1,...] [--num-classes N] --out DIR
    sws info FILE [--depths 6,8,12] [--json]
    sws report RUN_DIR   (report.md and plots again, from results.json)
    sws train ...        (the official SWS/DeiT flags; see `sws train --help`)
    sws pipeline ...     (the whole SWS pipeline on built-in or given data)
    sws compare ...      (SWS against other initializations, with a report)

Errors print as one line naming the problem and the fix; ``--traceback`` shows the traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sws.errors import ConfigError, SWSError
from sws.expansion import expand, save_des_net
from sws.extraction import extract, load_learngene
from sws.fileio import check_output_file
from sws.layout import check_depth
from sws.learngene import Learngene
from sws.official import import_official
from sws.parsing import Parser, comma_separated_ints
from sws.records import Results
from sws.report import write_report


def _depths(text: str | None) -> list[int]:
    """``--depths``, read after argparse (whose own wording would replace sws's message)."""
    if text is None:
        return []
    return [check_depth(depth, "--depths: a Des-Net") for depth in comma_separated_ints(text, "--depths", "6,8,12")]


def _check_expand_args(args: argparse.Namespace) -> None:
    """The numbers ``sws expand`` passes on: normalization finite (std positive), a seed torch takes."""
    for flag, values in (("--mean", args.mean), ("--std", args.std)):
        bad = [v for v in values or () if not math.isfinite(v) or (flag == "--std" and v <= 0)]
        if bad:
            rule = "positive numbers" if flag == "--std" else "finite numbers"
            raise ConfigError(f"{flag} {bad[0]:g} is not allowed: give {rule}, one per input channel")
    if not 0 <= args.width_seed < 2**63:
        raise ConfigError(f"--width-seed {args.width_seed} is not allowed: give a whole number from 0 to 2**63 - 1")


def _write_learngene(gene: Learngene, args: argparse.Namespace, source: str) -> None:
    """Save a learngene to ``--out``: a regular file, not the input, replaced only with --overwrite."""
    out = check_output_file(args.out, overwrite=args.overwrite)
    if out.exists() and out.resolve() == Path(source).resolve():
        raise SWSError(f"--out {out} is the input file; write the learngene elsewhere")
    gene.save(out)
    print(f"wrote {out}: {_summary(gene)}")


def cmd_import_official(args: argparse.Namespace) -> None:
    # refuse a bad --out before reading the checkpoint; _write_learngene checks again before writing
    check_output_file(args.out, overwrite=args.overwrite)
    gene = import_official(
        args.checkpoint, layout=args.layout, num_heads=args.num_heads, use_ema=args.ema, aux_depth=args.aux_depth
    )
    _write_learngene(gene, args, args.checkpoint)


def cmd_extract(args: argparse.Namespace) -> None:
    check_output_file(args.out, overwrite=args.overwrite)  # before the work, as above
    _write_learngene(extract(args.checkpoint, use_ema=args.ema), args, args.checkpoint)


def cmd_expand(args: argparse.Namespace) -> None:
    _check_expand_args(args)
    gene = load_learngene(args.learngene)
    model = expand(
        gene,
        args.depth,
        mapping=args.layers_source,
        num_classes=args.num_classes,
        img_size=args.img_size,
        in_chans=args.in_chans,
        num_heads=args.num_heads,
        embed_dim=args.width,
        width_seed=args.width_seed,
        new_head=args.new_head,
    )
    provenance = {"learngene": str(Path(args.learngene).resolve()), "learngene_kind": gene.kind}
    # the normalization the Aux-Net was trained with, unless the user gives one
    mean = args.mean or gene.training.get("mean")
    std = args.std or gene.training.get("std")
    save_des_net(
        model,
        args.out,
        mean=mean,
        std=std,
        provenance=provenance,
        overwrite=args.overwrite,
        protect=[args.learngene],
    )
    expansion = model.sws_expansion
    mapping = ",".join(map(str, expansion.mapping)) if expansion.mapping is not None else "linear (TLEG)"
    params = sum(p.numel() for p in model.parameters())
    width = "" if expansion.width == "kept" else f", {expansion.width}"
    width += "" if expansion.channels == "kept" else f", channels {expansion.channels}"
    print(
        f"wrote {args.out}: {args.depth}-layer Des-Net, {params / 1e6:.2f}M params, layers from {mapping}, "
        f"head {expansion.head}, pos_embed {expansion.pos_embed}{width}"
    )
    print(f"load it anywhere with timm.create_model('local-dir:{args.out}', pretrained=True)")


def cmd_info(args: argparse.Namespace) -> None:
    depths = _depths(args.depths)
    gene = load_learngene(args.file)
    info = gene.describe(depths)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return
    print(_format_info(args.file, info))


def cmd_report(args: argparse.Namespace) -> None:
    results = Results.load(args.run)
    where = Path(args.run)
    out = Path(args.out) if args.out else (where if where.is_dir() else where.parent)
    paths = write_report(results, out, results_json=False)
    print(f"wrote {paths['report']} and {len(paths) - 1} plot(s)")


def _summary(gene: Any) -> str:
    a = gene.architecture
    shape = f"layout {gene.layout}" if getattr(gene, "layout", None) else f"{gene.aux_depth}-layer Aux-Net"
    return (
        f"{gene.kind} learngene, {shape}, width {a.embed_dim}, {a.num_heads} heads, {gene.num_params / 1e6:.2f}M params"
    )


def _format_info(path: str, info: dict[str, Any]) -> str:
    a = info["architecture"]
    kind = {"sws": "sws (stage-wise weight sharing)", "tleg": "tleg (linear expansion)"}.get(info["kind"], info["kind"])
    lines = [
        f"file        {path}",
        f"kind        {kind}",
    ]
    if "layout" in info:
        stages = len(info["layout"].split(","))
        lines.append(f"layout      {info['layout']}  ({info['aux_depth']}-layer Aux-Net, {stages} learngene layers)")
    else:
        lines.append(f"aux depth   {info['aux_depth']}")
    head_dim = a["embed_dim"] // a["num_heads"]
    lines += [
        f"width       {a['embed_dim']}, {a['num_heads']} heads of {head_dim}, MLP ratio {a['mlp_ratio']:g}",
        f"input       {a['in_chans']}x{a['img_size']}x{a['img_size']}, patch {a['patch_size']}",
        f"classes     {a['num_classes']}",
        f"norm eps    {a['norm_eps']:g}",
        f"params      {info['params']:,} stored ({info['layer_params']:,} in learngene layers)",
    ]
    if info.get("training"):
        trained = ", ".join(f"{k}={v}" for k, v in info["training"].items())
        lines.append(f"trained     {trained}")
    if info.get("source"):
        lines.append(f"source      {info['source']}")
    if info["depths"]:
        lines.append("")
        lines.append(f"{'depth':>5}  {'Des-Net params':>14}  mapping")
        for depth, row in info["depths"].items():
            mapping = ",".join(map(str, row["mapping"])) if row["mapping"] is not None else "base + (l/L) * slope"
            lines.append(f"{depth:>5}  {row['des_net_params']:>14,}  {mapping}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="sws", description="Learngene initialization of vision transformers by stage-wise weight sharing."
    )
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("import-official", help="convert an official SWS/TLEG Aux-Net checkpoint to a learngene")
    p.add_argument("checkpoint", help="checkpoint.pth written by the official SWS or TLEG code")
    p.add_argument("--out", required=True, help="learngene file to write (.safetensors)")
    p.add_argument("--layout", help="stage layout, e.g. 3,3,4,3,3 (default: from the model name in the checkpoint)")
    p.add_argument("--num-heads", type=int, help="attention heads of the official model (default: what it used)")
    p.add_argument("--aux-depth", type=int, help="layers of a TLEG Aux-Net (default: from the model name)")
    p.add_argument("--ema", action="store_true", help="import the EMA weights instead of the model's")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")
    p.set_defaults(func=cmd_import_official)

    p = commands.add_parser("extract", help="take the learngene out of an Aux-Net checkpoint written by sws train")
    p.add_argument("checkpoint", help="checkpoint.pth of an Aux-Net run")
    p.add_argument("--out", required=True, help="learngene file to write (.safetensors)")
    p.add_argument("--ema", action="store_true", help="extract the EMA weights instead of the model's")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")
    p.set_defaults(func=cmd_extract)

    p = commands.add_parser("expand", help="initialize a Des-Net of any depth from a learngene")
    p.add_argument("learngene", help="learngene file (or an official or sws Aux-Net checkpoint)")
    p.add_argument("--depth", type=int, required=True, help="layers of the Des-Net")
    p.add_argument("--layers-source", help="explicit layer mapping, e.g. 0,0,0,1,1,1,2,2,3,3,4,4")
    p.add_argument("--num-classes", type=int, help="classes (default: the learngene's; another count gets a new head)")
    p.add_argument("--img-size", type=int, help="input size (default: the learngene's; pos_embed is resampled)")
    p.add_argument(
        "--in-chans", type=int, help="image channels (default: the learngene's; the patch embedding is fitted)"
    )
    p.add_argument(
        "--width",
        type=int,
        help="embedding width (default: the learngene's; wider replicates, narrower selects; see sws.width)",
    )
    p.add_argument("--num-heads", type=int, help="attention heads (default: keep the learngene's head dimension)")
    p.add_argument(
        "--new-head", action="store_true", help="a new classifier even with as many classes (other data's classes)"
    )
    p.add_argument("--width-seed", type=int, default=0, help="seed of the unequal split when widening")
    p.add_argument("--mean", type=float, nargs="+", help="input normalization mean to record in config.json")
    p.add_argument("--std", type=float, nargs="+", help="input normalization std to record in config.json")
    p.add_argument("--out", required=True, help="folder to write (timm hub format); a new or empty one")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a folder that holds files (only config.json and model.safetensors are replaced)",
    )
    p.set_defaults(func=cmd_expand)

    p = commands.add_parser("info", help="describe a learngene: kind, layout, widths, parameters, mappings")
    p.add_argument("file", help="learngene file (or an official or sws Aux-Net checkpoint)")
    p.add_argument("--depths", help="Des-Net depths to show mappings for, e.g. 6,8,12")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = commands.add_parser("report", help="write report.md and the plots again from a study's results.json")
    p.add_argument("run", help="the folder of an sws pipeline or compare (or its results.json)")
    p.add_argument("--out", help="folder to write report.md and the plots into (default: beside results.json)")
    p.set_defaults(func=cmd_report)

    for name, help_text in DELEGATED_HELP.items():
        # these commands own their parsers (see `sws NAME --help`); listed here for `sws --help`
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


# Commands with many flags parse their own command lines.
DELEGATED = {"train": "sws.train", "pipeline": "sws.pipeline", "compare": "sws.compare"}
DELEGATED_HELP = {
    "train": "train an Aux-Net by distillation or fine-tune a Des-Net (official SWS/DeiT flags)",
    "pipeline": "teacher, Aux-Net, learngene, Des-Nets and scratch baselines, with a report",
    "compare": "compare SWS with other initializations over depths, with report and plots",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in argv or os.environ.get("SWS_TRACEBACK") == "1"
    argv = [a for a in argv if a != "--traceback"]
    warnings.filterwarnings("default", module="sws")
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints escaped, not as a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        if argv and argv[0] in DELEGATED:
            entry: Callable[[list[str]], Any] = importlib.import_module(DELEGATED[argv[0]]).main
            entry(argv[1:])
        else:
            args = build_parser().parse_args(argv)
            args.func(args)
    except SWSError as error:
        if show_traceback:
            raise
        print(f"sws: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # the system refused a read or a write: say which file and why
        if show_traceback:
            raise
        print(f"sws: error: {os_error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sws: interrupted", file=sys.stderr)
        return 130
    return 0


def os_error_line(error: OSError) -> str:
    """One line for an operating-system error: what happened to which file, and what to do."""
    where = f" ({error.filename})" if error.filename else ""
    reason = (error.strerror or str(error)).rstrip(".")
    fixes = {
        errno.ENOSPC: "free some space and run again; files saved before are unchanged",
        errno.EDQUOT: "free some space and run again; files saved before are unchanged",
        errno.EACCES: "choose a path you may read and write, or change its permissions",
        errno.EPERM: "choose a path you may read and write, or change its permissions",
        errno.EROFS: "choose a path on a writable file system",
        errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
        errno.EISDIR: "the path is a folder: give a file name",
        errno.ENOENT: "check the path",
    }
    fix = fixes.get(error.errno or 0, "check the path and try again")
    return f"{reason[:1].lower()}{reason[1:]}{where}; {fix}"


def _one_line(error: Exception) -> str:
    """The message, without the traceback text that data-loader workers prepend to it."""
    text = str(error).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())

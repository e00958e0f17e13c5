"""Do two studies give the same numbers? Compare two ``results.json`` files, times aside.

Reads both with ``sws.records.Results`` (so a file of an earlier sws version compares with one of
this version) and compares, exactly, every Des-Net's and budget run's top-1 per epoch, top-1 as
initialized, training images, FLOPs and parameters; every source model's final top-1, images, FLOPs
and parameters; and the parameters each method stores. A refactoring that must not change
behaviour is checked by running the same command before and after, on the same machine::

    python benchmarks/same_results.py runs/before/results.json runs/after/results.json

Exit status 0 when everything matches, 1 with the differences listed otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sws.records import Results, RunRecord


def _runs(records: list[RunRecord]) -> dict[tuple[Any, ...], RunRecord]:
    return {(r.depth, r.width, r.method, r.epochs): r for r in records}


def differences(before: Results, after: Results) -> list[str]:
    """Every number that differs between two studies, one line each (times are not compared)."""
    found = []
    for part in ("records", "budget"):
        old, new = _runs(getattr(before, part)), _runs(getattr(after, part))
        if set(old) != set(new):
            found.append(f"{part}: runs {sorted(map(str, set(old) ^ set(new)))} are in one file only")
        for key in sorted(set(old) & set(new), key=str):
            for field in ("top1", "init_top1", "images", "flops", "params"):
                a, b = getattr(old[key], field), getattr(new[key], field)
                if a != b:
                    found.append(f"{part} {key} {field}: {a} then, {b} now")
    if set(before.sources) != set(after.sources):
        found.append(f"sources: {sorted(before.sources)} then, {sorted(after.sources)} now")
    for key in sorted(set(before.sources) & set(after.sources)):
        for field in ("final_top1", "images", "flops", "params"):
            a, b = getattr(before.sources[key], field), getattr(after.sources[key], field)
            if a != b:
                found.append(f"source {key} {field}: {a} then, {b} now")
    if before.pretraining_flops and before.pretraining_flops != after.pretraining_flops:  # older files lack them
        found.append(f"pre-training FLOPs: {before.pretraining_flops} then, {after.pretraining_flops} now")
    if before.stored_params != after.stored_params:
        found.append(f"stored parameters: {before.stored_params} then, {after.stored_params} now")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="results.json (or its run folder) of the first study")
    parser.add_argument("after", help="results.json (or its run folder) of the second study")
    args = parser.parse_args(argv)
    before, after = Results.load(args.before), Results.load(args.after)
    found = differences(before, after)
    runs = len(after.records) + len(after.budget) + len(after.sources)
    if found:
        print("\n".join(found))
        return 1
    print(f"the same: {runs} runs' top-1 per epoch, images, FLOPs and parameters, and the parameters stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run by the DDP tests under torchrun: train, then save this rank's weights (and EMA weights) for the
test to compare."""

import os
import sys

import torch

from sws.train import train
from sws.train_config import parse_args

if __name__ == "__main__":
    out, argv = sys.argv[1], sys.argv[2:]
    result = train(parse_args(argv))
    rank = int(os.environ["RANK"])
    saved = {"state": result.model.state_dict(), "summary": result.summary}
    if result.ema is not None:
        saved["ema"] = result.ema.state_dict()
    torch.save(saved, os.path.join(out, f"rank{rank}.pt"))

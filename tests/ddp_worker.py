"""Run by test_ddp under torchrun: train, then save this rank's weights for the test to compare."""

import os
import sys

import torch

from sws.train import train
from sws.train_config import parse_args

if __name__ == "__main__":
    out, argv = sys.argv[1], sys.argv[2:]
    result = train(parse_args(argv))
    rank = int(os.environ["RANK"])
    torch.save({"state": result.model.state_dict(), "summary": result.summary}, os.path.join(out, f"rank{rank}.pt"))

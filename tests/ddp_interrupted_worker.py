"""Run by the resume tests under torchrun: train until ``STOP`` epochs are saved, then stop on every
process as a kill would (a checkpoint, no summary). Usage: ddp_interrupted_worker.py STOP ARGS..."""

import sys

from sws.train import train
from sws.train_config import parse_args
from tests.test_run_folder import interrupted_after

if __name__ == "__main__":
    stop, argv = int(sys.argv[1]), sys.argv[2:]
    with interrupted_after(stop):
        train(parse_args(argv))

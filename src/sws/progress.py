"""What a run shows while it runs: a progress bar per epoch and a JSON-lines log of every epoch.

On a terminal the bar is tqdm's, with loss, learning rate, images/s and ETA; when output goes to a
file or a pipe, the same figures come as plain lines (``--print-freq`` per epoch). The log
``log.jsonl`` has one record per epoch and is rewritten from the checkpoint on resume, so every
epoch appears exactly once. With ``--tensorboard`` the records also go to TensorBoard.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sws.fileio import write_text_atomic

LOG_NAME = "log.jsonl"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class EpochProgress:
    """Progress of one epoch: a tqdm bar on a terminal, else a line every ``1/lines`` of the epoch.

    The training loop calls ``update`` every step with the images it took, and passes the loss only
    on the steps where ``due(step)`` (every ``1/lines`` of the epoch and the last step), so that
    reading the loss, which waits for the device, happens a few times per epoch, not every step.
    ``due`` does not depend on the rank, so every process syncs on the same steps.
    """

    def __init__(self, total: int, title: str, enabled: bool, lines: int = 10, stream: Any = None) -> None:
        self.total = total
        self.title = title
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.every = max(1, total // max(1, lines))
        self.start = time.perf_counter()
        self.images = 0
        self.step = 0
        self.bar = None
        if enabled and self.stream.isatty():
            self.bar = tqdm(total=total, desc=title, file=self.stream, dynamic_ncols=True, leave=True)

    def due(self, step: int) -> bool:
        """Whether step ``step`` (0-based) is one where the loop reads and shows the loss."""
        return (step + 1) % self.every == 0 or step + 1 == self.total

    def update(self, images: int, loss: float | None = None, lr: float | None = None) -> None:
        self.step += 1
        self.images += images
        if not self.enabled:
            return
        rate = self.images / max(time.perf_counter() - self.start, 1e-9)
        if self.bar is not None:
            if loss is not None:
                self.bar.set_postfix_str(f"loss {loss:.4f} lr {lr:.2e} {rate:.0f} img/s", refresh=False)
            self.bar.update(1)
        elif loss is not None:
            eta = (self.total - self.step) * (time.perf_counter() - self.start) / self.step
            print(
                f"{self.title} [{self.step:>{len(str(self.total))}}/{self.total}] loss {loss:.4f} lr {lr:.2e} "
                f"{rate:.0f} img/s eta {_duration(eta)}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class RunLog:
    """``log.jsonl`` (and optionally TensorBoard) in the run's output folder, written by rank 0."""

    def __init__(self, output_dir: str | Path | None, enabled: bool, tensorboard: bool = False) -> None:
        self.path = Path(output_dir) / LOG_NAME if output_dir and enabled else None
        self.writer = None
        if self.path is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))
            except ImportError:
                warnings.warn("--tensorboard needs the tensorboard package (pip install tensorboard)", stacklevel=2)

    def rewrite(self, history: list[dict[str, Any]]) -> None:
        """Replace the log by ``history`` (the records saved in the checkpoint being resumed)."""
        if self.path is not None:
            write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in history))

    def append(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.writer.add_scalar(key, value, record["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_log(output_dir: str | Path) -> list[dict[str, Any]]:
    """The epoch records of a run (empty when it has none yet)."""
    path = Path(output_dir) / LOG_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

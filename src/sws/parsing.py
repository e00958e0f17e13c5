"""Reading what users type: argument parsers that fail in one line, and comma-separated numbers.

Every ``sws`` command parses its flags with :class:`Parser`, whose errors become a ``ConfigError``
(one line: the problem and where to look) instead of argparse's usage dump. Lists of whole numbers
(depths, layouts, layer mappings) are read by one function that refuses empty items, so ``3,,3``
is an error rather than ``3,3``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from sws.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors raise ``ConfigError`` (printed as one line)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message}; see `{self.prog} --help`")


def comma_separated_ints(
    text: str, what: str = "the list", example: str = "4,6,8,12", error: type[Exception] = ConfigError
) -> list[int]:
    """``"4, 6,8"`` -> ``[4, 6, 8]`` (surrounding quotes or brackets allowed, as shells and YAML leave
    them); an empty item, an empty list or a non-number raises ``error`` naming ``what`` and an
    ``example``."""
    body = str(text).strip().strip("'\"[]()")
    items = [item.strip() for item in body.split(",")]
    if not any(items):
        raise error(f"{what} is empty; write whole numbers separated by commas, for example {example}")
    if not all(items):
        raise error(f"{what} {text!r} has an empty item; write whole numbers separated by commas ({example})")
    try:
        return [int(item) for item in items]
    except ValueError:
        raise error(
            f"cannot read {what} {text!r}: write whole numbers separated by commas, for example {example}"
        ) from None


__all__ = ["Parser", "comma_separated_ints"]

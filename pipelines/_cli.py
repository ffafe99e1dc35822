"""What every ``python -m pipelines.<name>`` shares: bad input ends the run with exit code 2 and one line on stderr,
``<prog>: error: <what is wrong>`` (no traceback, no usage dump), and numeric flags are parsed with their valid range
named in the message (``argument --size: expected an integer in [16, 512], got 5``)."""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn

# What checking arguments and input files raises: a wrong value or type, a missing, misplaced or unreadable path.
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)


def error_line(prog: str, error: BaseException | str) -> str:
    """``<prog>: error: <error>`` on one line (line breaks in the message become spaces)."""
    return f"{prog}: error: {' '.join(str(error).split())}"


def report(prog: str, error: BaseException | str) -> int:
    """Prints the error line on stderr; returns the exit code for bad input, 2."""
    print(error_line(prog, error), file=sys.stderr)
    return 2


def fail(prog: str, error: BaseException | str) -> NoReturn:
    """Reports the error and exits with code 2."""
    raise SystemExit(report(prog, error))


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are the one-line report (``fail``)."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, message)


def _bounds(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    return f" <= {high}" if high is not None else ""


def integer(low: int | None = None, high: int | None = None):
    """An argparse ``type``: an int in [low, high] (an end left None is open)."""

    def parse(text: str) -> int:
        expected = f"expected an integer{_bounds(low, high)}"
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{expected}, got {value}")
        return value

    return parse


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False):
    """An argparse ``type``: a finite float in [low, high], or (low, high] with ``low_open``."""

    def parse(text: str) -> float:
        expected = f"expected a finite number{_bounds(low, high, low_open)}"
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value

    return parse


def device(text: str) -> str:
    """An argparse ``type``: ``auto``, ``cpu``, ``cuda`` or ``cuda:<i>`` (whether the GPU exists is checked later)."""
    import torch

    try:
        kind = torch.device(text).type if text != "auto" else "auto"
    except RuntimeError:
        kind = None
    if kind not in ("auto", "cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:<i>, got {text!r}")
    return text

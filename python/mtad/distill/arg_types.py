"""argparse types shared by the distillation commands: each refuses a bad value at the command
line, with the option named, before any teacher or training work starts."""

from __future__ import annotations

import argparse


def count(text: str, least: int = 0) -> int:
    """A count >= least."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a count expected, got {text!r}") from None
    if n < least:
        raise argparse.ArgumentTypeError(f"a count >= {least} expected, got {n}")
    return n


def positive(text: str) -> int:
    """A count >= 1."""
    return count(text, 1)


def positive_number(text: str) -> float:
    """A finite number > 0 (minutes, learning rates)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number expected, got {text!r}") from None
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError(f"a finite number > 0 expected, got {text}")
    return x


def tries_list(text: str) -> list[int]:
    """Comma-separated counts of tries, one further set each ("0": none)."""
    try:
        counts = [int(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated counts expected, got {text!r}") from None
    if counts == [0]:
        return []
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"every set needs a count >= 1 (or 0 alone: no further set), got {text!r}")
    return counts

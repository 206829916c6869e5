"""The Python reference of the engine's counter-based uniform draws (csrc/ops/rng.h):
SplitMix64's finaliser over (seed, counter), whose top 23 bits become a float32 in (0, 1).

The op tests check the engine's draws against these bit for bit, so the arithmetic here
follows the C++ step by step: 64-bit wrap-around and float32 rounding included."""

from __future__ import annotations

import struct

import numpy as np

M64 = (1 << 64) - 1


def _mix(seed: int, counter: int) -> int:
    """rng::mix on Python ints, masked to 64 bits after each step that can overflow."""
    z = (seed * 0x9E3779B97F4A7C15 + counter + 0x632BE59BD9B4E019) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def uniform(seed: int, counter: int) -> float:
    """rng::uniform: (top 23 bits + 0.5f) / 2^23, the sum rounded to float32 as in C++."""
    top = _mix(seed, counter & M64) >> 41
    rounded = struct.unpack("f", struct.pack("f", top + 0.5))[0]
    return rounded / 8388608.0


def rng_uniform(seed: int, counters: np.ndarray | list[int]) -> np.ndarray:
    """mtad::rng::uniform(seed, c) for each counter, float32, bit for bit (SplitMix64
    finaliser, top 23 bits, float arithmetic as in C). Vectorised: uint64 arrays wrap
    around like the C++ integers, for the tests that need many draws."""
    c = np.asarray(counters, dtype=np.uint64).reshape(-1)
    z = c + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & M64)
    for add in (False, True):
        if add:
            z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    top = (z >> np.uint64(41)).astype(np.float32)
    return (top + np.float32(0.5)) * np.float32(1.0 / 8388608.0)

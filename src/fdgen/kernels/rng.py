"""SplitMix64: the counter-style generator used inside every fdgen kernel.

Each sample gets its own 64-bit starting state from ``numpy.random.SeedSequence`` (see
``sample_state``), so a sample's pixels never depend on which worker or thread made it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_INV32 = 1.0 / 4294967296.0  # 2**-32


def sample_state(*key: int) -> np.uint64:
    """Starting state for the stream keyed by integers, e.g. (seed, category, variant)."""
    return np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0]


@njit(inline="always")
def mix64(z):
    """SplitMix64's output function: 64 random bits from a state."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(inline="always")
def next_u64(state):
    """Advance ``state``; return (new state, 64 random bits)."""
    state = state + GAMMA
    return state, mix64(state)


@njit(inline="always")
def unit53(bits):
    """Uniform double in [0, 1) from the top 53 bits."""
    return np.float64(bits >> _S11) * _INV53


@njit(inline="always")
def unit_high32(bits):
    """Uniform double in [0, 1) from the high 32 bits (the low 32 stay free for other use)."""
    return np.float64(bits >> _S32) * _INV32


@njit(inline="always")
def below_low32(bits, n):
    """Integer in [0, n) from the low 32 bits (multiply-shift; bias below n / 2**32)."""
    return np.int64(((bits & _LOW32) * np.uint64(n)) >> _S32)

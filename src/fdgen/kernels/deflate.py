"""A small, fast DEFLATE encoder for images: run-length matches and one dynamic Huffman block.

It does what PNG needs for 8-bit images and nothing more. The input is tokenised as zlib's
``Z_RLE`` strategy does: a run of 3 to 258 copies of the previous byte becomes a match at
distance 1, anything else a literal. The tokens are written as one final block with Huffman
codes built for them (RFC 1951 section 3.2.7), lengths limited to 15 bits. No hash chains and
no lazy matching, so it is several times faster than zlib on these images at a similar size,
and its output is a function of the input bytes alone: the same on every CPU and platform.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

MAX_RUN = 258
_U64 = np.uint64(64)
LITERALS = 286  # literal/length alphabet: 0..255 bytes, 256 end of block, 257..285 lengths
MAX_BITS = 15
CODE_LENGTH_BITS = 7
# The order in which the code-length code's lengths are stored (RFC 1951 3.2.7).
CODE_LENGTH_ORDER = np.array(
    [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15], np.int64
)


def _length_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each match length 3..258: its symbol, extra-bit count and extra-bit value."""
    extra_bits = [0] * 8 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [0]
    symbol = np.zeros(MAX_RUN + 1, np.int64)
    extra = np.zeros(MAX_RUN + 1, np.int64)
    value = np.zeros(MAX_RUN + 1, np.uint64)
    base = 3
    for index, bits in enumerate(extra_bits):
        top = base + (1 << bits) - 1
        if index == 27:
            top = 257  # 258 has its own symbol, 285
        if index == 28:
            top = MAX_RUN
        for length in range(base, top + 1):
            symbol[length] = 257 + index
            extra[length] = bits
            value[length] = length - base
        base = top + 1
    return symbol, extra, value


RUN_SYMBOL, RUN_EXTRA, RUN_VALUE = _length_table()
# The symbol of each token: a byte is its own symbol, 256 + run the run's length symbol.
TOKEN_SYMBOL = np.concatenate([np.arange(256), RUN_SYMBOL]).astype(np.int64)


def max_deflate_size(n: int) -> int:
    """An upper bound on the stream's bytes for ``n`` input bytes, in whole 8-byte words."""
    return (n * 2 + 1024) // 8 * 8  # a literal costs at most 15 bits; the header < 300 bytes


_scratch = threading.local()
_KEEP_SCRATCH = 1 << 22  # bytes of input up to which a thread keeps its scratch arrays


def _buffers(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scratch arrays for ``n`` input bytes. Kept per thread for inputs up to 4 MiB:
    allocating fresh megabytes for every image cost 0.2 ms of page faults."""
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None or buffers[0].size < n + 1:
        words = max_deflate_size(n) // 8
        buffers = (
            np.empty(n + 1, np.uint16),
            np.empty(n + 1, np.uint16),
            np.empty(words, np.uint64),
        )
        if n <= _KEEP_SCRATCH:
            _scratch.buffers = buffers
    return buffers


def deflate(data: np.ndarray) -> bytes:
    """Raw DEFLATE stream (RFC 1951, no zlib header) of a uint8 array's bytes."""
    data = np.ascontiguousarray(data, np.uint8).reshape(-1)
    runs, tokens, out = _buffers(data.size)
    size = deflate_words(data, runs[: data.size + 1], tokens[: data.size + 1], out)
    return out.astype("<u8", copy=False).view(np.uint8)[:size].tobytes()


@njit(cache=True)
def _huffman_depths(freq, limit):
    """Code lengths of a Huffman code for ``freq``, none longer than ``limit`` bits.

    If the plain Huffman code is too deep, the counts are halved (rounding up) and the code
    rebuilt, until it fits. At least two symbols get a code, so the code is complete.
    """
    freq = freq.copy()
    n = freq.shape[0]
    used = 0
    for s in range(n):
        used += freq[s] > 0
    for s in range(n):  # a lone symbol is paired with the first unused one
        if used >= 2:
            break
        if freq[s] == 0:
            freq[s] = 1
            used += 1
    while True:
        symbols = np.empty(used, np.int64)
        k = 0
        for s in range(n):
            if freq[s] > 0:
                symbols[k] = s
                k += 1
        symbols = symbols[np.argsort(freq[symbols], kind="mergesort")]
        # Two-queue Huffman: leaves in sorted order, merged nodes in creation order.
        weight = np.empty(2 * used - 1, np.int64)
        parent = np.empty(2 * used - 1, np.int64)
        for k in range(used):
            weight[k] = freq[symbols[k]]
        leaf = 0
        merged = used
        created = used
        for _ in range(used - 1):
            pair = np.empty(2, np.int64)
            for j in range(2):
                if leaf < used and (merged >= created or weight[leaf] <= weight[merged]):
                    pair[j] = leaf
                    leaf += 1
                else:
                    pair[j] = merged
                    merged += 1
            weight[created] = weight[pair[0]] + weight[pair[1]]
            parent[pair[0]] = created
            parent[pair[1]] = created
            created += 1
        depth = np.zeros(2 * used - 1, np.int64)
        for node in range(2 * used - 3, -1, -1):  # the root is the last node, depth 0
            depth[node] = depth[parent[node]] + 1
        lengths = np.zeros(n, np.int64)
        deepest = 0
        for k in range(used):
            lengths[symbols[k]] = depth[k]
            deepest = max(deepest, depth[k])
        if deepest <= limit:
            return lengths
        for s in range(n):
            if freq[s] > 0:
                freq[s] = (freq[s] + 1) // 2


@njit(cache=True)
def _canonical_codes(lengths):
    """Canonical Huffman codes for ``lengths``, bit-reversed for the LSB-first stream."""
    count = np.zeros(MAX_BITS + 1, np.int64)
    for s in range(lengths.shape[0]):
        count[lengths[s]] += 1
    count[0] = 0
    next_code = np.zeros(MAX_BITS + 2, np.int64)
    code = 0
    for bits in range(1, MAX_BITS + 1):
        code = (code + count[bits - 1]) << 1
        next_code[bits] = code
    codes = np.zeros(lengths.shape[0], np.uint64)
    for s in range(lengths.shape[0]):
        bits = lengths[s]
        if bits:
            c = next_code[bits]
            next_code[bits] += 1
            reversed_code = 0
            for _ in range(bits):
                reversed_code = (reversed_code << 1) | (c & 1)
                c >>= 1
            codes[s] = reversed_code
    return codes


@njit(inline="always")
def _put(out, pos, acc, filled, bits, count):
    """Append ``count`` (<= 32) bits; full 64-bit words go to ``out`` (LSB first).

    ``acc``, ``filled``, ``bits`` and ``count`` are all uint64: mixing signed and unsigned
    integers makes numba convert through floats, which was measured 2.4x slower here.
    """
    acc |= bits << filled
    filled += count
    if filled >= _U64:
        out[pos] = acc
        pos += 1
        filled -= _U64
        acc = bits >> (count - filled)
    return pos, acc, filled


@njit(cache=True)
def _tokenise(data, runs, tokens, freq):
    """Z_RLE tokens of ``data``: a byte (< 256) or 256 + a run length; count symbols.

    A backward pass first stores in ``runs``, at each position, how many bytes from there on
    equal the byte before it; the forward pass then needs no data-dependent branches.
    """
    n = data.shape[0]
    runs[n] = 0
    run = 0
    for i in range(n - 1, 0, -1):  # capped at MAX_RUN, so it fits 16 bits
        run = min(run + 1, MAX_RUN) if data[i] == data[i - 1] else 0
        runs[i] = run
    count = 0
    i = 0
    if n > 0:
        tokens[0] = data[0]
        count = 1
        i = 1
    while i < n:
        run = np.int64(runs[i])
        is_run = run >= 3
        tokens[count] = 256 + run if is_run else data[i]
        i += run if is_run else 1
        count += 1
    for k in range(count):
        freq[TOKEN_SYMBOL[tokens[k]]] += 1
    freq[256] += 1  # end of block
    return count


@njit(cache=True)
def deflate_words(data, runs, tokens, out):
    """Raw DEFLATE (no zlib header) of the uint8 array ``data`` into the uint64 array ``out``
    (the bit stream, least significant bit first); return the stream's length in bytes.

    ``runs`` and ``tokens`` (uint16) are scratch arrays of ``len(data) + 1``; ``out``
    must hold ``max_deflate_size(len(data)) // 8`` words.
    """
    freq = np.zeros(LITERALS, np.int64)
    count = _tokenise(data, runs, tokens, freq)
    lit_lengths = _huffman_depths(freq, MAX_BITS)
    lit_codes = _canonical_codes(lit_lengths)
    # One distance is used (1): a one-bit code, as RFC 1951 allows for a single distance code.
    hlit = LITERALS
    while lit_lengths[hlit - 1] == 0:
        hlit -= 1
    # Code lengths of both alphabets as one sequence, run-length coded with symbols 16-18.
    sequence = np.empty(hlit + 1, np.int64)
    sequence[:hlit] = lit_lengths[:hlit]
    sequence[hlit] = 1
    cl_symbols = np.empty(hlit + 1, np.int64)
    cl_extra = np.empty(hlit + 1, np.int64)
    cl_freq = np.zeros(19, np.int64)
    m = 0
    i = 0
    while i < hlit + 1:
        value = sequence[i]
        run = 1
        while i + run < hlit + 1 and sequence[i + run] == value:
            run += 1
        if value == 0 and run >= 3:
            run = min(run, 138)
            cl_symbols[m] = 17 if run <= 10 else 18
            cl_extra[m] = run - 3 if run <= 10 else run - 11
        elif value != 0 and run >= 4:
            run = min(run - 1, 6) + 1  # the value once, then "repeat previous" 3..6 times
            cl_symbols[m] = value
            cl_extra[m] = 0
            m += 1
            cl_freq[value] += 1
            cl_symbols[m] = 16
            cl_extra[m] = run - 4
        else:
            run = 1
            cl_symbols[m] = value
            cl_extra[m] = 0
        cl_freq[cl_symbols[m]] += 1
        m += 1
        i += run
    cl_lengths = _huffman_depths(cl_freq, CODE_LENGTH_BITS)
    cl_codes = _canonical_codes(cl_lengths)
    hclen = 19
    while cl_lengths[CODE_LENGTH_ORDER[hclen - 1]] == 0:
        hclen -= 1

    # Every token as one bit string: a byte's code, or a run's length code, its extra bits
    # and the distance code (one 0 bit). Then the header and the tokens, all as uint64.
    token_bits = np.zeros(256 + MAX_RUN + 1, np.uint64)
    token_count = np.zeros(256 + MAX_RUN + 1, np.uint64)
    token_bits[:256] = lit_codes[:256]
    token_count[:256] = lit_lengths[:256]
    for run in range(3, MAX_RUN + 1):
        s = RUN_SYMBOL[run]
        token_bits[256 + run] = lit_codes[s] | (RUN_VALUE[run] << np.uint64(lit_lengths[s]))
        token_count[256 + run] = lit_lengths[s] + RUN_EXTRA[run] + 1
    header = np.array([1 | (2 << 1), hlit - 257, 0, hclen - 4], np.uint64)  # final, dynamic
    header_count = np.array([3, 5, 5, 4], np.uint64)  # HDIST - 1 = 0: one distance code
    extra_count = np.array([2, 3, 7], np.uint64)
    pos = 0
    acc = np.uint64(0)
    filled = np.uint64(0)
    for k in range(4):
        pos, acc, filled = _put(out, pos, acc, filled, header[k], header_count[k])
    for k in range(hclen):
        length = np.uint64(cl_lengths[CODE_LENGTH_ORDER[k]])
        pos, acc, filled = _put(out, pos, acc, filled, length, np.uint64(3))
    for k in range(m):
        s = cl_symbols[k]
        pos, acc, filled = _put(out, pos, acc, filled, cl_codes[s], np.uint64(cl_lengths[s]))
        if s >= 16:
            extra = np.uint64(cl_extra[k])
            pos, acc, filled = _put(out, pos, acc, filled, extra, extra_count[s - 16])
    for k in range(count):  # _put written out: numba's inlined call was 2.3x slower here
        bits = token_bits[tokens[k]]
        bit_count = token_count[tokens[k]]
        acc |= bits << filled
        filled += bit_count
        if filled >= _U64:
            out[pos] = acc
            pos += 1
            filled -= _U64
            acc = bits >> (bit_count - filled)
    pos, acc, filled = _put(out, pos, acc, filled, lit_codes[256], np.uint64(lit_lengths[256]))
    if filled:
        out[pos] = acc
    return pos * 8 + (np.int64(filled) + 7) // 8

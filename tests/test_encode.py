"""fdgen's own PNG writer and DEFLATE encoder: any decoder gets the exact bytes and pixels back."""

from __future__ import annotations

import heapq
import io
import zlib

import cv2
import deflate as libdeflate
import isal.isal_zlib as isal_zlib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fdgen.encode import encode_image, png, two_level_png
from fdgen.kernels import deflate as kd


def _inflate(stream: bytes) -> bytes:
    return zlib.decompress(stream, -15)  # raw DEFLATE, no header


def _geometric_bytes(n: int, seed: int) -> np.ndarray:
    """Byte k with probability 2^-(k+1): Huffman codes deeper than 15 bits unless limited."""
    return np.minimum(np.random.default_rng(seed).geometric(0.5, n) - 1, 255).astype(np.uint8)


CASES = {
    "empty": np.zeros(0, np.uint8),
    "one byte": np.array([7], np.uint8),
    "two equal bytes": np.array([9, 9], np.uint8),
    "all zero, 1 MB": np.zeros(1 << 20, np.uint8),
    "runs of every length": np.repeat(
        np.arange(300, dtype=np.int64) % 256, np.arange(1, 301)
    ).astype(np.uint8),
    "random": np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8),
    "geometric": _geometric_bytes(300_000, 1),
    "sparse lines": (np.random.default_rng(2).random(200_000) < 0.05)
    * np.random.default_rng(3).integers(1, 256, 200_000),
}


@pytest.mark.parametrize("name", CASES)
def test_deflate_round_trips_through_zlib(name):
    data = np.ascontiguousarray(CASES[name], np.uint8)
    assert _inflate(kd.deflate(data)) == data.tobytes()


def _inflate_everywhere(stream: bytes, size: int) -> list[bytes]:
    """The stream decoded by three independent inflaters: zlib, ISA-L and libdeflate."""
    return [
        zlib.decompress(stream, -15),
        isal_zlib.decompress(stream, -15),
        libdeflate.deflate_decompress(stream, size),
    ]


def _runs(pairs: list[tuple[int, int]]) -> bytes:
    return b"".join(bytes([value]) * length for value, length in pairs)


FUZZ_INPUTS = st.one_of(
    st.just(b""),
    st.integers(0, 255).map(lambda b: bytes([b])),
    st.tuples(st.integers(0, 255), st.integers(2, 70_000)).map(lambda t: _runs([t])),  # all equal
    st.permutations(list(range(256))).map(bytes),  # all distinct
    st.lists(st.tuples(st.integers(0, 255), st.integers(1, 600)), max_size=60).map(_runs),
    st.binary(max_size=5_000),  # random
    st.lists(  # random stretches between long runs, as in a contour image's rows
        st.tuples(st.binary(max_size=40), st.integers(0, 255), st.integers(0, 1_000)), max_size=30
    ).map(lambda parts: b"".join(noise + bytes([v]) * n for noise, v, n in parts)),
)


@settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(FUZZ_INPUTS)
def test_fuzzed_inputs_decode_to_themselves_in_three_inflaters(data):
    stream = kd.deflate(np.frombuffer(data, np.uint8))
    assert _inflate_everywhere(stream, len(data)) == [data] * 3
    assert len(stream) <= kd.max_deflate_size(len(data))
    assert kd.deflate(np.frombuffer(data, np.uint8)) == stream  # a function of the bytes alone


def test_inputs_above_the_scratch_limit_round_trip():
    """An 8192 px RGB image (192 MiB, far above the 4 MiB of kept scratch), between two small
    ones that reuse the kept scratch: all three decode exactly."""
    rng = np.random.default_rng(8)
    big = np.zeros((8192, 8192, 3), np.uint8)
    ys, xs = rng.integers(0, 8192, (2, 300_000))
    big[ys, xs] = rng.integers(1, 256, (300_000, 3))
    big[4000:4100] = 200  # long runs crossing rows
    small = rng.integers(0, 3, (300, 400, 3)).astype(np.uint8)
    assert big.nbytes > kd._KEEP_SCRATCH > small.nbytes
    before = png(small)
    stream = kd.deflate(big)
    assert isal_zlib.decompress(stream, -15) == big.tobytes()
    data = png(big)
    assert np.array_equal(
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), big[:, :, ::-1]
    )
    after = png(small)
    assert before == after
    assert np.array_equal(_decoded(after, "RGB"), small)


def test_deflate_compresses_runs_and_skewed_bytes():
    assert len(kd.deflate(CASES["all zero, 1 MB"])) < 2_000  # one match per 258 bytes
    geometric = CASES["geometric"]
    # Entropy of the geometric bytes is 2 bits: Huffman codes get close to it.
    assert len(kd.deflate(geometric)) < 0.3 * geometric.size
    random = CASES["random"]
    assert len(kd.deflate(random)) < 1.01 * random.size + 400  # 8-bit codes plus the header


def _plain_huffman_depth(freq: np.ndarray) -> int:
    """Deepest code of an unrestricted Huffman code (heapq), for comparison."""
    heap = [(int(f), [s]) for s, f in enumerate(freq) if f > 0]
    depth = dict.fromkeys(range(len(freq)), 0)
    heapq.heapify(heap)
    while len(heap) > 1:
        (fa, a), (fb, b) = heapq.heappop(heap), heapq.heappop(heap)
        for s in a + b:
            depth[s] += 1
        heapq.heappush(heap, (fa + fb, a + b))
    return max(depth.values())


@pytest.mark.parametrize("limit", [15, 7])
def test_huffman_lengths_are_limited_and_complete(limit):
    fibonacci = [1, 1]
    while len(fibonacci) < 30:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    freq = np.array(fibonacci + [0] * 5, np.int64)
    assert _plain_huffman_depth(freq) > limit  # so the limit has work to do
    lengths = kd._huffman_depths(freq, limit)
    assert lengths.max() <= limit
    assert all((lengths > 0) == (freq > 0))
    assert sum(2.0 ** -int(b) for b in lengths if b) == 1.0  # a complete prefix code


def test_huffman_lengths_are_optimal_when_not_limited():
    freq = np.random.default_rng(4).integers(0, 1000, 286)
    lengths = kd._huffman_depths(freq, 15)
    heap = [int(f) for f in freq if f > 0]
    heapq.heapify(heap)
    optimal = 0  # the cost of a Huffman code is the sum of its merged weights
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        optimal += merged
        heapq.heappush(heap, merged)
    assert int((lengths * freq).sum()) == optimal


def test_a_lone_symbol_still_gets_a_complete_code():
    lengths = kd._huffman_depths(np.array([0, 0, 5, 0], np.int64), 15)
    assert sorted(lengths.tolist()) == [0, 0, 1, 1]


def _decoded(data: bytes, mode: str) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert(mode))


@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (64, 65), (200, 7)])
def test_grey_png_decodes_to_the_same_pixels(shape):
    rng = np.random.default_rng(shape[0])
    image = (rng.random(shape) < 0.3) * rng.integers(0, 256, shape)
    image = image.astype(np.uint8)
    data = png(image)
    assert Image.open(io.BytesIO(data)).mode == "L"
    assert np.array_equal(_decoded(data, "L"), image)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), image)


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 9, 3), (64, 64, 3)])
def test_rgb_png_decodes_to_the_same_pixels(shape):
    image = np.random.default_rng(shape[1]).integers(0, 256, shape).astype(np.uint8)
    image[::2] = 0  # some runs
    data = encode_image(image, "png")
    assert np.array_equal(_decoded(data, "RGB"), image)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(bgr[:, :, ::-1], image)


def test_png_chunks_are_well_formed():
    data = png(np.arange(256, dtype=np.uint8).reshape(16, 16))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        if kind == b"IDAT":
            rows = zlib.decompress(body)  # zlib header and Adler-32 checked here
            assert len(rows) == 16 * 17 and rows[::17] == bytes(16)  # filter "none" per row
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_two_level_and_grey_png_agree_on_pixels():
    image = (np.random.default_rng(5).random((30, 41)) < 0.2).astype(np.uint8) * 127
    assert np.array_equal(_decoded(two_level_png(image, 127), "L"), _decoded(png(image), "L"))


def test_png_is_smaller_and_identical_across_calls():
    rng = np.random.default_rng(6)
    image = np.zeros((256, 256), np.uint8)
    for _ in range(40):
        cv2.circle(image, tuple(rng.integers(0, 256, 2).tolist()), 60, int(rng.integers(1, 256)))
    data = png(image)
    assert data == png(image.copy())
    assert len(data) < len(cv2.imencode(".png", image)[1])

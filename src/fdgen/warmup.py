"""Compile the FractalDB kernels into numba's on-disk cache, once per machine.

``make install`` runs ``python -m fdgen.warmup``. Without it, the first render or search on a
machine compiles the same kernels in every worker process at once; with it, workers only load
them from the cache.
"""

from __future__ import annotations

import time


def warm_up() -> None:
    """Run every FractalDB render mode and format and both search streams on tiny inputs."""
    import numpy as np

    from fdgen.families import get_family
    from fdgen.families.base import Group
    from fdgen.families.fractal2d import DRAW_MODES

    family = get_family("fractal")
    params = np.array([[0.5, 0, 0, 0.5, 0, 0, 0.5], [0.5, 0, 0, 0.5, 0.5, 0.5, 0.5]])
    for draw in DRAW_MODES:
        renderer = family.renderer(family.RenderSettings(size=32, pad=4, points=500, draw=draw))
        for fmt in ("png", "jpg"):
            for sample in family.render_group(renderer, Group(0, 0, [0, 1, 2, 3], params), fmt):
                sample.encoded()
    for rng in ("default", "legacy"):
        settings = family.SearchSettings(points=500, size=32, pad=2, fill_rate=0.1, rng=rng)
        spec, _ = next(family.candidate_specs(settings, 0, None, 1))
        family.evaluate_candidates(settings, spec)


if __name__ == "__main__":
    start = time.perf_counter()
    warm_up()
    print(f"fdgen: FractalDB kernels compiled or loaded in {time.perf_counter() - start:.1f} s")

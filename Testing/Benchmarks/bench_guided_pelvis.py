"""Table 3 of bench_guided.py: pelvis-like CT -> MR, each bone moved on its own: per bone, the target error
(mm) of the global guided rigid result and of the piecewise field."""

from __future__ import annotations

import sys
import time
import warnings

import bench_paths  # noqa: F401 (first: the library and the test-data makers on sys.path)
import numpy as np
from MultimodalRegistrationLib.core.errors import EngineError, InputError
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.piecewise.segments import register_piecewise
from MultimodalRegistrationLib.registration.pose.centres import centre_alignment
from MultimodalRegistrationLib.registration.rules.keep import minimum_jacobian
from pelvis_like import BENCH_PELVIS, pelvis_like_pair


def pelvis_table(engines, full: bool = False) -> list[str]:
    """Per bone: the target error of the global guided rigid result and of the piecewise field (mm)."""
    started = time.perf_counter()
    pair = pelvis_like_pair(seed=0, **BENCH_PELVIS)
    made = time.perf_counter() - started
    bones = list(pair.names.values())
    guidance = Guidance(pair.fixed_labels, pair.moving_labels)
    centre = centre_alignment(pair.fixed, pair.moving, None, "geometry")

    def errors(name: str, transform: Transform) -> np.ndarray:
        return np.linalg.norm(transform.transform_points(pair.targets_fixed[name]) - pair.targets_moving[name], axis=1)

    lines = [
        (
            f"Pelvis-like CT {pair.fixed.GetSize()} at {pair.fixed.GetSpacing()[0]:g} mm (fixed) -> MR "
            f"{pair.moving.GetSize()} at {'/'.join(f'{v:g}' for v in pair.moving.GetSpacing())} mm (moving), made in "
            f"{made:.0f} s; one global pose (5-10 deg, 8-15 mm), then each bone its own 2-5 deg, 1.5-4 mm. "
            f"Target error (mean / max mm at {len(pair.targets_fixed[bones[0]])} targets per bone, exact truth per "
            "bone) of the global rigid registration guided by all bone segments, and of register_piecewise's field "
            "(one rigid registration per bone, blended without folding)."
        ),
        "",
        "| engine | bone | centre alignment | global rigid (guided) | piecewise field | bone's own rigid |",
        "|---|---|---|---|---|---|",
    ]
    footer = []
    for engine in engines:
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = register_piecewise(pair.fixed, pair.moving, guidance, bones, engine=engine)
        except (EngineError, InputError) as error:
            lines.append(f"| {engine} | failed: {str(error).splitlines()[0][:120]} | | | | |")
            continue
        seconds = time.perf_counter() - started
        for name in bones:
            cells = [errors(name, t) for t in (centre, result.global_result.transform, result.field,
                                                result.segments[name].transform)]  # fmt: skip
            shown = [f"{c.mean():.2f} / {c.max():.2f}" for c in cells]
            own = shown[3] if result.segments[name].kept else f"{shown[3]} (global kept)"
            lines.append(f"| {engine} | {name} | {shown[0]} | {shown[1]} | {shown[2]} | {own} |")
        global_seconds = result.global_result.seconds
        footer.append(
            f"- {engine}: field minimum Jacobian determinant {result.minimum_jacobian:.3f} (checked again on a 4 mm "
            f"grid: {minimum_jacobian(result.field, pair.fixed):.3f}); {seconds:.0f} s in all (global "
            f"{global_seconds:.0f} s, bones {sum(s.seconds for s in result.segments.values()):.0f} s); global kept "
            f"{result.global_result.provenance.kept}; {len(result.warnings)} warnings"
        )
        footer += [f"  - warning: {warning[:200]}" for warning in result.warnings]
        print(f"  (pelvis {engine}: {seconds:.0f} s)", file=sys.stderr, flush=True)
    return lines + [""] + footer

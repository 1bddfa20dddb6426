"""How soon a Register click in a Slicer session starts computing, first and second time (issue 12's target:
the second within 1 s).

It calls what the MultimodalRegistration module's Apply button calls: ``register_nodes`` on two volume nodes
of a real MRML scene (slicer-core), not blocking, with the session's warm worker slot (``WarmSlot``), which
the module's Logic keeps. Nothing of Qt runs: the click's own cost in Slicer (reading the GUI into the
parameter node) is not measured. Case: the head phantom at 256 x 256 x 180, 1 mm (CT fixed, MR moving),
rigid elastix, ``init auto``. Times from the call (the click) to:

- returned: the call returns, the volumes written for the worker (the GUI is free again);
- computing: the worker's first progress line (it has read the images and started the registration);
- engine: the engine's first stage (elastix has started iterating);
- done: the result is in the scene.

Usage: python Testing/Benchmarks/bench_click.py [--clicks 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import bench_paths  # first: the library and the test-data makers on sys.path

ROOT = bench_paths.ROOT


def click(scene, fixed, moving, slot) -> dict[str, float]:
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    marks: dict[str, float] = {}
    started = time.perf_counter()

    def on_progress(fraction: float, stage: str) -> None:
        now = time.perf_counter() - started
        marks.setdefault("computing", now)
        if stage.startswith("elastix"):
            marks.setdefault("engine", now)

    warm = slot.take()
    registration = register_nodes(
        registration_parameters(fixedVolume=fixed, movingVolume=moving), on_progress, blocking=False, warm=warm
    )
    marks["returned"] = time.perf_counter() - started
    registration.wait()
    marks["done"] = time.perf_counter() - started
    marks["warm"] = warm is not None and warm.jobs > 1
    slot.refill()  # as the module does after every job
    scene.RemoveNode(registration.output_transform_node)
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=3)
    args = parser.parse_args()
    try:
        import slicer
    except ImportError:
        print("skipped: slicer-core is not installed (pip install -r Testing/requirements.txt)")
        return 0
    from MultimodalRegistrationLib.core.phantom import make_phantom_pair
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.process.warm_worker import WarmSlot

    pair = make_phantom_pair(ct_spacing=(1.0, 1.0, 1.0), mr_spacing=(1.0, 1.0, 1.0), field_of_view_mm=(256, 256, 180))
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    fixed = mrml.volume_node_from_image(scene, pair.fixed, "CT")
    moving = mrml.volume_node_from_image(scene, pair.moving, "MR")
    slot = WarmSlot()  # the module's: elastix, started at the first click
    rows = []
    try:
        for number in range(1, args.clicks + 1):
            rows.append((number, click(scene, fixed, moving, slot)))
    finally:
        slot.stop()
    print("Register clicks in one session (slicer-core scene, 256 x 256 x 180 at 1 mm, rigid elastix):")
    print()
    print("| click | worker | returned s | computing s | engine s | done s |")
    print("|---|---|---|---|---|---|")
    for number, marks in rows:
        worker = "warm" if marks["warm"] else "started by the click"
        print(
            f"| {number} | {worker} | {marks['returned']:.2f} | {marks.get('computing', float('nan')):.2f} "
            f"| {marks.get('engine', float('nan')):.2f} | {marks['done']:.2f} |"
        )
    print()
    print("Target (issue 12): a second click starts computing within 1 s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

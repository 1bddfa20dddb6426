"""`mmreg stack --reference`: only evenly spaced sections (the anchors) are registered to the reference volume.

The anchor rule and picker on section reports, and on pure geometry (no images: fast) that a subset of reference
pairs removes the bend that biased neighbour pairs leave as well as a reference pair for every section does.
"""

from __future__ import annotations

import numpy as np
import stack_data
from MultimodalRegistrationLib.stack.align import solve_rejecting
from MultimodalRegistrationLib.stack.anchors import AnchorPicker, anchor_every
from MultimodalRegistrationLib.stack.pairs import PairResult
from MultimodalRegistrationLib.stack.sections import SectionReport

CENTER = np.array([100.0, 115.0])


def test_anchors_are_4_mm_apart_and_at_least_6_over_the_stack():
    assert anchor_every(30, 2.0) == 2  # 4 mm
    assert anchor_every(300, 0.5) == 8 and anchor_every(30, 1.0) == 4
    assert anchor_every(300, 0.05) == 59 and anchor_every(30, 0.5) == 5  # 8 would leave 4 anchors: at least 6
    assert anchor_every(8, 2.0) == 1 and anchor_every(2, 0.05) == 1


def _pick(every: int, reports: list[SectionReport], no_plane=()) -> list[int]:
    """The reading loop's use of the picker: candidates in order, then the last usable section."""
    picker = AnchorPicker(every)
    for report in reports:
        if picker.candidate(report) and report.section not in no_plane:
            picker.taken(report.section)
    if reports[-1].section not in picker.anchors and picker.last(reports[-1]):
        picker.taken(reports[-1].section)
    return picker.anchors


def test_the_picker_counts_positions_skips_fragments_and_planes_without_tissue():
    reports = [SectionReport(k, f"s{k}.png", tissue_mm2=1000.0) for k in range(20) if k != 5]  # 5: missing
    reports[11].tissue_mm2 = 200.0  # section 12: a fragment
    assert _pick(4, reports) == [0, 4, 8, 13, 17, 19]  # the fragment is passed over; 19 is 2 = 4 / 2 after 17
    assert _pick(4, [r for r in reports if r.section != 12]) == [0, 4, 8, 13, 17, 19]
    reports[11].tissue_mm2 = 1000.0
    assert _pick(4, reports) == [0, 4, 8, 12, 16, 19]
    assert _pick(4, reports, no_plane={4}) == [0, 6, 10, 14, 18]  # 19 is 1 < 4 / 2 after 18
    reports[11].tissue_mm2 = 200.0
    assert _pick(1, reports) == [k for k in range(20) if k != 5]  # 1: every usable section, fragments too


def test_a_subset_of_reference_pairs_removes_the_bend_like_a_pair_for_every_section():
    """Pure geometry: 60 sections 2 mm apart; every neighbour pair biased alike (0.05 deg and 0.2 mm), so neighbours
    alone bend the stack; each section's pair to the reference is unbiased but noisy (0.25 deg, 0.4 mm: about the
    0.45 mm median error the reference pairs of bench_stack.py have). Solved as
    ``align_sections`` solves (pair weights, rejection) with every reference pair, and with the anchors' only
    (each weighing as the two sections it stands for)."""
    rng = np.random.default_rng(3)
    count = 60
    truth = np.stack([stack_data.rigid(rng.uniform(-12, 12), rng.uniform(-8, 8, 2), CENTER) for _ in range(count)])
    reference = stack_data.rigid(7.0, (12.0, -9.0), CENTER)  # x_ref = reference @ x_out
    bias = stack_data.rigid(0.05, (0.2, 0.0), CENTER)
    neighbours = [PairResult(i, j, bias @ truth[j] @ np.linalg.inv(truth[i]), 0.9)
                  for i in range(count) for j in range(i + 1, min(count, i + 4))]  # fmt: skip
    to_reference = []
    for k in range(count):
        noise = stack_data.rigid(rng.normal(0, 0.25), rng.normal(0, 0.4, 2), CENTER)
        to_reference.append(PairResult(count, k, noise @ truth[k] @ np.linalg.inv(reference), 0.3))
    reports = [SectionReport(k, f"s{k}.png", tissue_mm2=1000.0) for k in range(count)]
    anchors = _pick(anchor_every(count, 2.0), reports)
    assert anchors == list(range(0, 59, 2)) + [59]
    points = [np.array([[60.0, 60.0], [140.0, 170.0], [100.0, 115.0], [150.0, 80.0]])] * count
    errors = {}
    for name, pairs, every in (("neighbours", neighbours, 1), ("every section", neighbours + to_reference, 1),
                               ("anchors", neighbours + [to_reference[k] for k in anchors], 2)):  # fmt: skip
        poses, _ = solve_rejecting(count, pairs, reports, CENTER, affine=False, reference_every=every)
        errors[name] = stack_data.residuals_after_global_fit(poses[:count], truth, points, range(count))
        print(f"{name}: median {np.median(errors[name]):.2f} mm, worst {errors[name].max():.2f} mm")
    assert errors["neighbours"].max() > 2.5  # the bend
    assert errors["anchors"].max() < 0.5 * errors["neighbours"].max() and np.median(errors["anchors"]) < 0.5
    assert errors["anchors"].max() < 1.5 * errors["every section"].max()

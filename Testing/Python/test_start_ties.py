"""init auto runs the engine from the any-pose start and from the image centres and keeps the higher
mutual information; when the two end within the metric's tolerance, the any-pose start's result wins.

Measured on make bench's cohort (20 phantom pairs at 256 x 256 x 180): at 180 degrees the centre start
ended on the head's 180-degree twin at 0.7686 nats, the any-pose start on the truth at 0.7673 (0.05 mm
off); the higher metric chose the twin."""

from types import SimpleNamespace

from MultimodalRegistrationLib.core.phantom import rigid_transform
from MultimodalRegistrationLib.registration.rules.keep import KEEP_TOLERANCE_NATS
from MultimodalRegistrationLib.registration.runs import pick_run


def run(name: str, metric: float, guided_rank: float | None = None, turned_deg: float = 0.0) -> tuple:
    rank = (metric,) if guided_rank is None else (guided_rank, metric)
    output = SimpleNamespace(transform=rigid_transform(turned_deg, (0, 0, 1), (0, 0, 0)))
    return (rank, metric, name, f"{name} start", output)


def test_a_tie_within_the_tolerance_goes_to_the_any_pose_start_with_a_warning():
    warnings: list[str] = []
    chosen = pick_run([run("any-pose", 0.7673), run("centre", 0.7686, turned_deg=180.0)], warnings)
    assert chosen[2] == "any-pose" and chosen[1] == 0.7673
    assert len(warnings) == 1
    assert "(0.7686 and 0.7673)" in warnings[0] and "--stability" in warnings[0]
    # Two starts that led to one pose are no tie: the any-pose run, and no warning (the headers' start often
    # joins the search's result).
    warnings.clear()
    chosen = pick_run([run("any-pose", 0.7673), run("header", 0.7674)], warnings)
    assert chosen[2] == "any-pose" and warnings == []


def test_a_clear_win_beyond_the_tolerance_goes_to_the_higher_metric():
    warnings: list[str] = []
    margin = KEEP_TOLERANCE_NATS + 0.001
    chosen = pick_run([run("any-pose", 0.70), run("centre", 0.70 + margin)], warnings)
    assert chosen[2] == "centre" and warnings == []
    chosen = pick_run([run("any-pose", 0.71), run("centre", 0.70)], warnings)
    assert chosen[2] == "any-pose" and warnings == []


def test_guided_runs_and_single_runs_keep_their_own_ranking():
    warnings: list[str] = []
    # Guided runs rank by the guidance's agreement first: a tie in the metric does not move them.
    chosen = pick_run([run("any-pose", 0.70, guided_rank=0.80), run("centre", 0.701, guided_rank=0.90)], warnings)
    assert chosen[2] == "centre"
    assert pick_run([run("initial", 0.5)], warnings)[2] == "initial"
    assert pick_run([], warnings) is None
    assert warnings == []

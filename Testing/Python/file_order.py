"""The order in which make test hands test files to its two workers: the longest first, so that the run does not
end on one worker with a long file while the other waits (xdist's own order, most tests first, left files of one or
two long tests to the end). Run with ``--no-loadscope-reorder``, as the Makefile does, for xdist to keep it.

SECONDS: each file's test time in make test (s, from session 49's full run with ``--durations=0`` on a 2-core
machine, the extended tier left out). Files not listed follow, in their own order. Out-of-date figures change only
the order, never what runs."""

from __future__ import annotations

SECONDS = {
    "test_fault_injection.py": 114, "test_engines.py": 112, "test_nodes.py": 89, "test_anypose.py": 83,
    "test_stack.py": 64, "test_register_2d.py": 58, "test_qa.py": 54, "test_scale_start.py": 52,
    "test_guided_registration.py": 51, "test_piecewise.py": 46, "test_qa_nodes.py": 46, "test_cohort.py": 44,
    "test_warm_worker.py": 42, "test_signals.py": 36, "test_prep.py": 33, "test_cli.py": 32, "test_inside_size.py": 26,
    "test_guided_engines.py": 25, "test_register_2d_nodes.py": 23, "test_stack_nodes.py": 22, "test_mask_start.py": 22,
    "test_qa_checks.py": 21, "test_prep_nodes.py": 20, "test_command.py": 20, "test_size_check.py": 19,
    "test_worker.py": 19, "test_guided_deformable.py": 16, "test_guided_start.py": 16, "test_qa_field_of_view.py": 15,
    "test_other_way.py": 15, "test_placed_first.py": 40,  # session 50's new file, measured alone
    "test_axis_spacing.py": 20,  # session 51's, measured beside other work
}


def longest_first(items: list, file_of) -> list:
    """``items`` with the files SECONDS lists first, longest first; a file's items keep their order."""
    rank = {name: index for index, name in enumerate(sorted(SECONDS, key=lambda name: -SECONDS[name]))}
    return sorted(items, key=lambda item: rank.get(file_of(item), len(rank)))  # stable: the rest keep their order

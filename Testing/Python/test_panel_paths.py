"""One path from each panel to its job (issue 25 item 1): the button hands the parameter node, and nothing
else, to the module's Logic; the Logic hands it to one function of the nodes layer; no function on the way
takes more than 8 parameters.

Slicer cannot run here, so like test_module_contract this reads the module files (ast); the nodes functions
are inspected as they are.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_PARAMETERS = 8

# module file, widget slot, Logic method, the Logic's parameters besides self, the nodes function it calls
CLICKS = [
    ("MultimodalRegistration/MultimodalRegistration.py", "onApplyButton", "register",
     ["parameterNode", "onProgress", "onDone"], "register_nodes"),
    ("RegistrationPrep/RegistrationPrep.py", "onApplyButton", "prepare", ["parameterNode", "onProgress", "onDone"],
     "prepare_nodes"),
    ("RegistrationPrep/RegistrationPrep.py", "onPreviewButton", "previewCommonRegion", ["parameterNode"],
     "preview_common_region"),
    ("FiducialPrealign/FiducialPrealign.py", "refit", "fit", ["parameterNode"], "fit_panel"),
    ("RegistrationQA/MultimodalRegistrationQA.py", "onComputeButton", "compute", ["parameterNode", "onProgress"],
     "assess_nodes"),
]  # fmt: skip


def _functions(path: str) -> dict[tuple[str, str], ast.FunctionDef]:
    """(class name, function name) -> its definition, for every method of every class in the file."""
    tree = ast.parse((ROOT / path).read_text())
    return {(cls.name, item.name): item for cls in tree.body if isinstance(cls, ast.ClassDef)
            for item in cls.body if isinstance(item, ast.FunctionDef)}  # fmt: skip


def _calls(function: ast.FunctionDef, name: str) -> list[ast.Call]:
    called = (n for n in ast.walk(function) if isinstance(n, ast.Call))
    return [n for n in called if name in (getattr(n.func, "attr", None), getattr(n.func, "id", None))]


@pytest.mark.parametrize("path, slot, method, parameters, nodes_function", CLICKS, ids=[c[2] for c in CLICKS])
def test_the_button_hands_the_parameter_node_to_the_logic_and_the_logic_to_the_nodes_layer(
    path, slot, method, parameters, nodes_function
):
    functions = _functions(path)
    (widget_slot,) = [f for (cls, name), f in functions.items() if cls.endswith("Widget") and name == slot]
    (call,) = _calls(widget_slot, method)
    assert [ast.unparse(a) for a in call.args] == ["node"], f"{slot} passes {ast.unparse(call)}"
    assert {k.arg for k in call.keywords} <= {"onProgress", "onDone"}
    (logic,) = [f for (cls, name), f in functions.items() if cls.endswith("Logic") and name == method]
    assert [a.arg for a in logic.args.args if a.arg != "self"] == parameters
    (forwarded,) = _calls(logic, nodes_function)
    assert ast.unparse(forwarded.args[0]) == "parameterNode"


def test_no_function_from_the_logic_to_the_job_takes_more_than_8_parameters():
    from MultimodalRegistrationLib.landmarks.fit import fit_landmarks
    from MultimodalRegistrationLib.nodes import landmarks, panel, prep, qa, registration, registration_inputs
    from MultimodalRegistrationLib.process.stability import assess_with_restarts, stability_check
    from MultimodalRegistrationLib.qa.assess import assess_registration

    path = [registration.register_nodes, registration.NodeRegistration.__init__, panel.job_from_panel,
            panel.panel_value, *registration_inputs.WRITERS.values(), prep.prepare_nodes, prep.prep_job,
            prep.preview_common_region, prep.common_region_roi, prep.NodePrep.__init__, *prep.WRITERS.values(),
            prep.options_of, landmarks.fit_panel, landmarks.fit_markups, fit_landmarks, qa.assess_nodes,
            qa.gather_inputs, qa.assess_inputs, assess_with_restarts, stability_check, assess_registration]  # fmt: skip
    counts = {f.__qualname__: len(inspect.signature(f).parameters) for f in path}
    assert max(counts.values()) <= MAX_PARAMETERS, {name: n for name, n in counts.items() if n > MAX_PARAMETERS}


def test_a_logic_that_takes_the_nodes_one_by_one_is_reported(tmp_path):
    """The check above fails on the old RegistrationPrep click (the nodes and options passed one by one)."""
    old = """
class RegistrationPrepWidget:
    def onApplyButton(self):
        node = self._parameterNode
        self._prep = self.logic.prepare(node.fixedVolume, node.movingVolume, options, onDone=self._onDone)
"""
    widget_slot = ast.parse(old).body[0].body[0]
    (call,) = _calls(widget_slot, "prepare")
    assert [ast.unparse(a) for a in call.args] != ["node"]


def _panel_reads() -> list:
    """(module file, the parameter-node names its job building reads, the module's fields it does not read,
    the names only a script gives) per panel; the registration panel's is in test_guidance_gui_contract."""
    from MultimodalRegistrationLib.nodes.panel import panel_fields, panel_names
    from MultimodalRegistrationLib.nodes.prep import OUTPUT_NAMES, output_attribute
    from MultimodalRegistrationLib.nodes.qa import TABLE
    from MultimodalRegistrationLib.nodes.stack import REFERENCE, StackParameters
    from MultimodalRegistrationLib.prep.options import PrepOptions
    from MultimodalRegistrationLib.process.jobs import PrealignJob, PrepJob, QAJob

    def read(*record_classes) -> set[str]:
        names = set()
        for field in (f for record_class in record_classes for f in panel_fields(record_class)):
            names |= set(panel_names(field)) | ({field.metadata["switch"]} if field.metadata.get("switch") else set())
        return names

    outputs = {output_attribute(name) for name in OUTPUT_NAMES}
    return [
        # the preview's ROI is the Preview button's output; a script may give the prep options whole
        ("RegistrationPrep/RegistrationPrep.py", read(PrepJob, PrepOptions, StackParameters) | outputs | {REFERENCE}, {"commonRegion"}, {"prep"}),
        ("FiducialPrealign/FiducialPrealign.py", read(PrealignJob), {"autoUpdate", "listsGuessed"}, set()),  # the live preview's box; the lists guessed once
        ("RegistrationQA/MultimodalRegistrationQA.py", read(QAJob) | {TABLE}, set(), set()),
    ]  # fmt: skip


@pytest.mark.parametrize("index", range(3))
def test_every_parameter_node_field_reaches_the_job_through_its_fields(index):
    """The job builder reads a parameter node by the job fields' ``panel`` names (and the prep options', and
    their switch boxes): each field of the module's parameter node is one of them, and each of them a field of
    the parameter node (or named here as script-only)."""
    path, read, not_read, script_only = _panel_reads()[index]
    classes = [n for n in ast.parse((ROOT / path).read_text()).body if isinstance(n, ast.ClassDef)]
    wrapper = next(n for n in classes if n.name.endswith("ParameterNode"))
    module_fields = {item.target.id for item in wrapper.body if isinstance(item, ast.AnnAssign)}
    assert module_fields - not_read == read - script_only, (path, module_fields ^ (read - script_only))

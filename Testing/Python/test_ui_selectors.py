"""The node selectors of the modules' .ui files (read as XML: Slicer cannot run here, see test_module_contract).

A qMRMLNodeComboBox with ``showChildNodeTypes`` false lists only nodes whose class is exactly one of its
``nodeTypes`` (qMRMLSortFilterProxyModel::filterAcceptsNode). A transform selector for vtkMRMLTransformNode
would then hide every vtkMRMLLinearTransformNode, the class of each linear result (mrml.transform_to_node) and
of the transforms made in the Transforms module.
"""

from xml.etree import ElementTree

import pytest
from data_paths import ROOT

UI_FILES = sorted(ROOT.glob("*/Resources/UI/*.ui"))
TRANSFORM_TYPES = {"vtkMRMLTransformNode"}  # base classes whose subclasses a selector must show


def selectors(path):
    for widget in ElementTree.parse(path).iter("widget"):
        if widget.get("class") == "qMRMLNodeComboBox":
            types = [s.text for s in widget.findall("property[@name='nodeTypes']/stringlist/string")]
            shows = widget.findtext("property[@name='showChildNodeTypes']/bool", "true") == "true"
            none = widget.findtext("property[@name='noneEnabled']/bool", "false") == "true"
            yield widget.get("name"), types, shows, none


def hidden_types(path, name: str) -> list[str]:
    widget = next(w for w in ElementTree.parse(path).iter("widget") if w.get("name") == name)
    return [s.text for s in widget.findall("property[@name='hideChildNodeTypes']/stringlist/string")]


def test_there_are_transform_selectors_to_check():
    found = [name for path in UI_FILES for name, types, _, _ in selectors(path) if TRANSFORM_TYPES & set(types)]
    assert len(found) >= 4, found


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_transform_selectors_show_linear_transform_nodes(path):
    hidden = [name for name, types, shows, _ in selectors(path) if TRANSFORM_TYPES & set(types) and not shows]
    assert hidden == [], f"{path.name}: {hidden} hide vtkMRMLLinearTransformNode (set showChildNodeTypes true)"


def test_the_prealign_point_lists_are_not_picked_by_the_combo_box():
    """With noneEnabled false a combo box selects the first list of the scene by itself: creation order would
    decide which list is fixed (F10)."""
    path = ROOT / "FiducialPrealign" / "Resources" / "UI" / "FiducialPrealign.ui"
    none = {name: none for name, _, _, none in selectors(path)}
    assert none["fixedPointsSelector"] and none["movingPointsSelector"]


def test_the_registration_volumes_can_be_rgb_slides_but_not_labelmaps():
    """Slicer loads a colour PNG or TIFF as a vtkMRMLVectorVolumeNode, a subclass of vtkMRMLScalarVolumeNode: with
    showChildNodeTypes false the fixed and moving selectors hid it, so the 2D registration of a stained slide
    (docs/microscopy.md) could not be chosen in the panel. Labelmaps, also a subclass, stay hidden."""
    path = ROOT / "MultimodalRegistration" / "Resources" / "UI" / "MultimodalRegistration.ui"
    found = {name: (types, shows) for name, types, shows, _ in selectors(path)}
    for name in ("fixedVolumeSelector", "movingVolumeSelector"):
        assert found[name] == (["vtkMRMLScalarVolumeNode"], True), (name, found[name])
        assert "vtkMRMLLabelMapVolumeNode" in hidden_types(path, name), name

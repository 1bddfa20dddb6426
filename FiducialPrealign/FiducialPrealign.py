"""FiducialPrealign: a fixed -> moving transform from two point lists, refitted as the points move.

A thin module: the Widget binds the GUI to the parameter node and refits when points change; the
work is done by MultimodalRegistrationLib.nodes.landmarks.fit_markups.
"""

import logging
from typing import Annotated, Optional

import qt
import slicer
import vtk
from MultimodalRegistrationLib.core.choices import LANDMARK_TRANSFORMS as KINDS
from MultimodalRegistrationLib.core.errors import InputError

# MultimodalRegistrationLib is installed with the MultimodalRegistration module (a dependency of this one,
# so it loads first): its folder is a Slicer module path, hence importable, in a build and from a source tree.
from MultimodalRegistrationLib.nodes import landmarks as landmark_nodes
from MultimodalRegistrationLib.nodes import mrml
from MultimodalRegistrationLib.nodes.panels import CITATIONS_HTML, DOCS_URL
from MultimodalRegistrationLib.nodes.roles import guess_roles
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLTableNode,
    vtkMRMLTransformNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

POINT_EVENTS = (
    slicer.vtkMRMLMarkupsNode.PointModifiedEvent,  # a point moved (also while it is dragged)
    slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,  # a point was placed
    slicer.vtkMRMLMarkupsNode.PointPositionUndefinedEvent,
    slicer.vtkMRMLMarkupsNode.PointAddedEvent,
    slicer.vtkMRMLMarkupsNode.PointRemovedEvent,
    slicer.vtkMRMLTransformableNode.TransformModifiedEvent,  # a parent transform moved the points
)
LOG = logging.getLogger(__name__)
REFIT_DELAY_MS = 150  # coalesces the stream of events while a point is dragged
PREVIEW_MIN_PAIRS = 3  # the live preview refits once both lists hold this many placed points


class FiducialPrealign(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Fiducial Prealign")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Registration")]
        self.parent.dependencies = ["MultimodalRegistration"]
        self.parent.contributors = ["MultimodalRegistration developers"]
        self.parent.helpText = _(
            "Fit a translation, rigid, similarity, affine or thin-plate-spline transform to two point lists "
            "(the same landmarks on the fixed and on the moving image, paired by label, else by order). The "
            "result is a transform node (fixed to moving, TransformFromParent): put the moving volume under it, "
            "or send it to Multimodal Registration as the initial transform. The table lists each pair's error "
            "and leave-one-out error; trust the leave-one-out error, not FRE. The pair to check first is marked "
            "and selected in the table; the point lists themselves are never changed. Place and move points in "
            "the panel's point tables; with 'Update automatically' the output transform follows the points (a live "
            "preview) once you have chosen both lists and each holds 3 placed points. For a thin-plate spline, "
            "choose the fixed volume as the reference volume. "
            'See <a href="{docs}{page}">{title}</a> in the documentation and the other pages linked '
            'there (<a href="{docs}">all pages</a>).'
        ).format(docs=DOCS_URL, page="prealign.md", title=_("Landmark prealignment"))
        self.parent.acknowledgementText = (
            _(
                "Part of the MultimodalRegistration extension (Apache-2.0). If you use it, please cite the "
                "engines and Slicer:"
            )
            + CITATIONS_HTML
        )


@parameterNodeWrapper
class FiducialPrealignParameterNode:
    fixedPoints: Optional[vtkMRMLMarkupsFiducialNode]  # chosen by the user: never by creation order
    movingPoints: Optional[vtkMRMLMarkupsFiducialNode]
    transformType: Annotated[str, Choice(list(KINDS))] = "rigid"
    outputTransform: Optional[vtkMRMLTransformNode]
    referenceVolume: Optional[vtkMRMLScalarVolumeNode]
    residualTable: Optional[vtkMRMLTableNode]
    autoUpdate: bool = True
    listsGuessed: bool = False  # the lists were preselected by name once: a list the user cleared stays cleared


class FiducialPrealignWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedPoints = []
        self._fitting = False
        self._guessedLists = None  # (fixed, moving) picked by their names, until the user confirms with Fit
        self._refitTimer = qt.QTimer()
        self._refitTimer.setSingleShot(True)
        self._refitTimer.setInterval(REFIT_DELAY_MS)
        self._refitTimer.timeout.connect(self.previewFit)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/FiducialPrealign.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = FiducialPrealignLogic()
        self.ui.fitButton.clicked.connect(lambda: self.refit(clicked=True))
        self.ui.sendButton.clicked.connect(self.onSendButton)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._refitTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        node = self._parameterNode
        if not node.fixedPoints and not node.movingPoints and not node.listsGuessed:
            node.listsGuessed = True
            # Only names that say which list is which: swapped roles would give the inverse transform, with the
            # same residuals. Even then the preview waits until the user presses Fit (see previewFit).
            lists = slicer.util.getNodesByClass("vtkMRMLMarkupsFiducialNode")
            fixed, moving = guess_roles(lists)
            if fixed is not None:
                self._guessedLists = (fixed, moving)
                node.fixedPoints, node.movingPoints = fixed, moving

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterChanged)
        self._refitTimer.stop()
        self._parameterNode = inputParameterNode
        self._observePoints()
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterChanged)
            self._onParameterChanged()

    def _observePoints(self) -> None:
        for node in self._observedPoints:
            for event in POINT_EVENTS:
                self.removeObserver(node, event, self._onPointsChanged)
        node = self._parameterNode
        self._observedPoints = [p for p in (node.fixedPoints, node.movingPoints) if p] if node else []
        for points in self._observedPoints:
            for event in POINT_EVENTS:
                self.addObserver(points, event, self._onPointsChanged)

    def _onParameterChanged(self, caller=None, event=None) -> None:
        if self._fitting:  # the fit itself stores its output nodes
            return
        self._observePoints()
        node = self._parameterNode
        self.ui.residualTableView.setMRMLTableNode(node.residualTable)
        self.ui.fixedPlaceWidget.setCurrentNode(node.fixedPoints)
        self.ui.movingPlaceWidget.setCurrentNode(node.movingPoints)
        self._updateButtons()
        if node.autoUpdate:
            self._refitTimer.start()

    def _onPointsChanged(self, caller, event) -> None:
        if not self._fitting and self._parameterNode and self._parameterNode.autoUpdate:
            self._refitTimer.start()

    def _updateButtons(self) -> None:
        node = self._parameterNode
        self.ui.fitButton.enabled = bool(node and node.fixedPoints and node.movingPoints)
        self.ui.sendButton.enabled = bool(node and node.outputTransform)

    def previewFit(self) -> None:
        """The live preview (throttled by the single-shot timer): refit, updating the output transform, once
        the user has chosen both lists, each holds at least PREVIEW_MIN_PAIRS placed points and none is still
        being placed. Points marked skipped are not counted; the fit leaves them out or says why not."""
        node = self._parameterNode
        if not (node and node.autoUpdate and node.fixedPoints and node.movingPoints):
            return
        if self._guessedLists == (node.fixedPoints, node.movingPoints):
            self.ui.statusLabel.text = _(
                "'{fixed}' was taken as the fixed and '{moving}' as the moving point list by their names: check "
                "them, then press Fit to start the live preview."
            ).format(fixed=node.fixedPoints.GetName(), moving=node.movingPoints.GetName())
            return
        states = [landmark_nodes.placement(points) for points in (node.fixedPoints, node.movingPoints)]
        if any(placing for _, placing, _ in states):  # a point is being placed: wait for PointPositionDefinedEvent
            return
        counts = [placed for placed, _, _ in states]
        if min(counts) < PREVIEW_MIN_PAIRS:
            skipped = [label for _, _, labels in states for label in labels]
            self.ui.statusLabel.text = _(
                "Place at least {minimum} points in each list for the live preview "
                "(now {fixed} fixed, {moving} moving{skipped})."
            ).format(
                minimum=PREVIEW_MIN_PAIRS,
                fixed=counts[0],
                moving=counts[1],
                skipped=_(", not counting {count} marked skipped").format(count=len(skipped)) if skipped else "",
            )
            return
        self.refit()

    def refit(self, clicked: bool = False) -> None:
        """Fit now; an unexpected failure of a Fit the user ``clicked`` is shown as an error, not only said in the
        status line, which suits the live preview's timer (a helper's GUI review)."""
        node = self._parameterNode
        if not (node and node.fixedPoints and node.movingPoints):
            self.ui.statusLabel.text = _("Select the fixed and the moving point lists.")
            return
        self._fitting = True
        self._guessedLists = None  # a fit the user asked for (or a preview after they chose): roles confirmed
        kept = _(" The output transform still holds the last fit.") if node.outputTransform else ""
        try:
            fit, output, table = self.logic.fit(node)
            node.outputTransform, node.residualTable = output, table
            self.ui.residualTableView.setMRMLTableNode(table)
            worst = landmark_nodes.worst_point(fit)
            if worst is not None:
                self.ui.residualTableView.selectRow(worst)
            self.ui.statusLabel.text = landmark_nodes.status_text(fit)
        except InputError as error:
            self.ui.statusLabel.text = _("Not fitted: {error}").format(error=error) + kept
        except Exception as error:  # a timer slot must not hide a failure behind the last fit's status
            LOG.exception("FiducialPrealign: the fit failed")
            self.ui.statusLabel.text = (
                _("Not fitted, unexpected error ({kind}: {error}).").format(kind=type(error).__name__, error=error)
                + kept
            )
            if clicked:
                slicer.util.errorDisplay(self.ui.statusLabel.text, windowTitle=_("Fit failed"))
        finally:
            self._fitting = False
        self._updateButtons()

    def onSendButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not hand the transform to Multimodal Registration.")):
            self.ui.statusLabel.text = self.logic.sendToRegistration(self._parameterNode.outputTransform)


def placedPointCount(markups) -> Optional[int]:
    """How many points of ``markups`` are placed (points marked skipped do not count); None while one is
    being placed."""
    placed, placing, _ = landmark_nodes.placement(markups)
    return None if placing else placed


class FiducialPrealignLogic(ScriptedLoadableModuleLogic):
    """Node-level landmark fits; the work is done by MultimodalRegistrationLib.nodes.landmarks."""

    def getParameterNode(self):
        return FiducialPrealignParameterNode(super().getParameterNode())

    @staticmethod
    def fit(parameterNode):
        """Fit as the parameter node says (the panel's, or ``prealign_parameters(...)`` from
        MultimodalRegistrationLib.nodes.landmarks in a script). Returns (LandmarkFit, output transform node,
        residual table node); see fit_panel and fit_markups."""
        return landmark_nodes.fit_panel(parameterNode)

    @staticmethod
    def sendToRegistration(transformNode) -> str:
        """Make ``transformNode`` Multimodal Registration's initial transform and open that module."""
        from MultimodalRegistrationLib.nodes.send import send_prealignment

        registration = slicer.util.getModuleLogic("MultimodalRegistration").getParameterNode()
        moving = registration.movingVolume
        if not send_prealignment(registration, transformNode):
            message = _(
                "'{moving}' is under '{transform}': Multimodal Registration starts from that parent transform."
            ).format(moving=moving.GetName(), transform=transformNode.GetName())
        else:
            message = _("'{transform}' is Multimodal Registration's initial transform.").format(
                transform=transformNode.GetName()
            )
        if slicer.util.mainWindow() is not None:  # no module selector without one (Slicer --no-main-window)
            slicer.util.selectModule("MultimodalRegistration")
        return message


class FiducialPrealignTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: four phantom landmarks, one list under a parent transform, fitted rigidly."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_rigid_fit_of_phantom_landmarks()

    def test_rigid_fit_of_phantom_landmarks(self):
        import numpy as np
        from MultimodalRegistrationLib.core.phantom import rigid_transform
        from MultimodalRegistrationLib.core.transforms import lps_ras_points

        self.delayDisplay("Fitting a rigid transform to four phantom landmarks with 1 mm noise")
        truth = rigid_transform(90.0, (1.0, 0.0, 0.0), (60.0, -50.0, 60.0))
        fixed_lps = np.array([[-31.0, -72.0, -22.0], [31.0, -72.0, -22.0], [28.0, -30.0, 22.0], [0.0, 30.0, -90.0]])
        moving_lps = truth.transform_points(fixed_lps) + np.random.default_rng(0).normal(0, 1.0, fixed_lps.shape)
        labels = ["right eye", "left eye", "lesion", "spinal canal"]
        # The fixed list sits under a 10 mm shift: its world positions are what counts.
        parent = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "fixed parent")
        shift = vtk.vtkMatrix4x4()
        shift.SetElement(2, 3, 10.0)
        parent.SetMatrixTransformToParent(shift)
        local_ras = lps_ras_points(fixed_lps) - [0.0, 0.0, 10.0]
        fixed = mrml.markups_from_points(slicer.mrmlScene, local_ras, labels, "fixed")
        fixed.SetAndObserveTransformNodeID(parent.GetID())
        moving = mrml.markups_from_points(slicer.mrmlScene, lps_ras_points(moving_lps), labels, "moving")
        self.assertEqual([placedPointCount(fixed), placedPointCount(moving)], [4, 4])  # the preview would fit
        parameters = landmark_nodes.prealign_parameters(fixedPoints=fixed, movingPoints=moving)
        fit, output, table = FiducialPrealignLogic.fit(parameters)
        self.assertTrue(output.IsLinear())
        self.assertEqual(table.GetNumberOfRows(), 4)
        self.assertLess(np.abs(fit.transform.matrix[:3, :3] - truth.matrix[:3, :3]).max(), 0.05)
        self.assertGreater(fit.loo_rms_mm, fit.fre_rms_mm)
        self.delayDisplay(f"FRE RMS {fit.fre_rms_mm:.2f} mm, leave-one-out RMS {fit.loo_rms_mm:.2f} mm")

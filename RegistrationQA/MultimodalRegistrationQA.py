"""MultimodalRegistrationQA: how good is this registration? Landmark errors (FRE and TRE apart), Dice,
image agreement, Jacobian statistics and a stability check, as a table and an HTML report.

A thin module: the Widget binds the GUI to the parameter node; the work is done by
MultimodalRegistrationLib.nodes.qa. Named MultimodalRegistrationQA (its folder is RegistrationQA)
because an older extension already has a module called RegistrationQA.
"""

import os
import pathlib
import unittest
from typing import Annotated, Optional, Union

import qt
import slicer
import vtk
from MultimodalRegistrationLib.core.errors import EngineError, InputError

# MultimodalRegistrationLib is installed with the MultimodalRegistration module (a dependency of this one,
# so it loads first): its folder is a Slicer module path, hence importable, in a build and from a source tree.
from MultimodalRegistrationLib.nodes import qa as qa_nodes
from MultimodalRegistrationLib.nodes.panel import panel_path
from MultimodalRegistrationLib.nodes.panels import CITATIONS_HTML, DOCS_URL, EngineInstallDeclined
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
    vtkMRMLTransformNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class MultimodalRegistrationQA(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Registration QA")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Registration")]
        self.parent.dependencies = ["MultimodalRegistration"]
        self.parent.contributors = ["MultimodalRegistration developers"]
        self.parent.helpText = _(
            "How good is a registration? Select the result transform (fixed to moving), the fixed and moving "
            "volumes and whatever you have: target landmarks (TRE, the number to trust), the landmarks the "
            "transform was fitted to (FRE, kept apart: it flatters), segmentations of the same structures "
            "(Dice per segment) and, with no ground truth at all, the stability check, which re-runs the "
            "registration from perturbed starts. Compute fills the table and shows the moving volume under the "
            "transform over the fixed one; Export writes an HTML report with checkerboard, difference and "
            "fusion pictures. Moving-side lists and segmentations are read in the moving image's own frame: "
            "keep them under the same transform as the moving volume, or under none. "
            'See <a href="{docs}{page}">{title}</a> in the documentation and the other pages linked '
            'there (<a href="{docs}">all pages</a>).'
        ).format(docs=DOCS_URL, page="qa.md", title=_("Quality assessment"))
        self.parent.acknowledgementText = (
            _(
                "Part of the MultimodalRegistration extension (Apache-2.0). If you use it, please cite the "
                "engines and Slicer:"
            )
            + CITATIONS_HTML
        )


@parameterNodeWrapper
class MultimodalRegistrationQAParameterNode:
    transform: Optional[vtkMRMLTransformNode]
    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    fixedFitPoints: Optional[vtkMRMLMarkupsFiducialNode]
    movingFitPoints: Optional[vtkMRMLMarkupsFiducialNode]
    fixedTargetPoints: Optional[vtkMRMLMarkupsFiducialNode]
    movingTargetPoints: Optional[vtkMRMLMarkupsFiducialNode]
    fixedSegmentation: Optional[Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode]]
    movingSegmentation: Optional[Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode]]
    stability: bool = False
    stabilityRestarts: Annotated[int, WithinRange(1, 20)] = 5
    metricsTable: Optional[vtkMRMLTableNode]
    reportPath: pathlib.Path  # the path widget binds only to a Path; Path("."): none chosen


# The input widgets, disabled while computing.
INPUT_WIDGETS = (
    "transformSelector", "fixedVolumeSelector", "movingVolumeSelector", "fixedTargetPointsSelector",
    "movingTargetPointsSelector", "fixedFitPointsSelector", "movingFitPointsSelector", "fixedSegmentationSelector",
    "movingSegmentationSelector", "stabilityCheckBox", "stabilityRestartsSpinBox", "reportPathLineEdit",
)  # fmt: skip


class MultimodalRegistrationQAWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._computing = False
        self._cancelRequested = False  # Cancel pressed (or the scene closing): the next progress report stops

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MultimodalRegistrationQA.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MultimodalRegistrationQALogic()
        self.ui.computeButton.clicked.connect(self.onComputeButton)
        self.ui.exportButton.clicked.connect(self.onExportButton)
        self.ui.compareButton.clicked.connect(self.onCompareButton)
        self.ui.progressBar.visible = False
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()
        self._cancelRequested = self._computing  # a reload: stop the restarts at their next progress report

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self._cancelRequested = self._computing  # its result would land in a closed scene
        self.setParameterNode(None)
        self.logic.forget()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        node = self._parameterNode
        if node.fixedVolume:
            return
        # Start from what Multimodal Registration just registered, else from volumes whose names say their roles.
        registration = slicer.util.getModuleLogic("MultimodalRegistration").getParameterNode()
        if registration.fixedVolume and registration.movingVolume:
            node.fixedVolume, node.movingVolume = registration.fixedVolume, registration.movingVolume
            if registration.outputTransform and not node.transform:
                node.transform = registration.outputTransform
            return
        from MultimodalRegistrationLib.nodes.roles import guess_volumes

        fixed, moving = guess_volumes(slicer.mrmlScene)  # only by names that say which is which
        if fixed is not None:
            node.fixedVolume, node.movingVolume = fixed, moving

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self.ui.metricsTableView.setMRMLTableNode(self._parameterNode.metricsTable)
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None) -> None:
        node = self._parameterNode
        ready = bool(node and node.fixedVolume and node.movingVolume and node.fixedVolume != node.movingVolume)
        self.ui.computeButton.enabled = ready or self._computing
        self.ui.computeButton.text = _("Cancel") if self._computing else _("Compute")
        self.ui.exportButton.enabled = self.logic.hasResult() and not self._computing
        self.ui.compareButton.enabled = ready and not self._computing  # it rearranges the views being filled
        for name in INPUT_WIDGETS:  # what is being measured stays what the panel shows
            getattr(self.ui, name).enabled = not self._computing
        self.ui.stabilityRestartsSpinBox.enabled = bool(node and node.stability) and not self._computing

    def _onProgress(self, fraction: float, stage: str) -> None:
        self.ui.progressBar.value = int(100 * fraction)
        self.ui.progressBar.format = f"%p% {stage}"
        slicer.app.processEvents()  # the stability restarts run in worker processes: keep the panel alive
        if self._cancelRequested:  # pressed meanwhile: the library stops the restarts and writes nothing
            raise qa_nodes.QACancelled()

    def onComputeButton(self) -> None:
        if self._computing:  # the button reads Cancel (clicked inside _onProgress's processEvents)
            if not self._cancelRequested:
                self._cancelRequested = True
                self.ui.statusLabel.text = _("Cancelling...")
            return
        node = self._parameterNode
        self._computing, self._cancelRequested = True, False
        try:  # no busy cursor over Cancel while restarts run
            self._updateButtons()
            self.ui.progressBar.value = 0
            self.ui.progressBar.visible = True
            self.ui.statusLabel.text = _("Measuring...")
            restarts = qa_nodes.restarts_of(node)
            with slicer.util.tryWithErrorDisplay(_("Registration QA failed."), waitCursor=not restarts):
                try:
                    if restarts:
                        registration = slicer.util.getModuleLogic("MultimodalRegistration")
                        registration.ensureEngine(qa_nodes.restart_engine(node.transform))
                    metrics, table = self.logic.compute(node, onProgress=self._onProgress)
                except qa_nodes.QACancelled:
                    self.ui.statusLabel.text = _("Cancelled: nothing was measured or written.")
                    return
                except (InputError, EngineError, EngineInstallDeclined) as error:  # a declined install: said
                    self.ui.statusLabel.text = _("Not measured: {error}").format(error=error)
                    self.ui.metricsTableView.setMRMLTableNode(None)  # its numbers are the last selection's
                    return
                node.metricsTable = table
                self.ui.metricsTableView.setMRMLTableNode(table)
                self.ui.statusLabel.text = qa_nodes.summary_text(metrics)
                # The nodes measured, not the panel's selection now (it could change while the restarts ran).
                fixed, moving, transform, movingNodes = qa_nodes.measured_nodes(self.logic.inputs)
                self.logic.showAlignment(fixed, moving, transform, movingNodes)
        finally:
            self._cancelRequested = True  # over: a Cancel click still queued is dropped here, not taken for Compute
            slicer.app.processEvents()
            self._computing = False
            self.ui.progressBar.visible = False
            self._updateButtons()

    def onExportButton(self) -> None:
        path = panel_path(self._parameterNode.reportPath)
        if not path:
            self.ui.statusLabel.text = _("Choose where to write the report (an .html file) first.")
            return
        with slicer.util.tryWithErrorDisplay(_("The report could not be written."), waitCursor=True):
            outputs = self.logic.export(path)
            self.ui.statusLabel.text = _("Wrote {report} (pictures in {figures}).").format(
                report=outputs["report"], figures=outputs["figures"]
            )
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(outputs["report"]))

    def onCompareButton(self) -> None:
        node = self._parameterNode
        self.logic.showCompareViews(node.fixedVolume, node.movingVolume)


class MultimodalRegistrationQALogic(ScriptedLoadableModuleLogic):
    """Node-level QA; the work is done by MultimodalRegistrationLib.nodes.qa. Keeps the last inputs and
    metrics so that the exported report shows exactly what was measured."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.forget()

    def getParameterNode(self):
        return MultimodalRegistrationQAParameterNode(super().getParameterNode())

    def forget(self) -> None:
        self.inputs = None
        self.metrics = None

    def hasResult(self) -> bool:
        return self.metrics is not None

    @staticmethod
    def workerPython() -> str:
        return slicer.util.getModuleLogic("MultimodalRegistration").workerPython()

    def compute(self, parameterNode, onProgress=None):
        """Measure as the parameter node says (the panel's, or ``qa_parameters(...)`` from
        MultimodalRegistrationLib.nodes.qa in a script); returns (QA report, table node). See
        qa_nodes.assess_nodes."""
        try:
            metrics, table, inputs = qa_nodes.assess_nodes(
                parameterNode, python=self.workerPython(), progress=onProgress, with_inputs=True
            )
        except qa_nodes.QACancelled:
            raise  # nothing was written: the last result (and its table) stays
        except BaseException:
            self.forget()
            raise
        self.inputs, self.metrics = inputs, metrics
        return metrics, table

    def export(self, reportPath, jsonPath=None) -> dict:
        """Write the HTML report (and JSON) of the last computation."""
        if self.metrics is None:
            raise InputError("nothing measured yet: press Compute first")
        return qa_nodes.export_report(self.metrics, self.inputs, reportPath, jsonPath)

    @staticmethod
    def showAlignment(fixedVolume, movingVolume, transform, movingNodes=()) -> None:
        """Fixed as background, the moving volume under the transform as foreground at 50% opacity."""
        qa_nodes.show_moving_under(transform, movingVolume, movingNodes)
        slicer.util.setSliceViewerLayers(background=fixedVolume, foreground=movingVolume, foregroundOpacity=0.5)

    @staticmethod
    def showCompareViews(fixedVolume, movingVolume) -> None:
        """Compare layout: the fused views on top, fixed and moving in two compare views below, all linked."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:  # no main window (batch, tests)
            return
        slicer.util.setSliceViewerLayers(background=fixedVolume, foreground=movingVolume, foregroundOpacity=0.5)
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutCompareView)
        layoutManager.setLayoutNumberOfCompareViewRows(2)  # the layout holds one compare view unless told
        compare = [name for name in layoutManager.sliceViewNames() if name.startswith("Compare")]
        for index, name in enumerate(sorted(compare)):
            layoutManager.sliceWidget(name).mrmlSliceNode().SetLayoutGrid(1, 1)  # one slice, not a lightbox of six
            composite = layoutManager.sliceWidget(name).mrmlSliceCompositeNode()
            volume = fixedVolume if index % 2 == 0 else movingVolume
            composite.SetBackgroundVolumeID(volume.GetID() if volume else None)
            composite.SetForegroundVolumeID(None)
            composite.SetLinkedControl(True)


class MultimodalRegistrationQATest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: registers the built-in phantom, then measures the result against landmarks."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        try:
            self.test_phantom_registration_qa()
        except unittest.SkipTest as skipped:  # Reload & Test calls runTest itself: a skip is no failure
            self.delayDisplay(f"skipped: {skipped}")

    def test_phantom_registration_qa(self):
        import tempfile

        from MultimodalRegistrationLib.core.phantom import make_phantom_pair
        from MultimodalRegistrationLib.core.transforms import lps_ras_points
        from MultimodalRegistrationLib.nodes import mrml
        from MultimodalRegistrationLib.nodes.registration import registration_parameters

        self.delayDisplay("Registering the built-in CT/MR phantom (25 degrees, 31 mm)")
        pair = make_phantom_pair(ct_spacing=(2.0, 2.0, 3.0), mr_spacing=(2.5, 2.5, 2.5))
        fixed = mrml.volume_node_from_image(slicer.mrmlScene, pair.fixed, "phantom CT")
        moving = mrml.volume_node_from_image(slicer.mrmlScene, pair.moving, "phantom MR")
        registration = slicer.util.getModuleLogic("MultimodalRegistration")
        registration.ensureEngineForSelfTest("elastix")
        result = registration.register(registration_parameters(fixedVolume=fixed, movingVolume=moving))
        result = result.output_transform_node

        self.delayDisplay("Measuring the result at ten target landmarks")
        targets = pair.head_points[:10]
        fixedTargets = mrml.markups_from_points(slicer.mrmlScene, lps_ras_points(targets), name="CT targets")
        movingTargets = mrml.markups_from_points(
            slicer.mrmlScene, lps_ras_points(pair.truth.transform_points(targets)), name="MR targets"
        )
        logic = MultimodalRegistrationQALogic()
        parameters = qa_nodes.qa_parameters(transform=result, fixedVolume=fixed, movingVolume=moving,
                                            fixedTargetPoints=fixedTargets, movingTargetPoints=movingTargets)  # fmt: skip
        metrics, table = logic.compute(parameters)
        tre = metrics.to_dict()["landmarks"]["tre"]
        self.assertEqual(tre["after"]["count"], 10)
        self.assertGreater(tre["before"]["mean_mm"], 20.0)
        self.assertLess(tre["after"]["mean_mm"], 1.0)
        self.assertLess(tre["after"]["max_mm"], 2.0)
        values = qa_nodes.table_values(table)
        self.assertAlmostEqual(float(values["TRE mean after"]), tre["after"]["mean_mm"], places=3)
        self.assertGreater(float(values["MI after"]), float(values["MI before"]))

        logic.showAlignment(fixed, moving, result, [movingTargets])
        self.assertEqual(moving.GetTransformNodeID(), result.GetID())
        with tempfile.TemporaryDirectory() as folder:
            outputs = logic.export(os.path.join(folder, "qa.html"))
            self.assertTrue(os.path.exists(outputs["report"]))
        self.delayDisplay(f"TRE {tre['after']['mean_mm']:.2f} mm mean (was {tre['before']['mean_mm']:.1f} mm)")

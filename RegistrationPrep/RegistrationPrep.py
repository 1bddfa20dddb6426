"""RegistrationPrep: crop to the common region, mask, bias-correct and fix the spacing before registering.

A thin module: the Widget binds the GUI to the parameter node; the work is done by
MultimodalRegistrationLib.nodes.prep, which runs the preparation in a worker process (so the
application stays responsive and Cancel stops it at once) and never modifies the original volumes.
"""

import pathlib
from typing import Annotated, Optional

import qt
import slicer
import vtk

# MultimodalRegistrationLib is installed with the MultimodalRegistration module (a dependency of this one,
# so it loads first): its folder is a Slicer module path, hence importable, in a build and from a source tree.
from MultimodalRegistrationLib.nodes import prep as prep_nodes
from MultimodalRegistrationLib.nodes import stack as stack_nodes
from MultimodalRegistrationLib.nodes.panels import CITATIONS_HTML, DOCS_URL
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLTransformNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# What a preparation locks while it runs: its node selectors and its steps (a step changed mid-run was not the one run).
_LOCKED = ("fixedVolumeSelector", "movingVolumeSelector", "currentTransformSelector", "outputFixedSelector",
           "outputMovingSelector", "outputFixedMaskSelector", "outputMovingMaskSelector", "stepsCollapsibleButton")


class RegistrationPrep(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Registration Prep")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Registration")]
        self.parent.dependencies = ["MultimodalRegistration"]
        self.parent.contributors = ["MultimodalRegistration developers"]
        self.parent.helpText = _(
            "Prepare a fixed and a moving volume for registration: crop both to the region they have in common, "
            "make automatic masks (and leave CT metal out of them), correct MR intensity bias (N4), set a missing "
            "or wrong moving spacing, and downsample very fine images. The results are new volume and labelmap "
            "nodes; the originals are never modified, and crops keep their physical position, so a transform "
            "found on the prepared volumes applies to the originals (with a moving spacing set: to the moving "
            "volume with that spacing; set it on the original too). 'Preview common region' shows the crop as "
            "an ROI. After a preparation, 'Send to MultimodalRegistration' makes the prepared volumes and masks "
            "that module's inputs. "
            'See <a href="{docs}{page}">{title}</a> in the documentation and the other pages linked '
            'there (<a href="{docs}">all pages</a>).'
        ).format(docs=DOCS_URL, page="prep.md", title=_("Preparation"))
        self.parent.acknowledgementText = (
            _(
                "Part of the MultimodalRegistration extension (Apache-2.0). If you use it, please cite the "
                "engines and Slicer:"
            )
            + CITATIONS_HTML
        )


SPACING_RANGE_MM = (0.000001, 100.0)  # the spacing boxes' range in the .ui


@parameterNodeWrapper
class RegistrationPrepParameterNode:
    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    currentTransform: Optional[vtkMRMLTransformNode]
    cropCommon: bool = True
    marginMm: Annotated[float, WithinRange(0.0, 200.0)] = 10.0
    modalityFixed: Annotated[str, Choice(list(prep_nodes.MODALITIES))] = "auto"
    modalityMoving: Annotated[str, Choice(list(prep_nodes.MODALITIES))] = "auto"
    maskFixed: bool = False
    maskMoving: bool = False
    excludeAbove: bool = False
    excludeAboveHu: Annotated[float, WithinRange(-1000.0, 30000.0)] = 2500.0
    n4Fixed: bool = False
    n4Moving: bool = False
    setMovingSpacing: bool = False
    movingSpacingX: Annotated[float, WithinRange(*SPACING_RANGE_MM)] = 1.0
    movingSpacingY: Annotated[float, WithinRange(*SPACING_RANGE_MM)] = 1.0
    movingSpacingZ: Annotated[float, WithinRange(*SPACING_RANGE_MM)] = 1.0
    downsample: bool = False
    downsampleMm: Annotated[float, WithinRange(0.0001, 50.0)] = 1.0
    commonRegion: Optional[vtkMRMLMarkupsROINode]
    outputFixed: Optional[vtkMRMLScalarVolumeNode]
    outputMoving: Optional[vtkMRMLScalarVolumeNode]
    outputFixedMask: Optional[vtkMRMLLabelMapVolumeNode]
    outputMovingMask: Optional[vtkMRMLLabelMapVolumeNode]
    # Stack serial sections (nodes.stack): a folder of 2D sections into a new volume.
    stackSectionsFolder: pathlib.Path
    stackPixelMm: Annotated[float, WithinRange(0.0, 100.0)] = 0.0  # 0: from the files
    stackSectionMm: Annotated[float, WithinRange(0.0001, 100.0)] = 1.0
    stackAffine: bool = False
    stackReference: Optional[vtkMRMLScalarVolumeNode]
    stackReferenceOffsetMm: Annotated[float, WithinRange(0.0, 10000.0)] = 0.0


class RegistrationPrepWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._prep = None
        self._prepParameterNode = None  # where the running preparation's outputs go, even if the GUI moves on
        self._movingVolume = None  # the moving volume the spacing boxes were last started from
        self._stack = None  # the running or last stack of serial sections

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RegistrationPrep.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RegistrationPrepLogic()
        self.ui.applyButton.clicked.connect(self.onApplyButton)
        self.ui.previewButton.clicked.connect(self.onPreviewButton)
        self.ui.sendButton.clicked.connect(self.onSendButton)
        self.ui.stackButton.clicked.connect(self.onStackButton)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()
        if self._prep is not None:
            self._prep.cancel()
        if self._stack is not None:
            self._stack.cancel()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        if self._prep is not None and self._prep.running:
            self._prep.cancel()  # its outputs would land in a closed scene
        if self._stack is not None and self._stack.running:
            self._stack.cancel()
        self._movingVolume = None
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        from MultimodalRegistrationLib.nodes.roles import preselect_volumes

        preselect_volumes(self._parameterNode, slicer.mrmlScene)  # only by names that say which is which

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterChanged)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterChanged)
            self._onParameterChanged()

    def _onParameterChanged(self, caller=None, event=None) -> None:
        node = self._parameterNode
        moving = node.movingVolume if node else None
        if moving is not self._movingVolume:  # the node, not its ID: IDs repeat in the next scene
            self._movingVolume = moving
            if moving is not None and not node.setMovingSpacing:
                # Start the spacing boxes from the volume's own spacing: the usual fix changes one unit. Within the
                # boxes' range, which the parameter node enforces on every write (a 0 or 200 mm spacing raised).
                low, high = SPACING_RANGE_MM
                spacing = [min(max(value, low), high) for value in moving.GetSpacing()]
                node.movingSpacingX, node.movingSpacingY, node.movingSpacingZ = spacing
        self._updateButtons()

    def _updateButtons(self) -> None:
        node = self._parameterNode
        running = self._prep is not None and self._prep.running
        ready = bool(node and node.fixedVolume and node.movingVolume and node.fixedVolume != node.movingVolume)
        self.ui.applyButton.enabled = ready or running
        self.ui.applyButton.text = _("Cancel") if running else _("Prepare")
        self.ui.previewButton.enabled = ready and not running
        self.ui.sendButton.enabled = self._prepared(node) and not running
        for name in _LOCKED:  # a run keeps what it started with
            getattr(self.ui, name).enabled = not running
        stacking = self._stack is not None and self._stack.running
        self.ui.stackReferenceSelector.enabled = not stacking
        self.ui.stackButton.text = _("Cancel") if stacking else _("Stack sections")

    @staticmethod
    def _prepared(node) -> bool:
        """Whether the output selectors hold a preparation of the selected volumes (not just any volumes)."""
        pairs = ((node.outputFixed, node.fixedVolume), (node.outputMoving, node.movingVolume)) if node else ()
        return bool(pairs) and all(
            out and source and prep_nodes.prepared_from(out) == source.GetID() for out, source in pairs
        )

    def onApplyButton(self) -> None:
        if self._prep is not None and self._prep.running:
            self._prep.cancel()
            return
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Preparation could not start."), waitCursor=True):
            self.ui.statusLabel.text = ""
            self._prepParameterNode = node
            self._prep = self.logic.prepare(node, onProgress=self._onProgress, onDone=self._onDone)
            self.ui.progressBar.value = 0
            self.ui.progressBar.format = "%p% " + _("starting")
            self.ui.progressBar.visible = True
            self._prep.follow(qt.QTimer.singleShot)
        self._updateButtons()

    def _onProgress(self, fraction: float, stage: str) -> None:
        self.ui.progressBar.value = int(100 * fraction)
        self.ui.progressBar.format = f"%p% {stage}"

    def _onDone(self, prep) -> None:
        self.ui.progressBar.visible = False
        self.ui.statusLabel.text = prep_nodes.status_text(prep)
        if prep.error is not None:
            if prep.error.kind != "cancelled":
                slicer.util.errorDisplay(str(prep.error), windowTitle=_("Preparation failed"))
        else:
            node = self._prepParameterNode
            node.outputFixed, node.outputMoving = prep.fixed_node, prep.moving_node
            # Masks not made this time are cleared: an older mask would not match the new volumes.
            node.outputFixedMask, node.outputMovingMask = prep.fixed_mask_node, prep.moving_mask_node
            self.logic.showResult(prep)
        self._updateButtons()

    def onPreviewButton(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not show the common region."), waitCursor=True):
            node.commonRegion = self.logic.previewCommonRegion(node)

    def onSendButton(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not hand the prepared volumes to Multimodal Registration.")):
            self.ui.statusLabel.text = self.logic.sendToRegistration(
                node.outputFixed, node.outputMoving, node.outputFixedMask, node.outputMovingMask
            )

    def onStackButton(self) -> None:
        if self._stack is not None and self._stack.running:
            self._stack.cancel()
            return
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Stacking could not start."), waitCursor=True):
            self.ui.stackStatusLabel.text = ""
            self._stack = self.logic.stackSections(
                node, blocking=False, onProgress=self._onStackProgress, onDone=self._onStackDone
            )
            self.ui.stackProgressBar.value = 0
            self.ui.stackProgressBar.visible = True
            self._stack.follow(qt.QTimer.singleShot)
        self._updateButtons()

    def _onStackProgress(self, fraction: float, stage: str) -> None:
        self.ui.stackProgressBar.value = int(100 * fraction)
        self.ui.stackProgressBar.format = f"%p% {stage}"

    def _onStackDone(self, stack) -> None:
        self.ui.stackProgressBar.visible = False
        self.ui.stackStatusLabel.text = stack_nodes.status_text(stack)
        if stack.error is not None and stack.error.kind != "cancelled":
            slicer.util.errorDisplay(str(stack.error), windowTitle=_("Stacking failed"))
        elif stack.volume_node is not None:
            slicer.util.setSliceViewerLayers(background=stack.volume_node, fit=True)
        self._updateButtons()


class RegistrationPrepLogic(ScriptedLoadableModuleLogic):
    """Node-level preparation; the work is done by MultimodalRegistrationLib.nodes.prep."""

    def getParameterNode(self):
        return RegistrationPrepParameterNode(super().getParameterNode())

    @staticmethod
    def prepare(parameterNode, onProgress=None, onDone=None):
        """Prepare as the parameter node says (the panel's, or ``prep_parameters(...)`` from
        MultimodalRegistrationLib.nodes.prep in a script), in a worker process. Without ``onDone`` this blocks
        and returns the finished preparation; with it, it returns at once and the caller follows the run."""
        python = slicer.util.getModuleLogic("MultimodalRegistration").workerPython()
        return prep_nodes.prepare_nodes(parameterNode, onProgress, onDone, blocking=onDone is None, python=python)

    @staticmethod
    def previewCommonRegion(parameterNode):
        """Create or update the ROI node showing what the panel's crop keeps, and centre the slice views on it."""
        roi = prep_nodes.preview_common_region(parameterNode)
        center = [0.0, 0.0, 0.0]
        roi.GetCenter(center)
        slicer.vtkMRMLSliceNode.JumpAllSlices(slicer.mrmlScene, *center, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
        return roi

    @staticmethod
    def showResult(prep) -> None:
        """Prepared fixed as background, prepared moving as foreground at 50%, the fixed mask as labels."""
        slicer.util.setSliceViewerLayers(
            background=prep.fixed_node, foreground=prep.moving_node, label=prep.fixed_mask_node,
            foregroundOpacity=0.5, fit=True,
        )  # fmt: skip

    @staticmethod
    def stackSections(parameterNode, blocking=True, onProgress=None, onDone=None):
        """Stack the panel's serial sections into a new volume node in a worker process (nodes.stack)."""
        python = slicer.util.getModuleLogic("MultimodalRegistration").workerPython()
        return stack_nodes.stack_from_panel(
            parameterNode, scene=slicer.mrmlScene, python=python, blocking=blocking,
            on_progress=onProgress, on_done=onDone,
        )  # fmt: skip

    @staticmethod
    def sendToRegistration(fixedVolume, movingVolume, fixedMask=None, movingMask=None) -> str:
        """Make the prepared volumes and masks Multimodal Registration's inputs and open that module.

        The current transform the preparation used (recorded on the prepared moving volume) becomes the
        initial transform, so the registration starts from the pose the crop assumed; none clears it.
        """
        from MultimodalRegistrationLib.nodes.send import send_prepared

        registration = slicer.util.getModuleLogic("MultimodalRegistration").getParameterNode()
        current = send_prepared(registration, fixedVolume, movingVolume, fixedMask, movingMask)
        masks = [mask.GetName() for mask in (fixedMask, movingMask) if mask is not None]
        names = {"moving": movingVolume.GetName(), "fixed": fixedVolume.GetName(), "masks": ", ".join(masks)}
        if masks:
            message = _("Multimodal Registration will register '{moving}' to '{fixed}' with the masks {masks}")
        else:
            message = _("Multimodal Registration will register '{moving}' to '{fixed}' without masks")
        message = message.format(**names)
        if current is not None:
            message += _(", starting from '{transform}'.").format(transform=current.GetName())
        else:
            message += "."
        if slicer.util.mainWindow() is not None:  # no module selector without one (Slicer --no-main-window)
            slicer.util.selectModule("MultimodalRegistration")
        return message


class RegistrationPrepTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: the phantom CT and half of the phantom MR, cropped, masked and bias-corrected."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_phantom_prep()

    def test_phantom_prep(self):
        import numpy as np
        import SimpleITK as sitk
        from MultimodalRegistrationLib.core.images import corner_points, inside_fraction
        from MultimodalRegistrationLib.core.phantom import make_phantom_pair
        from MultimodalRegistrationLib.nodes import mrml

        self.delayDisplay("Preparing the built-in CT/MR phantom: crop, masks, N4 on the MR")
        pair = make_phantom_pair(ct_spacing=(2.0, 2.0, 3.0), mr_spacing=(2.5, 2.5, 2.5))
        size = np.array(pair.moving.GetSize())
        half = sitk.RegionOfInterest(pair.moving, [int(s) for s in size // 2], [int(i) for i in size // 4])
        fixed = mrml.volume_node_from_image(slicer.mrmlScene, pair.fixed, "phantom CT")
        moving = mrml.volume_node_from_image(slicer.mrmlScene, half, "phantom MR")
        truth = mrml.transform_to_node(slicer.mrmlScene, pair.truth, name="phantom placement")
        moving.SetAndObserveTransformNodeID(truth.GetID())
        originals = {node.GetID(): (node.GetImageData(), node.GetImageData().GetMTime()) for node in (fixed, moving)}

        logic = RegistrationPrepLogic()
        parameters = prep_nodes.prep_parameters(fixedVolume=fixed, movingVolume=moving, cropCommon=True, marginMm=5.0,
                                                maskFixed=True, maskMoving=True, n4Moving=True)  # fmt: skip
        roi = logic.previewCommonRegion(parameters)
        prep = logic.prepare(parameters)

        for node in (fixed, moving):
            self.assertEqual((node.GetImageData(), node.GetImageData().GetMTime()), originals[node.GetID()])
        fixed_out = mrml.image_from_volume_node(prep.fixed_node)
        self.assertLess(fixed_out.GetNumberOfPixels(), 0.6 * pair.fixed.GetNumberOfPixels())
        self.assertEqual(inside_fraction(corner_points(fixed_out), pair.fixed), 1.0)
        self.assertTrue(prep.fixed_mask_node.IsA("vtkMRMLLabelMapVolumeNode"))
        self.assertTrue(prep.moving_mask_node.IsA("vtkMRMLLabelMapVolumeNode"))
        self.assertEqual(prep.moving_node.GetTransformNodeID(), truth.GetID())
        self.assertIn("bias correction (moving)", prep_nodes.status_text(prep))
        # The ROI shows the region the fixed crop keeps (the crop adds at most one voxel per side).
        extent = np.array(fixed_out.GetSize()) * np.array(fixed_out.GetSpacing())
        self.assertTrue(np.all(np.abs(np.array(roi.GetSize()) - extent) <= 2 * np.array(fixed_out.GetSpacing())))

        outputs = (prep.fixed_node, prep.moving_node, prep.fixed_mask_node, prep.moving_mask_node)
        message = logic.sendToRegistration(*outputs)
        registration = slicer.util.getModuleLogic("MultimodalRegistration").getParameterNode()
        self.assertEqual(registration.movingVolume, prep.moving_node)
        self.assertEqual(registration.fixedMask, prep.fixed_mask_node)
        self.assertIsNone(registration.initialTransform)  # the placement is the prepared volume's parent
        self.delayDisplay(f"{prep_nodes.status_text(prep)}\n{message}")

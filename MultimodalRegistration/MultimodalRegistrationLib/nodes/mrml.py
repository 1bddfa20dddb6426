"""The bridge to Slicer's MRML: the only module of the library that touches MRML nodes.

Works inside Slicer and with PyPI's ``slicer-core`` (real MRML without Qt).

Conventions: a library :class:`~.transforms.Transform` (fixed -> moving, LPS) is stored as the node's
*TransformFromParent* (RAS). A moving volume placed under that node is shown aligned with the fixed
volume. Nonlinear transforms cross over through an ITK ``.h5`` file read or written by Slicer's own
``vtkMRMLTransformStorageNode``, so Slicer's converter is the only one for them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from ..core.errors import InputError
from ..core.file_checks import check_image_file
from ..core.file_kind import unreadable_advice
from ..core.files import raise_disk_trouble
from ..core.images import index_to_physical_matrix
from ..core.transforms import F, Transform
from .vtk_transforms import check_itk_can_read, is_under, parent_transforms  # noqa: F401 (mrml.is_under)


def _vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(array[row, column]))
    return matrix


def _array(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


# --------------------------------------------------------------------------- volumes
def image_from_volume_node(node) -> sitk.Image:
    """The volume's voxels and geometry as a SimpleITK image (LPS); parent transforms are not applied."""
    image_data = node.GetImageData() if node is not None else None
    if image_data is None:
        raise InputError(f"volume '{node.GetName() if node else None}' has no image data: load or select a volume")
    components = image_data.GetNumberOfScalarComponents()
    scalars = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars())
    colour = components in (3, 4) and scalars.dtype == np.uint8  # RGB(A): its luminance is registered
    if components != 1 and not colour:
        raise InputError(
            f"volume '{node.GetName()}' has {components} components per voxel: "
            "pick one component first (Vector to Scalar Volume module)"
        )
    dimensions = image_data.GetDimensions()
    shape = dimensions[::-1] + ((components,) if colour else ())
    image = sitk.GetImageFromArray(scalars.reshape(shape).copy(), isVector=colour)
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    ijk_to_lps = F @ _array(ijk_to_ras)  # only the physical side flips: voxel indices have no LPS or RAS
    spacing = np.asarray(node.GetSpacing(), float)
    if not (np.all(spacing > 0) and np.all(np.isfinite(ijk_to_lps))):  # a SimpleITK traceback; NaN origin read as 0
        what = f"a voxel size of {' x '.join(f'{v:g}' for v in spacing)} mm" if np.all(np.isfinite(ijk_to_lps)) else (
            "an origin or direction that is not a number")  # a node sweep
        raise InputError(f"volume '{node.GetName()}' has {what}: set it right in the Volumes module (Volume "
                         "Information), or load the volume again")  # fmt: skip
    image.SetSpacing(tuple(spacing))
    image.SetDirection(tuple((ijk_to_lps[:3, :3] / spacing).ravel()))
    image.SetOrigin(tuple(ijk_to_lps[:3, 3]))
    return image


def ijk_to_ras(node) -> np.ndarray:
    """The volume node's IJK-to-RAS matrix (4x4)."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return _array(matrix)


def set_ijk_to_ras(node, matrix: np.ndarray) -> None:
    node.SetIJKToRASMatrix(_vtk_matrix(matrix))


def update_volume_node_from_image(node, image: sitk.Image):
    """Put ``image`` (LPS) into an existing volume node: voxels and exact geometry."""
    array = sitk.GetArrayFromImage(image)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(image.GetSize())
    components = image.GetNumberOfComponentsPerPixel()  # RGB: a vector volume node's 3 components per voxel
    vtk_array = numpy_support.numpy_to_vtk(
        array.reshape(-1, components) if components > 1 else array.ravel(), deep=True
    )
    image_data.GetPointData().SetScalars(vtk_array)
    node.SetIJKToRASMatrix(_vtk_matrix(F @ index_to_physical_matrix(image)))
    node.SetAndObserveImageData(image_data)
    return node


def volume_node_from_image(scene, image: sitk.Image, name: str = "volume", labelmap: bool = False):
    """Add a new scalar (labelmap; vector for a multi-component image) volume node holding ``image``, displayed."""
    class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    if image.GetNumberOfComponentsPerPixel() > 1:
        class_name = "vtkMRMLVectorVolumeNode"
    node = scene.AddNewNodeByClass(class_name, name)
    update_volume_node_from_image(node, image)
    node.CreateDefaultDisplayNodes()
    return node


def remove_node(scene, node) -> None:
    """Remove a temporary node with the display and storage nodes it made, so that nothing is left behind."""
    helpers = []
    if node.IsA("vtkMRMLDisplayableNode"):
        helpers += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    # Exporting a segmentation to a labelmap makes a color table named after the segmentation.
    tables = scene.GetNodesByClass("vtkMRMLColorTableNode")
    helpers += [tables.GetItemAsObject(i) for i in range(tables.GetNumberOfItems())
                if tables.GetItemAsObject(i).GetName().startswith(f"{node.GetName()}_ColorTable")]  # fmt: skip
    if node.IsA("vtkMRMLStorableNode"):
        helpers += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and scene.IsNodePresent(helper):
            scene.RemoveNode(helper)


def remove_nodes_and_empty_folders(scene, nodes: list) -> None:
    """Remove ``nodes`` (with their display and storage nodes) and the subject-hierarchy folders they leave empty."""
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.ResolveSubjectHierarchy(scene)
    items = [hierarchy.GetItemByDataNode(node) for node in nodes]
    folders = {hierarchy.GetItemParent(item) for item in items if item}
    for node in nodes:
        remove_node(scene, node)
    present = vtk.vtkIdList()  # asking a removed item for its name logs an error: list the items there are
    hierarchy.GetItemChildren(hierarchy.GetSceneItemID(), present, True)
    for item in items:
        if item and present.IsId(item) >= 0:  # without Slicer's plugins the item outlives its node
            hierarchy.RemoveItem(item, False, False)
    for folder in folders:
        if folder and folder != hierarchy.GetSceneItemID() and hierarchy.GetNumberOfItemChildren(folder) == 0:
            hierarchy.RemoveItem(folder)


def in_scene(node) -> bool:
    """Whether ``node`` is still in its scene (not removed, its scene not closed)."""
    scene = node.GetScene()
    return scene is not None and bool(scene.IsNodePresent(node))


def node_ids(scene) -> set[str]:
    """The IDs of every node in the scene now (see :func:`remove_nodes_added_since`)."""
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def remove_nodes_added_since(scene, ids: set[str]) -> None:
    """Remove the nodes a failed step added to the scene since :func:`node_ids` gave ``ids``, with their helpers and
    the folders they leave empty."""
    added = [node for i in range(scene.GetNumberOfNodes()) if (node := scene.GetNthNode(i)).GetID() not in ids]
    data = [node for node in added if not node.IsA("vtkMRMLDisplayNode") and not node.IsA("vtkMRMLStorageNode")
            and not node.IsA("vtkMRMLSubjectHierarchyNode")]  # fmt: skip
    if data:
        remove_nodes_and_empty_folders(scene, data)
    for i in reversed(range(scene.GetNumberOfNodes())):  # also a subject hierarchy that removing them added
        if (node := scene.GetNthNode(i)).GetID() not in ids:
            scene.RemoveNode(node)


def put_in_folder(scene, nodes: list, folder_name: str) -> int:
    """Put ``nodes`` in a new subject-hierarchy folder (Data module) named ``folder_name``; returns its item ID."""
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.ResolveSubjectHierarchy(scene)
    folder = hierarchy.CreateFolderItem(hierarchy.GetSceneItemID(), folder_name)
    for node in nodes:
        item = hierarchy.GetItemByDataNode(node)
        if item:
            hierarchy.SetItemParent(item, folder)
        else:  # without Slicer's subject-hierarchy plugins a new node has no item yet
            hierarchy.CreateItem(folder, node)
    return folder


def mask_image(mask_node, reference_volume_node) -> sitk.Image:
    """A labelmap or segmentation node as a binary mask image (LPS) on the reference volume's grid."""
    if mask_node.IsA("vtkMRMLSegmentationNode"):
        import slicer

        segmentation = mask_node.GetSegmentation()
        segment_ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        if not segment_ids:
            raise InputError(f"segmentation '{mask_node.GetName()}' has no segments: add a segment or drop the mask")
        scene = mask_node.GetScene()
        before = node_ids(scene)  # the export adds a color table named after the segmentation, maybe a display node
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "mask export")
        try:
            if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                mask_node, segment_ids, labelmap, reference_volume_node
            ):
                raise InputError(f"segmentation '{mask_node.GetName()}' could not be exported as a labelmap")
            image = image_from_volume_node(labelmap)
        finally:
            remove_nodes_added_since(scene, before)
    elif mask_node.IsA("vtkMRMLVolumeNode"):
        image = image_from_volume_node(mask_node)
    else:
        raise InputError(f"'{mask_node.GetName()}' is not a labelmap or segmentation: select a mask node")
    return sitk.Cast(image != 0, sitk.sitkUInt8)


def segmentation_grid(node) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """A segmentation node's own voxel grid, (IJK -> RAS 4x4, extent): its stored reference geometry (what it
    was drawn on), else its first segment's binary labelmap (which may be cropped to its contents); None without
    either."""
    import slicer

    segmentation, converter = node.GetSegmentation(), slicer.vtkSegmentationConverter
    text = segmentation.GetConversionParameter(converter.GetReferenceImageGeometryParameterName())
    geometry = slicer.vtkOrientedImageData()
    if not (text and converter.DeserializeImageGeometry(text, geometry)):
        if segmentation.GetNumberOfSegments() == 0:
            return None
        geometry = segmentation.GetNthSegment(0).GetRepresentation(converter.GetBinaryLabelmapRepresentationName())
        if geometry is None:
            return None
    matrix = vtk.vtkMatrix4x4()
    geometry.GetImageToWorldMatrix(matrix)
    return _array(matrix), tuple(geometry.GetExtent())


def read_volume_node(scene, path: str | Path, labelmap: bool = False, name: str | None = None):
    """Read a volume file into a new node with Slicer's own storage node (after the library's file checks)."""
    path = Path(path)
    if path.exists():
        role = "labelmap" if labelmap else "volume"
        check_image_file(path, role)
    class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(class_name, name or Path(path).name.split(".")[0])
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        advice = unreadable_advice(path) if path.exists() else "check the path"
        raise InputError(f"Slicer could not read {path}: {advice}")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def _with_storage_node(scene, storage_class: str, path, operation: str, node, failure: str) -> None:
    """Read or write ``node`` at ``path`` through a temporary storage node of Slicer's own."""
    storage = scene.AddNewNodeByClass(storage_class)
    try:
        storage.SetFileName(str(path))
        if not getattr(storage, operation)(node):
            if operation == "WriteData":  # a full disk, judged while the part written is there (review)
                raise_disk_trouble(RuntimeError(f"could not write {path}"), Path(path).parent)
            raise InputError(failure)
    finally:
        scene.RemoveNode(storage)


def write_volume_node(scene, node, path: str | Path) -> None:
    _with_storage_node(
        scene, "vtkMRMLVolumeArchetypeStorageNode", path, "WriteData", node,
        f"Slicer could not write {path}: check the folder and the file extension",
    )  # fmt: skip


# --------------------------------------------------------------------------- transforms
def _read_transform_file_into(scene, node, path: Path) -> None:
    _with_storage_node(
        scene, "vtkMRMLTransformStorageNode", path, "ReadData", node, f"Slicer could not read the transform file {path}"
    )
    # A field stored after its affine (ANTs' inverse) is held as ToParent, and FromParent is built from it only
    # when first used, with a cubic copy of the grid: build it now.
    for transform in (node.GetTransformToParent(), node.GetTransformFromParent()):
        if transform is not None:
            transform.Update()
            _use_linear_grid_interpolation(transform)


def _use_linear_grid_interpolation(transform) -> None:
    # ITK interpolates displacement fields linearly; Slicer's default is cubic.
    if transform is None:
        return
    if transform.IsA("vtkGridTransform"):
        transform.SetInterpolationModeToLinear()
    if transform.IsA("vtkGeneralTransform"):
        for index in range(transform.GetNumberOfConcatenatedTransforms()):
            _use_linear_grid_interpolation(transform.GetConcatenatedTransform(index))


def clear_transform(node) -> None:
    """Empty a transform node, so that it takes a matrix: a node holding a field or a composite refuses one, only
    logging an error (a composite is held as ToParent as well: clearing FromParent alone left it in place)."""
    node.SetAndObserveTransformToParent(None)
    node.SetAndObserveTransformFromParent(None)


def transform_to_node(scene, transform: Transform, node=None, name: str = "Registration transform"):
    """Store ``transform`` (fixed -> moving, LPS) as a node's TransformFromParent (RAS).

    A linear transform stays a linear matrix; others go through Slicer's transform storage node.
    """
    if node is None:
        class_name = "vtkMRMLLinearTransformNode" if transform.is_linear else "vtkMRMLTransformNode"
        node = scene.AddNewNodeByClass(class_name, name)
    if transform.is_linear:
        if not node.IsLinear():
            clear_transform(node)
        node.SetMatrixTransformFromParent(_vtk_matrix(transform.matrix_ras))
        if not node.IsLinear():  # VTK only logs an error when it refuses a matrix
            raise RuntimeError(f"transform node '{node.GetName()}' kept its nonlinear transform")
        return node
    with tempfile.TemporaryDirectory(prefix="mmreg-node-", ignore_cleanup_errors=True) as folder:
        path = Path(folder) / "transform.h5"
        transform.write(path)
        _read_transform_file_into(scene, node, path)
    return node


def transform_from_node(node) -> Transform:
    """The node's TransformFromParent as a library transform (fixed -> moving, LPS)."""
    if node is None:
        return Transform.identity()
    if node.IsLinear():
        from_parent = vtk.vtkMatrix4x4()
        node.GetMatrixTransformFromParent(from_parent)
        return Transform.from_matrix_ras(_array(from_parent))
    scene = node.GetScene()
    if scene is None:
        raise InputError(f"transform '{node.GetName()}' is not in a scene: add it to the scene first")
    check_itk_can_read(node)
    try:
        return _exported(scene, node)
    except InputError:
        # A nonlinear node inverted in place (Transforms module, or Invert) is written with float ITK classes that
        # SimpleITK cannot read: read what it inverts (its TransformToParent) and invert that (iterative for fields).
        temporary = scene.AddNewNodeByClass("vtkMRMLTransformNode", f"{node.GetName()} (read)")
        try:
            temporary.SetAndObserveTransformFromParent(node.GetTransformToParent())
            return _exported(scene, temporary).inverse()
        finally:
            scene.RemoveNode(temporary)



def _exported(scene, node) -> Transform:
    """The node's TransformFromParent written by Slicer's transform storage node and read back (LPS)."""
    with tempfile.TemporaryDirectory(prefix="mmreg-node-", ignore_cleanup_errors=True) as folder:
        path = Path(folder) / "transform.h5"
        _with_storage_node(
            scene, "vtkMRMLTransformStorageNode", path, "WriteData", node,
            f"Slicer could not export transform '{node.GetName()}' to ITK format",
        )  # fmt: skip
        return Transform.read(path)


def world_transform(node) -> Transform:
    """Where a transformable node's parent chain sends world points: FromWorld (world -> local, LPS).

    For a moving volume under unhardened transforms this is the initial fixed -> moving transform.
    """
    parents = parent_transforms(node)
    if not parents:
        return Transform.identity()
    if parents[0].IsTransformToWorldLinear():
        to_world = vtk.vtkMatrix4x4()
        parents[0].GetMatrixTransformToWorld(to_world)
        return Transform.from_matrix_ras(np.linalg.inv(_array(to_world)))
    # World points pass the outermost parent first: FromWorld = P1.FromParent @ P2.FromParent @ ...
    return Transform.chain([transform_from_node(p) for p in parents])


# --------------------------------------------------------------------------- markups
def points_from_markups(node) -> tuple[np.ndarray, list[str]]:
    """Control points in world RAS (mm), following parent transforms, and their labels."""
    count = node.GetNumberOfControlPoints()
    points = np.zeros((count, 3))
    labels = []
    for index in range(count):
        position = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(index, position)
        points[index] = position
        labels.append(node.GetNthControlPointLabel(index))
    return points, labels


def markups_from_points(scene, points_ras: np.ndarray, labels: list[str] | None = None, name: str = "points"):
    """A new point list with the given world RAS positions (mm)."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    for index, point in enumerate(np.asarray(points_ras, float)):
        node.AddControlPoint(vtk.vtkVector3d(*point), labels[index] if labels else f"{name}-{index + 1}")
    return node

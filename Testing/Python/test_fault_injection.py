"""Fault injection: each bad input or fault a new user meets is refused before any engine runs.

Every case runs ``mmreg`` in this process (its worker, if it gets that far, in a child) and asserts:
the exit code; a message fragment that names the fix; the input files byte-identical afterwards;
no output file and no scratch folder left behind. Each case takes well under 2 s. Signals are
tested in test_signals.py.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import stat
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.cores import usable_cores
from MultimodalRegistrationLib.core.errors import EXIT_INPUT, InputError
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.processes import own_tag
from test_file_checks import sheared_sform

PRESETS = Path(__file__).resolve().parents[2] / "Resources" / "Presets"


def _volume(size=(48, 40, 32), spacing=(2.0, 2.0, 2.5), seed=0) -> sitk.Image:
    """A smooth blob with a little texture: a valid image of about 100 mm."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in size[::-1]], indexing="ij")
    array = np.exp(-3 * (x**2 + (1.3 * y) ** 2 + (0.8 * z) ** 2)) * 1000
    array += np.random.default_rng(seed).normal(0, 5, array.shape)
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    return image


def _mask(image: sitk.Image, voxels: list[tuple[int, int, int]]) -> sitk.Image:
    mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(image)
    for index in voxels:
        mask[index] = 1
    return mask


def _pair(folder: Path) -> tuple[Path, Path]:
    fixed, moving = folder / "fixed.nrrd", folder / "moving.nrrd"
    write_image(_volume(), fixed)
    write_image(_volume(seed=1), moving)
    return fixed, moving


def _register(fixed: Path, moving: Path, out: Path, *extra: str) -> list[str]:
    return ["register", "--fixed", str(fixed), "--moving", str(moving), "--init", "none",
            "--output-transform", str(out / "T.h5"), "--json", str(out / "T.json"), *extra]  # fmt: skip


Builder = Callable[[Path, Path], list[str]]


def register_with(*extra: str) -> Builder:
    """A case: the valid pair registered with the options ``extra``."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, moving = _pair(inputs)
        return _register(fixed, moving, out, *extra)

    return build


def prep_with(*extra: str) -> Builder:
    """A case: the valid pair prepared (mmreg prep) with the options ``extra``."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, moving = _pair(inputs)
        return _prep(fixed, moving, out, *extra)

    return build


def moving_as(write: Callable[[Path], Path]) -> Builder:
    """A case: the valid fixed image registered to the moving image that ``write(inputs)`` makes."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, _ = _pair(inputs)
        return _register(fixed, write(inputs), out)

    return build


def initial_as(write: Callable[[Path], Path]) -> Builder:
    """A case: the valid pair registered from the initial transform file that ``write(inputs)`` makes."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, moving = _pair(inputs)
        return _register(fixed, moving, out, "--initial-transform", str(write(inputs)))

    return build


def _prep(fixed: Path, moving: Path, out: Path, *extra: str) -> list[str]:
    return ["prep", "--fixed", str(fixed), "--moving", str(moving), "--output-dir", str(out), *extra]


# --------------------------------------------------------------------------- the cases
# Each builder makes its input files in ``inputs``, and returns the argv; outputs go to ``out``.


def missing_moving(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    return _register(fixed, inputs / "nope.nrrd", out)


def _cut_short(path: Path, keep: Callable[[int], int]) -> Path:
    """Write a valid moving image to ``path``, then keep only ``keep(length)`` of its bytes."""
    write_image(_volume(seed=1), path)
    data = path.read_bytes()
    path.write_bytes(data[: keep(len(data))])
    return path


def truncated(name: str) -> Builder:
    """A case: a moving image ``name`` cut to half its bytes."""
    return moving_as(lambda inputs: _cut_short(inputs / name, lambda n: n // 2))


def downsample_truncated(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = _cut_short(inputs / "moving.mha", lambda n: n - 20000)
    return ["prep", "--fixed", str(fixed), "--moving", str(moving), "--downsample-to", "4", "--output-dir", str(out)]


def garbage_nrrd(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = inputs / "moving.nrrd"
    moving.write_bytes(b"NRRD0004\ntype: what\n\n" + os.urandom(500))
    return _register(fixed, moving, out)


def _header_field(inputs: Path, key: str, value: str) -> Path:
    """An MHA moving image whose header line ``key`` is written as ``value``."""
    path = inputs / "moving.mha"
    write_image(_volume(seed=1), path)
    head, _, body = path.read_bytes().partition(b"ElementDataFile = LOCAL\n")
    lines = [f"{key} = {value}".encode() if line.startswith(key.encode()) else line for line in head.split(b"\n")]
    path.write_bytes(b"\n".join(lines) + b"ElementDataFile = LOCAL\n" + body)
    return path


def moving_header(key: str, value: str) -> Builder:
    """A case: a moving MHA whose header writes ``key = value``."""
    return moving_as(lambda inputs: _header_field(inputs, key, value))


def wrong_spacing_units(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = inputs / "microscopy.nrrd"
    write_image(_volume(size=(2160, 8, 8), spacing=(1.0, 1.0, 1.0)), moving)
    return _register(fixed, moving, out)


def slab_without_spacing(inputs: Path, out: Path) -> list[str]:
    """A microscopy slab of 6 slices saved with no spacing (1 mm): the pixel size suggested for every axis had left
    it 0.02 mm thick (a helper's sweep); the refusal now asks for the slice step along its thin axis."""
    fixed, _ = _pair(inputs)
    moving = inputs / "slab.nrrd"
    write_image(_volume(size=(2160, 40, 6), spacing=(1.0, 1.0, 1.0)), moving)
    return _register(fixed, moving, out)


def nifti_with_a_sheared_sform(inputs: Path, out: Path) -> list[str]:
    """ITK reads the qform of a NIfTI whose sform is sheared: it had registered on that geometry without a word."""
    fixed, _ = _pair(inputs)
    written, moving = inputs / "written.nii", inputs / "sheared.nii"
    write_image(_volume(), written)
    sheared_sform(written, moving, 0.3)
    return _register(fixed, moving, out)


def nifti_with_a_nan_in_its_sform(inputs: Path, out: Path) -> list[str]:
    """A NaN in the sform ITK reads (sform_code 1): the message had printed the finite qoffset as 'not a number'."""
    import struct

    fixed, _ = _pair(inputs)
    written, moving = inputs / "written.nii", inputs / "nan_sform.nii"
    write_image(_volume(), written)
    data = bytearray(written.read_bytes())
    struct.pack_into("<f", data, 280 + 12, float("nan"))
    moving.write_bytes(bytes(data))
    return _register(fixed, moving, out)


def nifti_gz_damaged_near_its_start(inputs: Path, out: Path) -> list[str]:
    """Bytes 20-40 of a .nii.gz overwritten: zlib's error had escaped the header reader, a traceback (a review)."""
    fixed, _ = _pair(inputs)
    write_image(_volume(), inputs / "written.nii.gz")
    data = bytearray((inputs / "written.nii.gz").read_bytes())
    data[20:40] = b"\xff" * 20
    (inputs / "damaged.nii.gz").write_bytes(bytes(data))
    return _register(fixed, inputs / "damaged.nii.gz", out)


def micrometre_spacing(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = inputs / "stack.nrrd"
    write_image(_volume(size=(340, 12, 12), spacing=(375.0, 375.0, 375.0)), moving)  # 0.375 mm written in um
    return _register(fixed, moving, out)


def millimetres_for_micrometres(inputs: Path, out: Path) -> list[str]:
    """A stack at 3.25 um against an MR in mm: the fixed stack 0.16 mm across, lying inside the 96 mm moving image
    (each spacing plausible, the pair not). It ran, MI 0.000 -> 0.000, exit 0 (a helper's sweep)."""
    _, moving = _pair(inputs)
    fixed = inputs / "stack.nrrd"
    stack = _volume(size=(48, 40, 32), spacing=(0.00325, 0.00325, 0.00325))
    stack.SetOrigin((48.0, 40.0, 40.0))  # the moving image's centre
    write_image(stack, fixed)
    return _register(fixed, moving, out)


def metres_for_millimetres(inputs: Path, out: Path) -> list[str]:
    """An MR whose spacing was written in metres (0.002 for 2 mm): 0.1 mm across against a 96 mm image. The refusal
    had asked only whether micrometres were stated as mm (a helper's sweep); it now gives the metres reading too."""
    fixed, _ = _pair(inputs)
    moving = inputs / "metres.nrrd"
    write_image(_volume(spacing=(0.002, 0.002, 0.0025)), moving)
    return _register(fixed, moving, out)


def prep_crop_of_sizes_apart(inputs: Path, out: Path) -> list[str]:
    """An MR stored at micrometres written as mm (0.1 mm across) beside a 96 mm one: prep --crop-common wrote a
    6 x 6 x 6 fixed image of zeros, exit 0, its warning advising to downsample (a helper's sweep)."""
    fixed, _ = _pair(inputs)
    moving = inputs / "tiny.nrrd"
    write_image(_volume(size=(48, 40, 32), spacing=(0.002, 0.002, 0.002)), moving)
    return _prep(fixed, moving, out, "--crop-common")


def prep_downsampled_to_a_thumbnail(inputs: Path, out: Path) -> list[str]:
    """--downsample-to 60 on 96 mm images: refused as if the input were a thumbnail ('give the whole volume')."""
    fixed, moving = _pair(inputs)
    return _prep(fixed, moving, out, "--downsample-to", "60")


def prep_mask_cropped_away(inputs: Path, out: Path) -> list[str]:
    """A fixed mask drawn on the fixed image where the moving image does not reach: after --crop-common it had been
    called 'drawn on another image, or its origin is wrong' (a helper's prep sweep)."""
    fixed, _ = _pair(inputs)
    moving = inputs / "half.nrrd"
    write_image(_volume(size=(20, 40, 32)), moving)  # the fixed image's first 40 mm along x
    mask = inputs / "mask.nrrd"
    write_image(_mask(_volume(), [(x, y, z) for x in range(36, 44) for y in range(16, 24) for z in range(12, 20)]), mask)
    return _prep(fixed, moving, out, "--crop-common", "--mask-fixed", str(mask))


def prep_mask_cropped_away_with_a_spacing(inputs: Path, out: Path) -> list[str]:
    """The same with the fixed image's spacing given (its header says half): the mask carries the fix, and the check
    whether the crop cut it away must too (a reviewer: the old message came back)."""
    fixed, moving = inputs / "fixed.nrrd", inputs / "half.nrrd"
    write_image(_volume(spacing=(1.0, 1.0, 1.25)), fixed)
    write_image(_volume(size=(20, 40, 32)), moving)  # 40 mm along x: the fixed image's first 40 mm at its true spacing
    mask = inputs / "mask.nrrd"
    voxels = [(x, y, z) for x in range(36, 44) for y in range(16, 24) for z in range(12, 20)]
    write_image(_mask(_volume(spacing=(1.0, 1.0, 1.25)), voxels), mask)
    return _prep(fixed, moving, out, "--crop-common", "--mask-fixed", str(mask), "--spacing-fixed", "2,2,2.5")


def huge_header(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = inputs / "huge.mha"
    header = ("ObjectType = Image\nNDims = 3\nDimSize = 4000 4000 4000\nElementType = MET_USHORT\n"
              "ElementSpacing = 0.05 0.05 0.05\nElementDataFile = LOCAL\n")  # fmt: skip
    moving.write_bytes(header.encode() + bytes(1000))
    return _register(fixed, moving, out)


def skewed_direction(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    image = _volume(seed=1)
    image.SetDirection((1, 0.3, 0, 0, 1, 0, 0, 0, 1))
    moving = inputs / "moving.nrrd"
    write_image(image, moving)
    return _register(fixed, moving, out)


def constant_image(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = inputs / "blank.nrrd"
    write_image(_volume() * 0, moving)
    return _register(fixed, moving, out)


def labelled_points(inputs: Path, out: Path) -> list[str]:
    """A label file of two points given as the moving image (a reviewer's walkthrough, SCT labels.nii.gz): elastix
    stopped with "0 / 4096" samples and a hint that the images barely overlapped; ANTs wrote a transform."""
    fixed, _ = _pair(inputs)
    moving = inputs / "labels.nrrd"
    write_image(_mask(_volume(), [(20, 20, 10), (22, 18, 20)]), moving)
    return _register(fixed, moving, out)


def one_file_as_both(inputs: Path, out: Path) -> list[str]:
    """The same file as --fixed and --moving (a reviewer's walkthrough: the identity came back, exit 0, no word)."""
    fixed, _ = _pair(inputs)
    return _register(fixed, fixed, out)


def fixed_mask_of(voxels: list[tuple[int, int, int]]) -> Builder:
    """A case: the valid pair with a fixed mask of just ``voxels`` (x, y, z indices)."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, moving = _pair(inputs)
        mask = inputs / "mask.nrrd"
        write_image(_mask(_volume(), voxels), mask)
        return _register(fixed, moving, out, "--fixed-mask", str(mask))

    return build


def misspelled_parameter(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    preset = inputs / "my-rigid.txt"
    text = (PRESETS / "elastix" / "rigid.txt").read_text()
    preset.write_text(text.replace("MaximumNumberOfIterations", "MaximumNumberOfIteratoins"))
    return _register(fixed, moving, out, "--preset", str(preset))


def unsupported_output(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return ["register", "--fixed", str(fixed), "--moving", str(moving), "--output-transform", str(out / "T.xyz")]


def output_under_a_file(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    blocker = inputs / "not-a-folder"
    blocker.write_text("a file")
    return ["register", "--fixed", str(fixed), "--moving", str(moving),
            "--output-transform", str(blocker / "T.h5")]  # fmt: skip


def unwritable_output(inputs: Path, out: Path) -> list[str]:
    # Root writes into read-only folders; /proc cannot be written by anyone, root included.
    fixed, moving = _pair(inputs)
    return ["register", "--fixed", str(fixed), "--moving", str(moving), "--output-transform", "/proc/mmreg/T.h5"]


def _damaged_transform(inputs: Path) -> Path:
    initial = inputs / "initial.tfm"
    initial.write_text("#Insight Transform File V1.0\n#Transform 0\nTransform: Nonsense\n")
    return initial


def _garbage_transform(inputs: Path) -> Path:
    """Random bytes named .h5: the refusal quoted ITK's last line, "set the suffix to an unsupported type." (a helper's
    QA sweep)."""
    initial = inputs / "initial.h5"
    initial.write_bytes(np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return initial


@dataclass
class Case:
    build: Callable[[Path, Path], list[str]]
    fragment: str  # part of the message that names the fix
    code: int = EXIT_INPUT


CASES = {
    "missing file": Case(missing_moving, "check the path"),
    "truncated .nii.gz": Case(truncated("moving.nii.gz"), "copy or download the file again"),
    "truncated .nii": Case(truncated("moving.nii"), "shorter than its header"),
    "prep --downsample-to on a truncated file": Case(downsample_truncated, "shorter than its header"),
    "garbage in a supported format": Case(garbage_nrrd, "export it again"),
    "NaN spacing": Case(moving_header("ElementSpacing", "2 nan 2.5"), "spacing nan along axis 1"),
    "negative spacing": Case(moving_header("ElementSpacing", "-2 2 2.5"), "correct the spacing"),
    "spacing in the wrong units": Case(wrong_spacing_units, "set the true spacing"),
    "spacing in micrometres": Case(micrometre_spacing, "for example 0.375,0.375,0.375 mm (micrometres written as "
                                   "millimetres: 128 x 4.5 x 4.5 mm) (--spacing-moving sx,sy,sz"),
    "sizes 100 times apart": Case(millimetres_for_micrometres, "A spacing is likely in the wrong unit"),
    "a slab saved with no spacing": Case(slab_without_spacing, "along axis 2 (6 slices) give the microscope's slice"),
    "a NIfTI whose sform is sheared": Case(nifti_with_a_sheared_sform, "set the file's sform_code to 0"),
    "a NIfTI with a NaN in its sform": Case(nifti_with_a_nan_in_its_sform, "gives an origin or position (-"),
    "a .nii.gz damaged near its start": Case(nifti_gz_damaged_near_its_start, "is truncated or damaged"),
    "an MR's spacing in metres": Case(metres_for_millimetres, "if the moving spacing is in metres, it is 2x2x2.5 mm"),
    "prep: sizes 100 times apart": Case(prep_crop_of_sizes_apart, "A spacing is likely in the wrong unit"),
    "prep: --downsample-to too coarse": Case(prep_downsampled_to_a_thumbnail, "give at most"),
    "prep: a mask the crop cut away": Case(prep_mask_cropped_away, "the crop to the common region"),
    "prep: a mask the crop cut away, spacing given": Case(prep_mask_cropped_away_with_a_spacing,
                                                          "the crop to the common region"),
    "header claims 4000^3": Case(huge_header, "GB"),
    "skewed direction": Case(skewed_direction, "orthonormal"),
    "constant image": Case(constant_image, "load the right image"),
    "one file as both images": Case(one_file_as_both, "--fixed and --moving name the same file"),
    "a label file of two points as the image": Case(labelled_points, "holds only 2 voxels above its lowest value (0), "
                                                    "too few to register: is it a label, mask or points file"),
    "mask of five voxels": Case(
        fixed_mask_of([(24, 20, 16), (25, 20, 16), (24, 21, 16), (24, 20, 17), (25, 21, 16)]), "voxels"
    ),
    "empty mask": Case(fixed_mask_of([]), "draw the mask or drop it"),
    "misspelled elastix parameter": Case(misspelled_parameter, "did you mean 'MaximumNumberOfIterations'"),
    "unknown preset": Case(register_with("--preset", "rigidd"), "choose one of rigid"),
    "unsupported output extension": Case(unsupported_output, "use one of .h5"),
    "output folder under a file": Case(output_under_a_file, "is a file, not a folder"),
    "output folder that cannot be made": Case(unwritable_output, "not writable"),
    "damaged initial transform": Case(initial_as(_damaged_transform), "initial"),
    "garbage initial transform": Case(initial_as(_garbage_transform), "no transform reader recognises its contents"),
}


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }  # fmt: skip


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temporary folder of this test's own, for this process and its workers: scratch left behind shows."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def _assert_refused(case: Case, tmp_path: Path, private_tmp: Path, capsys) -> str:
    """Run the case: refused with its exit code and fragment, inputs byte-identical, no output or scratch left."""
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    argv = case.build(inputs, out)
    before = _snapshot(inputs)
    code = main(argv)
    message = capsys.readouterr().err
    assert code == case.code, message
    assert case.fragment in message, message
    assert "\nerror: " in "\n" + message and "Traceback" not in message
    assert _snapshot(inputs) == before, "an input file changed"
    assert not out.exists() or not any(out.iterdir()), f"outputs left: {list(out.iterdir())}"
    assert list(private_tmp.iterdir()) == [], f"scratch left: {list(private_tmp.iterdir())}"
    return message


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_early_and_leaves_everything_as_it_was(name, tmp_path, private_tmp, capsys):
    _assert_refused(CASES[name], tmp_path, private_tmp, capsys)


def test_relative_custom_preset_reaches_the_worker_as_an_absolute_path(tmp_path, monkeypatch):
    from MultimodalRegistrationLib.cli.main import build_parser, job_from_arguments

    fixed, moving = _pair(tmp_path)
    (tmp_path / "mine.txt").write_text((PRESETS / "elastix" / "rigid.txt").read_text())
    monkeypatch.chdir(tmp_path)
    arguments = build_parser().parse_args(_register(fixed, moving, tmp_path / "out", "--preset", "mine.txt"))
    assert job_from_arguments(arguments).preset == str(tmp_path / "mine.txt")


def test_orphaned_scratch_of_a_killed_run_is_removed_by_the_next(tmp_path, private_tmp):
    """A parent killed with SIGKILL cannot clean up: the next run removes what a dead process left."""
    from MultimodalRegistrationLib.core.files import scratch_folder

    dead = 2**22 + 12345  # above Linux's default pid_max, so no process has it
    orphan = private_tmp / f"mmreg-job-{dead}-abc"
    orphan.mkdir()
    (orphan / "worker-stderr.log").write_text("Traceback ...")
    alive = private_tmp / f"mmreg-job-{os.getpid()}-def"
    alive.mkdir()
    # named by pid and place (host and PID namespace): a dead pid here is removed, one of another container or host
    # (the same folder on a network disk) is left alone: its process may run (a helper's sweep lost a live run's)
    here = private_tmp / f"mmreg-job-{dead}.{own_tag().split('.')[1]}-ghi"
    elsewhere = private_tmp / f"mmreg-job-{dead}.00000000-jkl"
    here.mkdir()
    elsewhere.mkdir()
    folder = scratch_folder("mmreg-job-")
    assert not orphan.exists() and not here.exists()
    assert alive.exists() and folder.exists() and elsewhere.exists()
    assert folder.name.startswith(f"mmreg-job-{own_tag()}-")


def test_stability_and_prep_scratch_a_killed_run_leaves_is_removed_by_the_next(private_tmp):
    """The stability restarts' and prep's scratch folders had random names: one left by a case stopped at its
    time-out was never removed (a helper's batch sweep). They are named by the pid now, and removed at the end."""
    from MultimodalRegistrationLib.core.files import scratch

    dead = 2**22 + 12346
    for prefix in ("mmreg-stability-", "mmreg-prep-"):
        orphan = private_tmp / f"{prefix}{dead}-abc"
        orphan.mkdir()
        with scratch(prefix) as folder:
            assert folder.name.startswith(f"{prefix}{own_tag()}-") and folder.is_dir()
            assert not orphan.exists()
        assert not folder.exists()


def test_inputs_keep_their_permissions(tmp_path, private_tmp, capsys):
    """A read-only input is read, not touched: the refusal of a later check leaves it read-only."""
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    argv = register_with("--preset", "rigidd")(inputs, out)
    for path in inputs.iterdir():
        path.chmod(stat.S_IRUSR)
    assert main(argv) == EXIT_INPUT
    assert all(stat.S_IMODE(path.stat().st_mode) == stat.S_IRUSR for path in inputs.iterdir())


def test_a_one_voxel_segment_guides_without_failing(tmp_path, private_tmp, capsys):
    """A segment of one voxel (a calcification) on each image has a centroid and no spread: the guided start and
    the centroid rule use it (a LinAlgError after the engine ran, exit 1, before)."""
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    fixed, moving = _pair(inputs)
    files = []
    for side, index in (("fixed", (20, 20, 16)), ("moving", (21, 20, 16))):  # 2 mm apart along x
        labels = sitk.Image(_volume().GetSize(), sitk.sitkUInt8)
        labels.CopyInformation(_volume())
        labels[index] = 1
        labels.SetMetaData("Segment0_Name", "calcification")
        labels.SetMetaData("Segment0_LabelValue", "1")
        files.append(inputs / f"{side}.seg.nrrd")
        write_image(labels, files[-1])
    argv = _register(fixed, moving, out, "--fixed-segmentation", str(files[0]), "--moving-segmentation", str(files[1]))
    del argv[argv.index("--init") : argv.index("--init") + 2]  # init auto: the guided start (the centroids here)
    assert main(argv) == 0
    summary = json.loads((out / "T.json").read_text())
    candidates = summary["provenance"]["guidance"]["start_candidates"]
    assert candidates[0]["name"] == "segment centroids"
    matrix = np.asarray(summary["transform"]["matrix_lps"])
    landed = matrix[:3, :3] @ [40.0, 40.0, 40.0] + matrix[:3, 3]  # the fixed voxel's centre, LPS mm
    assert np.linalg.norm(landed - [42.0, 40.0, 40.0]) < 1.0  # measured 0.15 mm from the moving one


# =========================================================================== issue 25: reliability findings
# Bad inputs a new user tried on the landed code that got through (issue 25, "Reliability findings"), each
# refused before any engine with exit 2 and a message naming the fix, the inputs byte-identical after.


def _rigid_tfm(path: Path, parameters: str = "1 0 0 0 1 0 0 0 1 0 0 0") -> Path:
    path.write_text("#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
                    f"Parameters: {parameters}\nFixedParameters: 0 0 0\n")  # fmt: skip
    return path


def _points(path: Path, rows: list[str]) -> Path:
    path.write_text("label,x,y,z\n" + "".join(row + "\n" for row in rows))
    return path


FOUR_POINTS = ["a,0,0,0", "b,30,0,0", "c,0,30,0", "d,0,0,30"]


def _manifest(inputs: Path, header: str, row: str, name: str = "cohort.csv", encoding: str = "utf-8") -> Path:
    path = inputs / name
    path.write_bytes((header + "\n" + row + "\n").encode(encoding))
    return path


# --- 1. inputs destroyed


def batch_clears_an_input(inputs: Path, out: Path) -> list[str]:
    _pair(inputs)
    (inputs / "c1").mkdir()
    _rigid_tfm(inputs / "c1" / "transform.h5.tfm")
    (inputs / "c1" / "transform.h5.tfm").rename(inputs / "c1" / "transform.h5")
    manifest = _manifest(inputs, "case,fixed,moving,initial_transform", "c1,fixed.nrrd,moving.nrrd,c1/transform.h5")
    return ["batch", str(manifest), "--output-dir", str(inputs)]


def prep_crop_with_a_transform_that_places_the_images_apart(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    far = sitk.TranslationTransform(3, (0.0, 0.0, 900.0))
    sitk.WriteTransform(far, str(inputs / "far.tfm"))
    return ["prep", "--fixed", str(fixed), "--moving", str(moving), "--crop-common", "--initial-transform",
            str(inputs / "far.tfm"), "--output-dir", str(out)]  # fmt: skip


def prep_output_dir_holds_the_inputs(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return _prep(fixed, moving, inputs, "--crop-common")


def output_volume_is_the_moving_image(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return _register(fixed, moving, out, "--output-volume", str(moving))


def output_volume_is_the_fixed_image_by_another_name(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    (inputs / "link.nrrd").symlink_to(fixed)
    return _register(fixed, moving, out, "--output-volume", str(inputs / "link.nrrd"))


def output_transform_is_the_initial_transform(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    initial = _rigid_tfm(inputs / "initial.tfm")
    return ["register", "--fixed", str(fixed), "--moving", str(moving), "--initial-transform", str(initial),
            "--output-transform", str(initial)]  # fmt: skip


def prealign_report_is_a_points_file(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _points(inputs / "f.csv", FOUR_POINTS), _points(inputs / "m.csv", FOUR_POINTS)
    return ["prealign", "--fixed-points", str(fixed), "--moving-points", str(moving),
            "--output-transform", str(out / "T.tfm"), "--report", str(moving)]  # fmt: skip


def prealign_json_is_a_points_file(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _points(inputs / "f.csv", FOUR_POINTS), inputs / "m.json"
    moving.write_text(json.dumps({"@schema": "x", "markups": []}))
    return ["prealign", "--fixed-points", str(fixed), "--moving-points", str(moving),
            "--output-transform", str(out / "T.tfm"), "--json", str(moving)]  # fmt: skip


def output_inverse_of_a_bspline(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return _register(fixed, moving, out, "--preset", "deformable", "--output-inverse", str(out / "Ti.h5"))


def output_inverse_after_a_field_start(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    field = sitk.Image([8, 8, 8], sitk.sitkVectorFloat64, 3)
    field.SetSpacing((15.0, 15.0, 15.0))
    field.SetOrigin((-10.0, -10.0, -10.0))
    sitk.WriteTransform(sitk.DisplacementFieldTransform(field), str(inputs / "field.h5"))
    return _register(fixed, moving, out, "--initial-transform", str(inputs / "field.h5"), "--output-inverse",
                     str(out / "Ti.h5"))  # fmt: skip


def output_inverse_is_the_output_transform(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return _register(fixed, moving, out, "--output-inverse", str(out / "T.h5"))


def output_nhdr_writes_onto_the_moving_data_file(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = inputs / "moving.nhdr"
    write_image(_volume(seed=1), moving)  # moving.nhdr naming moving.raw.gz: renamed scan.raw.gz
    (inputs / "moving.raw.gz").rename(inputs / "scan.raw.gz")
    moving.write_text(moving.read_text().replace("moving.raw.gz", "scan.raw.gz"))
    return _register(fixed, moving, out, "--output-volume", str(inputs / "scan.nhdr"))  # writes scan.raw.gz


def _qa(inputs: Path, report: Path, *extra: str) -> list[str]:
    """mmreg qa of the valid pair through a rigid .tfm, writing ``report``, with the options ``extra``."""
    fixed, moving = _pair(inputs)
    transform = _rigid_tfm(inputs / "T.tfm")
    return ["qa", "--fixed", str(fixed), "--moving", str(moving), "--transform", str(transform),
            "--report", str(report), *extra]  # fmt: skip


def qa_json_is_the_points_file(inputs: Path, out: Path) -> list[str]:
    points = inputs / "f.mrk.json"
    points.write_text("{}")
    return _qa(inputs, out / "r.html", "--fixed-points", str(points), "--moving-points", str(points),
               "--json", str(points))  # fmt: skip


INPUT_CASES = {
    "batch would clear a case file the manifest names as input": Case(
        batch_clears_an_input, "or choose another --output-dir"
    ),
    "prep --output-dir is the inputs' folder": Case(prep_output_dir_holds_the_inputs, "choose another --output-dir"),
    "prep --crop-common with a transform that places the images apart": Case(
        prep_crop_with_a_transform_that_places_the_images_apart, "the initial transform given places the images apart"),
    "--output-volume is the moving image": Case(output_volume_is_the_moving_image, "would destroy an input"),
    "--output-volume is a link to the fixed image": Case(
        output_volume_is_the_fixed_image_by_another_name, "the fixed image"
    ),
    "--output-transform is --initial-transform": Case(
        output_transform_is_the_initial_transform, "write the output transform to another file"
    ),
    "prealign --report is a points file": Case(prealign_report_is_a_points_file, "write the --report to another"),
    "prealign --json is a points file": Case(prealign_json_is_a_points_file, "write the --json to another"),
    "--output-inverse is --output-transform": Case(output_inverse_is_the_output_transform, "a name of its own"),
    "--output-inverse of an elastix B-spline": Case(output_inverse_of_a_bspline, "use --engine ants"),
    "--output-inverse after a nonlinear start": Case(output_inverse_after_a_field_start, "drop --output-inverse"),
    "an .nhdr output onto the moving image's data file": Case(
        output_nhdr_writes_onto_the_moving_data_file, "scan.raw.gz"
    ),
    "qa --json is the points file": Case(qa_json_is_the_points_file, "write the --json to another"),
}


@pytest.mark.parametrize("name", list(INPUT_CASES))
def test_issue25_bad_input_is_refused_before_any_work(name, tmp_path, private_tmp, capsys):
    _assert_refused(INPUT_CASES[name], tmp_path, private_tmp, capsys)


def test_issue25_nhdr_and_mhd_outputs_name_their_final_data_file(tmp_path):
    """A detached header is written with its data file under their final names: it reads back, and the next
    write into the folder (which removes the partial files of dead runs) leaves it readable."""
    from MultimodalRegistrationLib.core.images import read_image

    image = _volume(size=(8, 6, 4))
    for name in ("out.nhdr", "out.mhd"):
        write_image(image, tmp_path / name)
        assert ".partial-" not in (tmp_path / name).read_text(errors="replace")
        write_image(image, tmp_path / "other.nrrd")
        again = read_image(tmp_path / name)
        assert np.array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(image))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".partial-")]


# --- 3. silently wrong


def nan_background_mask(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    array = np.full((32, 40, 48), np.nan, np.float32)
    array[8:24, 10:30, 12:36] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(_volume())
    write_image(mask, inputs / "mask.nrrd")
    return _register(fixed, moving, out, "--fixed-mask", str(inputs / "mask.nrrd"))


def two_d_segmentation_on_two_grids(inputs: Path, out: Path) -> list[str]:
    """A 2D labelmap as the fixed segmentation, the images on two grids: the swap check had compared it with the 3D
    moving one, a traceback (exit 1; a helper's guided sweep)."""
    fixed = inputs / "fixed.nrrd"
    write_image(_volume(), fixed)
    write_image(_volume(size=(40, 36, 30), spacing=(2.4, 2.2, 2.6), seed=1), inputs / "moving.nrrd")
    plane = np.zeros((40, 48), np.uint8)
    plane[10:30, 12:36] = 1
    write_image(sitk.GetImageFromArray(plane), inputs / "f2d.nrrd")
    write_image(sitk.Cast(_volume(size=(40, 36, 30), spacing=(2.4, 2.2, 2.6), seed=1) > 500, sitk.sitkUInt8),
                inputs / "m.nrrd")  # fmt: skip
    return _register(fixed, inputs / "moving.nrrd", out, "--fixed-segmentation", str(inputs / "f2d.nrrd"),
                     "--moving-segmentation", str(inputs / "m.nrrd"))  # fmt: skip


def mask_saved_without_its_geometry(inputs: Path, out: Path) -> list[str]:
    """The fixed image's mask written from its array alone (origin 0, 1 mm voxels): placed by that geometry, it had
    masked another region, exit 0 (a helper's prep sweep)."""
    fixed, moving = _pair(inputs)
    array = np.zeros((32, 40, 48), np.uint8)
    array[8:24, 10:30, 12:36] = 1
    write_image(sitk.GetImageFromArray(array), inputs / "mask.nrrd")
    return _register(fixed, moving, out, "--fixed-mask", str(inputs / "mask.nrrd"))


def one_bit_nifti_mask(inputs: Path, out: Path) -> list[str]:
    """A mask stored 1 bit per voxel (NIfTI DT_BINARY, as some tools write masks): it had been called damaged."""
    fixed, moving = _pair(inputs)
    mask = sitk.Cast(_volume() > 0, sitk.sitkUInt8)
    write_image(mask, inputs / "byte.nii")
    header = bytearray((inputs / "byte.nii").read_bytes()[:352])
    struct.pack_into("<2h", header, 70, 1, 1)  # datatype DT_BINARY, bitpix 1
    bits = np.packbits(sitk.GetArrayFromImage(mask).ravel() > 0, bitorder="little")
    (inputs / "mask.nii").write_bytes(bytes(header) + bits.tobytes())
    return _register(fixed, moving, out, "--fixed-mask", str(inputs / "mask.nii"))


def initial_tfm(parameters: str) -> Builder:
    """A case: the valid pair from an initial affine .tfm whose Parameters line is ``parameters``."""
    return initial_as(lambda inputs: _rigid_tfm(inputs / "initial.tfm", parameters))


def intensity_image_as_segmentation(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    labels = inputs / "labels.nrrd"
    write_image(sitk.Cast(_volume(seed=2), sitk.sitkInt16), labels)  # about 1000 distinct values
    return _register(fixed, moving, out, "--fixed-segmentation", str(labels), "--moving-segmentation", str(labels))


def segmentations_sharing_no_segment(inputs: Path, out: Path) -> list[str]:
    """Two segments a side, named apart ("gland", "nodule" against "prostate", "lesion"): nothing pairs. (One
    segment a side pairs whatever its name, with a warning.)"""
    fixed, moving = _pair(inputs)
    files = []
    for side, names in (("fixed", ("gland", "nodule")), ("moving", ("prostate", "lesion"))):
        labels = sitk.Image(_volume().GetSize(), sitk.sitkUInt8)
        labels.CopyInformation(_volume())
        labels[10:30, 10:30, 8:24] = 1
        labels[32:40, 12:20, 10:18] = 2
        for index, name in enumerate(names):
            labels.SetMetaData(f"Segment{index}_Name", name)
            labels.SetMetaData(f"Segment{index}_LabelValue", str(index + 1))
        files.append(inputs / f"{side}_labels.seg.nrrd")
        write_image(labels, files[-1])
    return _register(fixed, moving, out, "--fixed-segmentation", str(files[0]), "--moving-segmentation", str(files[1]))


def segmentation_as_the_moving_image(inputs: Path, out: Path) -> list[str]:
    """A Slicer .seg.nrrd given as --moving: it had been registered as intensities, exit 0 (a helper's sweep)."""
    fixed, _ = _pair(inputs)
    labels = sitk.Image(_volume().GetSize(), sitk.sitkUInt8)
    labels.CopyInformation(_volume())
    labels[10:30, 10:30, 8:24] = 1
    labels.SetMetaData("Segment0_Name", "gland")
    labels.SetMetaData("Segment0_LabelValue", "1")
    write_image(labels, inputs / "gland.seg.nrrd")
    return _register(fixed, inputs / "gland.seg.nrrd", out)


def _sound_but_unread(kind: str) -> Callable[[Path], Path]:
    """A sound moving image ITK cannot read as named or stored: each had been called damaged ("export it again") or
    told to be saved as NRRD (a helper's sweep)."""

    def write(inputs: Path) -> Path:
        import bz2

        write_image(_volume(seed=1), inputs / "plain.nrrd", compress=False)
        plain = (inputs / "plain.nrrd").read_bytes()
        header, voxels = plain.split(b"\n\n", 1)
        if kind == "upper case":
            write_image(_volume(seed=1), inputs / "tmp.mha")
            return (inputs / "tmp.mha").rename(inputs / "MR.MHA")
        if kind == "bzip2":
            (inputs / "bz.nrrd").write_bytes(header.replace(b"encoding: raw", b"encoding: bzip2") + b"\n\n"
                                              + bz2.compress(voxels))  # fmt: skip
            return inputs / "bz.nrrd"
        if kind == "time last":
            four = (header.replace(b"dimension: 3", b"dimension: 4").replace(b"sizes: 48 40 32", b"sizes: 48 40 32 2")
                    .replace(b"kinds: domain domain domain", b"kinds: domain domain domain time"))  # fmt: skip
            four = re.sub(rb"(space directions: [^\n]*)", rb"\1 none", four)
            (inputs / "time.nrrd").write_bytes(four + b"\n\n" + voxels * 2)
            return inputs / "time.nrrd"
        if kind == "nifti-2":
            return _as_nifti2(inputs)
        (inputs / "mr.nrrd.gz").write_bytes(gzip.compress(plain))
        return inputs / "mr.nrrd.gz"

    return write


def _as_nifti2(inputs: Path) -> Path:
    """The moving volume as NIfTI-2 (nibabel's Nifti2Image lays its 540-byte header out the same way)."""
    write_image(_volume(seed=1), inputs / "one.nii")
    one = (inputs / "one.nii").read_bytes()

    def field(form: str, at: int) -> tuple:
        return struct.unpack_from("<" + form, one, at)

    two = struct.pack("<i8s2h8q3d8dq6d2q80s24s2i3d3d12d3i16sc15s", 540, b"n+2\0\r\n\x1a\n", *field("2h", 70),
                      *field("8h", 40), 0, 0, 0, *field("8f", 76), 544, 1, 0, 0, 0, 0, 0, 0, 0, b"", b"",
                      *field("2h", 252), *field("6f", 256), *field("12f", 280), 0, one[123], 0, b"", b"\0",
                      b"")  # fmt: skip
    (inputs / "mr.nii.gz").write_bytes(gzip.compress(two + bytes(4) + one[int(field("f", 108)[0]) :]))
    return inputs / "mr.nii.gz"


def segmentations_swapped(inputs: Path, out: Path) -> list[str]:
    """Each image's gland labelmap, on its own grid (the images' grids differ), given as the other's."""
    images = {"fixed": _volume(), "moving": _volume(size=(40, 36, 30), spacing=(2.4, 2.2, 2.6), seed=1)}
    files = {}
    for side, image in images.items():
        write_image(image, inputs / f"{side}.nrrd")
        labels = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        labels.CopyInformation(image)
        labels[10:30, 10:30, 8:24] = 1
        files[side] = inputs / f"{side}_gland.nrrd"
        write_image(labels, files[side])
    return _register(inputs / "fixed.nrrd", inputs / "moving.nrrd", out, "--fixed-segmentation", str(files["moving"]),
                     "--moving-segmentation", str(files["fixed"]))  # fmt: skip


def cropped_segmentations_swapped(inputs: Path, out: Path) -> list[str]:
    """As :func:`segmentations_swapped`, each labelmap saved cropped to its gland (as Slicer can save a
    segmentation): on its image's lattice, not its grid. Accepted before, exit 0, 25 mm off (a helper's sweep)."""
    segmentations_swapped(inputs, out)
    for side in ("fixed", "moving"):
        labels = sitk.ReadImage(str(inputs / f"{side}_gland.nrrd"))
        write_image(labels[8:32, 8:32, 6:26], inputs / f"{side}_gland_cropped.nrrd")
    return _register(inputs / "fixed.nrrd", inputs / "moving.nrrd", out, "--fixed-segmentation",
                     str(inputs / "moving_gland_cropped.nrrd"), "--moving-segmentation",
                     str(inputs / "fixed_gland_cropped.nrrd"))  # fmt: skip


def one_segmentation_for_both(inputs: Path, out: Path) -> list[str]:
    """The fixed image's gland labelmap given for the moving image too (the images' grids differ): the run ended
    as the headers left it, or worse (a TRUS pair 20 mm off, against 13.5 doing nothing), with only a warning."""
    segmentations_swapped(inputs, out)  # writes both images and their glands
    return _register(inputs / "fixed.nrrd", inputs / "moving.nrrd", out, "--fixed-segmentation",
                     str(inputs / "fixed_gland.nrrd"), "--moving-segmentation", str(inputs / "fixed_gland.nrrd"))  # fmt: skip


def _two_layer_segmentation(path: Path, header: dict[str, str]) -> Path:
    """A two-layer segmentation as Slicer stores overlapping segments (a gland and a lesion inside it, value 1
    each in its own layer), with ``header``'s entries."""
    layers = np.zeros((*_volume().GetSize()[::-1], 2), np.uint8)
    layers[8:24, 10:30, 10:30, 0] = 1
    layers[14:18, 16:20, 16:20, 1] = 1
    image = sitk.GetImageFromArray(layers, isVector=True)
    image.CopyInformation(_volume())
    for key, value in header.items():
        image.SetMetaData(key, value)
    write_image(image, path)
    return path


def multi_layer_segmentation(header: dict[str, str]) -> Builder:
    """A case: the valid pair guided by two-layer segmentations whose header holds ``header``."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, moving = _pair(inputs)
        seg = _two_layer_segmentation(inputs / "layers.seg.nrrd", header)
        return _register(fixed, moving, out, "--fixed-segmentation", str(seg), "--moving-segmentation", str(seg))

    return build


# Slicer's header for the two layers; the cases below spoil one entry.
LAYERS = {"Segment0_Name": "gland", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
          "Segment1_Name": "lesion", "Segment1_LabelValue": "1", "Segment1_Layer": "1"}  # fmt: skip


# --- 4. failures that came after the engine ran


def json_is_an_existing_folder(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    (inputs / "results").mkdir()
    return ["register", "--fixed", str(fixed), "--moving", str(moving), "--init", "none",
            "--output-transform", str(out / "T.h5"), "--json", str(inputs / "results")]  # fmt: skip


def output_volume_is_an_existing_folder(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    (inputs / "results.nrrd").mkdir()
    return _register(fixed, moving, out, "--output-volume", str(inputs / "results.nrrd"))


def output_name_too_long(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return _register(fixed, moving, out, "--output-volume", str(out / ("r" * 300 + ".nrrd")))


def deformable_result_to_mat(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return ["register", "--fixed", str(fixed), "--moving", str(moving), "--preset", "deformable",
            "--output-transform", str(out / "T.mat")]  # fmt: skip


def _batch(inputs: Path, out: Path, *extra: str) -> list[str]:
    _pair(inputs)
    manifest = _manifest(inputs, "case,fixed,moving", "c1,fixed.nrrd,moving.nrrd")
    return ["batch", str(manifest), "--output-dir", str(out), *extra]


def batch_with(*extra: str) -> Builder:
    """A case: a one-case batch of the valid pair with the options ``extra``."""
    return lambda inputs, out: _batch(inputs, out, *extra)


# --- 5. tracebacks or exit 1 where exit 2 is due


def nan_voxels(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    image = _volume(seed=1)
    image[3, 4, 5] = float("nan")
    write_image(image, inputs / "moving.nrrd")
    return _register(fixed, inputs / "moving.nrrd", out)


def complex_pixels(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    array = sitk.GetArrayFromImage(_volume(seed=1)).astype(np.complex64)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.5))
    write_image(image, inputs / "moving.nrrd")
    return _register(fixed, inputs / "moving.nrrd", out)


def nan_guidance_points(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    points = _points(inputs / "f.csv", ["a,0,0,0", "b,10,nan,0", "c,0,0,10"])
    return _register(fixed, moving, out, "--fixed-points", str(points), "--moving-points", str(points))


def latin1_manifest(inputs: Path, out: Path) -> list[str]:
    _pair(inputs)
    manifest = _manifest(inputs, "case,fixed,moving", "c1,fixed.nrrd,moving-é.nrrd", encoding="latin-1")
    return ["batch", str(manifest), "--output-dir", str(out)]


def batch_output_dir_is_a_file(inputs: Path, out: Path) -> list[str]:
    argv = _batch(inputs, out)
    (inputs / "results").write_text("a file")
    return argv[:-1] + [str(inputs / "results")]


def batch_row_with_a_preset_typo(inputs: Path, out: Path) -> list[str]:
    _pair(inputs)
    manifest = _manifest(inputs, "case,fixed,moving,preset", "c1,fixed.nrrd,moving.nrrd,rigid\nc2,fixed.nrrd,moving.nrrd,affien")
    return ["batch", str(manifest), "--output-dir", str(out)]


def batch_case_named_like_a_file(inputs: Path, out: Path) -> list[str]:
    _pair(inputs)
    manifest = _manifest(inputs, "case,fixed,moving", "fixed.nrrd,fixed.nrrd,moving.nrrd")
    return ["batch", str(manifest), "--output-dir", str(inputs)]


# --- 6. misleading or missing messages


def moving_grid(size, spacing) -> Builder:
    """A case: a moving image of ``size`` voxels at ``spacing`` mm."""

    def write(inputs: Path) -> Path:
        write_image(_volume(size=size, spacing=spacing, seed=1), inputs / "moving.nrrd")
        return inputs / "moving.nrrd"

    return moving_as(write)


def thin_moving_prepared(*extra: str) -> Builder:
    """A case: the valid fixed image prepared with a moving image of 3 slices, with the options ``extra``."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, _ = _pair(inputs)
        write_image(_volume(size=(48, 40, 3), seed=1), inputs / "thin.nrrd")
        return _prep(fixed, inputs / "thin.nrrd", out, *extra)

    return build


def thin_ct_prepared(inputs: Path, out: Path) -> list[str]:
    """A case: the valid fixed image prepared with --n4 both and a moving CT of 3 slices (HU, guessed as CT)."""
    fixed, _ = _pair(inputs)
    ct = sitk.Cast(sitk.Clamp(_volume(size=(48, 40, 3), seed=1) * 3 - 1000, lowerBound=-1000), sitk.sitkInt16)
    write_image(ct, inputs / "thin-ct.nrrd")
    return _prep(fixed, inputs / "thin-ct.nrrd", out, "--n4", "both")


def spaced_data_file_cut_short(inputs: Path) -> Path:
    """A moving .mhd whose data file is ``my scan.raw`` (a space in its name), 10 bytes short."""
    header = inputs / "moving.mhd"
    sitk.WriteImage(_volume(seed=1), str(header), False)
    data = (inputs / "moving.raw").read_bytes()
    (inputs / "moving.raw").unlink()
    (inputs / "my scan.raw").write_bytes(data[:-10])
    header.write_text(header.read_text().replace("ElementDataFile = moving.raw", "ElementDataFile = my scan.raw"))
    return header


def fifo_input(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    os.mkfifo(inputs / "moving.nrrd.fifo")
    (inputs / "moving.nrrd").unlink()
    (inputs / "moving.nrrd.fifo").rename(inputs / "moving.nrrd")
    return _register(fixed, inputs / "moving.nrrd", out)


def fifo_initial_transform(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    os.mkfifo(inputs / "initial.tfm")
    return _register(fixed, moving, out, "--initial-transform", str(inputs / "initial.tfm"))


def fifo_points(inputs: Path, out: Path) -> list[str]:
    os.mkfifo(inputs / "f.csv")
    moving = _points(inputs / "m.csv", FOUR_POINTS)
    return ["prealign", "--fixed-points", str(inputs / "f.csv"), "--moving-points", str(moving),
            "--output-transform", str(out / "T.tfm")]  # fmt: skip


MORE_CASES = {
    "NaN origin": Case(moving_header("Offset", "nan 0 0"), "set the true origin"),
    "mask with a NaN background": Case(nan_background_mask, "holds NaN voxels"),
    "a 2D segmentation beside images on two grids": Case(two_d_segmentation_on_two_grids, "fixed segmentation must "
                                                         "be a 3D scalar label image"),
    "mask saved without its geometry": Case(mask_saved_without_its_geometry, "fixed mask has its image's size (48 x "
                                            "40 x 32) but no geometry (origin 0, spacing 1 mm, no direction)"),
    "mask of 1 bit per voxel": Case(one_bit_nifti_mask, "it stores 1 bit per voxel (NIfTI's DT_BINARY), which ITK "
                                    "does not read: save it with 8-bit voxels"),
    ".tfm with a decimal comma": Case(initial_tfm("1 0 0 0 1 0 0 0 1 2,5 0 0"), "write decimal points"),
    ".tfm with a NaN parameter": Case(initial_tfm("1 0 0 0 1 0 0 0 1 nan 0 0"), "not a finite number"),
    "intensity image as a segmentation": Case(intensity_image_as_segmentation, "export the segmentation as a labelmap"),
    "moving image named .MHA": Case(moving_as(_sound_but_unread("upper case")),
                                    "ITK knows a .mha file only by its lower-case extension: rename it"),
    "moving NRRD encoded bzip2": Case(moving_as(_sound_but_unread("bzip2")), "ITK reads no bzip2-encoded NRRD"),
    "moving NRRD with a time axis last": Case(moving_as(_sound_but_unread("time last")),
                                              "it is 4D (a time series or several volumes): save the one 3D volume"),
    "moving NIfTI-2": Case(moving_as(_sound_but_unread("nifti-2")), "it is NIfTI-2, which ITK 5.4 (and so this "
                           "extension) does not read: save it as NIfTI-1"),
    "moving NRRD gzipped whole": Case(moving_as(_sound_but_unread("gzip")),
                                      "it is a whole file compressed with gzip: unpack it (gunzip mr.nrrd.gz)"),
    "segmentation as the moving image": Case(segmentation_as_the_moving_image, "is a Slicer segmentation (segments "
                                             "gland), not an image: give the moving image itself as --moving"),
    "segmentations given the wrong way round": Case(segmentations_swapped, "they were given the wrong way round"),
    "cropped segmentations given the wrong way round": Case(
        cropped_segmentations_swapped, "they were given the wrong way round"
    ),
    "one segmentation for both images": Case(one_segmentation_for_both, "the same segmentation was given for both"),
    "segmentations that share no segment": Case(
        segmentations_sharing_no_segment, "give the same structure the same name in both"
    ),
    "--json names an existing folder": Case(json_is_an_existing_folder, "give a file name inside it"),
    "--output-volume names an existing folder": Case(output_volume_is_an_existing_folder, "existing folder"),
    "output name over 255 bytes": Case(output_name_too_long, "choose a shorter name"),
    "deformable result to .mat": Case(deformable_result_to_mat, "write it to .h5"),
    "mirrored initial transform": Case(initial_tfm("-1 0 0 0 1 0 0 0 1 0 0 0"), "flip the image itself"),
    "zero-scale initial transform": Case(initial_tfm("0 0 0 0 0 0 0 0 0 0 0 0"), "cannot be a starting pose"),
    "seed 2^70": Case(register_with("--seed", str(2**70)), "from 0 to 2147483647"),
    "batch --stability -3": Case(batch_with("--stability", "-3"), "0 or more"),
    "batch --timeout -5": Case(batch_with("--timeout", "-5"), "positive number of seconds"),
    "NaN voxels": Case(nan_voxels, "replace them"),
    "complex pixels": Case(complex_pixels, "magnitude"),
    "NaN guidance points": Case(nan_guidance_points, "place the point again"),
    # Two equal rows:
    "singular initial affine": Case(initial_tfm("1 0 0 1 0 0 0 0 1 0 0 0"), "cannot be a starting pose"),
    "--threads -1": Case(register_with("--threads", "-1"), "give 1 or more"),
    "--seed -5": Case(register_with("--seed", "-5"), "from 0 to"),
    "prep --n4-shrink 0": Case(prep_with("--n4", "moving", "--n4-shrink", "0"), "give e.g. 4"),
    "Latin-1 manifest": Case(latin1_manifest, "save it as UTF-8"),
    "batch --workers -2": Case(batch_with("--workers", "-2"), "give 1 or more"),
    "batch --preset typo": Case(batch_with("--preset", "rigdi"), "unknown elastix preset 'rigdi'"),
    "register volumes --checkerboard": Case(register_with("--checkerboard", "c.png"), "applies to 2D images only"),
    "register volumes --moving-pixel-size": Case(register_with("--moving-pixel-size", "0.5"), "--moving-pixel-size"),
    "batch row with a preset typo": Case(batch_row_with_a_preset_typo, "line 3: case 'c2': "),
    "batch --output-dir is a file": Case(batch_output_dir_is_a_file, "choose another --output-dir"),
    "batch case named like a file": Case(batch_case_named_like_a_file, "rename the case"),
    "one-voxel slab": Case(
        moving_grid((48, 40, 1), (2.0, 2.0, 2.5)),
        "the moving image is 2D and the other 3D: register two 2D images, or two volumes",
    ),
    "2x2x2 image": Case(moving_grid((2, 2, 2), (2.0, 2.0, 2.5)), "at least 4 along each axis"),
    "1e-5 mm spacing": Case(moving_grid((48, 40, 32), (1e-5, 1e-5, 1e-5)), "set the true spacing in mm"),
    "a FIFO as input": Case(fifo_input, "not a regular file"),
    "a FIFO as initial transform": Case(fifo_initial_transform, "not a regular file"),
    "a FIFO as points file": Case(fifo_points, "not a regular file"),
    "--max-rotation-deg nan": Case(register_with("--max-rotation-deg", "nan"), "from 0 to 180 degrees"),
    "prep --margin nan": Case(prep_with("--crop-common", "--margin", "nan"), "give 0 or more"),
    "--segments without segmentations": Case(register_with("--segments", "bone"), "or drop --segments"),
    "--guidance-weight without guidance": Case(register_with("--guidance-weight", "2"), "or drop --guidance-weight"),
    "prep --exclude-above nan": Case(prep_with("--exclude-above", "nan"), "give a CT value in HU"),
    "prep --exclude-margin -50": Case(
        prep_with("--exclude-above", "2000", "--exclude-margin", "-50"), "give 0 or more"
    ),
    "prep --n4 on a 3-slice moving image": Case(
        thin_moving_prepared("--n4", "moving"), "too thin for N4 bias correction, which needs 4 or more along every "
        "axis; give the whole volume"
    ),
    "prep --n4 on a 3-slice CT, guessed as CT (not N4's refusal)": Case(
        thin_ct_prepared, "a registration needs at least 4 along each axis; give the whole volume"
    ),
    "a .mhd whose data file 'my scan.raw' is cut short": Case(
        moving_as(spaced_data_file_cut_short), "my scan.raw holds only 245,750 bytes: the file was cut short"
    ),
    "prep --downsample-to inf": Case(prep_with("--downsample-to", "inf"), "give the voxel size to reach in mm"),
    "prep --roi with words": Case(prep_with("--roi", "a,b,c,d,e,f"), "needs 6 numbers: R1,A1,S1,R2,A2,S2"),
    "prep with no step": Case(prep_with(), "no preparation step is given: choose one or more of --crop-common"),
    "prep --n4-shrink without --n4": Case(prep_with("--n4-shrink", "2"), "add --n4, or drop --n4-shrink"),
    "prep --margin without a crop": Case(prep_with("--mask-fixed", "auto", "--margin", "5"), "or drop --margin"),
    # the docs' own synopses give the defaults (--margin 10, --exclude-margin 3): ignored silently until now
    "prep --margin at its default without a crop": Case(prep_with("--mask-fixed", "auto", "--margin", "10"),
                                                         "or drop --margin"),
    "prep --exclude-margin=3 without --exclude-above": Case(prep_with("--crop-common", "--exclude-margin=3"),
                                                            "add --exclude-above, or drop --exclude-margin"),
    "prep --modality-moving without its step": Case(
        prep_with("--mask-fixed", "auto", "--modality-moving", "ct"), "or drop --modality-moving"
    ),
    "register --exclude-margin without --exclude-above": Case(
        register_with("--exclude-margin", "2"), "add --exclude-above, or drop --exclude-margin"
    ),
    "a segment in a layer the segmentation lacks": Case(
        multi_layer_segmentation(LAYERS | {"Segment1_Layer": "2"}), "save it again from Slicer"
    ),
    "a layered segmentation without segment entries": Case(
        multi_layer_segmentation({}), "export the segmentation as a labelmap volume"
    ),
}


def small_moving_deformable(inputs: Path, out: Path) -> list[str]:
    """A 22 x 22 x 22 mm moving image in the middle of the 96 x 80 x 80 mm fixed one, for the deformable preset,
    which is not registered the other way round for the user (its inverse is not exact)."""
    fixed, _ = _pair(inputs)
    small = _volume(seed=1)[20:31, 16:27, 12:21]
    moving = inputs / "small.nrrd"
    write_image(small, moving)
    return _register(fixed, moving, out, "--preset", "deformable")


MORE_CASES["a small moving image inside the fixed one, deformable"] = Case(
    small_moving_deformable, "fills 1.8% of the fixed image's box, so most fixed samples fall off it: register the "
    "other way round (it as --fixed, the other image as --moving) and write --output-inverse"
)


def _similarity_from_the_search(fixed: Path, moving: Path, out: Path) -> list[str]:
    """The similarity preset under init auto: the scaled start search."""
    argv = _register(fixed, moving, out, "--preset", "similarity")
    del argv[argv.index("--init") : argv.index("--init") + 2]
    return argv


def mouse_against_a_stack_at_1_mm(inputs: Path, out: Path) -> list[str]:
    """A 19 mm mouse-sized fixed image against a 96 mm moving stack at 1 mm voxels (a file that stores no spacing)
    in a frame of its own, similarity from the search: every pose and size scored 0, and the engine had run from
    one anyway (exit 0, unwarned, 4.3 mm off on a 7 mm brain in a helper's sweep)."""
    fixed, moving = inputs / "mouse.nrrd", inputs / "stack.nrrd"
    write_image(_volume(spacing=(0.4, 0.4, 0.5)), fixed)
    stack = _volume(size=(96, 80, 64), spacing=(1.0, 1.0, 1.0), seed=1)
    stack.SetOrigin((300.0, -200.0, 500.0))
    write_image(stack, moving)
    return _similarity_from_the_search(fixed, moving, out)


MORE_CASES["a mouse-sized image against a stack at 1 mm, similarity"] = Case(
    mouse_against_a_stack_at_1_mm, "(1 mm voxels: also what a file that stores no spacing reads as). A spacing is "
    "probably wrong: give the right one in mm (--spacing-fixed / --spacing-moving"
)


def tiff_stack(spacing: tuple[float, float, float]) -> Builder:
    """A 3D TIFF written at ``spacing`` as the moving image: ITK reads no slice step from a TIFF (1 mm), nor a pixel
    size the file does not state (a helper's light-sheet stack read as 1 mm voxels: 4.3 mm off on a 7 mm mouse
    brain, exit 0)."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, _ = _pair(inputs)
        stack = inputs / "stack.tif"
        sitk.WriteImage(sitk.Cast(sitk.RescaleIntensity(_volume(spacing=spacing, seed=1)), sitk.sitkUInt8), str(stack))
        return _register(fixed, stack, out)

    return build


MORE_CASES["a TIFF stack that states no pixel size"] = Case(
    tiff_stack((1.0, 1.0, 1.0)), "is a TIFF stack, whose slice step ITK cannot read (nor its pixel size unless the "
    "file states one): give its voxel size in mm with --spacing-moving x,y,z on mmreg prep or mmreg register"
)
MORE_CASES["a TIFF stack with its pixel size, read with 1 mm slices"] = Case(
    tiff_stack((0.01, 0.01, 0.02)), "is a TIFF stack, whose slice step ITK cannot read"
)


def prep_auto_to_a_stack_at_1_mm(inputs: Path, out: Path) -> list[str]:
    """A 19 mm fixed image at 0.2 mm voxels and a moving stack at 1 mm (a file that stores no spacing), prepared with
    --downsample-to auto: the fixed image had been brought to 1 mm, 19 voxels across, without a word."""
    fixed, moving = inputs / "mouse.nrrd", inputs / "stack.nrrd"
    write_image(_volume(size=(96, 80, 64), spacing=(0.2, 0.2, 0.25)), fixed)
    write_image(_volume(spacing=(1.0, 1.0, 1.0), seed=1), moving)
    return _prep(fixed, moving, out, "--downsample-to", "auto")


MORE_CASES["prep --downsample-to auto down to a stack's 1 mm voxels"] = Case(
    prep_auto_to_a_stack_at_1_mm, "too coarse to register. The moving image's spacing is probably wrong (1 mm is also "
    "what a file that stores none reads as): give it with --spacing-moving"
)


def moving_spacing_ten_times(inputs: Path, out: Path) -> list[str]:
    """The moving image's spacing stated 10 times too large (20 x 20 x 25 mm voxels, 960 mm across, under the 2 m and
    100x limits), similarity from the search: its start found the size, and the engine had run 14 s before the
    result was refused as exploded (exit 1; a helper's sweep)."""
    fixed, moving = _pair(inputs)
    stretched = _volume(spacing=(20.0, 20.0, 25.0), seed=1)
    stretched.SetOrigin((3000.0, -2000.0, 5000.0))  # in a frame of its own: no header start beside the search's
    write_image(stretched, moving)
    return _similarity_from_the_search(fixed, moving, out)


MORE_CASES["a moving spacing ten times too large, similarity"] = Case(
    moving_spacing_ten_times, "times the size of the fixed one, beyond what a result may scale (0.2-5): a spacing is "
    "probably wrong; check the voxel spacing in both image headers"
)


def turned_beyond_the_rotation_limit(inputs: Path, out: Path) -> list[str]:
    """The phantom MR turned 150 degrees through its header (prone against supine), --max-rotation-deg 30: a mirror
    image beat every rotation within 30 degrees and the run was refused as "looks mirrored ... check the image
    orientation" (a reviewer's walkthrough, on the MNI head); without the limit it lands."""
    from conftest import SMALL
    from MultimodalRegistrationLib.core.phantom import make_phantom_pair, rigid_transform

    pair = make_phantom_pair(**SMALL)
    turn = rigid_transform(150.0, (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)).matrix
    turned = sitk.Image(pair.moving)
    turned.SetDirection((turn[:3, :3] @ np.asarray(pair.moving.GetDirection()).reshape(3, 3)).ravel().tolist())
    turned.SetOrigin((turn[:3, :3] @ np.asarray(pair.moving.GetOrigin())).tolist())
    fixed, moving = inputs / "ct.nrrd", inputs / "mr_turned.nrrd"
    write_image(pair.fixed, fixed)
    write_image(turned, moving)
    argv = _register(fixed, moving, out, "--max-rotation-deg", "30")
    del argv[argv.index("--init") : argv.index("--init") + 2]
    return argv


MORE_CASES["a head turned beyond --max-rotation-deg"] = Case(
    turned_beyond_the_rotation_limit, "beyond that limit, matches as well (mutual information"
)


@pytest.mark.parametrize("name", list(MORE_CASES))
def test_issue25_more_bad_input_is_refused_before_any_engine(name, tmp_path, private_tmp, capsys):
    _assert_refused(MORE_CASES[name], tmp_path, private_tmp, capsys)


# --- handled: manifests as spreadsheets save them


@pytest.mark.parametrize(
    "encoding, separator", [("utf-16", ","), ("utf-8-sig", ";"), ("utf-8", "\t")], ids=["utf-16", "semicolon", "tab"]
)
def test_issue25_manifest_in_utf16_or_with_semicolons_reads_as_written(tmp_path, encoding, separator):
    from MultimodalRegistrationLib.process.manifest import read_manifest

    fixed, moving = _pair(tmp_path)
    # A guidance weight weighs segmentations (else refused): the row gives both.
    header = separator.join(("case", "fixed", "moving", "fixed_segmentation", "moving_segmentation", "guidance_weight"))
    row = separator.join(("c1", fixed.name, moving.name, fixed.name, moving.name, "1.5"))
    manifest = _manifest(tmp_path, header, row, encoding=encoding)  # utf-16 writes its byte-order mark
    (job,) = read_manifest(manifest, tmp_path / "out")
    assert (job.case, job.fixed, job.moving, job.guidance_weight) == ("c1", str(fixed), str(moving), 1.5)


def test_issue25_an_input_through_a_hard_link_is_refused_as_an_output(tmp_path):
    from MultimodalRegistrationLib.core.errors import InputError
    from MultimodalRegistrationLib.core.output_safety import check_outputs_apart

    fixed, _ = _pair(tmp_path)
    os.link(fixed, tmp_path / "same.nrrd")
    with pytest.raises(InputError, match="would destroy an input"):
        check_outputs_apart({"fixed image": fixed}, {"output volume": tmp_path / "same.nrrd"})
    check_outputs_apart({"fixed image": fixed}, {"output volume": tmp_path / "other.nrrd"})  # no error


# --------------------------------------------------------------------------- mmreg stack (issue 23)
def _sections(inputs: Path, count: int = 2, dpi=None) -> Path:
    """``count`` small RGB sections (PNG, no pixel size unless ``dpi``) in inputs/sections."""
    from PIL import Image

    folder = inputs / "sections"
    folder.mkdir()
    for index in range(count):
        array = np.full((40, 50, 3), 240, np.uint8)
        array[10:30, 12 + index : 35 + index] = (120, 60, 150)
        Image.fromarray(array).save(folder / f"s{index}.png", **({"dpi": (dpi, dpi)} if dpi else {}))
    return folder


def _stack(sections: str, out: Path, *extra: str, pixel: str | None = "0.5") -> list[str]:
    return ["stack", "--sections", sections, "--section-spacing", "1", "--output-volume", str(out / "V.nrrd"),
            "--output-transforms", str(out / "T.csv"), "--json", str(out / "S.json"),
            *(["--pixel-size", pixel] if pixel is not None else []), *extra]  # fmt: skip


def test_a_sections_pattern_the_shell_expanded_is_refused_naming_the_quotes(tmp_path, capsys):
    """`--sections dir/*.png` unquoted reaches mmreg as the files: argparse had named them, and no fix."""
    folder = _sections(tmp_path, 3)
    files = sorted(str(path) for path in folder.glob("*.png"))
    argv = _stack(files[0], tmp_path / "out")
    with pytest.raises(SystemExit) as stopped:
        main(argv[:3] + files[1:] + argv[3:])
    said = capsys.readouterr().err
    assert stopped.value.code == 2 and not (tmp_path / "out").exists()
    assert f"the shell expanded --sections into files; quote the pattern (--sections '{folder}/*.png')" in said


def stack_two_sections_numbered_alike(inputs: Path, out: Path) -> list[str]:
    """s1.png beside s01.png: stacked in the folder listing's order, exit 0 (a helper's 2D sweep)."""
    folder = _sections(inputs, 3)
    (folder / "s01.png").write_bytes((folder / "s2.png").read_bytes())
    return _stack(str(folder), out)


def stack_multipage_section(inputs: Path, out: Path) -> list[str]:
    """A two-page TIFF among the sections had been aligned as 'missing' and stacked as glass, exit 0 (a sweep)."""
    folder = _sections(inputs, 3)
    pages = sitk.GetImageFromArray(np.full((2, 40, 50), 200, np.uint8))
    sitk.WriteImage(pages, str(folder / "s3.tif"))
    return _stack(str(folder), out)


def stack_empty_folder(inputs: Path, out: Path) -> list[str]:
    (inputs / "sections").mkdir()
    (inputs / "sections" / "notes.txt").write_text("not a section")
    return _stack(str(inputs / "sections"), out)


def stack_one_section(inputs: Path, out: Path) -> list[str]:
    return _stack(str(_sections(inputs, 1)), out)


def stack_missing_folder(inputs: Path, out: Path) -> list[str]:
    return _stack(str(inputs / "nowhere"), out)


def stack_glob_matching_nothing(inputs: Path, out: Path) -> list[str]:
    _sections(inputs)
    return _stack(str(inputs / "sections" / "*.tif"), out)


def stack_sections_given_as_a_file(inputs: Path, out: Path) -> list[str]:
    return _stack(str(_sections(inputs) / "s0.png"), out)


def stack_pixel(pixel: str | None, dpi: int | None = None) -> Builder:
    """A case: two sections (saved at ``dpi`` if given) stacked with --pixel-size ``pixel`` (None: not given)."""
    return lambda inputs, out: _stack(str(_sections(inputs, dpi=dpi)), out, pixel=pixel)


def stack_zero_section_spacing(inputs: Path, out: Path) -> list[str]:
    argv = _stack(str(_sections(inputs)), out)
    argv[argv.index("--section-spacing") + 1] = "0"
    return argv


def stack_volume_not_nrrd(inputs: Path, out: Path) -> list[str]:
    argv = _stack(str(_sections(inputs)), out)
    argv[argv.index("--output-volume") + 1] = str(out / "V.png")
    return argv


def stack_unreadable_folder(inputs: Path, out: Path) -> list[str]:
    """A folder that cannot be listed: a plain file stands where the folder's parent should be."""
    (inputs / "archive").write_text("a file, not a folder")
    return _stack(str(inputs / "archive" / "sections"), out)


def stack_over_its_reference(inputs: Path, out: Path) -> list[str]:
    """The volume written to the reference MR's own file: the run had replaced the MR with the stack (exit 0)."""
    write_image(_volume(size=(40, 50, 8), spacing=(1.0, 1.0, 1.0)), inputs / "mr.nrrd")
    argv = _stack(str(_sections(inputs)), out, "--reference", str(inputs / "mr.nrrd"))
    argv[argv.index("--output-volume") + 1] = str(inputs / "mr.nrrd")
    return argv


def stack_two_bit_depths(inputs: Path, out: Path) -> list[str]:
    """An 8-bit and a 16-bit section: the 16-bit one had been written into the 8-bit volume as white (exit 0)."""
    from PIL import Image

    folder = _sections(inputs)
    gray = np.asarray(Image.open(folder / "s1.png").convert("L")).astype(np.uint16) * 257
    (folder / "s1.png").unlink()
    Image.fromarray(gray).save(folder / "s1.png")
    return _stack(str(folder), out)


def stack_oblong_pixels(inputs: Path, out: Path) -> list[str]:
    """Sections whose files state their pixel size, one of them 0.5 x 0.25 mm: it had been read at 0.5 mm square,
    stretched twice along its rows (exit 0)."""
    folder = inputs / "sections"
    folder.mkdir()
    for index, spacing in enumerate(((0.5, 0.5), (0.5, 0.25))):
        section = sitk.GetImageFromArray(np.random.default_rng(index).normal(100, 20, (40, 50)).astype(np.float32))
        section.SetSpacing(spacing)
        sitk.WriteImage(section, str(folder / f"s{index}.nrrd"))
    return _stack(str(folder), out, pixel=None)


STACK_CASES = {
    "stack: the volume written over the reference": Case(stack_over_its_reference, "is the --reference"),
    "stack: sections of two bit depths": Case(stack_two_bit_depths, "save every section at one bit depth"),
    "stack: a section with oblong pixels": Case(stack_oblong_pixels, "resample it to square pixels"),
    "stack: two sections numbered alike": Case(stack_two_sections_numbered_alike, "s01.png and s1.png have the same "
                                               "number, so their order is unknown: rename one"),
    "stack: folder without sections": Case(stack_empty_folder, "two or more sections"),
    "stack: one section": Case(stack_one_section, "two or more sections"),
    "stack: a multi-page TIFF section": Case(stack_multipage_section, "section s3.tif holds several pages"),
    "stack: missing folder": Case(stack_missing_folder, "does not exist"),
    "stack: glob matching nothing": Case(stack_glob_matching_nothing, "two or more sections"),
    "stack: a file for the folder": Case(stack_sections_given_as_a_file, "give the folder of sections"),
    "stack: negative pixel size": Case(stack_pixel("-0.5"), "give a positive size in mm"),
    "stack: zero pixel size": Case(stack_pixel("0"), "give a positive size in mm"),
    "stack: no pixel size in the files": Case(stack_pixel(None), "give it with --pixel-size"),
    "stack: 72 dpi is not a pixel size": Case(stack_pixel(None, dpi=72), "give it with --pixel-size"),
    "stack: zero section spacing": Case(stack_zero_section_spacing, "distance between sections"),
    "stack: volume not NRRD": Case(stack_volume_not_nrrd, "use one of .nrrd"),
    "stack: unreadable folder": Case(stack_unreadable_folder, "does not exist"),
}
CASES.update(STACK_CASES)


@pytest.mark.parametrize("name", list(STACK_CASES))
def test_bad_stack_input_is_refused_before_any_section_is_registered(name, tmp_path, private_tmp, capsys):
    test_bad_input_is_refused_early_and_leaves_everything_as_it_was(name, tmp_path, private_tmp, capsys)


# --------------------------------------------------------------------------- 2D registration (issue 23)
def _slides(inputs: Path, rgba_alpha: int | None = None) -> tuple[Path, Path]:
    """A 2D MR-like slice (NRRD, 1 mm pixels) and an RGB section (PNG, no pixel size); RGBA with a transparent
    corner when ``rgba_alpha`` is given."""
    from PIL import Image

    rng = np.random.default_rng(3)
    slice_image = sitk.GetImageFromArray(rng.normal(100, 20, (40, 50)).astype(np.float32))
    slice_image.SetSpacing((1.0, 1.0))
    sitk.WriteImage(slice_image, str(inputs / "mr.nrrd"))
    rgb = rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)
    if rgba_alpha is not None:
        alpha = np.full((80, 100, 1), 255, np.uint8)
        alpha[:10, :10] = rgba_alpha
        rgb = np.concatenate([rgb, alpha], axis=-1)
    Image.fromarray(rgb).save(inputs / "he.png")
    return inputs / "mr.nrrd", inputs / "he.png"


def _register_2d(fixed: Path, moving: Path, out: Path, *extra: str, pixel: str | None = "0.5") -> list[str]:
    argv = ["register2d", "--fixed", str(fixed), "--moving", str(moving), "--output-transform", str(out / "T.tfm")]
    return argv + (["--moving-pixel-size", pixel] if pixel is not None else []) + list(extra)


def two_d_same_file(inputs: Path, out: Path) -> list[str]:
    """It returned the identity, exit 0 (a helper's sweep)."""
    _, moving = _slides(inputs)
    return _register_2d(moving, moving, out)


def two_d_micrometres_stored_as_mm(inputs: Path, out: Path) -> list[str]:
    """A 2400-pixel slide at 1 mm, 2.4 m wide, had registered without a word (a helper's sweep)."""
    fixed, _ = _slides(inputs)
    wide = np.random.default_rng(4).integers(0, 255, (60, 2400), dtype=np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(wide), str(inputs / "wide.png"))
    return _register_2d(fixed, inputs / "wide.png", out, pixel="1")


def two_d_against_a_volume(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    _, moving = _slides(inputs)
    return _register_2d(fixed, moving, out)


def two_d_rgba_with_transparency(inputs: Path, out: Path) -> list[str]:
    return _register_2d(*_slides(inputs, rgba_alpha=0), out)


def two_d_zero_pixel_size(inputs: Path, out: Path) -> list[str]:
    return _register_2d(*_slides(inputs), out, pixel="0")


def two_d_no_pixel_size(inputs: Path, out: Path) -> list[str]:
    return _register_2d(*_slides(inputs), out, pixel=None)


def two_d_deformable_preset(inputs: Path, out: Path) -> list[str]:
    return _register_2d(*_slides(inputs), out, "--preset", "deformable")


def two_d_mask_of_another_size(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _slides(inputs)
    mask = sitk.Image((10, 10), sitk.sitkUInt8) + 1
    sitk.WriteImage(mask, str(inputs / "mask.nrrd"))
    return _register_2d(fixed, moving, out, "--fixed-mask", str(inputs / "mask.nrrd"))


def two_d_tiny_mask(inputs: Path, out: Path) -> list[str]:
    """A 3 x 3 pixel fixed mask: elastix stopped on an index of -9.2e18, ANTs on 'All samples map outside' (exit 1,
    with a hint to prealign; a helper's sweep)."""
    fixed, moving = _slides(inputs)
    mask = sitk.Image((50, 40), sitk.sitkUInt8)
    mask[20:23, 20:23] = 1
    sitk.WriteImage(mask, str(inputs / "mask.nrrd"))
    return _register_2d(fixed, moving, out, "--fixed-mask", str(inputs / "mask.nrrd"))


def two_d_landmarks_on_one_image(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _slides(inputs)
    (inputs / "F.csv").write_text("label,x,y,z\nA,-10,-10,0\nB,-20,-5,0\nC,-5,-30,0\n")
    return _register_2d(fixed, moving, out, "--fixed-points", str(inputs / "F.csv"))


def two_d_landmarks_that_cannot_pair(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _slides(inputs)
    (inputs / "F.csv").write_text("label,x,y,z\nA,-10,-10,0\nB,-20,-5,0\nC,-5,-30,0\n")
    (inputs / "M.csv").write_text("label,x,y,z\nP,-10,-10,0\nQ,-20,-5,0\n")
    return _register_2d(fixed, moving, out, "--fixed-points", str(inputs / "F.csv"), "--moving-points",
                        str(inputs / "M.csv"))  # fmt: skip


def two_d_pixel_size_in_the_wrong_unit(inputs: Path, out: Path) -> list[str]:
    return _register_2d(*_slides(inputs), out, pixel="0.0005")  # 0.5 micrometres: a 0.05 x 0.04 mm slide


def two_d_transform_as_image(inputs: Path, out: Path) -> list[str]:
    argv = _register_2d(*_slides(inputs), out)
    argv[argv.index("--output-transform") + 1] = str(out / "T.nrrd")
    return argv


def two_d_volume_only_option(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _slides(inputs)
    sitk.WriteTransform(sitk.AffineTransform(3), str(inputs / "I.tfm"))
    argv = _register_2d(fixed, moving, out, "--initial-transform", str(inputs / "I.tfm"))
    argv[0] = "register"  # register2d has no --initial-transform: register takes it, for volumes
    return argv


def two_d_blank_slide(inputs: Path, out: Path) -> list[str]:
    from PIL import Image

    fixed, _ = _slides(inputs)
    Image.fromarray(np.full((80, 100, 3), 240, np.uint8)).save(inputs / "blank.png")
    return _register_2d(fixed, inputs / "blank.png", out)  # elastix failed on it (exit 1, advice about the start)


def two_d_zero_moving_pixel_size(inputs: Path, out: Path) -> list[str]:
    return _register_2d(*_slides(inputs), out, pixel="0")


def two_d_multi_page_tiff(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _slides(inputs)
    sitk.WriteImage(sitk.Image([60, 50, 3], sitk.sitkUInt8) + 7, str(inputs / "pyramid.tif"))  # three pages
    return _register_2d(fixed, inputs / "pyramid.tif", out)  # it was called 3D: 'stack it with mmreg stack'


def two_d_preset_file(inputs: Path, out: Path) -> list[str]:
    (inputs / "my_affine.txt").write_text('(Transform "AffineTransform")\n')
    return _register_2d(*_slides(inputs), out, "--preset", str(inputs / "my_affine.txt"))  # it crashed (exit 1)


def two_d_start_search_option(inputs: Path, out: Path) -> list[str]:
    argv = _register_2d(*_slides(inputs), out, "--max-rotation-deg", "5")
    argv[0] = "register"  # the 2D search turns the whole circle: a limit it ignored misled
    return argv


def two_d_keep_log(inputs: Path, out: Path) -> list[str]:
    argv = _register_2d(*_slides(inputs), out, "--keep-log")
    argv[0] = "register"
    return argv


def two_d_checkerboard_over_the_slide(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _slides(inputs)
    return _register_2d(fixed, moving, out, "--checkerboard", str(moving))


def two_d_volume_over_the_fixed_image(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _slides(inputs)
    argv = _register_2d(fixed, moving, out, "--output-volume", str(fixed))
    argv[0] = "register"  # register hands two 2D images to the same job
    return argv



def two_d_non_square_pixels(inputs: Path, out: Path) -> list[str]:
    _, moving = _slides(inputs)
    image = sitk.GetImageFromArray(np.random.default_rng(4).normal(100, 20, (40, 50)).astype(np.float32))
    image.SetSpacing((0.5, 1.0))  # registered as 0.5 x 0.5 mm, it ended 117 mm off (exit 0, no warning)
    sitk.WriteImage(image, str(inputs / "aniso.nrrd"))
    return _register_2d(inputs / "aniso.nrrd", moving, out)


def two_d_non_square_stated(kind: str) -> Builder:
    """A section stating 0.5 x 1 mm pixels in a PNG's pHYs or an OME-TIFF's PhysicalSizeY: the rows had been read as
    square as the columns, registered 27 mm off with exit 0 (a helper's 2D sweep)."""

    def build(inputs: Path, out: Path) -> list[str]:
        from PIL import Image

        fixed, _ = _slides(inputs)
        grey = np.random.default_rng(5).integers(0, 255, (80, 100), dtype=np.uint8)
        if kind == "png":
            Image.fromarray(grey).save(inputs / "section.png", dpi=(25.4 / 0.5, 25.4 / 1.0))
            return _register_2d(fixed, inputs / "section.png", out, pixel=None)
        ome = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
               '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="100" SizeY="80" '
               'SizeC="1" SizeZ="1" SizeT="1" PhysicalSizeX="500" PhysicalSizeY="1000"/></Image></OME>')  # fmt: skip
        Image.fromarray(grey).save(inputs / "section.ome.tif", description=ome)
        return _register_2d(fixed, inputs / "section.ome.tif", out, pixel=None)

    return build


def two_d_float64_tiff(inputs: Path, out: Path) -> list[str]:
    """A sound TIFF of 64-bit float pixels (tifffile writes them; ITK and Pillow read none): it had been called
    damaged or cut short (a helper's 2D sweep)."""
    from tiff_writer import write_tiff

    fixed, _ = _slides(inputs)
    pixels = np.random.default_rng(6).random((40, 50))
    return _register_2d(fixed, write_tiff(inputs / "float64.tif", pixels, sample_format=3), out)


def two_d_two_channel_tiff(inputs: Path, out: Path) -> list[str]:
    """Two fluorescence channels in one TIFF: ITK read them interleaved as one, registered 111 mm off (exit 0)."""
    from tiff_writer import write_tiff

    fixed, _ = _slides(inputs)
    channels = np.random.default_rng(7).integers(0, 255, (40, 50, 2)).astype(np.uint8)
    return _register_2d(fixed, write_tiff(inputs / "two.tif", channels, extra={338: (3, [0])}), out)


def two_d_nan_pixel(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _slides(inputs)
    image = sitk.ReadImage(str(fixed))
    image[5, 5] = float("nan")  # Otsu crashed on it: exit 1, "this is a bug"
    sitk.WriteImage(image, str(fixed))
    return _register_2d(fixed, moving, out)


def two_d_itk_tiff_without_a_size(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _slides(inputs)
    sitk.WriteImage(sitk.Image([60, 50], sitk.sitkUInt16) + 7, str(inputs / "itk.tif"))  # ITK's 1 mm: 25.4 dpi
    assert abs(sitk.ReadImage(str(inputs / "itk.tif")).GetSpacing()[0] - 1.0) > 1e-9  # read back as 1.000000015
    return _register_2d(fixed, inputs / "itk.tif", out, pixel=None)

def two_d_points(fixed_rows: str, moving_rows: str) -> Builder:
    """A case: the slide pair with landmark CSVs (RAS) of these rows; the fixed slice is 40 x 50 mm at LPS 0."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, moving = _slides(inputs)
        for name, rows in (("F.csv", fixed_rows), ("M.csv", moving_rows)):
            (inputs / name).write_text("label,x,y,z\n" + rows)
        return _register_2d(fixed, moving, out, "--fixed-points", str(inputs / "F.csv"), "--moving-points",
                            str(inputs / "M.csv"))  # fmt: skip

    return build


ON_SLIDE = "A,-10,-10,0\nB,-20,-5,0\nC,-5,-30,0\n"
TWO_D_CASES = {
    # z had been dropped with no word, and points 1000 mm off gave a QA of 601 mm, exit 0 (a helper's sweep)
    "2D: landmarks off the slice's plane": Case(
        two_d_points("A,-10,-10,-20\nB,-20,-5,0\nC,-5,-30,25\n", ON_SLIDE), "off the fixed image's plane"
    ),
    "2D: landmarks all outside the slice": Case(
        two_d_points(ON_SLIDE, "A,-1010,-10,0\nB,-1020,-5,0\nC,-1005,-30,0\n"), "all 3 moving points lie outside"
    ),
    "2D: a 2D section against a volume": Case(two_d_against_a_volume, "mmreg stack"),
    "2D: RGBA with transparency": Case(two_d_rgba_with_transparency, "save it without transparency"),
    "2D: zero pixel size": Case(two_d_zero_pixel_size, "give a positive size in mm"),
    "2D: no pixel size in the PNG": Case(two_d_no_pixel_size, "give it in mm (--moving-pixel-size)"),
    "2D: a 3D-only preset": Case(two_d_deformable_preset, "choose one of rigid, similarity, affine"),
    "2D: mask of another size": Case(two_d_mask_of_another_size, "draw the mask on that image"),
    "2D: landmarks on one image": Case(two_d_landmarks_on_one_image, "together"),
    "2D: landmark lists that cannot pair": Case(two_d_landmarks_that_cannot_pair, "cannot be paired by label"),
    "2D: a mask of 3 x 3 pixels": Case(two_d_tiny_mask, "too small to register by"),
    "2D: a pixel size in the wrong unit": Case(two_d_pixel_size_in_the_wrong_unit, "too small to register against it"),
    # micrometres typed as mm for the moving slide: the right fixed image had been blamed, and its option named
    "2D: a slide's micrometres typed as mm": Case(
        lambda inputs, out: _register_2d(*_slides(inputs), out, pixel="10"),
        "most likely the moving image's: pixel sizes are in mm (if it is in micrometres, give --moving-pixel-size 0.01)",
    ),
    "2D: transform written as an image": Case(two_d_transform_as_image, "use one of .tfm"),
    "2D: a volume-only option": Case(two_d_volume_only_option, "apply to 3D volumes only"),
    "2D: the same file as fixed and moving": Case(two_d_same_file, "name the same file"),
    "2D: micrometre pixels stored as mm": Case(two_d_micrometres_stored_as_mm, "wider than any body (2000 mm): give "
                                               "its true pixel size in mm with --moving-pixel-size"),
    "2D: a blank slide": Case(two_d_blank_slide, "holds no tissue to register"),
    "2D: the option named for a zero pixel size": Case(two_d_zero_moving_pixel_size, "--moving-pixel-size 0.0 mm"),
    "2D: a multi-page TIFF": Case(two_d_multi_page_tiff, "export its full-resolution page"),
    "2D: a preset file": Case(two_d_preset_file, "take a named 2D preset, not a preset file"),
    "2D: a start-search option": Case(two_d_start_search_option, "--max-rotation-deg apply to 3D volumes only"),
    "2D: --keep-log": Case(two_d_keep_log, "--keep-log apply to 3D volumes only"),
    "2D: checkerboard over the moving slide": Case(two_d_checkerboard_over_the_slide, "would destroy an input"),
    "2D: output volume over the fixed image": Case(two_d_volume_over_the_fixed_image, "would destroy an input"),
    "2D: non-square pixels": Case(two_d_non_square_pixels, "has 0.5 x 1 mm pixels: 2D registration needs square"),
    "2D: a TIFF of two channels": Case(two_d_two_channel_tiff, "two.tif holds two channels per pixel, which ITK "
                                       "reads interleaved as one: save the channel to register on its own"),
    "2D: a TIFF of 64-bit float pixels": Case(two_d_float64_tiff, "it holds 64-bit pixels, which ITK reads from no "
                                              "TIFF: save it with 32-bit float or 16-bit pixels"),
    "2D: non-square pixels in a PNG's pHYs": Case(two_d_non_square_stated("png"), "has 0.5 x 1 mm pixels: 2D "
                                                  "registration needs square pixels"),
    "2D: non-square pixels in an OME-TIFF": Case(two_d_non_square_stated("ome"), "has 0.5 x 1 mm pixels: 2D "
                                                 "registration needs square pixels"),
    "2D: a NaN pixel": Case(two_d_nan_pixel, "holds 1 NaN or infinite pixel value(s)"),
    "2D: an ITK TIFF that states no size": Case(two_d_itk_tiff_without_a_size, "give it in mm (--moving-pixel-size)"),
}
CASES.update(TWO_D_CASES)


@pytest.mark.parametrize("name", list(TWO_D_CASES))
def test_bad_2d_input_is_refused_before_any_engine_runs(name, tmp_path, private_tmp, capsys):
    test_bad_input_is_refused_early_and_leaves_everything_as_it_was(name, tmp_path, private_tmp, capsys)


# --------------------------------------------------------------------------- issue 25: the Slicer batch script
SCRIPT_CASES = {  # options -> what the refusal says; each refused as mmreg register refuses it, before any engine
    "a deformable result to .tfm": (["--engine", "ants", "--preset", "deformable", "--output-transform", "T.tfm"],
                                    "a deformable result is a displacement field, which .tfm cannot hold"),
    "a 2D-only option on volumes": (["--output-transform", "T.h5", "--checkerboard", "c.png"],
                                    "--checkerboard applies to 2D images only"),
    "an inverse elastix deformable cannot write": (["--preset", "deformable", "--output-transform", "T.h5",
                                                    "--output-inverse", "Ti.h5"], "--output-inverse"),
    # an unset shell variable: the script had registered and written no volume, exit 0 (a helper's sweep)
    "an empty output volume": (["--output-transform", "T.h5", "--output-volume", ""], "--output-volume is empty"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SCRIPT_CASES))
def test_the_slicer_batch_script_checks_files_as_mmreg_register_does(name, tmp_path, private_tmp):
    """The script registered first and refused an output format afterwards (ANTs deformable: 30 s, then exit 2 and
    nothing written); it now runs mmreg register's checks on the files given before loading anything."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "Resources" / "Scripts" / "slicer_register.py"
    fixed, moving = _pair(tmp_path)
    options, said = SCRIPT_CASES[name]
    out = tmp_path / "out"
    options = [str(out / option) if option.endswith((".tfm", ".h5", ".png")) else option for option in options]
    run = subprocess.run(
        [sys.executable, str(script), "--", "--fixed", str(fixed), "--moving", str(moving), *options],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(private_tmp)},
    )  # fmt: skip
    assert run.returncode == EXIT_INPUT, run.stderr[-2000:]
    assert said in run.stderr
    assert not out.exists() and list(private_tmp.iterdir()) == []


# --------------------------------------------------------------------------- mmreg stack --reference (issue 23)
def _stack_reference(inputs: Path, slices: int = 4) -> Path:
    """A small 3D reference (``slices`` planes 1 mm apart) in inputs/reference.nrrd."""
    path = inputs / "reference.nrrd"
    write_image(_volume(size=(30, 30, slices), spacing=(1.0, 1.0, 1.0)), path)
    return path


def stack_reference_missing(inputs: Path, out: Path) -> list[str]:
    return _stack(str(_sections(inputs)), out, "--reference", str(inputs / "nowhere.nrrd"))


def stack_reference_is_2d(inputs: Path, out: Path) -> list[str]:
    folder = _sections(inputs)
    return _stack(str(folder), out, "--reference", str(folder / "s0.png"))


def stack_reference_too_shallow(inputs: Path, out: Path) -> list[str]:
    """Two sections 1 mm apart from 3 mm deep need 4 mm of reference; it holds 3 mm (4 slices)."""
    return _stack(str(_sections(inputs)), out, "--reference", str(_stack_reference(inputs)), "--reference-offset", "3")


def stack_reference_negative_offset(inputs: Path, out: Path) -> list[str]:
    return _stack(str(_sections(inputs)), out, "--reference", str(_stack_reference(inputs)), "--reference-offset", "-1")


def stack_zero_neighbours(inputs: Path, out: Path) -> list[str]:
    return _stack(str(_sections(inputs)), out, "--neighbours", "0")


def stack_reference_every_zero(inputs: Path, out: Path) -> list[str]:
    return _stack(str(_sections(inputs)), out, "--reference", str(_stack_reference(inputs)), "--reference-every", "0")


STACK_REFERENCE_CASES = {
    "stack: reference missing": Case(stack_reference_missing, "does not exist"),
    "stack: reference is 2D": Case(stack_reference_is_2d, "not a 3D volume"),
    "stack: reference too shallow": Case(stack_reference_too_shallow, "check --section-spacing and --reference-offset"),
    "stack: negative reference offset": Case(stack_reference_negative_offset, "depth of the first section"),
    "stack: zero neighbours": Case(stack_zero_neighbours, "give 1 to 20"),
    "stack: reference every 0 sections": Case(stack_reference_every_zero, "give 1 or more"),
}
CASES.update(STACK_REFERENCE_CASES)


@pytest.mark.parametrize("name", list(STACK_REFERENCE_CASES))
def test_bad_stack_reference_is_refused_before_any_section_is_registered(name, tmp_path, private_tmp, capsys):
    test_bad_input_is_refused_early_and_leaves_everything_as_it_was(name, tmp_path, private_tmp, capsys)


# --------------------------------------------------------------------------- the distance-map preset (issue 22)
def distance_map_without_segmentations(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return _register(fixed, moving, out, "--preset", "distance-map")


def distance_map_with_ants(inputs: Path, out: Path) -> list[str]:
    """Said "unknown ants preset", listing ANTs' presets only (a helper's sweep)."""
    fixed, moving = _pair(inputs)
    return _register(fixed, moving, out, "--engine", "ants", "--preset", "distance-map")


DISTANCE_MAP_CASES = {
    "distance-map preset without segmentations": Case(
        distance_map_without_segmentations, "give both segmentations (--fixed-segmentation and --moving-segmentation)"
    ),
    "distance-map preset with ants": Case(
        distance_map_with_ants, "'distance-map': it is a preset of elastix only: choose that engine, or one of rigid"
    ),
}
CASES.update(DISTANCE_MAP_CASES)


@pytest.mark.parametrize("name", list(DISTANCE_MAP_CASES))
def test_distance_map_preset_is_refused_without_segmentations(name, tmp_path, private_tmp, capsys):
    test_bad_input_is_refused_early_and_leaves_everything_as_it_was(name, tmp_path, private_tmp, capsys)


# --------------------------------------------------------------------------- two single-slice volume nodes (2D)
# The registration panel's call on two volumes one slice thick (nodes/registration_2d.py): refused with the fix
# named, before anything is written or started, and the scene left as it was.


def _two_slices(scene, column_mm: float = 0.5, row_mm: float = 0.5):
    from MultimodalRegistrationLib.nodes import mrml

    rng = np.random.default_rng(3)
    nodes = []
    for name, spacing in (("fixed slice", (0.5, 0.5, 1.0)), ("moving slice", (column_mm, row_mm, 1.0))):
        image = sitk.JoinSeries(sitk.GetImageFromArray(rng.random((40, 50)).astype(np.float32)))
        image.SetSpacing(spacing)
        nodes.append(mrml.volume_node_from_image(scene, image, name))
    return nodes


def slices_with_landmarks(scene) -> dict:
    from MultimodalRegistrationLib.nodes import mrml

    fixed, moving = _two_slices(scene)
    points = mrml.markups_from_points(scene, np.zeros((3, 3)), name="F")
    return {"fixedVolume": fixed, "movingVolume": moving, "fixedLandmarks": points, "movingLandmarks": points}


def slices_moving_under_a_transform(scene) -> dict:
    fixed, moving = _two_slices(scene)
    parent = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "by hand")
    moving.SetAndObserveTransformNodeID(parent.GetID())
    return {"fixedVolume": fixed, "movingVolume": moving}


def slices_non_square_pixels(scene) -> dict:
    fixed, moving = _two_slices(scene, column_mm=0.5, row_mm=0.8)
    return {"fixedVolume": fixed, "movingVolume": moving}


SLICE_CASES = {
    "slices_with_landmarks": (slices_with_landmarks, "apply to 3D volumes only: clear them"),
    "slices_moving_under_a_transform": (slices_moving_under_a_transform, "harden the transform"),
    "slices_non_square_pixels": (slices_non_square_pixels, "needs square pixels; resample it"),
}


@pytest.mark.parametrize("name", list(SLICE_CASES))
def test_bad_2d_node_input_is_refused_before_any_engine_runs(name, scene):
    from MultimodalRegistrationLib.core.errors import InputError
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    build, fix = SLICE_CASES[name]
    values = build(scene)
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match=fix):
        register_nodes(registration_parameters(**values))
    assert scene.GetNumberOfNodes() == nodes_before


# --------------------------------------------------------------------------- panel choices that do not fit
# The registration panel's call with choices that need what is not given: refused with the fix named in the
# panel's words (its labels, and the parameter names a script uses), not mmreg's options, before any engine runs.


def _two_volumes(scene) -> dict:
    from MultimodalRegistrationLib.nodes import mrml

    rng = np.random.default_rng(5)
    nodes = {}
    for key, name in (("fixedVolume", "fixed"), ("movingVolume", "moving")):
        image = sitk.GetImageFromArray(rng.random((20, 22, 24)).astype(np.float32))
        image.SetSpacing((2.0, 2.0, 2.0))
        nodes[key] = mrml.volume_node_from_image(scene, image, name)
    return nodes


PANEL_CASES = {  # the choice -> what the refusal must say
    "weight_without_guidance": ({"guidanceWeight": 2.0}, "'Guidance weight' (guidanceWeight) weighs segmentations or "
                                "landmarks: add 'Fixed segmentation' (fixedSegmentation) and 'Moving segmentation'"),
    "segments_without_segmentations": ({"segments": "gland"}, "'Segments' chooses among segmentations: add 'Fixed "
                                       "segmentation' (fixedSegmentation)"),
    "distance_map_without_segmentations": ({"preset": "distance-map"}, "give both segmentations ('Fixed "
                                           "segmentation' (fixedSegmentation) and 'Moving segmentation'"),
    "seed_out_of_range": ({"seed": -5}, "'Random seed' (seed) -5 is out of range"),
    "metric_segments_without_guidance": ({"metric": "segments"}, "'Metric' segments needs segmentations or landmarks"),
    "init_unknown": ({"init": "nosuch"}, "'Start pose' (init) 'nosuch' is not a start: choose one of auto"),  # worker
    "speck_mask": ({"fixedMask": "speck"}, "and crop the images to the region instead (the Registration Prep module)"),
    # a node sweep: a node's name for the node ended in AttributeError
    "name_for_a_node": ({"initialTransform": "prealign"}, "the initial transform (initialTransform) is 'prealign', "
                        "not a node: give the node: slicer.util.getNode('prealign')"),
}  # fmt: skip


def test_an_empty_node_name_counts_as_unset_and_a_name_is_refused(scene):
    """A parameter node holds "" for a node reference that was never chosen: that is no choice, not a bad one."""
    from types import SimpleNamespace

    from MultimodalRegistrationLib.nodes.given_nodes import check_given_nodes

    check_given_nodes(SimpleNamespace(initialTransform="", fixedLandmarks=None), ["initialTransform", "fixedLandmarks"])
    with pytest.raises(ValueError, match=r"the fixed landmarks \(fixedLandmarks\) is ' ', not a node"):
        check_given_nodes(SimpleNamespace(fixedLandmarks=" "), ["fixedLandmarks"])


@pytest.mark.parametrize("name", list(PANEL_CASES))
def test_a_panel_choice_that_does_not_fit_is_refused_in_the_panels_words(name, scene):
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters
    from MultimodalRegistrationLib.process.worker import WorkerFailure

    values, said = PANEL_CASES[name]
    volumes = _two_volumes(scene)
    if values.get("fixedMask") == "speck":  # 8 voxels: "(mmreg prep)" had reached the panel (a node sweep)
        from MultimodalRegistrationLib.nodes import mrml

        reference = mrml.image_from_volume_node(volumes["fixedVolume"])
        speck = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
        speck.CopyInformation(reference)
        speck[8:10, 8:10, 8:10] = 1
        values = {"fixedMask": mrml.volume_node_from_image(scene, speck, "speck", labelmap=True)}
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises((ValueError, WorkerFailure)) as refused:
        register_nodes(registration_parameters(**volumes, **values))
    message = str(refused.value)
    assert said in message
    assert "--" not in message  # no mmreg option a panel user cannot find
    assert getattr(refused.value, "kind", "input") == "input"
    assert scene.GetNumberOfNodes() == nodes_before


@pytest.mark.parametrize("job", ["register", "qa"])
def test_a_segmentation_with_nothing_drawn_is_refused_by_its_name(job, scene, make_segmentation):
    """A helper's sweep: every segment empty was refused as "the fixed segmentation is empty (every voxel is 0): give
    the labelmap with the segments", naming no node and speaking of a labelmap the user never made; QA (a node
    sweep) still said so, after its image metrics."""
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.qa import assess_nodes, qa_parameters
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    volumes = _two_volumes(scene)
    labels = sitk.Image(mrml.image_from_volume_node(volumes["fixedVolume"]).GetSize(), sitk.sitkUInt8)
    labels[5:15, 5:15, 5:15] = 1
    drawn = make_segmentation(labels, {1: "gland"}, "MR gland")
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "US gland")
    empty.GetSegmentation().AddEmptySegment("gland", "gland")
    nodes_before = scene.GetNumberOfNodes()
    said = "the fixed segmentation 'US gland' has nothing drawn in any segment inside the fixed volume 'fixed': draw"
    segmentations = {"fixedSegmentation": empty, "movingSegmentation": drawn}
    with pytest.raises(ValueError, match=f"{said} them .Segment Editor., or clear"):
        if job == "register":
            register_nodes(registration_parameters(**volumes, **segmentations))
        else:
            assess_nodes(qa_parameters(**volumes, **segmentations))
    assert scene.GetNumberOfNodes() == nodes_before


@pytest.mark.parametrize("kind", ["segmentation", "landmarks"])
def test_one_guidance_node_for_both_volumes_is_refused(kind, scene, make_segmentation):
    """The same segmentation (or point list) as fixed and moving guidance ran and returned no correction, without
    a warning (a TRUS pair 22 mm off, as doing nothing): refused with the fix, the scene as it was."""
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    volumes = _two_volumes(scene)
    if kind == "segmentation":
        labels = sitk.Image(mrml.image_from_volume_node(volumes["fixedVolume"]).GetSize(), sitk.sitkUInt8)
        labels[5:15, 5:15, 5:15] = 1
        node = make_segmentation(labels, {1: "gland"}, "gland")
        values, said = {"fixedSegmentation": node, "movingSegmentation": node}, "segmentation are the same node"
    else:
        node = mrml.markups_from_points(scene, np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]]), name="clicks")
        values, said = {"fixedLandmarks": node, "movingLandmarks": node}, "landmarks are the same node"
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match=f"{said}, '{node.GetName()}': select one for each volume"):
        register_nodes(registration_parameters(**volumes, **values))
    assert scene.GetNumberOfNodes() == nodes_before


def _frame_case(scene, volumes: dict, name: str) -> tuple[dict, str]:
    """A node whose frame makes the result wrong as shown, and what its refusal must say (a helper's sweep)."""
    from MultimodalRegistrationLib.core.phantom import rigid_transform
    from MultimodalRegistrationLib.nodes import mrml

    shift = mrml.transform_to_node(scene, rigid_transform(0, (0, 0, 1), (30.0, 0, 0)), name="shift")
    if name == "output_transform_under_a_transform":  # the result was shown through both: 0.3 mm off read 11 mm
        output = mrml.transform_to_node(scene, rigid_transform(0, (0, 0, 1), (0, 0, 0)), name="result")
        output.SetAndObserveTransformNodeID(shift.GetID())
        return {"outputTransform": output}, "the output transform 'result' is under the transform 'shift'"
    image = sitk.Image(mrml.image_from_volume_node(volumes["fixedVolume"]).GetSize(), sitk.sitkUInt8)
    image[4:16, 4:16, 4:16] = 1
    image.CopyInformation(mrml.image_from_volume_node(volumes["fixedVolume"]))
    mask = mrml.volume_node_from_image(scene, image, "head mask", labelmap=True)
    mask.SetAndObserveTransformNodeID(shift.GetID())
    if name == "fixed_mask_under_a_transform":  # read where it is stored, 60 mm from where it is shown
        return {"fixedMask": mask}, ("the fixed mask 'head mask' is under the transform 'shift' while the fixed "
                                     "volume is under none")
    return {"movingMask": mask}, "the moving mask 'head mask' is under transform 'shift' but the moving volume is"


@pytest.mark.parametrize(
    "name", ["output_transform_under_a_transform", "fixed_mask_under_a_transform", "moving_mask_under_another_transform"]
)
def test_a_node_in_a_frame_the_result_cannot_be_read_in_is_refused(name, scene):
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    volumes = _two_volumes(scene)
    values, said = _frame_case(scene, volumes, name)
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError) as refused:
        register_nodes(registration_parameters(**volumes, **values))
    assert said in str(refused.value)
    assert scene.GetNumberOfNodes() == nodes_before
    assert volumes["movingVolume"].GetParentTransformNode() is None


@pytest.mark.parametrize("role", ["fixed", "moving"])
def test_a_volume_an_affine_result_was_hardened_into_is_refused_by_its_name(role, scene):
    """A helper's sweep: hardening an affine result into a volume leaves its axes 90.17 degrees apart; registering it
    again was refused naming a scratch file already gone, with advice for a file's header. Now the node is named,
    with what to do in Slicer, and nothing changes."""
    import vtk
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    volumes = _two_volumes(scene)
    node = volumes[f"{role}Volume"]
    sheared = mrml.ijk_to_ras(node) @ np.array([[1, 0.004, 0, 0], [0, 1, 0.003, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    matrix = vtk.vtkMatrix4x4()
    matrix.DeepCopy(sheared.ravel().tolist())
    node.SetIJKToRASMatrix(matrix)
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError) as refused:
        register_nodes(registration_parameters(**volumes))
    said = str(refused.value)
    assert said.startswith(f"the {role} volume '{role}' has voxel axes that are not at right angles (its axes 0 and 1 "
                           "are 89.77° apart") and "Resample Scalar/Vector/DWI Volume" in said  # fmt: skip
    assert ("leave it under the transform" in said) == (role == "moving") and "/tmp" not in said
    assert scene.GetNumberOfNodes() == nodes_before and np.allclose(mrml.ijk_to_ras(node), sheared)


@pytest.mark.parametrize("job", ["register", "qa", "prep"])
@pytest.mark.parametrize("fault", ["zero_spacing", "nan_origin"])
def test_a_volume_whose_geometry_is_not_a_number_is_named_before_any_work(job, fault, scene):
    """A node sweep: a voxel size with a 0 (Volumes module, Volume Information) ended register, QA and prep in a raw
    SimpleITK error, and a NaN origin was registered as 0. Now the volume is named with where to set it right."""
    import vtk
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.prep import prep_parameters, prepare_nodes
    from MultimodalRegistrationLib.nodes.qa import assess_nodes, qa_parameters
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    volumes = _two_volumes(scene)
    moving = volumes["movingVolume"]
    if fault == "zero_spacing":
        moving.SetSpacing(2.0, 0.0, 2.0)
    else:
        matrix = mrml.ijk_to_ras(moving)
        matrix[:3, 3] = np.nan
        vtk_matrix = vtk.vtkMatrix4x4()
        vtk_matrix.DeepCopy(matrix.ravel().tolist())
        moving.SetIJKToRASMatrix(vtk_matrix)
    run = {"register": lambda: register_nodes(registration_parameters(**volumes)),
           "qa": lambda: assess_nodes(qa_parameters(**volumes)),
           "prep": lambda: prepare_nodes(prep_parameters(**volumes, cropCommon=True))}[job]  # fmt: skip
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError) as refused:
        run()
    said = "a voxel size of 2 x 0 x 2 mm" if fault == "zero_spacing" else "an origin or direction that is not a number"
    assert f"volume 'moving' has {said}" in str(refused.value) and "Volumes module" in str(refused.value)
    assert scene.GetNumberOfNodes() == nodes_before


@pytest.mark.parametrize("case", ["removed_output", "removed_reference", "transform_reference", "labelmap_reference"])
def test_a_stack_into_or_onto_a_node_it_cannot_use_is_refused_before_any_section(case, scene, tmp_path):
    """A node sweep: a stack into an output removed from the scene 'succeeded' outside it; a removed reference was
    silently not stacked on; a transform as reference ended in AttributeError; a labelmap reference tied no section,
    with no word. Each is now refused by name before the worker starts, and the scene stays as it was."""
    import stack_data
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.stack import StackParameters, stack_sections

    stack_data.serial_sections(tmp_path / "s", 3, 2.0, 4.0, max_deg=0.0, max_mm=0.0, first_z=-4.0)
    reference = _two_volumes(scene)["fixedVolume"]
    output = None
    if case == "removed_output":
        output = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "out")
        scene.RemoveNode(output)
    elif case == "removed_reference":
        scene.RemoveNode(reference)
    elif case == "transform_reference":
        reference = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "t")
    else:
        reference = mrml.volume_node_from_image(scene, sitk.Image([8, 8, 8], sitk.sitkUInt8), "labels", labelmap=True)
    said = {"removed_output": "the output volume (outputVolume) 'out' is not in the scene",
            "removed_reference": "the stack reference (stackReference) 'fixed' is not in the scene",
            "transform_reference": "'t' is a vtkMRMLLinearTransformNode, not a volume",
            "labelmap_reference": "the reference 'labels' is a labelmap"}[case]  # fmt: skip
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError) as refused:
        stack_sections(StackParameters(sections=str(tmp_path / "s"), section_mm=4.0, pixel_mm=2.0),
                       reference_node=reference, output_node=output, scene=scene)  # fmt: skip
    assert said in str(refused.value)
    assert scene.GetNumberOfNodes() == nodes_before


@pytest.mark.parametrize("case", ["labelmap_output_volume", "moving_volume_as_fixed_mask", "fixed_volume_as_moving_mask"])
def test_a_node_of_the_wrong_kind_for_its_role_is_refused_before_any_engine(case, scene):
    """A node sweep: a labelmap output volume was filled with the MR's intensities shown as labels, and the moving MR
    chosen as the fixed mask was used as one (every voxel not 0 inside), both without a word."""
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    volumes = _two_volumes(scene)
    if case == "labelmap_output_volume":
        labels = mrml.volume_node_from_image(scene, sitk.Image([8, 8, 8], sitk.sitkUInt8), "labels", labelmap=True)
        values, said = {"outputVolume": labels}, "the output volume 'labels' is a labelmap"
    elif case == "moving_volume_as_fixed_mask":
        values, said = {"fixedMask": volumes["movingVolume"]}, "the fixed mask is the moving volume 'moving'"
    else:
        values, said = {"movingMask": volumes["fixedVolume"]}, "the moving mask is the fixed volume 'fixed'"
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError) as refused:
        register_nodes(registration_parameters(**volumes, **values))
    assert said in str(refused.value)
    assert scene.GetNumberOfNodes() == nodes_before


@pytest.mark.parametrize("job", ["register", "qa"])
def test_a_fixed_volume_under_a_registration_result_is_not_told_to_harden_it(job, scene):
    """A node sweep: the fixed volume under an earlier result (the output transform, or the one QA measures) was
    told to harden it, which would move the reference image by that result. Now: take it out, and nothing changes."""
    from MultimodalRegistrationLib.core.phantom import rigid_transform
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.qa import assess_nodes, qa_parameters
    from MultimodalRegistrationLib.nodes.registration import ATTRIBUTE_PREFIX, register_nodes, registration_parameters

    volumes = _two_volumes(scene)
    result = mrml.transform_to_node(scene, rigid_transform(5, (0, 0, 1), (3.0, 0, 0)), name="moving to fixed")
    result.SetAttribute(ATTRIBUTE_PREFIX + "engine", "elastix")
    volumes["fixedVolume"].SetAndObserveTransformNodeID(result.GetID())
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError) as refused:
        if job == "register":
            register_nodes(registration_parameters(**volumes, outputTransform=result))
        else:
            assess_nodes(qa_parameters(**volumes, transform=result))
    assert "the fixed volume 'fixed' is under the registration result 'moving to fixed': take it out" in str(
        refused.value) and "harden" not in str(refused.value)  # fmt: skip
    assert scene.GetNumberOfNodes() == nodes_before and volumes["fixedVolume"].GetParentTransformNode() is result


@pytest.mark.parametrize("where", ["parent", "initial"])
def test_a_guided_run_from_a_nonlinear_start_names_that_transform(where, scene, make_segmentation):
    """A helper's sweep: the moving volume under a thin-plate prealignment, no initial transform chosen, guided by
    segmentations; the worker refused, telling the user to harden "the initial transform". Now named, before it."""
    from MultimodalRegistrationLib.core.transforms import Transform
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    volumes = _two_volumes(scene)
    reference = mrml.image_from_volume_node(volumes["fixedVolume"])
    field = sitk.Image(reference.GetSize(), sitk.sitkVectorFloat64, 3)
    field.CopyInformation(reference)
    warp = mrml.transform_to_node(scene, Transform.from_displacement_field(field), name="thin-plate")
    labels = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    labels[5:15, 5:15, 5:15] = 1
    values = {"fixedSegmentation": make_segmentation(labels, {1: "gland"}, "fixed gland"),
              "movingSegmentation": make_segmentation(labels, {1: "gland"}, "moving gland")}  # fmt: skip
    if where == "parent":
        for node in (volumes["movingVolume"], values["movingSegmentation"]):
            node.SetAndObserveTransformNodeID(warp.GetID())
        said = "the moving volume 'moving' is under 'thin-plate', a nonlinear transform: a guided registration"
    else:
        values["initialTransform"] = warp
        said = "the initial transform 'thin-plate' is nonlinear: a guided registration starts from the segments"
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError) as refused:
        register_nodes(registration_parameters(**volumes, **values))
    assert said in str(refused.value) and "harden 'thin-plate' into the moving volume" in str(refused.value)
    assert scene.GetNumberOfNodes() == nodes_before


def test_a_refusal_names_the_point_list_not_the_runs_scratch_file(scene):
    """A fixed point list whose numbers were typed as LPS: the refusal named "guidance_fixed_points.csv", a scratch
    file the user never saw (a helper's nodes sweep); it names the point list."""
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    volumes = _two_volumes(scene)  # LPS 0-40 x 0-44 x 0-48 mm
    lps = np.array([[10.0, 10, 10], [30, 10, 10], [10, 30, 10], [10, 10, 30]])
    typed = mrml.markups_from_points(scene, lps, ["a", "b", "c", "d"], "fixed clicks")  # LPS numbers as RAS
    moving = mrml.markups_from_points(scene, lps * [-1, -1, 1], ["a", "b", "c", "d"], "moving clicks")
    from MultimodalRegistrationLib.process.worker import WorkerFailure

    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(WorkerFailure) as refused:  # found by the worker, which reads the points
        register_nodes(registration_parameters(**volumes, fixedLandmarks=typed, movingLandmarks=moving))
    message = str(refused.value)
    assert refused.value.kind == "input" and scene.GetNumberOfNodes() == nodes_before
    assert "inside it after flipping RAS<->LPS" in message and "'fixed clicks' says RAS" in message, message
    assert ".csv" not in message


def test_the_slicer_batch_script_hears_the_options_it_was_given(scene):
    """register_nodes(panel_words=False), as Resources/Scripts/slicer_register.py calls it: mmreg's options."""
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    with pytest.raises(ValueError, match="^--guidance-weight 2.0: give|^--guidance-weight weighs segmentations"):
        register_nodes(registration_parameters(**_two_volumes(scene), guidanceWeight=2.0), panel_words=False)


# --------------------------------------------------------------------------- options that used to be ignored
def stack_reference_every_without_a_reference(inputs: Path, out: Path) -> list[str]:
    return _stack(str(_sections(inputs)), out, "--reference-every", "2")


def piecewise_naming_no_segment(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return _register(fixed, moving, out, "--piecewise", ",")


def nonlinear_initial_with_guidance(inputs: Path, out: Path, init: str = "auto") -> list[str]:
    """A displacement field as the initial transform of a guided run: the guided start would replace it."""
    fixed, moving = _pair(inputs)
    field = sitk.Image([6, 6, 6], sitk.sitkVectorFloat64, 3)
    field.SetSpacing([20.0] * 3)
    sitk.WriteTransform(sitk.DisplacementFieldTransform(field), str(inputs / "field.h5"))
    labels = sitk.Image(_volume().GetSize(), sitk.sitkUInt8)
    labels.CopyInformation(_volume())
    labels[10:30, 10:30, 8:24] = 1
    write_image(labels, inputs / "gland.nrrd")
    return _register(fixed, moving, out, "--init", init, "--initial-transform", str(inputs / "field.h5"),
                     "--fixed-segmentation", str(inputs / "gland.nrrd"), "--moving-segmentation",
                     str(inputs / "gland.nrrd"))  # fmt: skip


def nonlinear_initial_with_guidance_from_centres(inputs: Path, out: Path) -> list[str]:
    """The same under --init geometry: with segments, their centroids start the run and would drop the field."""
    return nonlinear_initial_with_guidance(inputs, out, "geometry")


def stack_sections_stating_two_pixel_sizes(inputs: Path, out: Path) -> list[str]:
    """Two sections at 254 dpi (0.1 mm) and a third at 127 dpi (0.2 mm): it was read at 0.1 mm, 73 mm off."""
    from PIL import Image

    folder = _sections(inputs, 2, dpi=254)
    array = np.full((20, 25, 3), 240, np.uint8)
    array[5:15, 6:17] = (120, 60, 150)
    Image.fromarray(array).save(folder / "s2.png", dpi=(127, 127))
    return _stack(str(folder), out, pixel=None)


def qa_restart_option_without_restarts(inputs: Path, out: Path) -> list[str]:
    return _qa(inputs, out / "r.html", "--preset", "affine")


def qa_restart_default_without_restarts(inputs: Path, out: Path) -> list[str]:
    """--stability-threshold typed at its default (2) without --stability: ignored silently before (docs examples)."""
    return _qa(inputs, out / "r.html", "--stability-threshold", "2")


def qa_of_two_slices(inputs: Path, out: Path) -> list[str]:
    """A 2D registration's slices given to mmreg qa: refused with words for 2D (it said 'give the whole volume')."""
    for name in ("fixed.nrrd", "moving.nrrd"):
        write_image(_volume(size=(40, 32, 1), spacing=(0.5, 0.5, 1.0)), inputs / name)
    transform = _rigid_tfm(inputs / "T.tfm")
    return ["qa", "--fixed", str(inputs / "fixed.nrrd"), "--moving", str(inputs / "moving.nrrd"), "--transform",
            str(transform), "--report", str(out / "r.html")]  # fmt: skip


def qa_figures_folder_is_a_file(inputs: Path, out: Path) -> list[str]:
    (inputs / "r_figures").write_text("a file where the report's pictures go")
    return _qa(inputs, inputs / "r.html")


def _qa_points(inputs: Path, fixed_labels: list[str], moving_labels: list[str]) -> list[str]:
    """--fixed-points and --moving-points: six points inside the valid pair (RAS mm), labelled as given."""
    from MultimodalRegistrationLib.landmarks.points_io import write_points_csv

    points = np.array([[-20.0 - 6 * i, -20.0 - 4 * (i % 3), 20.0 + 5 * (i % 2)] for i in range(6)])
    write_points_csv(inputs / "f.csv", points, fixed_labels)
    write_points_csv(inputs / "m.csv", points + 0.5, moving_labels)  # not the fixed list's bytes (refused so)
    return ["--fixed-points", str(inputs / "f.csv"), "--moving-points", str(inputs / "m.csv")]


# Restarts that would fail at once, had they started (exit 3): the refusal (exit 2) must come before them.
RESTARTS_THAT_FAIL = ("--stability", "2", "--stability-timeout", "0.001")


def qa_labels_on_one_side_with_restarts(inputs: Path, out: Path) -> list[str]:
    labels = sitk.Cast(_volume() > 500, sitk.sitkUInt8)
    write_image(labels, inputs / "fl.nrrd")
    return _qa(inputs, out / "r.html", "--fixed-labels", str(inputs / "fl.nrrd"), *RESTARTS_THAT_FAIL)


def qa_labels_that_share_no_segment(inputs: Path, out: Path) -> list[str]:
    """Two labels each, valued 1, 2 on the fixed side and 3, 5 on the moving: every Dice had read 0 -> 0, exit 0."""
    blob = _volume()
    fixed = sitk.Cast(blob > 500, sitk.sitkUInt8) + sitk.Cast(blob > 800, sitk.sitkUInt8)  # 1 around 2
    moving = sitk.ChangeLabel(fixed, {1: 3, 2: 5})
    write_image(fixed, inputs / "fl.nrrd")
    write_image(moving, inputs / "ml.nrrd")
    return _qa(inputs, out / "r.html", "--fixed-labels", str(inputs / "fl.nrrd"), "--moving-labels",
               str(inputs / "ml.nrrd"), *RESTARTS_THAT_FAIL)  # fmt: skip


def qa_unknown_fit_points_with_restarts(inputs: Path, out: Path) -> list[str]:
    names = [f"L{i}" for i in range(6)]
    return _qa(inputs, out / "r.html", *_qa_points(inputs, names, names), "--fit-points", "NOPE", *RESTARTS_THAT_FAIL)


def qa_points_with_decimal_commas(inputs: Path, out: Path) -> list[str]:
    """A European spreadsheet's CSV: "L0,-20,5,-20,20" under label,x,y,z had shifted the columns, TRE 5.6 mm at the
    truth, exit 0 (a helper's QA sweep)."""
    listed = _qa_points(inputs, [f"L{i}" for i in range(6)], [f"L{i}" for i in range(6)])
    lines = (inputs / "m.csv").read_text().splitlines()
    (inputs / "m.csv").write_text("\n".join(lines[:1] + [line.replace(".", ",") for line in lines[1:]]) + "\n")
    return _qa(inputs, out / "r.html", *listed)


def qa_points_copied_as_both_lists(inputs: Path, out: Path) -> list[str]:
    """The fixed list copied as the moving one: QA had measured how far the transform moves the points as their TRE."""
    listed = _qa_points(inputs, [f"L{i}" for i in range(6)], [f"L{i}" for i in range(6)])
    (inputs / "m.csv").write_bytes((inputs / "f.csv").read_bytes())
    return _qa(inputs, out / "r.html", *listed)


def qa_points_labelled_with_numbers_one_missing(inputs: Path, out: Path) -> list[str]:
    """Labels 1..6 given on purpose, point 6 not placed on the moving image: refused as numbered lists are, and the
    fix had been "give unique labels", which they were."""
    listed = _qa_points(inputs, [str(i + 1) for i in range(6)], [str(i + 1) for i in range(6)])
    lines = (inputs / "m.csv").read_text().splitlines()
    (inputs / "m.csv").write_text("\n".join(lines[:-1]) + "\n")
    return _qa(inputs, out / "r.html", *listed)


def qa_landmarks_paired_against_their_labels(inputs: Path, out: Path) -> list[str]:
    return _qa(inputs, out / "r.html", *_qa_points(inputs, list("ABCDEF"), ["B", "A", "x3", "x4", "x5", "x6"]))


def qa_transform_given_as_its_own_inverse(inputs: Path, out: Path) -> list[str]:
    return _qa(inputs, out / "r.html", "--inverse", str(inputs / "T.tfm"))  # measured 40-70 mm, without a word


QA_CASES = {  # refused before any stability restart runs (the restarts took minutes, then the refusal came)
    "qa: labelmap on one side, with --stability": Case(qa_labels_on_one_side_with_restarts,
                                                       "give the moving labels too"),
    "qa: unknown --fit-points, with --stability": Case(qa_unknown_fit_points_with_restarts, "check the names"),
    "qa: labelmaps that share no segment": Case(qa_labels_that_share_no_segment, "no segment of the fixed labelmap "
                                                "(label 1, label 2) has a partner in the moving one (label 3, label "
                                                "5): pair them with --segments FIXED=MOVING (for example --segments "
                                                "'1=3')"),
    "qa: points written with decimal commas": Case(qa_points_with_decimal_commas, "line 2 holds 7 values under a "
                                                   "header of 4 columns: write decimal points"),
    "qa: one list copied as both": Case(qa_points_copied_as_both_lists, "hold the same points, byte for byte (f.csv "
                                        "and m.csv)"),
    "qa: points labelled 1, 2, ..., one missing": Case(qa_points_labelled_with_numbers_one_missing,
                                                       "if those numbers are labels you gave, name the points P1"),
    "qa: landmarks paired by order against their labels": Case(qa_landmarks_paired_against_their_labels,
                                                               "give every landmark the same label in both lists"),
    "qa: the transform as its own inverse": Case(qa_transform_given_as_its_own_inverse,
                                                 "is the --transform file itself"),
}  # fmt: skip
CASES.update(QA_CASES)




IGNORED_OPTION_CASES = {
    "qa: --preset without --stability": Case(qa_restart_option_without_restarts, "tunes the stability restarts"),
    "qa: --stability-threshold at its default without --stability": Case(qa_restart_default_without_restarts,
                                                                         "tunes the stability restarts"),
    "qa: a file where the pictures go": Case(qa_figures_folder_is_a_file, "is a file, where the report's pictures go"),
    "qa: two slices of a 2D registration": Case(qa_of_two_slices, "this QA measures 3D registrations; a 2D registration"),
    "stack: sections stating two pixel sizes": Case(stack_sections_stating_two_pixel_sizes,
                                                    "the sections are read at one pixel size: rescale the "
                                                    "sections that differ"),
    "stack: --reference-every without --reference": Case(stack_reference_every_without_a_reference,
                                                         "give --reference VOLUME too"),
    "--piecewise naming no segment": Case(piecewise_naming_no_segment, "names no segment"),
    "nonlinear initial transform with guidance": Case(nonlinear_initial_with_guidance,
                                                      "nonlinear initial transform cannot start a guided"),
    "nonlinear initial transform with guidance, init geometry": Case(
        nonlinear_initial_with_guidance_from_centres, "nonlinear initial transform cannot start a guided"),
}  # fmt: skip
CASES.update(IGNORED_OPTION_CASES)




# --------------------------------------------------------------------------- a cohort's manifest, checked whole
def batch_manifest(header: str, row: str, *extra: str) -> Builder:
    """A case: a batch of the valid pair whose manifest has ``header`` and ``row``, with the options ``extra``."""

    def build(inputs: Path, out: Path) -> list[str]:
        _pair(inputs)
        return ["batch", str(_manifest(inputs, header, row)), "--output-dir", str(out), *extra]

    return build


PAIR_ROW = "c1,fixed.nrrd,moving.nrrd"


def batch_manifest_named_as_its_results(inputs: Path, out: Path) -> list[str]:
    """A manifest saved as <output-dir>/batch.csv: the results table replaced it, no copy kept (a helper's sweep)."""
    _pair(inputs)
    return ["batch", str(_manifest(inputs, "case,fixed,moving", PAIR_ROW, name="batch.csv")), "--output-dir",
            str(inputs)]  # fmt: skip


def batch_input_in_a_folder_the_case_empties(inputs: Path, out: Path) -> list[str]:
    """An image kept in <output-dir>/<case>/qa_figures/: deleted before the case read it (a helper's sweep)."""
    _pair(inputs)
    (inputs / "c1" / "qa_figures").mkdir(parents=True)
    (inputs / "moving.nrrd").rename(inputs / "c1" / "qa_figures" / "moving.nrrd")
    manifest = _manifest(inputs, "case,fixed,moving", "c1,fixed.nrrd,c1/qa_figures/moving.nrrd")
    return ["batch", str(manifest), "--output-dir", str(inputs)]


BATCH_MANIFEST_CASES = {  # each was run (a worker started, exit 1) or read wrongly (exit 0) before
    # every row names its own preset: the --preset typo had run the whole batch (exit 0; a helper's sweep)
    "batch --preset typo, rows with their own": Case(
        batch_manifest("case,fixed,moving,preset", PAIR_ROW + ",rigid", "--preset", "rigdi"),
        "--preset: unknown elastix preset 'rigdi'",
    ),
    "batch row with an init typo": Case(batch_manifest("case,fixed,moving,init", PAIR_ROW + ",foo"),
                                        "line 2: case 'c1': init 'foo' is not one of auto"),
    "batch row with a metric typo": Case(batch_manifest("case,fixed,moving,metric", PAIR_ROW + ",mi"),
                                         "metric 'mi' is not one of intensity, segments: choose one"),
    "batch row with segments but no segmentations": Case(
        batch_manifest("case,fixed,moving,segments", PAIR_ROW + ",bone"), "case 'c1': the segments column chooses "
        "among segmentations: add the fixed_segmentation column and the moving_segmentation column"
    ),  # in columns, not flags: someone editing the CSV had been told --fixed-segmentation (a helper's docs sweep)
    "batch row with a guidance weight alone": Case(
        batch_manifest("case,fixed,moving,guidance_weight", PAIR_ROW + ",2"), "(or the guidance_fixed_points column "
        "and the guidance_moving_points column), or drop the guidance_weight column"
    ),
    "batch row with more cells than columns": Case(batch_manifest("case,fixed,moving", PAIR_ROW + ",other.nrrd"),
                                                   "a path with a comma must be in double quotes"),
    "batch manifest naming a column twice": Case(batch_manifest("case,fixed,moving,moving", PAIR_ROW + ",m2.nrrd"),
                                                 "column 'moving' appears twice in the header: keep one"),
    "batch manifest header with a trailing comma": Case(batch_manifest("case,fixed,moving,", PAIR_ROW + ","),
                                                        "column 4 of the header has an empty name"),
    "batch case named report.html": Case(batch_manifest("case,fixed,moving", "report.html,fixed.nrrd,moving.nrrd"),
                                         "is a file the batch writes itself"),
    "batch cases differing only in capitals": Case(
        batch_manifest("case,fixed,moving", "P001,fixed.nrrd,moving.nrrd\np001,fixed.nrrd,moving.nrrd"),
        "as 'P001': case names differing only in capitals share one folder on macOS and Windows",
    ),
    "batch case named like a hidden folder": Case(batch_manifest("case,fixed,moving", ".earlier,fixed.nrrd,moving.nrrd"),
                                                  "must start with an ASCII letter or digit"),
    "batch case named a Windows device": Case(batch_manifest("case,fixed,moving", "aux.1,fixed.nrrd,moving.nrrd"),
                                              "is a device name on Windows"),
    "batch case named Batch.CSV": Case(batch_manifest("case,fixed,moving", "Batch.CSV,fixed.nrrd,moving.nrrd"),
                                       "rename the case"),
    "batch row with fixed_points only": Case(
        batch_manifest("case,fixed,moving,fixed_points,moving_points", PAIR_ROW + ",f.csv,"),
        "has fixed_points without moving_points: fill both cells, or neither",
    ),
    "batch row with a preset file not beside the manifest": Case(
        batch_manifest("case,fixed,moving,preset", PAIR_ROW + ",mine.txt"), "preset file not found"
    ),
    "batch --dask local:abc": Case(batch_manifest("case,fixed,moving", PAIR_ROW, "--dask", "local:abc"),
                                   "local:N needs a whole number of workers N of 1 or more"),
    "batch --dask local:0": Case(batch_manifest("case,fixed,moving", PAIR_ROW, "--dask", "local:0"), "e.g. local:2"),
    "batch --dask with no scheduler there": Case(
        batch_manifest("case,fixed,moving", PAIR_ROW, "--dask", "tcp://127.0.0.1:1"), "cannot reach the scheduler"
    ),
    "batch --dask that is no address": Case(batch_manifest("case,fixed,moving", PAIR_ROW, "--dask", "cluster"),
                                            "give a scheduler's address, tcp://HOST:PORT"),
    "batch manifest saved as <output-dir>/batch.csv": Case(batch_manifest_named_as_its_results,
                                                          "rename the manifest (e.g. cohort.csv)"),
    "batch input inside a case's qa_figures": Case(batch_input_in_a_folder_the_case_empties,
                                                   "which each run of the case empties first"),
    "batch into a folder nobody can write": Case(
        lambda inputs, out: [*batch_manifest("case,fixed,moving", PAIR_ROW)(inputs, out)[:2], "--output-dir",
                             "/proc/mmreg-batch"], "/proc is not writable: choose another folder"
    ),  # a read-only output folder had crashed the batch with a traceback (a helper's sweep)
    "batch case name too long for a folder": Case(
        batch_manifest("case,fixed,moving", "c" * 300 + ",fixed.nrrd,moving.nrrd"), "is 300 bytes long"
    ),
}  # fmt: skip
CASES.update(BATCH_MANIFEST_CASES)


@pytest.mark.parametrize("name", list(BATCH_MANIFEST_CASES))
def test_a_wrong_manifest_is_refused_whole_before_any_case_runs(name, tmp_path, private_tmp, capsys):
    test_bad_input_is_refused_early_and_leaves_everything_as_it_was(name, tmp_path, private_tmp, capsys)


# --------------------------------------------------------------------------- landmark prealignment
PREALIGN_FIXED = [[-30.0, -30.0, -20.0], [30.0, -30.0, -10.0], [0.0, 30.0, 0.0], [-20.0, 10.0, 25.0],
                  [25.0, 20.0, 20.0], [5.0, -5.0, -25.0]]  # RAS mm, well spread in 3D  # fmt: skip


def _mrk(path: Path, points, labels=None, system="RAS", kind="Fiducial", statuses=None, positions=None) -> Path:
    """A Slicer .mrk.json point list; ``statuses``/``positions`` override single control points by index."""
    labels = labels or [f"P{i}" for i in range(len(points))]
    control = [{"label": label, "position": [float(v) for v in point], "positionStatus": "defined"}
               for label, point in zip(labels, points)]  # fmt: skip
    for index, status in (statuses or {}).items():
        control[index]["positionStatus"] = status
    for index, position in (positions or {}).items():
        control[index]["position"] = position
    markup = {"type": kind, "coordinateSystem": system, "coordinateUnits": "mm", "controlPoints": control}
    path.write_text(json.dumps({"markups": [markup]}))
    return path


def _prealign(fixed: Path, moving: Path, out: Path, *extra: str) -> list[str]:
    return ["prealign", "--fixed-points", str(fixed), "--moving-points", str(moving),
            "--output-transform", str(out / "T.h5"), "--json", str(out / "T.json"), *extra]  # fmt: skip


def _shifted(points, shift=(4.0, 6.0, 0.0)):
    return (np.asarray(points) + shift).tolist()


def prealign_moving_points_in_one_plane(inputs: Path, out: Path) -> list[str]:
    flat = np.asarray(_shifted(PREALIGN_FIXED))
    flat[:, 2] = 0.0  # every moving point on one slice
    return _prealign(_mrk(inputs / "f.mrk.json", PREALIGN_FIXED), _mrk(inputs / "m.mrk.json", flat), out,
                     "--type", "affine")  # fmt: skip


def prealign_moving_points_at_one_position(inputs: Path, out: Path) -> list[str]:
    collapsed = [PREALIGN_FIXED[0]] * len(PREALIGN_FIXED)  # never moved from where they were created
    return _prealign(_mrk(inputs / "f.mrk.json", PREALIGN_FIXED), _mrk(inputs / "m.mrk.json", collapsed), out,
                     "--type", "similarity")  # fmt: skip


def prealign_tps_point_placed_twice(inputs: Path, out: Path) -> list[str]:
    fixed = [*PREALIGN_FIXED[:5], PREALIGN_FIXED[4]]
    return _prealign(_mrk(inputs / "f.mrk.json", fixed), _mrk(inputs / "m.mrk.json", _shifted(PREALIGN_FIXED)), out,
                     "--type", "tps")  # fmt: skip


def prealign_ras_saved_as_lps(inputs: Path, out: Path) -> list[str]:
    """RAS numbers in a moving file that says LPS: some points stay inside the image, the fit turns ~180 degrees."""
    image = sitk.Image([40, 40, 40], sitk.sitkUInt8)
    image.SetSpacing([2.0] * 3)
    image.SetOrigin([-36.0, -36.0, -40.0])
    write_image(image, inputs / "fixed.nrrd")
    write_image(image, inputs / "moving.nrrd")
    fixed_lps = np.asarray(PREALIGN_FIXED)  # these numbers taken as LPS here; RAS = x and y negated
    moving_lps = fixed_lps @ np.array([[0.985, -0.174, 0], [0.174, 0.985, 0], [0, 0, 1.0]]).T + [4.0, 6.0, 0.0]
    flip = np.array([-1.0, -1.0, 1.0])
    moving = _mrk(inputs / "m.mrk.json", (moving_lps * flip).tolist(), system="RAS")
    moving.write_text(moving.read_text().replace('"coordinateSystem": "RAS"', '"coordinateSystem": "LPS"'))
    return _prealign(_mrk(inputs / "f.mrk.json", (fixed_lps * flip).tolist()), moving, out, "--fixed-image",
                     str(inputs / "fixed.nrrd"), "--moving-image", str(inputs / "moving.nrrd"))  # fmt: skip


def prealign_position_not_numbers(inputs: Path, out: Path) -> list[str]:
    moving = _mrk(inputs / "m.mrk.json", _shifted(PREALIGN_FIXED), positions={2: ["a", "b", "c"]})
    return _prealign(_mrk(inputs / "f.mrk.json", PREALIGN_FIXED), moving, out)


def prealign_curve_as_landmarks(inputs: Path, out: Path) -> list[str]:
    return _prealign(_mrk(inputs / "f.mrk.json", PREALIGN_FIXED),
                     _mrk(inputs / "m.mrk.json", _shifted(PREALIGN_FIXED), kind="Curve"), out)  # fmt: skip


def prealign_skipped_point_paired_by_order(inputs: Path, out: Path) -> list[str]:
    fixed = _mrk(inputs / "f.mrk.json", PREALIGN_FIXED, labels=[f"F{i}" for i in range(6)])
    moving = _mrk(inputs / "m.mrk.json", _shifted(PREALIGN_FIXED), statuses={2: "missing"})
    return _prealign(fixed, moving, out)


def prealign_skipped_fcsv_and_csv_points_paired_by_order(inputs: Path, out: Path) -> list[str]:
    """A point Slicer 5 saved as skipped (.fcsv position status 3, after the named columns), the lists pairing by
    order: it had been read as a point at (0, 0, 0) (a helper's sweep: 21 mm off with 4 points, exit 0)."""
    header = ("# Markups fiducial file version = 5.6\n# CoordinateSystem = LPS\n"
              "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n")  # fmt: skip
    rows = [f"{i + 1},{x},{y},{z},0,0,0,1,1,1,0,M{i},,,{3 if i == 2 else 2},0\n"
            for i, (x, y, z) in enumerate(_shifted(PREALIGN_FIXED))]  # fmt: skip
    (inputs / "m.fcsv").write_text(header + "".join(rows))
    fixed = _mrk(inputs / "f.mrk.json", PREALIGN_FIXED, labels=[f"F{i}" for i in range(6)])
    return _prealign(fixed, inputs / "m.fcsv", out)


def prealign_unlabelled_lists_of_different_lengths(inputs: Path, out: Path) -> list[str]:
    """CSV lists without a label column, the moving one missing its 2nd point: the readers number the points 1, 2,
    ..., so five of the labels matched and every later point was paired with its neighbour's partner (126 mm off,
    exit 0; a helper's sweep)."""
    moving = [point for index, point in enumerate(_shifted(PREALIGN_FIXED)) if index != 1]
    for name, points in (("f.csv", PREALIGN_FIXED), ("m.csv", moving)):
        (inputs / name).write_text("x,y,z\n" + "".join(",".join(map(str, point)) + "\n" for point in points))
    return _prealign(inputs / "f.csv", inputs / "m.csv", out)


def prealign_lists_exchanged(inputs: Path, out: Path) -> list[str]:
    """Each list lies inside the other list's image (the images 200 mm apart): said "placed on another image",
    naming no fix (a helper's sweep)."""
    for name, shift in (("fixed.nrrd", 0.0), ("moving.nrrd", 200.0)):
        image = _volume()
        image.SetOrigin((-48.0, -40.0, -40.0 + shift))  # LPS; the RAS points below lie inside the first
        write_image(image, inputs / name)
    moving = _shifted(PREALIGN_FIXED, (0.0, 0.0, 200.0))
    images = ["--fixed-image", str(inputs / "fixed.nrrd"), "--moving-image", str(inputs / "moving.nrrd")]
    return _prealign(_mrk(inputs / "f.mrk.json", moving), _mrk(inputs / "m.mrk.json", PREALIGN_FIXED), out, *images)


PREALIGN_CASES = {
    "prealign unlabelled lists of different lengths": Case(
        prealign_unlabelled_lists_of_different_lengths, "both lists are numbered 1, 2, ... in order"
    ),
    "prealign affine to moving points in one plane": Case(
        prealign_moving_points_in_one_plane, "place moving points off that plane"
    ),
    "prealign similarity to moving points at one position": Case(
        prealign_moving_points_at_one_position, "place each moving point on its landmark"
    ),
    "prealign tps through a point placed twice": Case(
        prealign_tps_point_placed_twice, "'P4' and 'P5' are 0.00 mm apart"
    ),
    "prealign RAS points in a file that says LPS": Case(prealign_ras_saved_as_lps, 'set "coordinateSystem": "RAS"'),
    "prealign .mrk.json position that is not numbers": Case(
        prealign_position_not_numbers, "point 3 ('P2') has no x, y, z numbers"
    ),
    "prealign curve as landmarks": Case(prealign_curve_as_landmarks, "holds a Curve markup, not a point list"),
    "prealign skipped point with lists paired by order": Case(
        prealign_skipped_point_paired_by_order, "is marked skipped"
    ),
    "prealign with the fixed and moving lists exchanged": Case(
        prealign_lists_exchanged, "give the points placed on the fixed image as --fixed-points"
    ),
    "prealign skipped .fcsv point (Slicer 5's status column) with lists paired by order": Case(
        prealign_skipped_fcsv_and_csv_points_paired_by_order, "moving point 'M2' in m.fcsv is marked skipped"
    ),
}
CASES.update(PREALIGN_CASES)


@pytest.mark.parametrize("name", list(PREALIGN_CASES))
def test_landmarks_that_cannot_give_a_fit_are_refused(name, tmp_path, private_tmp, capsys):
    test_bad_input_is_refused_early_and_leaves_everything_as_it_was(name, tmp_path, private_tmp, capsys)


# --------------------------------------------------------------------------- preparation: masks and spacing
def registration_and_prep_fixed_masks(inputs: Path, out: Path) -> list[str]:
    """mmreg register with a registration mask (--fixed-mask FILE) and a prep mask (--mask-fixed auto): the
    registration's mask silently won and the record named the automatic one (finding 4)."""
    fixed, moving = _pair(inputs)
    mask = inputs / "mask.nrrd"
    write_image(sitk.Cast(_volume() > 300, sitk.sitkUInt8), mask)
    return _register(fixed, moving, out, "--fixed-mask", str(mask), "--mask-fixed", "auto")


def prep_spacing_with_a_mask_on_another_grid(inputs: Path, out: Path) -> list[str]:
    """mmreg prep --spacing-moving with a --mask-moving file whose grid is not the moving file's: whether its
    positions were measured with the wrong spacing or the right one cannot be told (finding 2)."""
    fixed, moving = _pair(inputs)
    mask = inputs / "moving_mask.nrrd"
    write_image(sitk.Cast(_volume(size=(24, 20, 16), spacing=(4.0, 4.0, 5.0)) > 300, sitk.sitkUInt8), mask)
    return _prep(fixed, moving, out, "--spacing-moving", "1,1,1.25", "--mask-moving", str(mask))


PREP_FIX_CASES = {
    "register --fixed-mask FILE with --mask-fixed auto": Case(
        registration_and_prep_fixed_masks, "give one fixed mask: --fixed-mask FILE, or --mask-fixed auto|FILE"
    ),
    "prep --spacing-moving with a mask on another grid": Case(
        prep_spacing_with_a_mask_on_another_grid, "give a mask drawn on the moving image file"
    ),
}
CASES.update(PREP_FIX_CASES)




# =========================================================================== bad-input audit (session s22)
# Each was run (restarts, an engine or a worker started; exit 0 or 1) or refused naming another cause before.


def qa_restarts_with(*extra: str) -> Builder:
    """A case: mmreg qa of the valid pair with 2 stability restarts and the options ``extra``."""
    return lambda inputs, out: _qa(inputs, out / "r.html", "--stability", "2", *extra)


RESTART_SETTING_CASES = {  # refused before any restart: NaN called every spread stable and reached the JSON
    "qa: --stability-threshold nan": Case(
        qa_restarts_with("--stability-threshold", "nan"), "--stability-threshold nan mm: give a positive distance in mm"
    ),
    "qa: --stability-threshold -1": Case(
        qa_restarts_with("--stability-threshold=-1"), "--stability-threshold -1.0 mm: give a positive distance in mm"
    ),
    "qa: --stability-timeout 0": Case(
        qa_restarts_with("--stability-timeout", "0"), "--stability-timeout 0.0 s: give a positive number of seconds"
    ),
    "qa: --stability-timeout -5": Case(
        qa_restarts_with("--stability-timeout=-5"), "--stability-timeout -5.0 s: give a positive number of seconds"
    ),
    "qa: --stability-timeout nan": Case(
        qa_restarts_with("--stability-timeout", "nan"), "--stability-timeout nan s: give a positive number of seconds"
    ),
    "qa: --stability-shift nan": Case(
        qa_restarts_with("--stability-shift", "nan"), "--stability-shift nan mm: give 0 or more mm"
    ),
    "qa: --stability-shift -2": Case(qa_restarts_with("--stability-shift=-2"), "--stability-shift -2.0 mm: give 0 or"),
    "qa: --stability-rotation -5": Case(
        qa_restarts_with("--stability-rotation=-5"), "--stability-rotation -5.0 degrees: give 0 to 180 degrees"
    ),
    "qa: --stability-rotation nan": Case(
        qa_restarts_with("--stability-rotation", "nan"), "--stability-rotation nan degrees: give 0 to 180"
    ),
    "qa: --stability-shift 0 and --stability-rotation 0": Case(
        qa_restarts_with("--stability-shift", "0", "--stability-rotation", "0"),
        "the perturbation is zero (--stability-shift 0 and --stability-rotation 0)",
    ),
    "qa: --stability 0": Case(
        lambda inputs, out: _qa(inputs, out / "r.html", "--stability", "0"),
        "--stability 0: the stability check needs at least 1 restart (5 is usual); leave out --stability for none",
    ),
}
CASES.update(RESTART_SETTING_CASES)




def register_2d_with(*extra: str) -> Builder:
    """A case: the two valid 2D images registered (mmreg register2d) with the options ``extra``."""
    return lambda inputs, out: _register_2d(*_slides(inputs), out, *extra)


def stack_with(*extra: str) -> Builder:
    """A case: two valid sections stacked with the options ``extra``."""
    return lambda inputs, out: _stack(str(_sections(inputs)), out, *extra)


THREADS_CAP = "is far more than this machine's"
NUMBER_RANGE_CASES = {  # mmreg register's ranges for --seed and --threads, on every command that takes them
    "register2d --threads -1": Case(register_2d_with("--threads=-1"), "--threads -1: give 1 or more"),
    "register2d --threads 0": Case(register_2d_with("--threads", "0"), "--threads 0: give 1 or more"),
    "register2d --threads 100000": Case(register_2d_with("--threads", "100000"), f"--threads 100000 {THREADS_CAP}"),
    "register2d --seed -3": Case(
        register_2d_with("--seed=-3"), "--seed -3 is out of range: give a whole number from 0 to 2147483647"
    ),
    "register2d --seed 99999999999": Case(register_2d_with("--seed", "99999999999"), "from 0 to 2147483647"),
    "register2d --engine ants --seed -3": Case(register_2d_with("--engine", "ants", "--seed=-3"), "from 0 to 2147483647"),
    "register (2D images) --threads 0": Case(
        lambda inputs, out: ["register", *_register_2d(*_slides(inputs), out, "--threads", "0")[1:]],
        "--threads 0: give 1 or more",
    ),
    "stack --threads 100000": Case(stack_with("--threads", "100000"), f"--threads 100000 {THREADS_CAP}"),
    "batch --threads 100000": Case(batch_with("--threads", "100000"), f"--threads 100000 {THREADS_CAP}"),
    "register --threads 100000": Case(register_with("--threads", "100000"), f"--threads 100000 {THREADS_CAP}"),
}
CASES.update(NUMBER_RANGE_CASES)


@pytest.mark.parametrize("name", list(NUMBER_RANGE_CASES))
def test_seed_and_threads_out_of_range_are_refused_by_every_command(name, tmp_path, private_tmp, capsys):
    message = _assert_refused(NUMBER_RANGE_CASES[name], tmp_path, private_tmp, capsys)
    if THREADS_CAP in message:
        assert f"give 1 to 1024, e.g. {usable_cores()}" in message


def test_the_threads_and_seed_ranges_are_those_of_mmreg_register():
    from MultimodalRegistrationLib.core.choices import MAX_SEED, MAX_THREADS, check_seed, check_threads
    from MultimodalRegistrationLib.core.errors import InputError

    assert (MAX_SEED, MAX_THREADS) == (2147483647, 1024)
    for seed in (0, MAX_SEED, None):
        check_seed(seed)
    for threads in (1, MAX_THREADS, None):
        check_threads(threads)
    for seed in (-1, MAX_SEED + 1, 2.5, True):
        with pytest.raises(InputError, match="from 0 to 2147483647"):
            check_seed(seed)
    for threads in (0, -1, 1.5, False):
        with pytest.raises(InputError, match="give 1 or more"):
            check_threads(threads)
    with pytest.raises(InputError, match="--threads 1025 is far more"):
        check_threads(MAX_THREADS + 1)


def demo_into(output_dir: Callable[[Path, Path], Path], *extra: str) -> Builder:
    """A case: mmreg demo writing into ``output_dir(inputs, out)``, with the options ``extra``."""
    return lambda inputs, out: ["demo", "--output-dir", str(output_dir(inputs, out)), *extra]


def _a_file(inputs: Path, out: Path) -> Path:
    (inputs / "demo_file").write_text("a file")
    return inputs / "demo_file"


DEMO_CASES = {  # refused before the phantom is made: a typo left 11 MB of phantom files in --output-dir
    "demo --output-dir is a file": Case(demo_into(_a_file), "is a file, not a folder: choose another --output-dir"),
    "demo --output-dir under a file": Case(
        demo_into(lambda inputs, out: _a_file(inputs, out) / "sub"), "demo_file is a file, not a folder"
    ),
    "demo --preset typo": Case(
        demo_into(lambda inputs, out: out, "--preset", "rigdi"), "unknown elastix preset 'rigdi': choose one of rigid"
    ),
    "demo --preset of 2D images": Case(
        demo_into(lambda inputs, out: out, "--engine", "ants", "--preset", "rigid_2d"), "unknown ants preset 'rigid_2d'"
    ),
    "demo --preset that needs segmentations": Case(
        demo_into(lambda inputs, out: out, "--preset", "distance-map"), "give both segmentations"
    ),
}
CASES.update(DEMO_CASES)


@pytest.mark.parametrize("name", list(DEMO_CASES))
def test_demo_choices_are_refused_before_the_phantom_is_made(name, tmp_path, private_tmp, capsys):
    _assert_refused(DEMO_CASES[name], tmp_path, private_tmp, capsys)
    assert not (tmp_path / "out").exists()  # not even made


def stack_output_among_the_sections(option: str, name: str, glob: str = "") -> Builder:
    """A case: two sections stacked with ``option`` written into their folder as ``name``; ``glob``: the
    sections given as that glob in their folder instead of the folder."""

    def build(inputs: Path, out: Path) -> list[str]:
        folder = _sections(inputs)
        argv = _stack(str(folder / glob) if glob else str(folder), out)
        argv[argv.index(option) + 1] = str(folder / name)
        return argv

    return build


STACK_OUTPUT_CASES = {  # written into the sections' folder, the volume was stacked as a section by the next run
    "stack: --output-volume in the sections' folder": Case(
        stack_output_among_the_sections("--output-volume", "V.nrrd"),
        "V.nrrd lies in the sections' folder",
    ),
    "stack: --output-volume matching the sections' glob": Case(
        stack_output_among_the_sections("--output-volume", "V.nrrd", glob="*"),
        "matches the sections' glob",
    ),
}
CASES.update(STACK_OUTPUT_CASES)


@pytest.mark.parametrize("name", list(STACK_OUTPUT_CASES))
def test_stack_outputs_among_the_sections_are_refused(name, tmp_path, private_tmp, capsys):
    message = _assert_refused(STACK_OUTPUT_CASES[name], tmp_path, private_tmp, capsys)
    assert "the next run would stack it as one more section" in message
    assert f"write it outside, e.g. to {tmp_path / 'inputs' / 'V.nrrd'}" in message


def _prep_shifted_moving(*extra: str) -> Builder:
    """A case: the valid pair prepared with ``extra``, the moving image 60 mm to the patient's left (partly
    overlapping the fixed one)."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed, moving = _pair(inputs)
        image = _volume(seed=1)
        image.SetOrigin((60.0, 0.0, 0.0))
        write_image(image, moving)
        return _prep(fixed, moving, out, *extra)

    return build


# The valid fixed image (48x40x32 voxels of 2x2x2.5 mm at the origin, identity direction) in RAS, voxel edges.
FIXED_EXTENT_RAS = "R -95.0 to 1.0, A -79.0 to 1.0, S -1.2 to 78.8 mm (RAS)"
ROI_CASES = {
    "prep --downsample-to 0": Case(
        prep_with("--downsample-to", "0"), "downsample target 0.0 mm is not a positive size: give the voxel size"
    ),
    "register --downsample-to 0": Case(register_with("--downsample-to", "0"), "downsample target 0.0 mm is not a"),
    "prep --roi of one point": Case(
        prep_with("--roi", "10,10,10,10,10,10", "--margin", "0"),
        "--roi spans 0 mm along R (both corners at R 10): give two opposite corners of a box",
    ),
    "prep --roi flat along S": Case(
        prep_with("--roi=-50,-50,10,50,50,10", "--margin", "0"), "--roi spans 0 mm along S (both corners at S 10)"
    ),
    "prep --roi flat along A, with a margin": Case(
        prep_with("--roi=-50,7,10,50,7,60"), "--roi spans 0 mm along A (both corners at A 7)"
    ),
    "register --roi of one point": Case(
        register_with("--roi=10,10,10,10,10,10", "--margin", "0"), "--roi spans 0 mm along R"
    ),
    "prep --roi outside the fixed image": Case(
        prep_with("--roi", "5000,5000,5000,5100,5100,5100"),
        f"--roi lies outside the fixed image, which spans {FIXED_EXTENT_RAS}: check the corners",
    ),
    "prep --crop-common --roi outside the fixed image": Case(
        prep_with("--crop-common", "--roi", "5000,5000,5000,5100,5100,5100"),
        f"--roi lies outside the fixed image, which spans {FIXED_EXTENT_RAS}",
    ),
    # It had said only "the region to crop to lies outside the image", naming neither image nor a fix.
    "prep --roi inside the fixed image, outside the moving one": Case(
        _prep_shifted_moving("--roi=-10,-70,10,-1,-10,60"),
        "the region of interest lies outside the moving image, which spans R -155.0 to -59.0, A -79.0 to 1.0, "
        "S -1.2 to 78.8 mm (RAS) in its own space (where the initial transform, if one is given, takes the region): "
        "move or enlarge --roi to take in part of it, add --crop-common",
    ),
}
CASES.update(ROI_CASES)


@pytest.mark.parametrize("name", list(ROI_CASES))
def test_a_region_or_size_no_preparation_can_use_is_refused_naming_its_option(name, tmp_path, private_tmp, capsys):
    message = _assert_refused(ROI_CASES[name], tmp_path, private_tmp, capsys)
    assert "no preparation step is given" not in message and "give an initial transform" not in message


def _empty(inputs: Path, name: str) -> Path:
    (inputs / name).write_bytes(b"")
    return inputs / name


def empty_points(inputs: Path, out: Path) -> list[str]:
    moving = _points(inputs / "m.csv", FOUR_POINTS)
    return _prealign(_empty(inputs, "f.csv"), moving, out)


def manifest_is_a_folder(inputs: Path, out: Path) -> list[str]:
    _pair(inputs)
    (inputs / "batchin").mkdir()
    _manifest(inputs / "batchin", "case,fixed,moving", "c1,../fixed.nrrd,../moving.nrrd")
    return ["batch", str(inputs / "batchin"), "--output-dir", str(out)]


def prealign_too_few(kind: str, count: int) -> Builder:
    """A case: ``count`` landmark pairs fitted with ``--type kind``."""

    def build(inputs: Path, out: Path) -> list[str]:
        fixed = _mrk(inputs / "f.mrk.json", PREALIGN_FIXED[:count])
        return _prealign(fixed, _mrk(inputs / "m.mrk.json", _shifted(PREALIGN_FIXED[:count])), out, "--type", kind)

    return build


EMPTY = "the file is empty (0 bytes)"
FILE_CASES = {  # said 'damaged', 'the first line must name the columns', 'lacks the column(s)', 'manifest not found'
    "an empty .nrrd": Case(moving_as(lambda inputs: _empty(inputs, "empty.nrrd")), f"empty.nrrd: {EMPTY}: save or"),
    "an empty .nii.gz": Case(moving_as(lambda inputs: _empty(inputs, "empty.nii.gz")), f"empty.nii.gz: {EMPTY}"),
    "an empty fixed image for prep": Case(
        lambda inputs, out: _prep(_empty(inputs, "f.nrrd"), _pair(inputs)[1], out, "--crop-common"), f"f.nrrd: {EMPTY}"
    ),
    "an empty points CSV": Case(empty_points, f"f.csv: {EMPTY}: save the point list again"),
    "an empty manifest": Case(
        lambda inputs, out: ["batch", str(_empty(inputs, "cohort.csv")), "--output-dir", str(out)],
        f"cohort.csv: {EMPTY}: write its header case,fixed,moving",
    ),
    "the manifest is a folder": Case(manifest_is_a_folder, "batchin is a folder, not a manifest file: give the CSV"),
    "prealign affine with 3 points": Case(prealign_too_few("affine", 3), "an affine fit needs at least 4 point pairs"),
    "prealign tps with 3 points": Case(prealign_too_few("tps", 3), "a thin-plate spline fit needs at least 4 point"),
    "prealign rigid with a reference image": Case(
        lambda inputs, out: _prealign_with_image((100, 100, 100), "--reference-image", "rigid")(inputs, out),
        "--reference-image is the grid of a tps field, and a rigid fit has none: leave it out, or use --type tps",
    ),
}
CASES.update(FILE_CASES)




# --------------------------------------------------------------------------- outputs that would lose a user's file
def _custom_preset(inputs: Path, engine: str, name: str) -> Path:
    from MultimodalRegistrationLib.engines.presets import presets_dir

    preset = inputs / name
    preset.write_text((presets_dir() / engine / ("rigid.json" if engine == "ants" else "rigid.txt")).read_text())
    return preset


def output_transform_is_the_preset_file(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    preset = _custom_preset(inputs, "elastix", "my-rigid.txt")
    return ["register", "--fixed", str(fixed), "--moving", str(moving), "--preset", str(preset),
            "--output-transform", str(preset)]  # fmt: skip


def json_is_the_preset_file(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    preset = _custom_preset(inputs, "ants", "my-ants-rigid.json")
    return ["register", "--fixed", str(fixed), "--moving", str(moving), "--engine", "ants", "--preset", str(preset),
            "--output-transform", str(out / "T.h5"), "--json", str(preset)]  # fmt: skip


def qa_figures_folder_holds_other_files(inputs: Path, out: Path) -> list[str]:
    """The report's pictures folder held the images QA read and a note: all were deleted with exit 0."""
    figures = inputs / "r_figures"
    figures.mkdir()
    (figures / "notes.txt").write_text("mine")
    return _qa(inputs, inputs / "r.html")


def fixed_mask_far_outside(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    mask = _mask(_volume(), [(24, 20, 16), (25, 20, 16)])
    mask.SetOrigin([1000.0, 0.0, 0.0])
    write_image(mask, inputs / "mask.nrrd")
    return _register(fixed, moving, out, "--fixed-mask", str(inputs / "mask.nrrd"))


def rotation_limit_with_guidance(inputs: Path, out: Path) -> list[str]:
    """Guided by segmentations, --max-rotation-deg was refused with "use --init any-pose", whose search leaves the
    guidance out of the start (a TRUS pair 6.2 mm off, against 2.8 mm under auto)."""
    args = segmentations_swapped(inputs, out)
    fixed_seg, moving_seg = args.index("--fixed-segmentation") + 1, args.index("--moving-segmentation") + 1
    args[fixed_seg], args[moving_seg] = args[moving_seg], args[fixed_seg]  # each on its own image
    return args + ["--init", "auto", "--max-rotation-deg", "30"]


AUDIT_OUTPUT_CASES = {  # each ran with exit 0 and lost a file, or named the wrong cause (audit of bad input)
    "--output-transform is the custom preset file": Case(output_transform_is_the_preset_file, "the preset file"),
    "--json is the custom preset file": Case(json_is_the_preset_file, "the preset file"),
    "--output-transform given empty": Case(register_with("--output-transform", ""),
                                           "--output-transform is empty: give its value"),
    "--json given empty": Case(register_with("--json", ""), "--json is empty"),
    "qa pictures folder holding other files": Case(qa_figures_folder_holds_other_files,
                                                   "holds files mmreg did not write (notes.txt)"),
    "--max-rotation-deg where no search runs": Case(register_with("--max-rotation-deg", "30"),
                                                    "narrows the any-pose search, which --init none replaces"),
    "--max-rotation-deg 0": Case(register_with("--max-rotation-deg", "0"), "(0 excluded)"),
    "--max-rotation-deg with guidance": Case(rotation_limit_with_guidance, "which the guided start replaces: drop it "
                                             "(the guided start searches rotations within 30 degrees"),
    "--guidance-weight 0": Case(register_with("--guidance-weight", "0"), "give a number above 0"),
    "fixed mask far outside its image": Case(fixed_mask_far_outside, "lies outside its image"),
    "an image as the initial transform": Case(initial_as(lambda inputs: inputs / "fixed.nrrd"),
                                              "not a displacement field"),
}  # fmt: skip
CASES.update(AUDIT_OUTPUT_CASES)




def test_a_stack_s_csv_and_json_may_sit_beside_its_sections(tmp_path):
    """Sections are images: a CSV or JSON kept in their folder is never read as one (a stack.json beside its
    sections was refused; review). An image there is."""
    from MultimodalRegistrationLib.stack.sections import check_outputs_beside_sections

    check_outputs_beside_sections(str(tmp_path), {"--output-transforms": str(tmp_path / "T.csv"),
                                                  "--json": str(tmp_path / "stack.json")})  # fmt: skip
    with pytest.raises(InputError, match="V.nrrd lies in the sections' folder"):
        check_outputs_beside_sections(str(tmp_path), {"--output-volume": str(tmp_path / "V.nrrd")})


# The audits' tables that need no more than _assert_refused (each kept beside its builders): one test.
AUDIT_TABLES = {**QA_CASES, **IGNORED_OPTION_CASES, **PREP_FIX_CASES, **RESTART_SETTING_CASES, **FILE_CASES,
                **AUDIT_OUTPUT_CASES}  # fmt: skip


@pytest.mark.parametrize("name", list(AUDIT_TABLES))
def test_bad_input_found_by_the_audits_is_refused_before_any_work(name, tmp_path, private_tmp, capsys):
    """QA input refused before its restarts, options that would be ignored, prep masks that cannot be placed,
    restart settings that cannot give a verdict, empty files and folders, outputs that would lose a file."""
    _assert_refused(AUDIT_TABLES[name], tmp_path, private_tmp, capsys)


def test_a_batch_csv_open_in_another_program_is_named_before_any_engine(tmp_path, private_tmp, capsys, monkeypatch):
    """Windows: `mmreg batch` into a folder whose batch.csv is open in Excel ended in a PermissionError traceback
    (audit of Windows paths). It exits 2 naming the file and the fix, before any case runs; the folder is as it was."""
    from test_user_files_kept import held_open_by_another_program

    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    fixed, moving = _pair(inputs)
    manifest = inputs / "cohort.csv"
    manifest.write_text(f"case,fixed,moving\nc1,{fixed},{moving}\n")
    out.mkdir()
    (out / "batch.csv").write_text("case,status\nc0,ok\n")  # an earlier manifest's, open in Excel
    before, kept = _snapshot(inputs), _snapshot(out)
    held_open_by_another_program(monkeypatch, lambda source: source.name == "batch.csv")
    code = main(["batch", str(manifest), "--output-dir", str(out)])
    message = capsys.readouterr().err
    assert code == EXIT_INPUT and "batch.csv" in message and "close it where it is open" in message, message
    assert "Traceback" not in message and _snapshot(inputs) == before
    assert _snapshot(out) == kept and sorted(p.name for p in out.iterdir() if p.name != ".mmreg-batch.lock") == ["batch.csv"]
    assert list(private_tmp.iterdir()) == []


def test_outputs_apart_only_by_capitals_are_refused_on_a_case_blind_disk(tmp_path, private_tmp, capsys, monkeypatch):
    """macOS and Windows disks take reg.h5 and Reg.h5 for one file: the inverse silently replaced the transform
    (audit of macOS paths). Refused before any engine runs, naming both."""
    from MultimodalRegistrationLib.core import output_safety

    monkeypatch.setattr(output_safety, "_CASE_BLIND", True)
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    fixed, moving = _pair(inputs)
    before = _snapshot(inputs)
    code = main(["register", "--fixed", str(fixed), "--moving", str(moving), "--output-transform", str(out / "reg.h5"),
                 "--output-inverse", str(out / "Reg.h5")])  # fmt: skip
    message = capsys.readouterr().err
    assert code == EXIT_INPUT and "reg.h5" in message and "Reg.h5" in message, message
    assert _snapshot(inputs) == before and not out.exists() and list(private_tmp.iterdir()) == []


def test_an_output_path_too_long_for_windows_is_refused_before_any_work(tmp_path, private_tmp, capsys, monkeypatch):
    """Windows: a path that fits 260 characters can still fail while it is written (the staging folders add up to
    70), as an ITK write error after the whole registration (Windows audit, L9). Refused first, with the fix."""
    from MultimodalRegistrationLib.core import file_checks

    monkeypatch.setattr(file_checks, "_WINDOWS", True)
    inputs, out = tmp_path / "inputs", tmp_path / "out" / ("a long project folder name " * 6).strip()
    inputs.mkdir()
    fixed, moving = _pair(inputs)
    before = _snapshot(inputs)
    code = main(_register(fixed, moving, out))
    message = capsys.readouterr().err
    assert code == EXIT_INPUT and "too long for Windows" in message and "choose a shorter folder" in message, message
    assert _snapshot(inputs) == before and not (tmp_path / "out").exists() and list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("name, why", [("MR 10:30.h5", "':'"), ("what?.h5", "'?'"), ("out./T.h5", "final dot"),
                                       ("aux.h5", "device name"), ("Con .h5", "device name")])
def test_an_output_name_windows_cannot_hold_is_refused_before_any_work(name, why, tmp_path, private_tmp, capsys,
                                                                       monkeypatch):
    """Windows: < > : " | ? * and a final dot or space in a name, and device names, failed only as the result was
    written, after the registration ('this is a bug'); a ':' wrote an empty 'MR 10' and the result into its hidden
    stream (a Windows review). Refused first, naming the name."""
    from MultimodalRegistrationLib.core import name_lengths

    monkeypatch.setattr(name_lengths, "_WINDOWS", True)
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    fixed, moving = _pair(inputs)
    before = _snapshot(inputs)
    code = main(["register", "--fixed", str(fixed), "--moving", str(moving), "--output-transform", str(out / name)])
    message = capsys.readouterr().err
    assert code == EXIT_INPUT and why in message and "rename it" in message, message
    assert _snapshot(inputs) == before and not out.exists() and list(private_tmp.iterdir()) == []


def test_a_report_whose_pictures_pass_the_windows_path_limit_is_refused_before_any_work(tmp_path, private_tmp, capsys,
                                                                                      monkeypatch):
    """Windows: QA stages its pictures two folders deeper than its report, so a report that fit the room left for
    one output had its pictures' paths pass MAX_PATH (a Windows review). Refused first, naming the pictures."""
    from MultimodalRegistrationLib.core import file_checks

    monkeypatch.setattr(file_checks, "_WINDOWS", True)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    report = tmp_path / ("r" * (file_checks.WINDOWS_PATH_ROOM - len(str(tmp_path)) - 1 - len(".html")))
    report = report.with_name(report.name + ".html")
    assert len(str(report)) == file_checks.WINDOWS_PATH_ROOM  # room enough for the report itself
    argv = _qa(inputs, report)
    before = _snapshot(inputs)
    code = main(argv)
    message = capsys.readouterr().err
    assert code == EXIT_INPUT and "report's pictures" in message and "too long for Windows" in message, message
    assert _snapshot(inputs) == before and not report.exists() and not report.with_name(report.stem + "_figures").exists()
    assert list(private_tmp.iterdir()) == []


def test_more_batch_workers_than_the_open_files_allow_are_refused_before_any_case(tmp_path, private_tmp, capsys,
                                                                                   monkeypatch):
    """macOS starts programs with 256 open files and a batch holds three per worker: --workers 100 ran out of
    files mid-batch (audit of macOS paths, L5). The limit is raised when the system allows; else exit 2 names the
    most workers it holds, before any case runs."""
    from MultimodalRegistrationLib.core import open_files

    if open_files.resource is None:
        pytest.skip("no per-process open-file limit on this system (Windows)")
    raised = []

    def refuse(kind, limits):  # macOS: above kern.maxfilesperproc
        raised.append(limits)
        raise ValueError("not allowed")

    monkeypatch.setattr(open_files.resource, "getrlimit", lambda kind: (256, open_files.resource.RLIM_INFINITY))
    monkeypatch.setattr(open_files.resource, "setrlimit", refuse)
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    arguments = _batch(inputs, out, "--workers", "100")
    before = _snapshot(inputs)
    code = main(arguments)
    message = capsys.readouterr().err
    assert code == EXIT_INPUT and "hold 256 files open, enough for 64 workers: give at most 64" in message, message
    assert raised and raised[0][0] == 64 + 3 * 100  # it asked for what 100 workers need first
    assert not out.exists() and _snapshot(inputs) == before and list(private_tmp.iterdir()) == []


# --------------------------------------------------------------------------- memory, with free memory set
# A guided run counted no guidance, and a run with any preparation option was not checked at all (core.memory
# GUIDED_*, SEGMENT_*; process.preflight.check_run_memory), nor ANTs SyN's fields at their level (FIELD_FLOAT32_COPIES).
# 100x100x100 float32 pairs at 2 mm, a segment on each:
# unguided 48 MB, guided by one pair 362 MB (elastix), 298 MB read at 3 mm; 320 MB free.
MEMORY_FREE_MB = 320


def guided_pair(*extra: str) -> Builder:
    """A case: a 100x100x100 pair guided by a 'gland' segment on each image, with the options ``extra``."""

    def build(inputs: Path, out: Path) -> list[str]:
        files = []
        for side, seed in (("fixed", 0), ("moving", 1)):
            image = _volume(size=(100, 100, 100), spacing=(2.0, 2.0, 2.0), seed=seed)
            write_image(image, inputs / f"{side}.nrrd")
            labels = sitk.Image(image.GetSize(), sitk.sitkUInt8)
            labels.CopyInformation(image)
            labels[30:70, 30:70, 30:70] = 1
            labels.SetMetaData("Segment0_Name", "gland")
            labels.SetMetaData("Segment0_LabelValue", "1")
            files.append(inputs / f"{side}.seg.nrrd")
            write_image(labels, files[-1])
        return _register(inputs / "fixed.nrrd", inputs / "moving.nrrd", out, "--fixed-segmentation", str(files[0]),
                         "--moving-segmentation", str(files[1]), *extra)  # fmt: skip

    return build


def deformable_pair(*extra: str) -> Builder:
    """A case: an unguided 100x100x100 pair at 2 mm, with the options ``extra``."""

    def build(inputs: Path, out: Path) -> list[str]:
        for side, seed in (("fixed", 0), ("moving", 1)):
            write_image(_volume(size=(100, 100, 100), spacing=(2.0, 2.0, 2.0), seed=seed), inputs / f"{side}.nrrd")
        return _register(inputs / "fixed.nrrd", inputs / "moving.nrrd", out, *extra)

    return build


def qa_of_a_pair_over_free_memory(inputs: Path, out: Path, voxel_mm: float = 1.0) -> list[str]:
    """mmreg qa of a 240^3 float32 pair at ``voxel_mm`` (about 332 MB with QA's copies): it had no memory check."""
    paths = []
    for side in ("fixed", "moving"):
        image = sitk.Image([240, 240, 240], sitk.sitkFloat32)
        image[60:180, 60:180, 60:180] = 100.0
        image.SetSpacing([voxel_mm] * 3)
        paths.append(inputs / f"{side}.nrrd")
        sitk.WriteImage(image, str(paths[-1]), True)
    return ["qa", "--fixed", str(paths[0]), "--moving", str(paths[1]), "--transform", str(_rigid_tfm(inputs / "T.tfm")),
            "--report", str(out / "qa.html")]  # fmt: skip


MEMORY_CASES = {
    # SyN's fields lie on the fixed grid at its finest level, 2 mm: full resolution here (75 copies of the fixed
    # image; measured 72). The estimate was 15 copies of each image, 120 MB, and let the run start.
    "an ANTs deformable run whose displacement fields exceed free memory": Case(
        deformable_pair("--engine", "ants", "--preset", "deformable"), "the registration needs about 360 MB in "
        "memory (fixed image 100×100×100 float32, moving image 100×100×100 float32), more than the 588 MB this "
        "machine has free: crop or downsample the images first (mmreg prep --downsample-to 3 reads"
    ),
    "a guided run over free memory whose unguided run fits": Case(
        guided_pair(), "the guided registration needs about 362 MB in memory (fixed image 100×100×100 float32, "
        "moving image 100×100×100 float32, 1 segment pair guiding), more than the 588 MB this machine has free: crop "
        "or downsample the images first (mmreg prep --downsample-to 3 reads a file slab by slab)"
    ),
    "a prepared guided run over free memory (a preparation option skipped the check)": Case(
        guided_pair("--spacing-moving", "2,2,2"), "crop or downsample the images first (--downsample-to 3 reads"
    ),
    "qa of a pair over free memory": Case(
        qa_of_a_pair_over_free_memory, "measuring the registration needs about 332 MB in memory (fixed image "
        "240×240×240 float32, moving image 240×240×240 float32), more than the 588 MB this machine has free: measure "
        "on copies read with mmreg prep --downsample-to 1.5"
    ),
    # QA offered 0.5 mm and coarser, where a registration's check offers 0.25 mm too
    "qa of a 0.2 mm pair over free memory: the finest voxel size that fits": Case(
        lambda inputs, out: qa_of_a_pair_over_free_memory(inputs, out, 0.2), "more than the 588 MB this machine has "
        "free: measure on copies read with mmreg prep --downsample-to 0.25 "
    ),
}


def _large_slide(path: Path, side: int) -> Path:
    """A grey PNG ``side`` pixels square, at 0.01 mm (small as a file: mostly one value)."""
    from PIL import Image

    array = np.zeros((side, side), np.uint8)
    array[side // 4 : side // 2, side // 4 : side // 2] = 180
    Image.fromarray(array).save(path, dpi=(2540, 2540))
    return path


def two_d_slide_over_free_memory(inputs: Path, out: Path) -> list[str]:
    """A 20000-pixel slide had ended register2d in a MemoryError traceback (a helper's sweep): 7000 here."""
    fixed, _ = _slides(inputs)
    return _register_2d(fixed, _large_slide(inputs / "large.png", 7000), out, pixel="0.01")


def stack_over_free_memory(inputs: Path, out: Path) -> list[str]:
    """Three such sections had ended mmreg stack in a traceback after the whole alignment (a helper's sweep)."""
    folder = inputs / "sections"
    folder.mkdir()
    for index in range(3):
        _large_slide(folder / f"s{index}.png", 6000)
    return _stack(str(folder), out, pixel="0.01")


MEMORY_CASES["2D: a slide over free memory"] = Case(
    two_d_slide_over_free_memory, "the 2D registration needs about 637 MB in memory (mr.nrrd 50 x 40, large.png "
    "7000 x 7000), more than the 588 MB this machine has free: save a smaller version: a lower level of the slide's "
    "pyramid"
)
MEMORY_CASES["stack: sections over free memory"] = Case(
    stack_over_free_memory, "the stack needs about 684 MB in memory (3 sections of up to 6000 x 6000 pixels), more "
    "than the 588 MB this machine has free: save a smaller version"
)


@pytest.mark.parametrize("name", list(MEMORY_CASES))
def test_a_run_over_free_memory_is_refused_from_the_headers(name, tmp_path, private_tmp, capsys, monkeypatch):
    from MultimodalRegistrationLib.core import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: memory.HEADROOM_BYTES + MEMORY_FREE_MB * 10**6)
    _assert_refused(MEMORY_CASES[name], tmp_path, private_tmp, capsys)


# --------------------------------------------------------------------------- a helper's sweep of bad input (session 52)
def _nan_field(path: Path) -> Path:
    """A displacement field over the valid pair's box with one NaN vector (.h5)."""
    field = np.zeros((32, 40, 48, 3))
    field[13, 14, 15, 0] = np.nan
    image = sitk.GetImageFromArray(field, isVector=True)
    image.SetSpacing((2.0, 2.0, 2.5))
    sitk.WriteTransform(sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64)), str(path))
    return path


def qa_of_a_field_with_a_nan(inputs: Path, out: Path) -> list[str]:
    """QA said "folding 0%" and wrote the token NaN into its JSON."""
    argv = _qa(inputs, out / "qa.html")
    argv[argv.index("--transform") + 1] = str(_nan_field(inputs / "field.h5"))
    return argv


def _infinite_voxel(inputs: Path) -> Path:
    image = _volume(seed=1)
    image[10, 10, 10] = float("inf")
    write_image(image, inputs / "inf.nrrd")
    return inputs / "inf.nrrd"


def downsampled_infinite_voxel(inputs: Path, out: Path) -> list[str]:
    """Averaged down, the voxel had become 3.4e38 in the output volume, with no word."""
    fixed, _ = _pair(inputs)
    return _register(fixed, _infinite_voxel(inputs), out, "--downsample-to", "4")


def prep_downsampled_infinite_voxel(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    return _prep(fixed, _infinite_voxel(inputs), out, "--downsample-to", "4")


def two_d_slide_of_dust(inputs: Path, out: Path) -> list[str]:
    """A blank slide with five specks: ANTs returned a turn of 164 degrees, elastix stopped (exit 1)."""
    from PIL import Image

    fixed, _ = _slides(inputs)
    dust = np.zeros((80, 100), np.uint8)
    for row, column in ((10, 10), (20, 70), (40, 40), (60, 15), (70, 90)):
        dust[row : row + 2, column : column + 2] = 200
    Image.fromarray(dust).save(inputs / "dust.png")
    return _register_2d(fixed, inputs / "dust.png", out)


def guided_by_points_at_one_position(inputs: Path, out: Path) -> list[str]:
    """exit 0, 90 degrees from the centres, warned only that the lists differ in size ("check image spacing")."""
    fixed, moving = _pair(inputs)
    fixed_points = _points(inputs / "f.csv", ["a,10,10,10", "b,40,10,10", "c,10,40,10", "d,10,10,40", "e,40,40,40"])
    moving_points = _points(inputs / "m.csv", [f"{label},20,20,20" for label in "abcde"])
    return _register(fixed, moving, out, "--fixed-points", str(fixed_points), "--moving-points", str(moving_points))


def _elastix_parameters(inputs: Path) -> Path:
    """ITK's own words had been "Tags must be delimited by :"."""
    parameters = inputs / "TransformParameters.0.txt"
    parameters.write_text('(Transform "EulerTransform")\n(NumberOfParameters 6)\n(TransformParameters 0 0 0 1 2 3)\n')
    return parameters


def one_volume_4d(inputs: Path, out: Path) -> list[str]:
    """Said "4D (1 volumes, a multi-volume or time series)"."""
    fixed, _ = _pair(inputs)
    sitk.WriteImage(sitk.JoinSeries([_volume(seed=1)]), str(inputs / "moving4d.nrrd"))
    return _register(fixed, inputs / "moving4d.nrrd", out)


def uint64_near_two_to_the_63(inputs: Path, out: Path) -> list[str]:
    """Called constant ("every voxel is 9.22337e+18"): the values differ by less than a double tells apart."""
    fixed, _ = _pair(inputs)
    values = sitk.GetArrayFromImage(_volume(seed=1)).clip(0, None).astype(np.uint64) + np.uint64(2**63)
    sitk.WriteImage(sitk.GetImageFromArray(values), str(inputs / "offset.nrrd"))
    return _register(fixed, inputs / "offset.nrrd", out)


def qa_fit_point_without_a_partner(inputs: Path, out: Path) -> list[str]:
    """A fit point the moving list lacks: refused as "not among the paired landmarks: check the names", though the
    name was right (a helper's real spinal cords, session 55); target points so are left out with a warning."""
    names = ["A", "B", "C", "D", "E", "F"]
    return _qa(inputs, out / "r.html", *_qa_points(inputs, names, [*names[:5], "X"]), "--fit-points", "F", "A")



def prealign_both_lists_in_the_other_system(inputs: Path, out: Path) -> list[str]:
    """Both files say LPS and hold RAS numbers: the refusal named the fixed file only, and the second run, the fixed
    file mended, refused the moving one (session 56). Both are named, each with its own file's fix."""
    for name, origin in (("fixed", [10.0, 10.0, -40.0]), ("moving", [14.0, 16.0, -40.0])):  # LPS, off the origin
        image = sitk.Image([40, 40, 40], sitk.sitkUInt8)
        image.SetSpacing([2.0] * 3)
        image.SetOrigin(origin)
        write_image(image, inputs / f"{name}.nrrd")
    inside = np.asarray(PREALIGN_FIXED) * [0.8, 0.8, 1.0] + [-45.0, -45.0, 0.0]  # RAS; LPS x, y 21-69 mm
    lists = []
    for name, points in (("f", inside), ("m", inside + [-4.0, -6.0, 0.0])):
        lists.append(_mrk(inputs / f"{name}.mrk.json", points.tolist(), system="RAS"))
        lists[-1].write_text(lists[-1].read_text().replace('"coordinateSystem": "RAS"', '"coordinateSystem": "LPS"'))
    return _prealign(*lists, out, "--fixed-image", str(inputs / "fixed.nrrd"), "--moving-image",
                     str(inputs / "moving.nrrd"))  # fmt: skip


def two_d_empty_volume_file(inputs: Path, out: Path) -> list[str]:
    """An empty NRRD beside a picture had been called 3D, with advice to stack 2D sections (session 57)."""
    _, moving = _slides(inputs)
    (inputs / "empty.nrrd").write_bytes(b"")
    return _register_2d(inputs / "empty.nrrd", moving, out)


def two_d_five_channels(inputs: Path, out: Path) -> list[str]:
    """A multiplexed fluorescence image: channels 0-2 were mixed as RGB and 3-4 dropped, exit 0 (session 57)."""
    fixed, _ = _slides(inputs)
    channels = np.random.default_rng(3).integers(0, 255, (80, 100, 5)).astype(np.uint8)
    write_image(sitk.GetImageFromArray(channels, isVector=True), inputs / "five.nrrd")
    return _register_2d(fixed, inputs / "five.nrrd", out)


def two_d_one_pixel_strip(inputs: Path, out: Path) -> list[str]:
    """A strip one pixel wide, its pixel size raised as the size check advised: a traceback from the start search's
    smoothing (session 57)."""
    from PIL import Image

    fixed, _ = _slides(inputs)
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (80, 1), dtype=np.uint8)).save(inputs / "strip.png")
    return _register_2d(fixed, inputs / "strip.png", out, pixel="8")


def stack_section_spacing(spacing: str, pixel: str = "0.5") -> Builder:
    """Two 50-pixel sections (``pixel`` mm) stacked ``spacing`` mm apart."""

    def build(inputs: Path, out: Path) -> list[str]:
        argv = _stack(str(_sections(inputs)), out, pixel=pixel)
        argv[argv.index("--section-spacing") + 1] = spacing
        return argv

    return build


SWEEP_CASES = {  # each ran an engine and exited 0 or 1, or named another cause (a helper's sweep of 90 bad inputs)
    # ITK reads a suffix as written: R.MHA had been written as R.mhd + R.zraw (exit 0), R.NII.GZ failed after the run
    "an output volume's suffix in capitals": Case(
        lambda inputs, out: _register(*_pair(inputs), out, "--output-volume", str(out / "R.NII.GZ")),
        "write its extension in lower case ('R.nii.gz')",
    ),
    "64-bit integers near 2^63": Case(uint64_near_two_to_the_63, "holds 64-bit integers near 9.223e+18 that differ"),
    "elastix's parameter file as the initial transform": Case(initial_as(_elastix_parameters),
                                                              "is an elastix parameter file"),
    "a 4D file holding one volume": Case(one_volume_4d, "is a 3D volume saved with a fourth axis of one volume"),
    "a preset file that is not there": Case(register_with("--preset", "/no/such/folder/mine.txt"),
                                            "preset file /no/such/folder/mine.txt does not exist"),  # 'unknown preset'
    # exit 0 with the NaN in the written T.h5; a coarser field crashed ("SVD did not converge ... a bug")
    "initial displacement field with a NaN vector": Case(initial_as(lambda inputs: _nan_field(inputs / "field.h5")),
                                                         "not finite numbers"),
    "qa of a displacement field with a NaN vector": Case(qa_of_a_field_with_a_nan, "not finite numbers"),
    "an infinite voxel, downsampled": Case(downsampled_infinite_voxel, "NaN or infinite voxels"),
    "prep: an infinite voxel, downsampled": Case(prep_downsampled_infinite_voxel, "NaN or infinite voxels"),
    "2D: a slide of dust": Case(two_d_slide_of_dust, "holds only 20 pixels above its lowest value (0), too few"),
    "guiding points at one position": Case(guided_by_points_at_one_position, "the 5 moving points lie within 0.00 "
                                           "mm RMS of one position"),
    "prealign: both lists in the other system": Case(
        prealign_both_lists_in_the_other_system,
        "which record their coordinate system; and all 6 moving points lie outside the moving image",
    ),
    "qa: a fit point in one list only": Case(qa_fit_point_without_a_partner, "F (in the fixed list only) have no "
                                             "partner in the other list: place them there too"),
    "2D: an empty volume file": Case(two_d_empty_volume_file, "the file is empty (0 bytes)"),
    "2D: five channels": Case(two_d_five_channels, "has 5 channels: a 2D registration takes a grey picture"),
    "2D: a strip one pixel wide": Case(two_d_one_pixel_strip, "is 1 x 80 pixels: under 8 pixels along a side"),
    "stack: a pixel size in micrometres": Case(stack_pixel("45"), "s0.png is 2250 mm wide at 45 mm pixels (as "
                                               "given), wider than any body (2000 mm): pixel sizes are in mm (if it "
                                               "is in micrometres, give --pixel-size 0.045)"),
    "stack: a section spacing in micrometres": Case(stack_section_spacing("50"), "--section-spacing 50 mm is more "
                                                    "than the sections are wide (25 mm at 0.5 mm pixels, as given): "
                                                    "the distance between sections is in mm (in micrometres, give "
                                                    "--section-spacing 0.05)"),
    "stack: pixels in micrometres beside sections in mm": Case(
        stack_section_spacing("0.005", pixel="1"), "the pixels (1 mm, as given) are over 100 times the section "
        "spacing (0.005 mm): one of them is in the wrong unit; both are in mm (if it is in micrometres, give "
        "--pixel-size 0.001)"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SWEEP_CASES))
def test_bad_input_found_by_the_sweep_is_refused_before_any_engine(name, tmp_path, private_tmp, capsys):
    _assert_refused(SWEEP_CASES[name], tmp_path, private_tmp, capsys)


# =========================================================================== mmreg prep on odd inputs (session 54)
def prep_six_thin_slices_at_one_mm(inputs: Path, out: Path) -> list[str]:
    """Six slices of 0.55 mm brought to 1 mm: 3 slices; refused later as a thumbnail, 'give the whole volume'."""
    fixed, moving = _pair(inputs)
    write_image(_volume(size=(60, 60, 6), spacing=(0.55, 0.55, 0.55)), fixed)
    return _prep(fixed, moving, out, "--downsample-to", "1")


PREP_SWEEP_CASES = {  # each wrote outputs with exit 0 that prep and registration refuse, or named another fix
    "prep: a region of interest 1 mm deep": Case(
        prep_with("--roi", "-40,-40,10,-10,-10,11", "--margin", "0"),
        "the crop leaves the fixed image 1 voxel(s) along axis 2 (2.5 mm of the region of interest); a registration "
        "needs 4 or more along every axis: widen --roi",
    ),
    "prep: a metal threshold below the whole CT": Case(
        prep_with("--exclude-above", "-2000", "--modality-fixed", "ct"),
        "excludes every voxel of the fixed image: metal is above about 2500-3000 HU; raise --exclude-above",
    ),
    "prep: --downsample-to leaving 3 of 6 slices": Case(
        prep_six_thin_slices_at_one_mm, "would leave the fixed image 3 voxel(s) across (3.3 mm); a registration needs "
        "4 or more along every axis: give at most 0.825 mm",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(PREP_SWEEP_CASES))
def test_prep_refuses_outputs_it_would_refuse_as_inputs(name, tmp_path, private_tmp, capsys):
    _assert_refused(PREP_SWEEP_CASES[name], tmp_path, private_tmp, capsys)


def test_prep_into_a_folder_holding_a_folder_named_as_an_output_is_refused_first(tmp_path, private_tmp, capsys):
    """The run had read, cropped and written everything, then stopped with a traceback (exit 1)."""
    fixed, moving = _pair(tmp_path)
    (tmp_path / "out" / "moving.nrrd").mkdir(parents=True)
    code = main(_prep(fixed, moving, tmp_path / "out", "--crop-common"))
    message = capsys.readouterr().err
    assert code == 2 and "Traceback" not in message, message
    assert f"{tmp_path / 'out' / 'moving.nrrd'} is a folder, where prep writes a file of that name" in message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["moving.nrrd"]
    assert list(private_tmp.iterdir()) == []


# =========================================================================== landmark prealignment sweep (session 54)
def _prealign_with_image(size, option: str, kind: str) -> Builder:
    """A case: the spread landmarks fitted with ``--type kind`` and an image of ``size`` voxels (1 mm, centred on
    the points) as ``option``."""

    def build(inputs: Path, out: Path) -> list[str]:
        image = sitk.Image(list(size), sitk.sitkUInt8)
        image.SetOrigin([-50.0] * len(size))
        write_image(image, inputs / "image.nrrd")
        fixed = _mrk(inputs / "f.mrk.json", PREALIGN_FIXED)
        moving = _mrk(inputs / "m.mrk.json", _shifted(PREALIGN_FIXED))
        return _prealign(fixed, moving, out, "--type", kind, option, str(inputs / "image.nrrd"))

    return build


def prealign_one_file_as_both_lists(inputs: Path, out: Path) -> list[str]:
    points = _mrk(inputs / "f.mrk.json", PREALIGN_FIXED)
    return _prealign(points, inputs / "." / "f.mrk.json", out)


def prealign_fixed_points_at_one_position(inputs: Path, out: Path) -> list[str]:
    collapsed = [PREALIGN_FIXED[0]] * len(PREALIGN_FIXED)
    return _prealign(_mrk(inputs / "f.mrk.json", collapsed), _mrk(inputs / "m.mrk.json", PREALIGN_FIXED), out)


def qa_unlabelled_points_numbered_past_a_skipped_one(inputs: Path, out: Path) -> list[str]:
    """An unlabelled .fcsv whose point 2 is marked skipped (numbered 1, 3, 4, ...) against an unlabelled .csv that
    lacks the point (1, 2, 3, ...): the numbers paired every later point with its neighbour's partner, TRE 35 mm at
    the true transform with exit 0 (a helper's QA sweep)."""
    header = ("# Markups fiducial file version = 5.6\n# CoordinateSystem = RAS\n"
              "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n")  # fmt: skip
    rows = [f"{i + 1},{x},{y},{z},0,0,0,1,1,1,0,,,,{3 if i == 1 else 2}\n"
            for i, (x, y, z) in enumerate(PREALIGN_FIXED)]  # fmt: skip
    (inputs / "f.fcsv").write_text(header + "".join(rows))
    moving = [point for index, point in enumerate(_shifted(PREALIGN_FIXED)) if index != 1]
    (inputs / "m.csv").write_text("x,y,z\n" + "".join(",".join(map(str, point)) + "\n" for point in moving))
    points = ("--fixed-points", str(inputs / "f.fcsv"), "--moving-points", str(inputs / "m.csv"))
    return _qa(inputs, out / "r.html", *points)


PREALIGN_SWEEP_CASES = {  # a NaN field written with exit 0, a traceback, an identity fit, or another cause named
    "qa: unlabelled points numbered past a skipped one": Case(
        qa_unlabelled_points_numbered_past_a_skipped_one, "fixed point '2' in f.fcsv is marked skipped (Slicer's "
        "Skip: not visible in that image), and the lists pair by order"
    ),
    "prealign tps on a reference one slice thick": Case(
        _prealign_with_image((100, 100, 1), "--reference-image", "tps"),
        "the reference image is 100x100x1 voxels: a thin-plate spline is sampled on a 3D grid",
    ),
    "prealign tps with a 2D fixed image": Case(
        _prealign_with_image((100, 100), "--fixed-image", "tps"), "is a 2D image: prealign fits landmarks in 3D"
    ),
    "prealign rigid with a 2D fixed image": Case(
        _prealign_with_image((100, 100), "--fixed-image", "rigid"), "or register two 2D images with mmreg register2d"
    ),
    "prealign one file as both lists": Case(prealign_one_file_as_both_lists, "--fixed-points and --moving-points are "
                                            "the same file"),
    "prealign fixed points at one position": Case(
        prealign_fixed_points_at_one_position, "the 6 fixed points lie within 0.00 mm RMS of one position"
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(PREALIGN_SWEEP_CASES))
def test_prealign_refuses_what_the_sweep_found_before_fitting(name, tmp_path, private_tmp, capsys):
    _assert_refused(PREALIGN_SWEEP_CASES[name], tmp_path, private_tmp, capsys)


# =========================================================================== mmreg register outputs (session 54)
def field_start_into_a_linear_file(inputs: Path, out: Path) -> list[str]:
    """A displacement field as the initial transform, a rigid preset and T.tfm: refused after the engine had run."""
    fixed, moving = _pair(inputs)
    field = sitk.Image([8, 8, 8], sitk.sitkVectorFloat64, 3)
    field.SetSpacing((15.0, 15.0, 15.0))
    sitk.WriteTransform(sitk.DisplacementFieldTransform(field), str(inputs / "field.h5"))
    return _register(fixed, moving, out, "--initial-transform", str(inputs / "field.h5"), "--output-transform",
                     str(out / "T.tfm"))  # fmt: skip


def _links(inputs: Path) -> Path:
    """A folder for symbolic links beside the inputs (the inputs' snapshot reads every file it holds)."""
    links = inputs.parent / "links"
    links.mkdir(exist_ok=True)
    return links


def symlink_loop_as(command: str) -> Builder:
    """A moving image that is a symbolic link to itself: a traceback ('Symlink loop'), exit 1 (a helper's sweep)."""

    def build(inputs: Path, out: Path) -> list[str]:
        loop = _links(inputs) / "loop.nrrd"
        loop.symlink_to(loop)
        argv = _register(*_pair(inputs), out) if command == "register" else _qa(inputs, out / "qa.html")
        argv[argv.index("--moving") + 1] = str(loop)
        return argv

    return build


def output_transform_linked_to_the_fixed(inputs: Path, out: Path) -> list[str]:
    """T.h5 a link to the fixed image: refused, as 'cannot write ... to fixed.nrrd: use .h5' (a helper's sweep)."""
    fixed, moving = _pair(inputs)
    link = _links(inputs) / "T.h5"
    link.symlink_to(fixed)
    argv = _register(fixed, moving, out)
    argv[argv.index("--output-transform") + 1] = str(link)
    return argv


def _dicom_series(folder: Path) -> Path:
    """The valid pair's fixed volume as a DICOM series, one .dcm file a slice (as a scanner exports it)."""
    folder.mkdir()
    volume = sitk.Cast(sitk.ReadImage(str(_pair(folder.parent)[0])), sitk.sitkInt16)
    for index in range(volume.GetSize()[2]):
        sitk.WriteImage(volume[:, :, index], str(folder / f"IM{index:04d}.dcm"))
    return folder


def dicom_given_as(what: str) -> Builder:
    """A DICOM series folder, or one of its files, as the fixed image: 'a folder, not an image file' and '2D and
    the other 3D ... mmreg stack', neither naming DICOM or its conversion (a helper's file-system sweep)."""

    def build(inputs: Path, out: Path) -> list[str]:
        series = _dicom_series(_links(inputs) / "series")
        argv = _register(*_pair(inputs), out)
        argv[argv.index("--fixed") + 1] = str(series if what == "folder" else series / "IM0003.dcm")
        return argv

    return build


def nrrd_named_nii(inputs: Path, out: Path) -> list[str]:
    """A sound NRRD file named .nii: 'the file is damaged ... export it again' (a helper's file-system sweep)."""
    fixed, moving = _pair(inputs)
    misnamed = inputs / "moving.nii"
    misnamed.write_bytes(moving.read_bytes())
    return _register(fixed, misnamed, out)


FILE_SWEEP_CASES = {  # a helper's file-system sweep (session 59): tracebacks, or messages naming no fix
    "a DICOM series folder as the fixed image": Case(dicom_given_as("folder"), "is a folder of DICOM files: mmreg "
                                                     "reads one file per image: load the series in Slicer"),
    "one DICOM slice as the fixed image": Case(dicom_given_as("slice"), "IM0003.dcm is one DICOM slice: mmreg reads"),
    "a NRRD file named .nii": Case(nrrd_named_nii, "it holds .nrrd data under a .nii name: rename it to end in .nrrd"),
    "a moving image that links to itself": Case(
        symlink_loop_as("register"), "its path goes through a symbolic link that leads back to itself (a loop)"),
    "qa of a moving image that links to itself": Case(
        symlink_loop_as("qa"), "loop.nrrd: its path goes through a symbolic link that leads back to itself"),
    "an output transform that links to the fixed image": Case(
        output_transform_linked_to_the_fixed, "fixed.nrrd, a file of another kind: give the output a path of its own"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(FILE_SWEEP_CASES))
def test_links_dicom_and_misnamed_files_are_refused_naming_the_fix(name, tmp_path, private_tmp, capsys):
    _assert_refused(FILE_SWEEP_CASES[name], tmp_path, private_tmp, capsys)


REGISTER_OUTPUT_CASES = {  # each had run the engine, then exited 1 or 2, or stopped with a traceback
    "a 300-byte output name": Case(register_with("--output-transform", "b" * 300 + ".h5"),
                                   "a file system allows: choose a shorter name"),
    "a 300-byte input name": Case(lambda inputs, out: _register(inputs / ("b" * 300 + ".nrrd"), _pair(inputs)[1], out),
                                  "is too long, over the 255 bytes a name a file system allows"),
    # each name legal, the whole path over Linux's 4096 bytes: had been called a name over 255 bytes
    "a 4300-byte output path of 200-byte names": Case(
        lambda inputs, out: _register(*_pair(inputs), out, "--output-transform",
                                      str(out.joinpath(*["p" * 200] * 21, "T.h5"))),
        "bytes): write to a folder nearer the top of the disk, or with shorter names"),
    "a 255-byte .nhdr output, its .raw.gz 257": Case(
        lambda inputs, out: _register(*_pair(inputs), out, "--output-volume", str(out / ("c" * 250 + ".nhdr"))),
        "with the files written beside it (a .json record, a .raw.gz data file), is 257 bytes long"),
    "a field start with a .tfm output": Case(
        field_start_into_a_linear_file, "is nonlinear, and so is the result that holds it, which .tfm cannot hold: "
        "write it to .h5"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(REGISTER_OUTPUT_CASES))
def test_register_output_refusals_come_before_the_engine(name, tmp_path, private_tmp, capsys):
    _assert_refused(REGISTER_OUTPUT_CASES[name], tmp_path, private_tmp, capsys)


# =========================================================================== custom presets (session 54)
def edited_preset(engine: str, edit: Callable[[str], str], name: str | None = None) -> Builder:
    """A case: the valid pair registered with a copy of the shipped rigid preset of ``engine``, edited by ``edit``."""

    def build(inputs: Path, out: Path) -> list[str]:
        preset = _custom_preset(inputs, engine, name or ("mine.json" if engine == "ants" else "mine.txt"))
        preset.write_bytes(edit(preset.read_text()).encode("latin-1"))
        return _register(*_pair(inputs), out, "--engine", engine, "--preset", str(preset))

    return build


def _ants_stage(key: str, value: str) -> Callable[[str], str]:
    """An edit of the shipped ANTs rigid preset: ``"key": value`` added to its first stage."""
    return lambda text: text.replace('"transform": "Rigid"', f'"transform": "Rigid", "{key}": {value}', 1)


PRESET_CASES = {  # each had run with exit 0 and a wrong or different result, or failed in the engine (exit 1)
    "elastix: stages added, not composed": Case(edited_preset("elastix", lambda t: t.replace('"Compose"', '"Add"')),
                                                'set (HowToCombineTransforms "Compose")'),
    "elastix: a parameter given twice": Case(edited_preset("elastix", lambda t: t + "(NumberOfResolutions 1)\n"),
                                             "NumberOfResolutions is given twice: keep one"),
    "elastix: an odd quote": Case(edited_preset("elastix", lambda t: t + '(ResultImageFormat "nrrd)\n'),
                                  "is not '(Key value ...)'"),
    "elastix: an empty value list": Case(edited_preset("elastix", lambda t: t + "(MaximumStepLength )\n"),
                                         "(MaximumStepLength ) has no value"),
    "elastix: a step list shorter than the resolutions": Case(
        edited_preset("elastix", lambda t: t + "(NumberOfJacobianMeasurements 1000 1000)\n"),
        "NumberOfJacobianMeasurements has 2 values for"),
    "elastix: mean squares on two modalities": Case(
        edited_preset("elastix", lambda t: t.replace('"AdvancedMattesMutualInformation"', '"AdvancedMeanSquares"')),
        "images of two modalities are compared by mutual information"),
    "elastix: a Latin-1 comment": Case(edited_preset("elastix", lambda t: "// Müller's preset\n" + t),
                                       "is not UTF-8 text: save it as UTF-8"),
    "elastix: a preset file in capitals": Case(edited_preset("elastix", lambda t: t, "MINE.TXT"),
                                               "a preset file ends in its engine's suffix"),
    "ANTs: a sampling misspelled": Case(edited_preset("ants", lambda t: t.replace('"Regular"', '"Regullar"', 1)),
                                        "sampling 'Regullar' is not one of None, Regular, Random"),
    "ANTs: a sampling percentage of 10": Case(
        edited_preset("ants", lambda t: t.replace('"sampling_percentage": 0.1', '"sampling_percentage": 10', 1)),
        "sampling_percentage 10 is not a share of the voxels"),
    "ANTs: a key given twice": Case(edited_preset("ants", _ants_stage("transform", '"Affine"')),
                                    "gives 'transform' twice in one object: keep one"),
    # a helper's sweep of user preset files (session 59): each had failed in the engine, with a traceback, or ran
    "elastix: a transform whose result ITK cannot read": Case(
        edited_preset("elastix", lambda t: t.replace('"EulerTransform"', '"AffineLogTransform"')),
        "Transform 'AffineLogTransform' writes a result ITK cannot read"),
    "elastix: two transforms in one map": Case(
        edited_preset("elastix", lambda t: t.replace('"EulerTransform"', '"EulerTransform" "BSplineTransform"')),
        "Transform names 2 transforms (EulerTransform BSplineTransform): one parameter map has one"),
    "elastix: a capitalised boolean": Case(edited_preset("elastix", lambda t: t.replace('(ErodeMask "false")',
                                                                                      '(ErodeMask "False")')),
                                           'ErodeMask is "False": elastix reads only "true" or "false" in lower case'),
    "elastix: two parameters on one line": Case(
        edited_preset("elastix", lambda t: t.replace("(DefaultPixelValue 0)\n", "")
                      .replace('(ErodeMask "false")', '(ErodeMask "false") (DefaultPixelValue 0)')),
        "holds more than one parameter ((ErodeMask ...) then another): give one parameter per line"),
    "elastix: a decimal comma": Case(edited_preset("elastix", lambda t: t + "(RequiredRatioOfValidSamples 0,25)\n"),
                                     "RequiredRatioOfValidSamples has '0,25': write decimals with a point (0.25)"),
    "elastix: a letter in a schedule": Case(
        edited_preset("elastix", lambda t: t + "(ImagePyramidSchedule 4 4 4 2 2 2 1 1 l)\n"),
        "ImagePyramidSchedule has 'l', not a number"),
    "elastix: correlation as a second metric": Case(edited_preset("elastix", lambda t: t.replace(
        '(Metric "AdvancedMattesMutualInformation")', '(Metric "AdvancedMattesMutualInformation" '
        '"AdvancedNormalizedCorrelation")').replace('"MultiResolutionRegistration"',
                                                    '"MultiMetricMultiResolutionRegistration"')),
        "the image metric is 'AdvancedNormalizedCorrelation'"),
    "elastix: two metrics in a one-metric registration": Case(edited_preset("elastix", lambda t: t.replace(
        '(Metric "AdvancedMattesMutualInformation")', '(Metric "AdvancedMattesMutualInformation" '
        '"TransformBendingEnergyPenalty")')),
        '2 metrics need (Registration "MultiMetricMultiResolutionRegistration")'),
    "elastix: a landmark metric in the preset": Case(edited_preset("elastix", lambda t: t.replace(
        '(Metric "AdvancedMattesMutualInformation")', '(Metric "AdvancedMattesMutualInformation" '
        '"CorrespondingPointsEuclideanDistanceMetric")').replace('"MultiResolutionRegistration"',
                                                                 '"MultiMetricMultiResolutionRegistration"')),
        "CorrespondingPointsEuclideanDistanceMetric is added by the run when landmarks guide it"),
    "elastix: an elastix result given as the preset": Case(
        edited_preset("elastix", lambda t: "(Transform \"EulerTransform\")\n(NumberOfParameters 6)\n"
                      "(TransformParameters 0 0 0 1 2 3)\n"),
        "is an elastix result (it holds TransformParameters), not a parameter file"),
    "ANTs: no histogram bins": Case(edited_preset("ants", lambda t: t.replace('"bins": 32', '"bins": 0', 1)),
                                    "bins 0 is not a whole number of 4 or more"),
    "ANTs: a gradient step of NaN": Case(
        edited_preset("ants", lambda t: t.replace('"gradient_step": 0.1', '"gradient_step": NaN', 1)),
        "gradient_step nan is not a number above 0"),
    "ANTs: a level spacing given as text": Case(edited_preset("ants", lambda t: t.replace(
        '"level_spacing_mm": [\n        8,\n        4,\n        2\n      ]', '"level_spacing_mm": [8, 4, "2"]', 1)),
        "level_spacing_mm [8, 4, '2'] are not numbers above 0, one per level"),
    "two presets, the first dropped": Case(
        lambda inputs, out: [*edited_preset("elastix", lambda t: t)(inputs, out), "--preset", "affine"],
        "--preset is given 2 times"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(PRESET_CASES))
def test_a_custom_preset_elastix_or_ants_would_misread_is_refused_first(name, tmp_path, private_tmp, capsys):
    _assert_refused(PRESET_CASES[name], tmp_path, private_tmp, capsys)


def one_segmentation_for_both_once_cropped(inputs: Path, out: Path) -> list[str]:
    """The fixed gland given for the moving image too, saved cropped to its contents (Slicer's .seg.nrrd default):
    only the same file or the same grid had been caught (a helper's TRUS run: 23 mm off, 'Dice 1.00 -> 1.00')."""
    segmentations_swapped(inputs, out)
    gland = sitk.ReadImage(str(inputs / "fixed_gland.nrrd"))
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.Cast(gland != 0, sitk.sitkUInt8))
    box = statistics.GetBoundingBox(1)
    write_image(sitk.RegionOfInterest(gland, box[3:], box[:3]), inputs / "fixed_gland_cropped.nrrd")
    return _register(inputs / "fixed.nrrd", inputs / "moving.nrrd", out, "--fixed-segmentation",
                     str(inputs / "fixed_gland.nrrd"), "--moving-segmentation",
                     str(inputs / "fixed_gland_cropped.nrrd"))  # fmt: skip


def empty_segment_of_a_multi_layer_segmentation_chosen(inputs: Path, out: Path) -> list[str]:
    """A multi-layer .seg.nrrd (Slicer's file for overlapping segments) whose chosen lesion is empty: its merge had
    left the lesion out, name and all, so it was refused as absent, as though misspelt (session 55)."""
    from test_segment_layers import _without_lesion, write_two_layer_segmentation

    segmentations_swapped(inputs, out)
    paths = []
    for side, origin in (("fixed", b"(0, 0, 0)"), ("moving", b"(4, 2, 0)")):
        path = _without_lesion(write_two_layer_segmentation(inputs / f"{side}.seg.nrrd"))
        path.write_bytes(path.read_bytes().replace(b"(-48.0, -40.0, -32.0)", origin))
        paths.append(str(path))
    return _register(inputs / "fixed.nrrd", inputs / "moving.nrrd", out, "--fixed-segmentation", paths[0],
                     "--moving-segmentation", paths[1], "--segments", "lesion")  # fmt: skip


def guiding_list_in_the_other_system(inputs: Path, out: Path) -> list[str]:
    """A moving list of RAS numbers in a file that says LPS, guiding a registration: mmreg prealign refused it (the
    points come inside only flipped, and the lists fit only turned half around), mmreg register had warned and exited
    0 with a result 17.5 mm off at a real spinal cord, 71 mm beside it (a helper's sweep, session 55)."""
    from MultimodalRegistrationLib.core.phantom import rigid_transform
    from MultimodalRegistrationLib.core.transforms import lps_ras_points
    from test_landmark_refusals import LABELS, markups

    fixed_lps = np.array([[-30, -30, -20], [30, -30, -10], [0, 30, 0], [-20, 10, 25], [25, 20, 20], [5, -5, -25.0]])
    moving_lps = rigid_transform(10.0, (0, 0, 1), (4.0, 6.0, 0.0)).transform_points(fixed_lps)
    for side in ("fixed", "moving"):
        image = _volume(size=(40, 40, 40), spacing=(2.0, 2.0, 2.0), seed=side == "moving")
        image.SetOrigin([-36.0, -36.0, -40.0])  # 42 mm each way in x, y: a flip keeps most points inside
        write_image(image, inputs / f"{side}.nrrd")
    markups(inputs / "f.mrk.json", lps_ras_points(fixed_lps), LABELS)
    path = markups(inputs / "m.mrk.json", lps_ras_points(moving_lps), LABELS)
    path.write_text(path.read_text().replace('"coordinateSystem": "RAS"', '"coordinateSystem": "LPS"'))  # RAS numbers
    return _register(inputs / "fixed.nrrd", inputs / "moving.nrrd", out, "--fixed-points", str(inputs / "f.mrk.json"),
                     "--moving-points", str(inputs / "m.mrk.json"))  # fmt: skip


GUIDED_SWEEP_CASES = {
    "a guiding list in the other coordinate system": Case(
        guiding_list_in_the_other_system, "which the same mistake explains"),
    "one segmentation for both images, once cropped": Case(
        one_segmentation_for_both_once_cropped, "hold the same labelled voxels (one perhaps saved cropped)"),
    "an empty segment of a multi-layer segmentation chosen": Case(
        empty_segment_of_a_multi_layer_segmentation_chosen, "'lesion' is empty in the fixed segmentation"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(GUIDED_SWEEP_CASES))
def test_guided_input_the_sweep_found_is_refused_before_any_engine(name, tmp_path, private_tmp, capsys):
    _assert_refused(GUIDED_SWEEP_CASES[name], tmp_path, private_tmp, capsys)



# Session 55, a helper's console sweep of the node layer: a node removed from the scene, or of another class than its
# parameter holds, refused before any work, naming the parameter, the scene as it was (nodes counted, an output
# transform's matrix kept). They had run the engine for 10 s and then failed naming no fix.


def _removed(scene, node):
    scene.RemoveNode(node)
    return node


def _linear(scene, name: str = "earlier"):
    import vtk

    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 42.0)
    node.SetMatrixTransformToParent(matrix)
    return node


def _curve(scene):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", "outline")
    for point in ([0, 0, 0], [30, 0, 0], [0, 30, 0], [0, 0, 30]):
        node.AddControlPoint(*point)
    return node


def _common_region(fixedVolume, movingVolume, **values):
    from MultimodalRegistrationLib.nodes.prep import common_region_roi

    return lambda: common_region_roi(fixedVolume, movingVolume, **values)


def _fit_with_table(scene, volumes, table):
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.landmarks import fit_markups

    points = np.array([[0, 0, 0], [30, 0, 0], [0, 30, 0], [0, 0, 30.0]])
    fixed, moving = (mrml.markups_from_points(scene, points, name=name) for name in ("F", "M"))
    output = _linear(scene)
    return lambda: fit_markups(fixed, moving, "rigid", output, table_node=table)


def _mask_options(scene, volume):
    """Prep options whose fixed mask (a labelmap node) is under a 42 mm shift: it had been applied 42 mm from where it
    is shown, without a word."""
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.prep.options import PrepOptions

    inside = sitk.Cast(mrml.image_from_volume_node(volume) > -1, sitk.sitkUInt8)
    mask = mrml.volume_node_from_image(scene, inside, "head mask", labelmap=True)
    mask.SetAndObserveTransformNodeID(_linear(scene).GetID())
    return PrepOptions(crop_common=True, mask_fixed=mask)


def _node_register(**values):
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    return lambda: register_nodes(registration_parameters(**values))


def _node_prep(**values):
    from MultimodalRegistrationLib.nodes.prep import prep_parameters, prepare_nodes

    return lambda: prepare_nodes(prep_parameters(cropCommon=True, **values))


def _node_qa(**values):
    from MultimodalRegistrationLib.nodes.qa import assess_nodes, qa_parameters

    return lambda: assess_nodes(qa_parameters(**values))


NODE_SWEEP_CASES = {  # name -> (the call, built on two volumes; what the refusal says)
    "fixed volume removed": (
        lambda scene, v: _node_register(fixedVolume=_removed(scene, v["fixedVolume"]), movingVolume=v["movingVolume"]),
        "the fixed volume (fixedVolume) 'fixed' is not in the scene (removed, or never added)"),
    "output transform a volume": (
        lambda scene, v: _node_register(**v, outputTransform=v["fixedVolume"]),
        "the output transform (outputTransform) 'fixed' is a vtkMRMLScalarVolumeNode, not a transform"),
    "initial transform a volume": (
        lambda scene, v: _node_register(**v, initialTransform=v["fixedVolume"]),
        "the initial transform (initialTransform) 'fixed' is a vtkMRMLScalarVolumeNode, not a transform"),
    "output volume a transform": (
        lambda scene, v: _node_register(**v, outputVolume=_linear(scene)),
        "the output volume (outputVolume) 'earlier' is a vtkMRMLLinearTransformNode, not a scalar volume"),
    "prep moving volume removed": (
        lambda scene, v: _node_prep(fixedVolume=v["fixedVolume"], movingVolume=_removed(scene, v["movingVolume"])),
        "the moving volume (movingVolume) 'moving' is not in the scene (removed, or never added)"),
    "prep output a transform": (
        lambda scene, v: _node_prep(**v, outputFixed=_linear(scene)),
        "the output fixed (outputFixed) 'earlier' is a vtkMRMLLinearTransformNode, not a scalar volume"),
    "prep mask node under a transform": (
        lambda scene, v: _node_prep(**v, prep=_mask_options(scene, v["fixedVolume"])),
        "the fixed mask 'head mask' is under the transform 'earlier' while the fixed volume is under none"),
    "qa table a volume": (
        lambda scene, v: _node_qa(**v, metricsTable=v["fixedVolume"]),
        "the metrics table (metricsTable) 'fixed' is a vtkMRMLScalarVolumeNode, not a table"),
    "guidance landmarks a curve": (  # session 61: a curve's control points had been taken as guidance landmarks
        lambda scene, v: _node_register(**v, fixedLandmarks=_curve(scene), movingLandmarks=_curve(scene)),
        "the fixed landmarks (fixedLandmarks) 'outline' is a vtkMRMLMarkupsClosedCurveNode, not a markups point list"),
    "qa target points a curve": (
        lambda scene, v: _node_qa(**v, fixedTargetPoints=_curve(scene), movingTargetPoints=_curve(scene)),
        "the fixed target points (fixedTargetPoints) 'outline' is a vtkMRMLMarkupsClosedCurveNode, not a markups "
        "point list"),
    "common region of a removed volume": (  # session 61: the preview had failed with an AttributeError
        lambda scene, v: _common_region(_removed(scene, v["fixedVolume"]), v["movingVolume"]),
        "the fixed volume (fixedVolume) 'fixed' is not in the scene (removed, or never added)"),
    "common region into a point list": (
        lambda scene, v: _common_region(**v, roi_node=_curve(scene)),
        "the common region (commonRegion) 'outline' is a vtkMRMLMarkupsClosedCurveNode, not an ROI"),
    "prealignment table a volume": (
        lambda scene, v: _fit_with_table(scene, v, v["fixedVolume"]),
        "the residual table (residualTable) 'fixed' is a vtkMRMLScalarVolumeNode, not a table"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(NODE_SWEEP_CASES))
def test_a_node_gone_or_of_another_class_is_refused_before_any_work(name, scene):
    from MultimodalRegistrationLib.process.worker import WorkerFailure

    build, said = NODE_SWEEP_CASES[name]
    call = build(scene, _two_volumes(scene))
    nodes_before = scene.GetNumberOfNodes()
    earlier = scene.GetFirstNodeByName("earlier")
    with pytest.raises((ValueError, WorkerFailure)) as refused:
        call()
    assert said in str(refused.value)
    assert getattr(refused.value, "kind", "input") == "input"
    assert scene.GetNumberOfNodes() == nodes_before
    if earlier is not None:  # a fit had filled its output transform before it failed
        import vtk

        matrix = vtk.vtkMatrix4x4()
        earlier.GetMatrixTransformToParent(matrix)
        assert matrix.GetElement(0, 3) == 42.0


# --------------------------------------------------------------------------- masks and one-entry list axes
# Session 61, a helper's sweep of input files: a NRRD whose list axis holds one entry had ended in a traceback in
# every verb; an intensity image or a probability map given as a mask had masked nothing, exit 0.


def _list_axis_of_one(path: Path, image: sitk.Image, header: dict[str, str] | None = None) -> Path:
    """``image`` (uint8 or float32) saved as Slicer saves a one-layer segmentation or a one-frame sequence in 4D: a
    NRRD whose first axis, of kind list, holds one entry (ITK reads a vector image of one component)."""
    array = sitk.GetArrayFromImage(image)
    size, spacing, origin = image.GetSize(), image.GetSpacing(), image.GetOrigin()
    lines = ["NRRD0004", f"type: {'uchar' if array.dtype == np.uint8 else 'float'}", "dimension: 4",
             "space: left-posterior-superior", f"sizes: 1 {size[0]} {size[1]} {size[2]}",
             f"space directions: none ({spacing[0]},0,0) (0,{spacing[1]},0) (0,0,{spacing[2]})",
             "kinds: list domain domain domain", "endian: little", "encoding: raw",
             f"space origin: ({origin[0]},{origin[1]},{origin[2]})",
             *(f"{key}:={value}" for key, value in (header or {}).items())]  # fmt: skip
    path.write_bytes(("\n".join(lines) + "\n\n").encode() + array.astype(array.dtype.newbyteorder("<")).tobytes())
    return path


def _gland(image: sitk.Image) -> sitk.Image:
    """A 0/1 uint8 box on ``image``'s grid (about 17% of it)."""
    mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(image)
    mask[10:30, 10:30, 8:24] = 1
    return mask


GLAND = {"Segment0_ID": "Segment_1", "Segment0_Name": "gland", "Segment0_LabelValue": "1", "Segment0_Layer": "0"}


def test_a_list_axis_of_one_entry_is_read_as_the_3d_volume_it_is(tmp_path):
    """Every verb had ended in a traceback on such a file (SimpleITK NotEqual, Cast, MinimumMaximum; a helper's
    sweep): it is read as a 3D scalar volume, its segment names kept."""
    from MultimodalRegistrationLib.core.images import read_image, validate_image, validate_mask
    from MultimodalRegistrationLib.core.labels import as_labelmap, label_names

    image = _volume()
    seg = read_image(_list_axis_of_one(tmp_path / "gland.seg.nrrd", _gland(image), GLAND), "fixed segmentation")
    assert (seg.GetDimension(), seg.GetNumberOfComponentsPerPixel(), seg.GetPixelID()) == (3, 1, sitk.sitkUInt8)
    assert seg.GetSize() == image.GetSize() and np.allclose(seg.GetSpacing(), image.GetSpacing())
    assert np.array_equal(sitk.GetArrayViewFromImage(seg), sitk.GetArrayViewFromImage(_gland(image)))
    assert label_names(as_labelmap(seg, "fixed segmentation")) == {1: "gland"}
    assert validate_mask(seg, image, "fixed mask").GetPixelID() == sitk.sitkUInt8
    volume = read_image(_list_axis_of_one(tmp_path / "frame.nrrd", image), "moving image")
    assert volume.GetPixelID() == sitk.sitkFloat32
    assert np.array_equal(sitk.GetArrayViewFromImage(volume), sitk.GetArrayViewFromImage(image))
    validate_image(volume, "moving image")


def test_prep_takes_an_image_and_a_mask_saved_with_a_list_axis_of_one_entry(tmp_path, private_tmp, capsys):
    """mmreg prep had stopped in MinimumMaximumImageFilter, exit 1 (a helper's sweep)."""
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    fixed, _ = _pair(inputs)
    moving = _list_axis_of_one(inputs / "frame.nrrd", _volume(seed=1))
    mask = _list_axis_of_one(inputs / "gland.seg.nrrd", _gland(_volume()), GLAND)
    assert main(_prep(fixed, moving, out, "--mask-fixed", str(mask))) == 0, capsys.readouterr().err
    prepared = sitk.ReadImage(str(out / "moving.nrrd"))
    assert (prepared.GetDimension(), prepared.GetNumberOfComponentsPerPixel()) == (3, 1)


def _probability_map(inputs: Path) -> Path:
    """A float probability map of the gland whose background is 1e-6, not 0."""
    mask = sitk.Cast(_gland(_volume()), sitk.sitkFloat32) * 0.899999 + 1e-6
    write_image(mask, inputs / "probability.nrrd")
    return inputs / "probability.nrrd"


def _ct_with_zeros(inputs: Path) -> Path:
    """The fixed image with three voxels exactly 0 (as a CT's water at 0 HU): a mask of all but three voxels."""
    image = _volume()
    for index in ((1, 1, 1), (20, 20, 16), (40, 30, 20)):
        image[index] = 0.0
    write_image(image, inputs / "ct.nrrd")
    return inputs / "ct.nrrd"


MASK_VALUE_CASES = {  # each ran with exit 0, the mask masking nothing: a mask is its voxels != 0 (a helper's sweep)
    "the fixed image as its own fixed mask": Case(
        lambda inputs, out: _register(*_pair(inputs), out, "--fixed-mask", str(inputs / "fixed.nrrd")),
        "fixed mask sets every voxel (61410 distinct values, smallest -17.3424): it looks like an intensity image",
    ),
    "a probability map with a 1e-6 background as the fixed mask": Case(
        lambda inputs, out: _register(*_pair(inputs), out, "--fixed-mask", str(_probability_map(inputs))),
        "fixed mask sets every voxel (2 distinct values, smallest 1e-06): it looks like an intensity image or a "
        "probability map: give a labelmap, or threshold it (e.g. > 0.5)",
    ),
    "an image with a few zero voxels as the moving mask": Case(
        lambda inputs, out: _register(*_pair(inputs), out, "--moving-mask", str(_ct_with_zeros(inputs))),
        "moving mask sets all but 3 of its 61440 voxels (61407 distinct values, smallest -17.3424): it looks like "
        "an intensity image",
    ),
    "prep: a probability map as the fixed mask": Case(
        lambda inputs, out: _prep(*_pair(inputs), out, "--mask-fixed", str(_probability_map(inputs))),
        "fixed mask (probability.nrrd) sets every voxel (2 distinct values, smallest 1e-06)",
    ),
    "qa: the fixed image as its fixed mask": Case(
        lambda inputs, out: _qa(inputs, out / "r.html", "--fixed-mask", str(inputs / "fixed.nrrd")),
        "fixed mask sets every voxel (",
    ),
}


@pytest.mark.parametrize("name", list(MASK_VALUE_CASES))
def test_an_intensity_image_or_probability_map_as_a_mask_is_refused_before_any_engine(name, tmp_path, private_tmp,
                                                                                     capsys):  # fmt: skip
    _assert_refused(MASK_VALUE_CASES[name], tmp_path, private_tmp, capsys)


# --------------------------------------------------------------------------- voxel bytes ITK misreads
# Session 61, a helper's sweep (fixes by a helper): each ran the engine to exit 0 on voxels ITK had zero-filled,
# shifted or read as noise.


def _nifti_pair_cut_short(inputs: Path, given: str) -> Path:
    """A moving image saved as a NIfTI pair (moving.hdr + moving.img), its .img cut to 90%; returns ``given``."""
    image = sitk.Cast(_volume(seed=1), sitk.sitkInt16)
    sitk.WriteImage(image, str(inputs / "moving.hdr"))
    data = (inputs / "moving.img").read_bytes()
    (inputs / "moving.img").write_bytes(data[: len(data) * 9 // 10])
    return inputs / given


def _plain_nifti_named_gz_cut_short(inputs: Path) -> Path:
    """An uncompressed NIfTI named .nii.gz (ITK reads it as it is), 13% short."""
    sitk.WriteImage(_volume(seed=1), str(inputs / "plain.nii"), False)
    data = (inputs / "plain.nii").read_bytes()
    (inputs / "plain.nii").unlink()
    (inputs / "moving.nii.gz").write_bytes(data[: len(data) * 87 // 100])
    return inputs / "moving.nii.gz"


def _nifti_at_offset_zero(inputs: Path, name: str) -> Path:
    """A single-file NIfTI whose vox_offset is 0: ITK reads its voxels from byte 348, one voxel early."""
    sitk.WriteImage(_volume(seed=1), str(inputs / "plain.nii"), False)
    data = bytearray((inputs / "plain.nii").read_bytes())
    (inputs / "plain.nii").unlink()
    struct.pack_into("<f", data, 108, 0.0)
    (inputs / name).write_bytes(gzip.compress(bytes(data)) if name.endswith(".gz") else bytes(data))
    return inputs / name


def _compressed_mha(inputs: Path, voxels: bytes, size: int | None) -> Path:
    """A moving MHA saying CompressedData = True (and CompressedDataSize ``size`` if given) over ``voxels``."""
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              + "CompressedData = True\n" + (f"CompressedDataSize = {size}\n" if size is not None else "")
              + "ElementSpacing = 2 2 2.5\nDimSize = 48 40 32\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n")
    (inputs / "moving.mha").write_bytes(header.encode() + voxels)
    return inputs / "moving.mha"


def _voxels(seed: int = 1) -> bytes:
    return sitk.GetArrayFromImage(_volume(seed=seed)).astype("<f4").tobytes()


def _mha_size_half_its_stream(inputs: Path) -> Path:
    stream = zlib.compress(_voxels())
    return _compressed_mha(inputs, stream, len(stream) // 2)


PAIR_CUT = "describes 48×40×32 voxels (123 kB) but moving.img holds only 111 kB: the file was cut short"
VOXEL_BYTES_CASES = {
    "a NIfTI pair whose .img was cut short, the .hdr given": Case(
        moving_as(lambda inputs: _nifti_pair_cut_short(inputs, "moving.hdr")), "moving.hdr is shorter than its "
        f"header says: the header {PAIR_CUT}"),
    "a NIfTI pair whose .img was cut short, the .img given": Case(
        moving_as(lambda inputs: _nifti_pair_cut_short(inputs, "moving.img")), f"moving.img is shorter than its "
        f"header says: the header {PAIR_CUT}"),
    "an uncompressed NIfTI named .nii.gz, cut short": Case(moving_as(_plain_nifti_named_gz_cut_short),
                                                           "is shorter than its header says: the header describes "
                                                           "48×40×32 voxels (246 kB) but only 214 kB follow"),
    "a .nii with vox_offset 0": Case(moving_as(lambda inputs: _nifti_at_offset_zero(inputs, "moving.nii")),
                                     "moving.nii: its vox_offset 0 is below 348, the end of a .nii file's header "
                                     "(ITK would read header bytes as voxels and shift the image): save the file "
                                     "again"),
    "a .nii.gz with vox_offset 0": Case(moving_as(lambda inputs: _nifti_at_offset_zero(inputs, "moving.nii.gz")),
                                        "its vox_offset 0 is below 348, the end of a .nii.gz file's header"),
    "an MHA whose CompressedDataSize ends its zlib stream early": Case(
        moving_as(_mha_size_half_its_stream), "ends the zlib stream early: it unpacks to "),
    "an MHA saying CompressedData = True over raw voxels": Case(
        moving_as(lambda inputs: _compressed_mha(inputs, _voxels(), len(_voxels()))),
        "its voxels are not zlib-compressed though the header says CompressedData = True (the bytes after the header "
        "begin with no zlib header): if they are raw, set CompressedData = False"),
    "an MHA with compressed voxels and no CompressedDataSize": Case(
        moving_as(lambda inputs: _compressed_mha(inputs, zlib.compress(_voxels()), None)),
        "gives no CompressedDataSize: ITK reads compressed voxels kept in the header file (ElementDataFile = LOCAL) "
        "only with it, else as noise: add the line 'CompressedDataSize = "),
}  # fmt: skip


@pytest.mark.parametrize("name", list(VOXEL_BYTES_CASES))
def test_voxel_bytes_itk_would_misread_are_refused_before_any_engine(name, tmp_path, private_tmp, capsys):
    message = _assert_refused(VOXEL_BYTES_CASES[name], tmp_path, private_tmp, capsys)
    if "CompressedDataSize (" in message:  # the stated size, and what it unpacks to of what the header describes
        stream = len(zlib.compress(_voxels()))
        assert f"its CompressedDataSize ({stream // 2:,} bytes) ends the zlib stream early" in message, message
        assert "of the 246 kB the header describes (48×40×32 voxels): export it again" in message, message


def test_nifti_pairs_plain_nii_gz_and_gzip_metaimage_of_the_right_size_are_read(tmp_path):
    """The files beside those refused, whole: a pair by its .hdr or .img, an Analyze 7.5 pair, an uncompressed
    .nii.gz, gzip-wrapped MetaImage streams (MetaIO inflates zlib and gzip alike: the detached one had been refused
    as damaged)."""
    from MultimodalRegistrationLib.core.file_checks import check_image_file

    image = sitk.Cast(_volume(seed=1), sitk.sitkInt16)
    sitk.WriteImage(image, str(tmp_path / "pair.hdr"))
    header = bytearray((tmp_path / "pair.hdr").read_bytes())
    header[344:348] = bytes(4)  # no NIfTI magic: Analyze 7.5
    (tmp_path / "analyze.hdr").write_bytes(bytes(header))
    (tmp_path / "analyze.img").write_bytes((tmp_path / "pair.img").read_bytes())
    sitk.WriteImage(image, str(tmp_path / "plain.nii"), False)
    (tmp_path / "plain.nii.gz").write_bytes((tmp_path / "plain.nii").read_bytes())
    stream = gzip.compress(_voxels())
    _compressed_mha(tmp_path, stream, len(stream))
    header = (tmp_path / "moving.mha").read_bytes()[: -len(stream)].decode()
    (tmp_path / "detached.mhd").write_text(header.replace(f"CompressedDataSize = {len(stream)}\n", "")
                                           .replace("LOCAL", "detached.zraw"))  # fmt: skip
    (tmp_path / "detached.zraw").write_bytes(stream)
    for name in ("pair.hdr", "pair.img", "analyze.hdr", "analyze.img", "plain.nii.gz", "moving.mha", "detached.mhd"):
        check_image_file(tmp_path / name, "moving image")
        assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name))).any(), name


# --------------------------------------------------------------------------- transform files from other tools
# Session 61, a helper's sweep of transform files: each was read as something other than what it means, exit 0.


def _two_transforms_tfm(inputs: Path) -> Path:
    """A .tfm listing two transforms without a composite one heading them: ITK read the first, warning on its
    console only."""
    one = _rigid_tfm(inputs / "one.tfm", "1 0 0 0 1 0 0 0 1 5 0 0").read_text()
    second = one.split("\n", 1)[1].replace("#Transform 0", "#Transform 1")
    (inputs / "two.tfm").write_text(one + second)
    return inputs / "two.tfm"


def _bare_matrix(inputs: Path) -> Path:
    """A 4x4 matrix as numbers only (FSL FLIRT's .mat, numpy.savetxt): ITK had said 'Tags must be delimited by :'."""
    (inputs / "flirt.txt").write_text("1 0 0 5\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    return inputs / "flirt.txt"


def _field_with_a_nan(inputs: Path) -> Path:
    """A displacement field image holding a NaN: it had ended in a traceback after the engine (SVD did not
    converge), and QA had reported a Jacobian of nan."""
    field = sitk.Image((12, 12, 12), sitk.sitkVectorFloat64, 3)
    field.SetSpacing((10.0, 10.0, 10.0))
    field.SetOrigin((-60.0, -60.0, -60.0))
    field[5, 5, 5] = (float("nan"), 0.0, 0.0)
    write_image(field, inputs / "field.nrrd")
    return inputs / "field.nrrd"


TRANSFORM_FILE_CASES = {
    "an initial .tfm listing two transforms": Case(initial_as(_two_transforms_tfm), "holds 2 transforms one after "
                                                   "another (AffineTransform_double_3_3, AffineTransform_double_3_3), "
                                                   "and ITK would read only the first"),
    "an initial transform as a bare 4x4 matrix": Case(initial_as(_bare_matrix), "is a bare matrix of 16 numbers: it "
                                                      "says neither its frame"),
    "an initial displacement field with a NaN": Case(initial_as(_field_with_a_nan), "holds parameters that are not "
                                                     "finite numbers"),
    "--initial-transform given twice": Case(
        lambda inputs, out: [*initial_as(lambda i: _rigid_tfm(i / "a.tfm"))(inputs, out), "--initial-transform",
                             str(_rigid_tfm(inputs / "b.tfm", "1 0 0 0 1 0 0 0 1 5 0 0"))],
        "--initial-transform is given 2 times"),
    "an initial transform in metres, not mm": Case(  # it had blamed the images, which overlap as they are
        initial_tfm("1 0 0 0 1 0 0 0 1 20000 -15000 10000"), "the initial transform given places the images apart "
        "(only 0% of the fixed image maps into the moving image under it, 100% without it)"),
    "qa --transform given twice": Case(
        lambda inputs, out: [*_qa(inputs, out / "r.html"), "--transform", str(_bare_matrix(inputs))],
        "--transform is given 2 times"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(TRANSFORM_FILE_CASES))
def test_a_transform_file_read_as_something_else_is_refused_before_any_engine(name, tmp_path, private_tmp, capsys):
    _assert_refused(TRANSFORM_FILE_CASES[name], tmp_path, private_tmp, capsys)


@pytest.mark.parametrize("tag", ["modeling", "resampling", None])
def test_a_displacement_field_slicer_saved_as_modeling_is_read_inverted(tmp_path, tag):
    """Slicer tags a grid transform its node holds as ToParent (an inverted node) 'displacement field type:
    modeling' in the .nrrd: the field maps moving to fixed. It had been read as fixed -> moving, without a word."""
    from MultimodalRegistrationLib.core.phantom import mean_error_mm, rigid_transform
    from MultimodalRegistrationLib.core.transforms import Transform

    truth = rigid_transform(20.0, (0, 0, 1), (15.0, -12.0, 10.0))  # fixed -> moving, LPS mm
    reference = sitk.Image((30, 30, 30), sitk.sitkFloat32)
    reference.SetSpacing((4.0, 4.0, 4.0))
    reference.SetOrigin((-60.0, -60.0, -60.0))
    stored = truth.inverse() if tag == "modeling" else truth
    field = _field_of(stored, reference)
    if tag is not None:
        field.SetMetaData("displacement field type", tag)
    write_image(field, tmp_path / "grid.nrrd")
    points = np.random.default_rng(0).uniform(-30.0, 30.0, (50, 3))
    assert mean_error_mm(Transform.read(tmp_path / "grid.nrrd"), truth, points) < 0.05


def _field_of(transform, reference: sitk.Image) -> sitk.Image:
    converter = sitk.TransformToDisplacementFieldFilter()
    converter.SetReferenceImage(reference)
    converter.SetOutputPixelType(sitk.sitkVectorFloat64)
    return converter.Execute(transform.sitk)


def test_an_inverted_slicer_grid_transform_is_refused_as_h5_and_read_as_nrrd(scene, tmp_path):
    """A grid node inverted in Slicer is saved as .h5 with classes ITK reads not ('InverseDisplacementFieldTransform'
    had been quoted, with 'give an ITK transform'), and as .nrrd tagged modeling, which is read and inverted."""
    from MultimodalRegistrationLib.core.errors import InputError
    from MultimodalRegistrationLib.core.phantom import mean_error_mm, rigid_transform
    from MultimodalRegistrationLib.core.transforms import Transform

    truth = rigid_transform(20.0, (0, 0, 1), (15.0, -12.0, 10.0))
    reference = sitk.Image((30, 30, 30), sitk.sitkFloat32)
    reference.SetSpacing((4.0, 4.0, 4.0))
    reference.SetOrigin((-60.0, -60.0, -60.0))
    sitk.WriteTransform(sitk.DisplacementFieldTransform(_field_of(truth.inverse(), reference)), str(tmp_path / "i.h5"))
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "result")
    storage = scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(tmp_path / "i.h5"))
    assert storage.ReadData(node)
    node.Inverse()  # its FromParent is now the truth, held as ToParent
    for name in ("saved.h5", "saved.nrrd"):
        writer = scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
        writer.SetFileName(str(tmp_path / name))
        assert writer.WriteData(node)
    with pytest.raises(InputError, match="holds a transform Slicer saved inverted.*save it from Slicer as a .nrrd"):
        Transform.read(tmp_path / "saved.h5")
    points = np.random.default_rng(0).uniform(-30.0, 30.0, (50, 3))
    assert mean_error_mm(Transform.read(tmp_path / "saved.nrrd"), truth, points) < 0.05

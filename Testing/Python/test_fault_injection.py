"""Fault injection: each bad input or fault a new user meets is refused before any engine runs.

Every case runs ``mmreg`` in this process (its worker, if it gets that far, in a child) and asserts:
the exit code; a message fragment that names the fix; the input files byte-identical afterwards;
no output file and no scratch folder left behind. Each case takes well under 2 s. Signals are
tested in test_signals.py.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import EXIT_INPUT
from MultimodalRegistrationLib.core.images import write_image

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


def truncated_nii_gz(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    return _register(fixed, _cut_short(inputs / "moving.nii.gz", lambda n: n // 2), out)


def truncated_nii(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    return _register(fixed, _cut_short(inputs / "moving.nii", lambda n: n // 2), out)


def downsample_truncated(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = _cut_short(inputs / "moving.mha", lambda n: n - 20000)
    return ["prep", "--fixed", str(fixed), "--moving", str(moving), "--downsample-to", "4", "--output-dir", str(out)]


def garbage_nrrd(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = inputs / "moving.nrrd"
    moving.write_bytes(b"NRRD0004\ntype: what\n\n" + os.urandom(500))
    return _register(fixed, moving, out)


def _header_spacing(inputs: Path, spacing: str) -> Path:
    """An MHA whose header writes ``spacing`` as given."""
    path = inputs / "moving.mha"
    write_image(_volume(seed=1), path)
    data = path.read_bytes()
    head, _, body = data.partition(b"ElementDataFile = LOCAL\n")
    lines = [
        f"ElementSpacing = {spacing}".encode() if line.startswith(b"ElementSpacing") else line
        for line in head.split(b"\n")
    ]
    path.write_bytes(b"\n".join(lines) + b"ElementDataFile = LOCAL\n" + body)
    return path


def nan_spacing(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    return _register(fixed, _header_spacing(inputs, "2 nan 2.5"), out)


def negative_spacing(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    return _register(fixed, _header_spacing(inputs, "-2 2 2.5"), out)


def wrong_spacing_units(inputs: Path, out: Path) -> list[str]:
    fixed, _ = _pair(inputs)
    moving = inputs / "microscopy.nrrd"
    write_image(_volume(size=(2160, 8, 8), spacing=(1.0, 1.0, 1.0)), moving)
    return _register(fixed, moving, out)


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


def few_voxel_mask(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    mask = inputs / "mask.nrrd"
    write_image(_mask(_volume(), [(24, 20, 16), (25, 20, 16), (24, 21, 16), (24, 20, 17), (25, 21, 16)]), mask)
    return _register(fixed, moving, out, "--fixed-mask", str(mask))


def empty_mask(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    mask = inputs / "mask.nrrd"
    write_image(_mask(_volume(), []), mask)
    return _register(fixed, moving, out, "--fixed-mask", str(mask))


def misspelled_parameter(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    preset = inputs / "my-rigid.txt"
    text = (PRESETS / "elastix" / "rigid.txt").read_text()
    preset.write_text(text.replace("MaximumNumberOfIterations", "MaximumNumberOfIteratoins"))
    return _register(fixed, moving, out, "--preset", str(preset))


def unknown_preset(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    return _register(fixed, moving, out, "--preset", "rigidd")


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


def damaged_initial_transform(inputs: Path, out: Path) -> list[str]:
    fixed, moving = _pair(inputs)
    initial = inputs / "initial.tfm"
    initial.write_text("#Insight Transform File V1.0\n#Transform 0\nTransform: Nonsense\n")
    return _register(fixed, moving, out, "--initial-transform", str(initial))


@dataclass
class Case:
    build: Callable[[Path, Path], list[str]]
    fragment: str  # part of the message that names the fix
    code: int = EXIT_INPUT


CASES = {
    "missing file": Case(missing_moving, "check the path"),
    "truncated .nii.gz": Case(truncated_nii_gz, "copy or download the file again"),
    "truncated .nii": Case(truncated_nii, "shorter than its header"),
    "prep --downsample-to on a truncated file": Case(downsample_truncated, "shorter than its header"),
    "garbage in a supported format": Case(garbage_nrrd, "export it again"),
    "NaN spacing": Case(nan_spacing, "spacing nan along axis 1"),
    "negative spacing": Case(negative_spacing, "correct the spacing"),
    "spacing in the wrong units": Case(wrong_spacing_units, "set the true spacing"),
    "header claims 4000^3": Case(huge_header, "GB"),
    "skewed direction": Case(skewed_direction, "orthonormal"),
    "constant image": Case(constant_image, "load the right image"),
    "mask of five voxels": Case(few_voxel_mask, "voxels"),
    "empty mask": Case(empty_mask, "draw the mask or drop it"),
    "misspelled elastix parameter": Case(misspelled_parameter, "did you mean 'MaximumNumberOfIterations'"),
    "unknown preset": Case(unknown_preset, "choose one of rigid"),
    "unsupported output extension": Case(unsupported_output, "use one of .h5"),
    "output folder under a file": Case(output_under_a_file, "is a file, not a folder"),
    "output folder that cannot be made": Case(unwritable_output, "not writable"),
    "damaged initial transform": Case(damaged_initial_transform, "initial"),
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


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_early_and_leaves_everything_as_it_was(name, tmp_path, private_tmp, capsys):
    case = CASES[name]
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
    folder = scratch_folder("mmreg-job-")
    assert not orphan.exists()
    assert alive.exists() and folder.exists()


def test_inputs_keep_their_permissions(tmp_path, private_tmp, capsys):
    """A read-only input is read, not touched: the refusal of a later check leaves it read-only."""
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    argv = unknown_preset(inputs, out)
    for path in inputs.iterdir():
        path.chmod(stat.S_IRUSR)
    assert main(argv) == EXIT_INPUT
    assert all(stat.S_IMODE(path.stat().st_mode) == stat.S_IRUSR for path in inputs.iterdir())

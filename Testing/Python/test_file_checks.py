"""Damaged or wrongly written image files are refused before any engine runs, each with its own message
and the fix (issue 14): a truncated .nii.gz is no longer read as zeros, NaN and negative spacing are
reported as they are written, and a damaged file in a supported format is not told to convert. A file
shorter than its header says (or a .mhd/.nhdr without its data file) is refused before ITK reads it, a
direction that is not a rotation is refused, and an image too large for this machine's free memory is
refused from its header, before the allocation."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core import memory
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.file_checks import (
    check_image_file,
    check_images_fit_in_memory,
    read_image_file_info,
)
from MultimodalRegistrationLib.core.images import read_image, validate_image
from MultimodalRegistrationLib.process.worker import library_root


@pytest.fixture
def volume():
    image = sitk.GetImageFromArray(np.random.default_rng(1).random((30, 40, 50)).astype(np.float32))
    image.SetSpacing((1.0, 1.0, 2.0))
    return image


def test_a_truncated_nifti_gz_is_refused_not_zero_filled(volume, tmp_path):
    sitk.WriteImage(volume, str(tmp_path / "whole.nii.gz"))
    data = (tmp_path / "whole.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    assert read_image(tmp_path / "whole.nii.gz").GetSize() == (50, 40, 30)
    with pytest.raises(InputError, match="truncated or damaged.*copy or download the file again"):
        read_image(tmp_path / "cut.nii.gz", "moving image")


@pytest.mark.parametrize("written, shown", [("nan 1 2", "spacing nan along axis 0"), ("1 -1 2", "spacing -1 along axis 1"),
                                            ("1 1 0", "spacing 0 along axis 2")])  # fmt: skip
def test_bad_spacing_is_reported_as_written(volume, tmp_path, written, shown):
    sitk.WriteImage(volume, str(tmp_path / "good.mha"))
    text = (
        (tmp_path / "good.mha").read_bytes().replace(b"ElementSpacing = 1 1 2", f"ElementSpacing = {written}".encode())
    )
    (tmp_path / "bad.mha").write_bytes(text)
    with pytest.raises(InputError, match=f"{shown}.*correct the spacing in the file's header"):
        read_image(tmp_path / "bad.mha", "fixed image")


def test_a_damaged_file_is_not_told_to_change_format(tmp_path):
    (tmp_path / "garbage.nrrd").write_bytes(b"NRRD0004\nnot a header at all\n")
    with pytest.raises(InputError) as error:
        read_image(tmp_path / "garbage.nrrd")
    assert "damaged" in str(error.value) and "save it as NRRD" not in str(error.value)


def test_mmreg_refuses_a_truncated_file_with_exit_2_and_writes_nothing(volume, tmp_path):
    sitk.WriteImage(volume, str(tmp_path / "ct.nii.gz"))
    data = (tmp_path / "ct.nii.gz").read_bytes()
    (tmp_path / "mr.nii.gz").write_bytes(data[: len(data) // 3])
    before = (tmp_path / "mr.nii.gz").read_bytes()
    run = subprocess.run(
        [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", "register", "--fixed", str(tmp_path / "ct.nii.gz"),
         "--moving", str(tmp_path / "mr.nii.gz"), "--output-transform", str(tmp_path / "out" / "T.h5")],
        check=False, capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(library_root())),
    )  # fmt: skip
    assert run.returncode == 2 and "truncated" in run.stderr
    assert (tmp_path / "mr.nii.gz").read_bytes() == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, output, fragment", [
    (["register", "--output-transform", "{folder}/T.xyz"], None, "cannot write the output transform to 'T.xyz': use one of .h5"),
    (["register", "--output-transform", "{blocker}/T.h5"], None, "is a file, not a folder"),
    (["prealign", "--output-transform", "{blocker}/sub/T.h5"], None, "is a file, not a folder"),
    (["qa", "--report", "{blocker}/qa.html"], None, "is a file, not a folder"),
    (["prep", "--crop-common", "--output-dir", "{blocker}/out"], None, "is a file, not a folder"),
])  # fmt: skip
def test_outputs_that_cannot_be_written_are_refused_before_any_work(volume, tmp_path, command, output, fragment):
    sitk.WriteImage(volume, str(tmp_path / "ct.nrrd"))
    (tmp_path / "blocker").write_text("a file where a folder should be")
    names = {"folder": tmp_path, "blocker": tmp_path / "blocker"}
    arguments = [part.format(**names) for part in command]
    inputs = {"register": ["--fixed", "ct.nrrd", "--moving", "ct.nrrd"], "prep": ["--fixed", "ct.nrrd", "--moving", "ct.nrrd"],
              "qa": ["--fixed", "ct.nrrd", "--moving", "ct.nrrd", "--transform", "T0.tfm"],
              "prealign": ["--fixed-points", "p.csv", "--moving-points", "p.csv"]}[command[0]]  # fmt: skip
    (tmp_path / "p.csv").write_text("a,0,0,0\nb,10,0,0\nc,0,10,0\nd,0,0,10\n")
    sitk.WriteTransform(sitk.Euler3DTransform(), str(tmp_path / "T0.tfm"))
    run = subprocess.run(
        [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", arguments[0], *inputs, *arguments[1:]],
        check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(library_root())),
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert fragment in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T0.tfm", "blocker", "ct.nrrd", "p.csv"]


# --------------------------------------------------------------------------- bytes the header promises
def _cut(path, keep):
    data = path.read_bytes()
    cut = path.with_name("cut_" + path.name)
    cut.write_bytes(data[: int(len(data) * keep)] if isinstance(keep, float) else data[:keep])
    return cut


@pytest.mark.parametrize("suffix", [".nii", ".mha", ".nrrd"])
def test_an_uncompressed_file_shorter_than_its_header_says_is_refused(volume, tmp_path, suffix):
    sitk.WriteImage(volume, str(tmp_path / f"mr{suffix}"))  # .nii: ITK would read the missing voxels as zeros
    for cut in (_cut(tmp_path / f"mr{suffix}", 0.6), _cut(tmp_path / f"mr{suffix}", -1)):
        with pytest.raises(InputError) as error:
            read_image(cut, "moving image")
        message = str(error.value)
        assert f"moving image file {cut} is shorter than its header says" in message
        assert "the header describes 50×40×30 voxels" in message and "copy or export it again" in message
    assert "(240,000 bytes) but only 239,999 bytes follow the header" in message  # one byte short: exact counts


@pytest.mark.parametrize("suffix, data", [(".mhd", "mr.raw"), (".nhdr", "mr.raw")])
def test_a_detached_data_file_that_is_missing_or_short_is_refused(volume, tmp_path, suffix, data):
    header = tmp_path / f"mr{suffix}"
    sitk.WriteImage(volume, str(header))
    raw = (tmp_path / data).read_bytes()
    (tmp_path / data).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=f"shorter than its header says: .* but {data} holds only 120 kB"):
        read_image(header, "fixed image")
    (tmp_path / data).unlink()
    with pytest.raises(InputError) as error:
        check_image_file(header, "fixed image")
    assert f"fixed image file {header} keeps its voxels in {data}, which is not at {tmp_path / data}" in str(
        error.value
    )
    assert "copy the data file beside its header" in str(error.value)


@pytest.mark.parametrize("suffix, fragment", [(".nrrd", "is truncated or damaged: its compressed data ends early"),
                                              (".mha", "is shorter than its header says: the header promises 215 kB of compressed voxels")])  # fmt: skip
def test_compressed_nrrd_and_metaimage_cut_short_are_refused(volume, tmp_path, suffix, fragment):
    sitk.WriteImage(volume, str(tmp_path / f"ct{suffix}"), True)
    assert check_image_file(tmp_path / f"ct{suffix}").size == (50, 40, 30)
    with pytest.raises(InputError, match=f"{fragment}.*copy or download the file again"):
        read_image(_cut(tmp_path / f"ct{suffix}", 0.7), "fixed image")


@pytest.mark.parametrize("suffix", [".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd"])
@pytest.mark.parametrize("compress", [False, True])
def test_good_files_of_every_format_pass_the_checks_and_read_back(tmp_path, suffix, compress):
    array = np.random.default_rng(2).integers(-1000, 3000, (6, 7, 8)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.75, 2.0))
    image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))  # a rotation, not the identity
    sitk.WriteImage(image, str(tmp_path / f"ct{suffix}"), compress)
    info = check_image_file(tmp_path / f"ct{suffix}", "fixed image")
    assert (info.size, info.pixel_type, info.components, info.bytes_in_memory) == ((8, 7, 6), "int16", 1, 8 * 7 * 6 * 2)
    assert np.allclose(info.spacing, (0.5, 0.75, 2.0)) and np.allclose(info.direction, image.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(read_image(tmp_path / f"ct{suffix}")), array)


# --------------------------------------------------------------------------- direction
@pytest.mark.parametrize("written, fragment", [("2 0 0 0 1 0 0 0 1", "its columns have lengths 2, 1, 1 instead of 1"),
                                               ("1 0 0 0 1 0 0 0 0", "its columns have lengths 1, 1, 0 instead of 1"),
                                               ("1 0 0 0.6 0.8 0 0 0 1", "its axes 0 and 1 are 53.13° apart")])  # fmt: skip
def test_a_direction_that_is_not_a_rotation_is_refused_from_the_header(volume, tmp_path, written, fragment):
    sitk.WriteImage(volume, str(tmp_path / "good.mha"))
    text = (tmp_path / "good.mha").read_bytes()
    (tmp_path / "bad.mha").write_bytes(
        text.replace(b"TransformMatrix = 1 0 0 0 1 0 0 0 1", b"TransformMatrix = " + written.encode())
    )
    with pytest.raises(InputError) as error:
        check_image_file(tmp_path / "bad.mha", "moving image")
    message = str(error.value)
    assert (
        f"moving image file {tmp_path / 'bad.mha'} has a direction matrix that is not a rotation: {fragment}" in message
    )
    assert "Slicer and ITK assume orthonormal axes; reset the orientation in the header" in message


def test_a_sheared_nrrd_and_an_image_in_memory_are_refused(volume, tmp_path):
    sitk.WriteImage(volume, str(tmp_path / "good.nrrd"))
    text = (tmp_path / "good.nrrd").read_bytes()
    assert b"space directions: (1,0,0) (0,1,0) (0,0,2)" in text
    (tmp_path / "bad.nrrd").write_bytes(text.replace(b"(0,1,0) (0,0,2)", b"(0.2,1,0) (0,0,2)"))
    with pytest.raises(InputError, match="its axes 0 and 1 are 78.69° apart instead of 90° .*reset the orientation"):
        read_image(tmp_path / "bad.nrrd")
    volume.SetDirection((1, 0.01, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(
        InputError, match="fixed image has a direction matrix that is not a rotation: its axes 0 and 1 are 89.43° apart"
    ):
        validate_image(volume, "fixed image")
    volume.SetDirection((1, 0.0002, 0, 0, 1, 0, 0, 0, 1))  # rounding in a written header: accepted
    validate_image(volume, "fixed image")


def sheared_sform(source, target, shear: float, gzip_it: bool = False) -> None:
    """``source`` (a NIfTI-1 file SimpleITK wrote, sform = qform) with ``shear`` added to its sform's x row along
    y; the qform is left as it was."""
    import gzip
    import struct

    data = bytearray(source.read_bytes())
    rows = [list(struct.unpack_from("<4f", data, 280 + 16 * k)) for k in range(3)]
    assert struct.unpack_from("<2h", data, 252) == (1, 1)  # qform and sform codes: both set
    rows[0][1] += shear
    for k in range(3):
        struct.pack_into("<4f", data, 280 + 16 * k, *rows[k])
    target.write_bytes(gzip.compress(bytes(data)) if gzip_it else bytes(data))


def test_a_nifti_whose_sheared_sform_itk_would_swap_for_its_qform_is_refused(volume, tmp_path):
    """ITK reads the qform when the sform is sheared, and the voxels land elsewhere without a word (a helper's
    sweep: a NIfTI with a sheared sform registered on the qform's geometry; the same grid as NRRD is refused)."""
    sitk.WriteImage(volume, str(tmp_path / "good.nii"))
    sheared_sform(tmp_path / "good.nii", tmp_path / "sheared.nii.gz", 0.3, gzip_it=True)
    # The gap: 39 voxels along y at 1 mm, times 0.3 along x.
    with pytest.raises(InputError, match="moving image file .*sheared.nii.gz has two geometries that disagree: ITK "
                       "and Slicer read its qform, .* puts a corner of the image 11.7 mm away.*sform_code to 0"):  # fmt: skip
        read_image(tmp_path / "sheared.nii.gz", "moving image")
    with pytest.raises(InputError, match="is sheared"):  # a spacing given for the image does not skip the check
        read_image_file_info(tmp_path / "sheared.nii.gz", "moving image", spacing_given=True)
    sheared_sform(tmp_path / "good.nii", tmp_path / "rounded.nii", 0.005)  # 0.2 mm at the far corner: accepted
    assert read_image(tmp_path / "rounded.nii").GetSize() == (50, 40, 30)
    assert read_image(tmp_path / "good.nii").GetSize() == (50, 40, 30)


def test_a_nifti_whose_right_angled_sform_is_moved_from_its_qform_names_the_copy_not_a_shear(volume, tmp_path):
    """An sform 10 mm from the qform, both rotations (sform code 2, as some tools write it): ITK reads the qform."""
    import struct

    sitk.WriteImage(volume, str(tmp_path / "good.nii"))
    data = bytearray((tmp_path / "good.nii").read_bytes())
    struct.pack_into("<h", data, 254, 2)
    struct.pack_into("<f", data, 280 + 12, struct.unpack_from("<f", data, 280 + 12)[0] + 10.0)  # srow_x's offset
    (tmp_path / "moved.nii").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"puts a corner of the image 10.0 mm away: copy the true one over the other"):
        read_image(tmp_path / "moved.nii", "fixed image")


@pytest.mark.parametrize("unit, code", [(1000.0, 3), (0.001, 1)])  # micrometres, metres
def test_a_nifti_written_in_micrometres_or_metres_is_read_in_mm_and_not_refused(volume, tmp_path, unit, code):
    """qform and sform agree, in the file's unit (xyzt_units): ITK and Slicer scale both to mm. The sform had been
    compared unscaled, and the file refused as 'two geometries that disagree ... 218145 mm away' (a helper's sweep)."""
    import struct

    sitk.WriteImage(volume, str(tmp_path / "mm.nii"))
    data = bytearray((tmp_path / "mm.nii").read_bytes())
    pixdim = list(struct.unpack_from("<8f", data, 76))
    struct.pack_into("<8f", data, 76, *pixdim[:1], *(value * unit for value in pixdim[1:4]), *pixdim[4:])
    for offset, count in ((268, 3), (280, 12)):  # qoffset, srow
        values = struct.unpack_from(f"<{count}f", data, offset)
        struct.pack_into(f"<{count}f", data, offset, *(value * unit for value in values))
    data[123] = (data[123] & 0xF8) | code
    (tmp_path / "scaled.nii").write_bytes(bytes(data))
    read = read_image(tmp_path / "scaled.nii", "moving image")
    assert read.GetSpacing() == pytest.approx(volume.GetSpacing(), rel=1e-5)
    assert read.GetOrigin() == pytest.approx(volume.GetOrigin(), abs=1e-3)


def test_a_nan_in_a_nifti_sform_itk_does_not_read_is_no_reason_to_refuse(volume, tmp_path):
    """sform_code 0: ITK reads the qform only, so a NaN left in the unused srow places nothing."""
    import struct

    sitk.WriteImage(volume, str(tmp_path / "good.nii"))
    data = bytearray((tmp_path / "good.nii").read_bytes())
    struct.pack_into("<h", data, 254, 0)
    struct.pack_into("<f", data, 280 + 12, float("nan"))
    (tmp_path / "unused.nii").write_bytes(bytes(data))
    assert read_image(tmp_path / "unused.nii").GetOrigin() == pytest.approx(volume.GetOrigin())
    struct.pack_into("<h", data, 254, 1)  # the same NaN in an sform ITK reads: refused, naming it
    (tmp_path / "used.nii").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"gives an origin or position \(.* \.\.\.\) that is not a number"):
        read_image(tmp_path / "used.nii", "moving image")


# --------------------------------------------------------------------------- memory
def _huge_header(path):
    path.write_bytes(b"ObjectType = Image\nNDims = 3\nBinaryData = True\nCompressedData = False\n"
                     b"ElementSpacing = 0.05 0.05 0.05\nDimSize = 4000 4000 4000\nElementType = MET_USHORT\n"
                     b"ElementDataFile = LOCAL\n\x00\x01\x02\x03")  # fmt: skip
    return path


def test_a_4000_cubed_header_is_refused_before_the_allocation(tmp_path, monkeypatch):
    huge = _huge_header(tmp_path / "huge.mha")
    with pytest.raises(InputError, match="128 GB"):  # whichever comes first on this machine: memory or bytes
        read_image(huge, "fixed image")
    monkeypatch.setattr(memory, "available_bytes", lambda: 22 * 10**9)
    with pytest.raises(InputError) as error:
        read_image(huge, "fixed image")
    assert str(error.value) == (
        "fixed image needs about 128 GB in memory (4000×4000×4000 uint16), more than the 22 GB this machine has "
        "free: crop or downsample it first (mmreg prep --downsample-to 0.25 reads a file slab by slab)"
    )
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**12)  # memory enough: the file is 4 bytes
    with pytest.raises(InputError, match="describes 4000×4000×4000 voxels \\(128 GB\\) but only 4 bytes follow"):
        read_image(huge, "fixed image")


def test_a_registration_too_large_for_free_memory_is_refused_from_the_headers(volume, tmp_path, monkeypatch):
    sitk.WriteImage(volume, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(sitk.Cast(volume * 1000, sitk.sitkInt16), str(tmp_path / "mr.nii.gz"))
    images = [
        check_image_file(tmp_path / "ct.nrrd", "fixed image"),
        check_image_file(tmp_path / "mr.nii.gz", "moving image"),
    ]
    voxels = 50 * 40 * 30
    factor = memory.RUN_FLOAT32_COPIES
    assert memory.estimate_run_bytes([(i.size, i.pixel_type) for i in images]) == int(
        voxels * (4 + 2 + 8 * (factor - 1))
    )
    deformable = memory.estimate_run_bytes([(i.size, i.pixel_type) for i in images], deformable=True)
    # Engine unknown: the larger of ANTs's and elastix's copies, SyN's fields at full resolution on the fixed grid.
    assert deformable == int(voxels * (4 + 4 * (12 + 75 - 1)) + voxels * (2 + 4 * (8 - 1)))
    check_images_fit_in_memory(images)  # a few MB: fits
    monkeypatch.setattr(memory, "available_bytes", lambda: memory.HEADROOM_BYTES + 10**6)
    with pytest.raises(InputError) as error:
        check_images_fit_in_memory(images, "the registration")
    message = str(error.value)
    assert message == (
        "the registration needs about 2.8 MB in memory (fixed image 50×40×30 float32, moving image 50×40×30 int16), "
        "more than the 269 MB this machine has free: crop or downsample the images first "
        "(mmreg prep --downsample-to 2 reads a file slab by slab)"
    )


def test_free_memory_is_known_on_linux():
    free = memory.available_bytes()
    assert free is None or 10**7 < free < 10**14
    if os.path.exists("/proc/meminfo"):
        assert free is not None


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the address space from /proc (Linux)")
def test_free_memory_counts_an_address_space_limit():
    """Under ``ulimit -v`` (a batch scheduler's limit) numpy raised MemoryError mid-run while MemAvailable showed
    gigabytes free, and the memory check had passed (a helper's sweep): the room left under the limit counts."""
    code = (
        "import resource, sys; sys.path.insert(0, sys.argv[1]); from MultimodalRegistrationLib.core import memory\n"
        "size = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:'))\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + 300 * 2**20, resource.RLIM_INFINITY))\n"
        "print(memory.available_bytes())"
    )
    library = str(Path(memory.__file__).parents[2])
    free = int(subprocess.run([sys.executable, "-c", code, library], capture_output=True, text=True, check=True).stdout)
    assert 250 * 2**20 < free <= 300 * 2**20


# --------------------------------------------------------------------------- mmreg prep --downsample-to
@pytest.mark.parametrize("suffix", [".nii", ".mha"])
def test_prep_downsample_refuses_a_short_file_with_exit_2(volume, tmp_path, capsys, suffix):
    """Streamed reading used to fail inside ITK with 'No such file or directory' (MetaImage) or read zeros (NIfTI)."""
    from MultimodalRegistrationLib.cli.main import main

    volume.SetSpacing((0.5, 0.5, 0.5))
    sitk.WriteImage(volume, str(tmp_path / f"ct{suffix}"))
    cut = _cut(tmp_path / f"ct{suffix}", 0.5)
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in ("SIGTERM", "SIGHUP")}
    try:
        code = main(["prep", "--fixed", str(cut), "--moving", str(tmp_path / f"ct{suffix}"), "--downsample-to", "1",
                     "--output-dir", str(tmp_path / "out")])  # fmt: skip
    finally:
        for name, handler in handlers.items():
            signal.signal(getattr(signal, name), handler)
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert f"{cut} is shorter than its header says" in stderr and "No such file or directory" not in stderr
    assert not (tmp_path / "out").exists()

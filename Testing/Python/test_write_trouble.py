"""A write that a full disk, a quota or a file-size limit stops is said as such (exit 1, kind "disk", a fix), not
as a bug, a bad input or a bare traceback, and the files already at the outputs' paths stay (a helper's sweep with
``ulimit -f`` and full tmpfs disks: register's .nrrd volume, prep and qa had ended in "this is a bug" or a traceback,
an engine's scratch files in "check your input")."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core import write_trouble as trouble_module
from MultimodalRegistrationLib.core.write_trouble import write_trouble
from MultimodalRegistrationLib.process.worker import library_root

resource = pytest.importorskip("resource", reason="file-size limits are POSIX")
LIMIT_BYTES = 97 * 1024  # under the 48^3 noisy volume's .nrrd (about 380 kB), over the engine's own small files


def test_a_full_disk_a_quota_and_a_size_limit_are_named_by_their_error_numbers():
    assert write_trouble(OSError(errno.ENOSPC, "No space left on device")).startswith("the disk is full: ")
    assert write_trouble(OSError(errno.EDQUOT, "Disk quota exceeded")).startswith("the disk quota is used up: ")
    itk = RuntimeError("ITK ERROR: PNGImageIO: Error while writing Slice to file: q/a.png\nReason: File too large")
    assert write_trouble(itk).startswith("a file grew past this process's file-size limit: ")


def test_a_write_that_says_nothing_of_why_is_judged_by_the_free_space_and_the_limit(monkeypatch, tmp_path):
    """ITK's NRRD writer says only "couldn't write": the disk it names, above mmreg's staging folders, is read, and
    the file-size limit is blamed only when a file it names reached it."""
    staged = tmp_path / "out" / ".partial-123.abcdef01-xyz" / ".partial-123.abcdef01-uvw" / "R.nrrd"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"x" * 1000)
    error = RuntimeError(f"NrrdImageIO: Write: Error writing {staged}:\n[nrrd] _nrrdEncodingGzip_write: couldn't write")
    monkeypatch.setattr(trouble_module, "_file_size_limit", lambda: None)
    assert write_trouble(error) is None  # room enough and no limit: not the disk (stays a bug report)
    monkeypatch.setattr(trouble_module, "_file_size_limit", lambda: 50 * 2**30)  # a cluster's limit, not reached
    assert write_trouble(error) is None
    monkeypatch.setattr(trouble_module, "_free_bytes", lambda folder: 3 * 2**20 if folder == tmp_path / "out" else 2**40)
    assert write_trouble(error).startswith(f"the disk holding {tmp_path / 'out'} is full (3 MB free): ")
    monkeypatch.setattr(trouble_module, "_file_size_limit", lambda: 1000)
    assert "file-size limit (1000 bytes, ulimit -f)" in write_trouble(error)
    assert write_trouble(RuntimeError("elastix: the optimizer diverged")) is None  # no write: another failure


def test_a_write_stopped_by_a_missing_folder_on_a_small_disk_is_not_called_a_full_disk(monkeypatch, tmp_path):
    """ITK's words for a folder that is gone, or a permission, with a 40 MB temporary disk and a 50 GB limit, had
    read 'the disk ... is full' or 'past this process's file-size limit' (review)."""
    monkeypatch.setattr(trouble_module, "_file_size_limit", lambda: 50 * 2**30)
    monkeypatch.setattr(trouble_module, "_free_bytes", lambda folder: 40 * 2**20)
    gone = RuntimeError(f"Error writing {tmp_path}/gone/R.nrrd: couldn't fopen(\"R.nrrd\",\"wb\"): No such file or "
                        "directory")
    assert write_trouble(gone) is None
    assert write_trouble(RuntimeError(f"Error writing {tmp_path}/R.nrrd: couldn't write")) is None


def test_a_full_disk_is_judged_where_the_write_failed_while_its_part_fills_the_disk(monkeypatch, tmp_path):
    """Judged once the partial files were removed, a disk that one large output filled had room again, and the run
    ended as a bug (mmreg prep: a bare traceback; review). OutputSet raises DiskError at the failed write."""
    from MultimodalRegistrationLib.core.errors import DiskError
    from MultimodalRegistrationLib.core.files import OutputSet

    monkeypatch.setattr(trouble_module, "_file_size_limit", lambda: None)
    free = {"bytes": 0}
    monkeypatch.setattr(trouble_module, "_free_bytes", lambda folder: free["bytes"])

    def fills_the_disk(tmp):
        Path(tmp).write_bytes(b"x" * 100)
        raise RuntimeError(f"NrrdImageIO: Write: Error writing {tmp}: couldn't write gzip data")

    with pytest.raises(DiskError, match="is full \\(0 MB free\\)"), OutputSet() as outputs:
        outputs.write(tmp_path / "R.nrrd", fills_the_disk)
    assert list(tmp_path.iterdir()) == []
    free["bytes"] = 2**40  # room: the same words are not the disk's
    with pytest.raises(RuntimeError) as raised, OutputSet() as outputs:
        outputs.write(tmp_path / "R.nrrd", fills_the_disk)
    assert not isinstance(raised.value, DiskError)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_nifti_cut_short_is_a_failed_write_not_a_result(monkeypatch, tmp_path, suffix):
    """ITK's NIfTI writer says nothing when the disk fills: a .nii.gz with 31% of its voxels zero was reported
    written, exit 0 (review). write_image reads its size, or its gzip stream to the end."""
    from MultimodalRegistrationLib.core import images

    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(20, 30, 40)).astype(np.float32))
    images.write_image(image, tmp_path / f"whole{suffix}")
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"whole{suffix}"))),
                          sitk.GetArrayFromImage(image))  # fmt: skip
    real = sitk.WriteImage

    def cut_short(picture, path, compress=False):
        real(picture, path, compress)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) * 2 // 3])

    monkeypatch.setattr(images.sitk, "WriteImage", cut_short)
    with pytest.raises(RuntimeError, match="could not write .* whole"):
        images.write_image(image, tmp_path / f"cut{suffix}")
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"whole{suffix}"]


def _noisy_pair(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:48, :48, :48]
    body = ((x - 23.5) ** 2 + (y - 23.5) ** 2 + (z - 23.5) ** 2) < 19**2
    paths = []
    for name, inside, shift in (("ct.nrrd", 40.0, 0), ("mr.nrrd", 300.0, 2)):
        array = np.where(np.roll(body, shift, axis=2), inside, 0.0) + rng.normal(0, 10, body.shape)
        image = sitk.GetImageFromArray(array.astype(np.float32))
        image.SetSpacing((2.0, 2.0, 2.0))
        paths.append(folder / name)
        sitk.WriteImage(image, str(paths[-1]))
    return paths[0], paths[1]


def _mmreg_with_size_limit(arguments: list[str], cwd: Path, limit: int) -> subprocess.CompletedProcess:
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    environment = dict(os.environ, PYTHONPATH=str(library_root()), TMPDIR=str(cwd))
    return subprocess.run([sys.executable, "-m", "MultimodalRegistrationLib.cli.main", *arguments], cwd=cwd,
                          env=environment, capture_output=True, text=True, timeout=300,
                          preexec_fn=limited)  # noqa: PLW1509 (only a resource limit)  # fmt: skip


@pytest.mark.parametrize("command", ["register", "prep", "qa"])
def test_outputs_a_file_size_limit_stops_are_named_and_the_earlier_files_and_folders_stay(command, tmp_path):
    """Also: the folders the run made for its outputs go again (new/sub had stayed, empty)."""
    fixed, moving = _noisy_pair(tmp_path)
    out, new = tmp_path / "out", tmp_path / "out" / "new" / "sub"
    out.mkdir()
    limit = LIMIT_BYTES
    if command == "register":
        earlier = {out / "T.h5": b"OLD", out / "R.nrrd": b"OLD"}
        arguments = ["register", "--fixed", str(fixed), "--moving", str(moving), "--preset", "rigid", "--threads", "1",
                     "--output-transform", str(out / "T.h5"), "--output-volume", str(new / "R.nrrd")]  # fmt: skip
    elif command == "prep":
        earlier = {out / "fixed.nrrd": b"OLD", out / "prep.json": b"OLD"}
        arguments = ["prep", "--fixed", str(fixed), "--moving", str(moving), "--crop-common", "--output-dir", str(out)]
    else:
        sitk.WriteTransform(sitk.TranslationTransform(3), str(tmp_path / "T.tfm"))
        earlier, limit = {out / "qa.json": b"OLD"}, 5 * 1024  # the pictures are small
        arguments = ["qa", "--fixed", str(fixed), "--moving", str(moving), "--transform", str(tmp_path / "T.tfm"),
                     "--report", str(new / "qa.html"), "--json", str(out / "qa.json")]  # fmt: skip
    for path, content in earlier.items():
        path.write_bytes(content)
    ran = _mmreg_with_size_limit(arguments, tmp_path, limit)
    assert ran.returncode == 1, ran.stderr[-3000:]
    said = ("file-size limit (99328 bytes, ulimit -f)", "file-size limit: ")[command == "qa"]
    assert said in ran.stderr and "free some space" in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr and "this is a bug" not in ran.stderr, ran.stderr[-3000:]
    assert {path: path.read_bytes() for path in earlier} == earlier
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in earlier)


def test_a_set_of_outputs_that_fails_removes_the_folders_it_made_and_only_those(tmp_path):
    from MultimodalRegistrationLib.core.errors import DiskError
    from MultimodalRegistrationLib.core.files import OutputSet

    (tmp_path / "kept").mkdir()

    def full(_):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskError, match="the disk is full"), OutputSet() as outputs:
        outputs.write(tmp_path / "new" / "sub" / "a.txt", lambda tmp: Path(tmp).write_text("a"))
        outputs.write(tmp_path / "new" / "other" / "b.txt", lambda tmp: Path(tmp).write_text("b"))
        outputs.write(tmp_path / "kept" / "c.txt", full)
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["kept"]
    with OutputSet() as outputs:
        outputs.write(tmp_path / "new" / "sub" / "a.txt", lambda tmp: Path(tmp).write_text("a"))
    assert (tmp_path / "new" / "sub" / "a.txt").read_text() == "a"


def test_an_engine_that_could_not_write_its_scratch_files_fails_as_the_disk_not_as_the_input(monkeypatch, tmp_path):
    """elastix under a full temporary folder left its result file cut short, read back as a bad input with advice
    to give another transform file (exit 2); ANTs' "Error writing .../fixed.nrrd" got advice to prealign."""
    from MultimodalRegistrationLib.core.errors import DiskError, EngineError
    from MultimodalRegistrationLib.engines.registry import engine_spec
    from MultimodalRegistrationLib.engines.run import _translating_errors

    def failing(message):
        def call():
            raise RuntimeError(message)

        return call

    monkeypatch.setattr(trouble_module, "_file_size_limit", lambda: None)
    monkeypatch.setattr(trouble_module, "_free_bytes", lambda folder: 0 if folder == tmp_path else 2**40)
    for message in (f"elastix's result was not written whole (transform file {tmp_path}/T.0.h5 could not be read)",
                    f"NrrdImageIO: Write: Error writing {tmp_path}/mmreg-fcw0lle3/fixed.nrrd"):  # fmt: skip
        with pytest.raises(DiskError) as raised:
            _translating_errors(engine_spec("ants"), tmp_path, failing(message))
        assert str(raised.value).startswith(f"ANTs failed: the disk holding {tmp_path} is full (0 MB free): ")
        assert raised.value.hint.startswith("free some space")
    with pytest.raises(EngineError) as raised:  # the disk has room: the engine's own failure, its own advice
        _translating_errors(engine_spec("ants"), tmp_path / "roomy", failing("the metric diverged"))
    assert not isinstance(raised.value, DiskError)

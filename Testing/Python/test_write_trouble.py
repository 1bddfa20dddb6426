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
    """ITK's NRRD writer says only "couldn't write": the disk it names, above mmreg's staging folders, is read."""
    staged = tmp_path / "out" / ".partial-123.abcdef01-xyz" / ".partial-123.abcdef01-uvw" / "R.nrrd"
    error = RuntimeError(f"NrrdImageIO: Write: Error writing {staged}:\n[nrrd] _nrrdEncodingGzip_write: couldn't write")
    monkeypatch.setattr(trouble_module, "_file_size_limit", lambda: None)
    assert write_trouble(error) is None  # room enough and no limit: not the disk (stays a bug report)
    monkeypatch.setattr(trouble_module, "_free_bytes", lambda folder: 3 * 2**20 if folder == tmp_path / "out" else 2**40)
    assert write_trouble(error).startswith(f"the disk holding {tmp_path / 'out'} is full (3 MB free): ")
    monkeypatch.setattr(trouble_module, "_file_size_limit", lambda: 99328)
    assert "file-size limit (99328 bytes, ulimit -f)" in write_trouble(error)
    assert write_trouble(RuntimeError("elastix: the optimizer diverged")) is None  # no write: another failure


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
    from MultimodalRegistrationLib.core.files import OutputSet

    (tmp_path / "kept").mkdir()

    def full(_):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError), OutputSet() as outputs:
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

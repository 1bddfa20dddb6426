"""Files a user keeps beside mmreg's outputs survive a run, and options read as typed (audit of bad input)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import EXIT_OK
from test_prep_cli import blob  # a bright ellipsoid in a dark box


def test_prep_leaves_a_mask_it_did_not_write_and_removes_one_it_did(tmp_path, capsys):
    """A prep into a folder holding the user's own fixed_mask.nrrd deleted it (the stale-mask rule fired without any
    earlier prep.json there); a mask an earlier prep wrote still goes when the new run makes none."""
    for role in ("fixed", "moving"):
        sitk.WriteImage(blob(), str(tmp_path / f"{role}.nrrd"))
    argv = ["prep", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "moving.nrrd")]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "fixed_mask.nrrd").write_bytes(b"the user's own file")
    assert main(argv + ["--crop-common", "--output-dir", str(mine)]) == EXIT_OK, capsys.readouterr().err
    assert (mine / "fixed_mask.nrrd").read_bytes() == b"the user's own file"
    record = json.loads((mine / "prep.json").read_text())  # how it was made, inputs absolute (audit: as typed)
    assert record["made_by"]["command"].startswith("mmreg prep --fixed") and record["made_by"]["mmreg"]
    assert record["inputs"]["fixed"] == str((tmp_path / "fixed.nrrd").resolve())
    ours = tmp_path / "ours"
    assert main(argv + ["--mask-fixed", "auto", "--output-dir", str(ours)]) == EXIT_OK
    assert main(argv + ["--crop-common", "--output-dir", str(ours)]) == EXIT_OK
    assert sorted(p.name for p in ours.iterdir()) == ["fixed.nrrd", "moving.nrrd", "prep.json"]


def test_a_region_whose_first_corner_is_negative_is_read_as_typed(tmp_path, capsys):
    """`--roi -40,-30,-20,40,30,20` failed in argparse ('expected one argument'): RAS corners are often negative."""
    centred = blob()
    centred.SetOrigin([-(n - 1) * d / 2 for n, d in zip(centred.GetSize(), centred.GetSpacing())])
    for role in ("fixed", "moving"):
        sitk.WriteImage(centred, str(tmp_path / f"{role}.nrrd"))
    out = tmp_path / "out"
    argv = ["prep", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "moving.nrrd"),
            "--roi", "-20,-16,-10,20,16,10", "--margin", "0", "--output-dir", str(out)]  # fmt: skip
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    size = sitk.ReadImage(str(out / "fixed.nrrd")).GetSize()
    assert (18 <= size[0] <= 22) and (14 <= size[1] <= 18) and (6 <= size[2] <= 10), size  # 40 x 32 x 20 mm
    assert json.loads((out / "prep.json").read_text())["options"]["roi_lps"] is not None


def test_a_run_stopped_while_writing_leaves_the_earlier_outputs_as_they_were(tmp_path, monkeypatch):
    """Outputs were written one after another: a Ctrl-C while the output volume was written left the new T.h5 beside
    the earlier run's volume and summary (0.81 mm apart), saying 'nothing was written' (audit)."""
    from conftest import SMALL
    from MultimodalRegistrationLib.core import images
    from MultimodalRegistrationLib.core.images import write_image
    from MultimodalRegistrationLib.core.phantom import make_phantom_pair
    from MultimodalRegistrationLib.process.jobs import RegistrationJob
    from MultimodalRegistrationLib.process.registration_job import run_registration_job

    pair = make_phantom_pair(**SMALL)
    write_image(pair.fixed, tmp_path / "ct.nrrd")
    write_image(pair.moving, tmp_path / "mr.nrrd")
    out = tmp_path / "out"
    out.mkdir()
    earlier = {name: f"earlier {name}".encode() for name in ("T.h5", "R.nrrd", "s.json")}
    for name, data in earlier.items():
        (out / name).write_bytes(data)
    job = RegistrationJob(fixed=str(tmp_path / "ct.nrrd"), moving=str(tmp_path / "mr.nrrd"), init="geometry",
                          output_transform=str(out / "T.h5"), output_volume=str(out / "R.nrrd"),
                          summary=str(out / "s.json"), threads=1)  # fmt: skip

    def stopped(*arguments, **keywords):
        raise KeyboardInterrupt  # Ctrl-C while the volume is written, after the transform was

    monkeypatch.setattr(images, "write_image", stopped)
    try:
        run_registration_job(job, lambda event: None)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the run was not stopped")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier  # no new file, no partial folder
    monkeypatch.undo()
    run_registration_job(job, lambda event: None)
    assert sorted(p.name for p in out.iterdir()) == ["R.nrrd", "T.h5", "s.json"]
    assert json.loads((out / "s.json").read_text())["outputs"]["volume"] == str(out / "R.nrrd")


def test_records_say_where_their_command_ran_and_with_which_versions(tmp_path, capsys, monkeypatch):
    """prealign recorded its command with relative paths and no folder: run elsewhere it failed (audit)."""
    from MultimodalRegistrationLib.core.made_by import made_by

    for name, shift in (("f.csv", 0), ("m.csv", 5)):
        rows = [f"p{i},{x + shift},{y},{z}" for i, (x, y, z) in enumerate([(0, 0, 0), (40, 0, 0), (0, 40, 0), (0, 0, 40)])]
        (tmp_path / name).write_text("label,x,y,z\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    argv = ["prealign", "--fixed-points", "f.csv", "--moving-points", "m.csv", "--output-transform", "T.tfm",
            "--json", "fit.json"]  # fmt: skip
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    record = json.loads((tmp_path / "fit.json").read_text())
    assert record["command"].startswith("mmreg prealign --fixed-points f.csv") and record["working_folder"] == str(tmp_path)
    assert set(made_by()) == {"mmreg", "simpleitk", "python"}  # versions; a command only with the arguments


HELD_SIGNAL = """
import os, signal, sys, threading, time
from pathlib import Path
import numpy  # BLAS threads: a signal may be given to one of them
from MultimodalRegistrationLib.core import files
folder = Path(sys.argv[1])
staged = files.OutputSet()
for i in range(100):
    staged.write(folder / f"f{i}.txt", lambda tmp, i=i: Path(tmp).write_text(str(i)))
replace = files.os.replace
files.os.replace = lambda a, b: (time.sleep(0.003), replace(a, b))
threading.Thread(target=lambda: (time.sleep(0.05), os.kill(os.getpid(), signal.SIGINT))).start()
try:
    staged.commit()
    time.sleep(1)
except KeyboardInterrupt:
    print("stopped after", len(list(folder.glob("f*.txt"))), "files;", len(list(folder.glob(".partial*"))), "partial")
"""


def test_a_signal_during_a_commit_waits_for_every_file(tmp_path):
    """Blocking SIGINT in the main thread held nothing: numpy's threads took the signal and Python raised it in the
    middle of the moves (review). The handlers note it and raise it once every file is in place."""
    import subprocess
    import sys

    from MultimodalRegistrationLib.process.worker import library_root

    run = subprocess.run([sys.executable, "-c", HELD_SIGNAL, str(tmp_path)], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(library_root())}, timeout=60, check=False)  # fmt: skip
    assert run.stdout.strip() == "stopped after 100 files; 0 partial", run.stderr[-2000:]


def test_a_commit_that_cannot_move_every_file_moves_none(tmp_path):
    from MultimodalRegistrationLib.core.files import OutputSet

    (tmp_path / "b.txt").mkdir()  # a folder where a file goes
    (tmp_path / "a.txt").write_text("earlier")
    with pytest.raises(OSError, match="it is a folder"), OutputSet() as staged:
        staged.write(tmp_path / "a.txt", lambda tmp: Path(tmp).write_text("new"))
        staged.write(tmp_path / "b.txt", lambda tmp: Path(tmp).write_text("new"))
    assert (tmp_path / "a.txt").read_text() == "earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt",
                                                                                                        "b.txt"]


def held_open_by_another_program(monkeypatch, held) -> None:
    """Windows, as far as moving files goes: a file that ``held(source path)`` picks cannot be moved or replaced
    (open in Excel or a viewer)."""
    import os

    from MultimodalRegistrationLib.core import replaced

    replace = os.replace

    def refuse(source, target):
        if held(Path(source)):
            raise PermissionError(13, "The process cannot access the file because it is being used by another process")
        replace(source, target)

    monkeypatch.setattr(replaced, "_WINDOWS", True)
    monkeypatch.setattr(replaced, "OPEN_ELSEWHERE_WAIT_S", 0.3)
    monkeypatch.setattr(replaced.os, "replace", refuse)


def _three_earlier_files(folder: Path) -> dict[str, str]:
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / name).write_text(f"earlier {name}")
    return {name: f"earlier {name}" for name in ("a.txt", "b.txt", "c.txt")}


def _staged_three(folder: Path):
    from MultimodalRegistrationLib.core.files import OutputSet

    with OutputSet() as staged:
        for name in ("a.txt", "b.txt"):
            staged.write(folder / name, lambda tmp, name=name: Path(tmp).write_text(f"new {name}"))
        staged.remove(folder / "c.txt")


@pytest.mark.parametrize("held_for", ["ever", "a moment"])
def test_a_file_open_in_another_program_stops_the_commit_before_anything_changed(held_for, tmp_path, monkeypatch):
    """On Windows a file open in Excel or a viewer can be neither replaced nor renamed (audit): the commit replaced the
    files before it, then failed with a raw PermissionError, leaving a new a.txt beside an earlier b.txt. Now the files
    it replaces move aside first; a file held for a moment is waited for, one held on is named (exit 2's InputError)."""
    from MultimodalRegistrationLib.core.errors import InputError

    earlier, refusals = _three_earlier_files(tmp_path), []

    def held(source: Path) -> bool:
        if source == tmp_path / "b.txt" and (held_for == "ever" or len(refusals) < 2):
            refusals.append(source)
            return True
        return False

    held_open_by_another_program(monkeypatch, held)
    if held_for == "ever":
        with pytest.raises(InputError, match=r"cannot replace or move .*b\.txt .*close it where it is open"):
            _staged_three(tmp_path)
        assert {p.name: p.read_text() for p in tmp_path.iterdir()} == earlier
    else:
        _staged_three(tmp_path)
        assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"a.txt": "new a.txt", "b.txt": "new b.txt"}
        assert len(refusals) == 2


def test_a_new_file_a_virus_scan_holds_a_moment_is_waited_for_as_it_moves_in(tmp_path, monkeypatch):
    """A helper's Windows review: the move of a new file out of its .partial- folder had no retry, so a real-time scan
    holding the file just written failed the run after all its work (the files it replaced had the retry)."""
    refusals = []

    def held(source: Path) -> bool:
        if source.parent.name.startswith(".partial-") and source.name == "b.txt" and len(refusals) < 2:
            refusals.append(source)
            return True
        return False

    held_open_by_another_program(monkeypatch, held)
    _three_earlier_files(tmp_path)
    _staged_three(tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"a.txt": "new a.txt", "b.txt": "new b.txt"}
    assert len(refusals) == 2


def test_a_commit_that_fails_while_moving_in_puts_everything_back(tmp_path, monkeypatch):
    import os

    from MultimodalRegistrationLib.core import replaced as files

    earlier = _three_earlier_files(tmp_path)
    replace, failed = os.replace, []

    def full_disk(source, target):
        if Path(target) == tmp_path / "b.txt" and not failed:
            failed.append(source)
            raise OSError(28, "No space left on device")
        replace(source, target)

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _staged_three(tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == earlier


KILLED_WHILE_COMMITTING = """
import os, sys
from pathlib import Path
from MultimodalRegistrationLib.core import files, replaced
replaced._WINDOWS = sys.argv[2] == "windows"
folder = Path(sys.argv[1])
staged = files.OutputSet()
for name in ("a.txt", "b.txt"):
    staged.write(folder / name, lambda tmp, name=name: Path(tmp).write_text("new " + name))
replace = os.replace
os.replace = lambda source, target: os._exit(9) if ".partial-" in str(source) else replace(source, target)
staged.commit()
"""


@pytest.mark.parametrize("system", ["posix", "windows"])
def test_a_process_killed_while_committing_loses_no_earlier_file(system, tmp_path):
    """Review: the files a commit replaces waited in a .partial-<pid> folder, which the next run deletes once that
    process is dead: a kill (a Windows cancel is always one) between setting them aside and moving the new files in
    lost the earlier result. POSIX keeps them in place (hard links aside); Windows moves them to a .replaced-<pid>
    folder that the next run in the folder puts back."""
    import subprocess
    import sys

    from MultimodalRegistrationLib.core.files import write_text_atomically
    from MultimodalRegistrationLib.process.worker import library_root

    earlier = _three_earlier_files(tmp_path)
    run = subprocess.run([sys.executable, "-c", KILLED_WHILE_COMMITTING, str(tmp_path), system], capture_output=True,
                         text=True, env={**__import__("os").environ, "PYTHONPATH": str(library_root())}, check=False)  # fmt: skip
    assert run.returncode == 9, run.stderr[-2000:]
    write_text_atomically(tmp_path / "other.txt", "the next run here")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {**earlier, "other.txt": "the next run here"}


KILLED_AFTER_MOVING_IN = """
import os, sys
from pathlib import Path
from MultimodalRegistrationLib.core import files, replaced
replaced._WINDOWS = sys.argv[2] == "windows"
folder = Path(sys.argv[1])
finished = replaced.Replaced.finished
replaced.Replaced.finished = lambda self: (finished(self), os._exit(9))
with files.OutputSet() as staged:
    for name in ("a.txt", "b.txt"):
        staged.write(folder / name, lambda tmp, name=name: Path(tmp).write_text("new " + name))
    staged.remove(folder / "c.txt")
"""


@pytest.mark.parametrize("system", ["posix", "windows"])
def test_a_process_killed_after_its_new_files_are_in_is_not_undone(system, tmp_path):
    """Review: the next run put back every earlier file whose name was free, also after a commit that had moved
    all its new files in: the stale mask a prep run had removed came back. A finished commit marks its kept files."""
    import subprocess
    import sys

    from MultimodalRegistrationLib.core.files import write_text_atomically
    from MultimodalRegistrationLib.process.worker import library_root

    _three_earlier_files(tmp_path)
    run = subprocess.run([sys.executable, "-c", KILLED_AFTER_MOVING_IN, str(tmp_path), system], capture_output=True,
                         text=True, env={**__import__("os").environ, "PYTHONPATH": str(library_root())}, check=False)  # fmt: skip
    assert run.returncode == 9, run.stderr[-2000:]
    write_text_atomically(tmp_path / "other.txt", "the next run here")
    left = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert {name: left[name] for name in ("a.txt", "b.txt", "other.txt")} == {
        "a.txt": "new a.txt", "b.txt": "new b.txt", "other.txt": "the next run here"}
    # killed before it removed c.txt: Windows had moved it aside already, POSIX had not
    assert sorted(left) == (["a.txt", "b.txt", "other.txt"] if system == "windows" else ["a.txt", "b.txt", "c.txt", "other.txt"])


KILLED_BETWEEN_MOVES = """
import os, sys
from pathlib import Path
from MultimodalRegistrationLib.core import files, replaced
replaced._WINDOWS = True
folder = Path(sys.argv[1])
staged = files.OutputSet()
for name in ("a.txt", "b.txt"):
    staged.write(folder / name, lambda tmp, name=name: Path(tmp).write_text("new " + name))
replace, moved = os.replace, []
def killed_at_the_second(source, target):
    if ".partial-" in str(source):
        if moved:
            os._exit(9)
        moved.append(target)
    replace(source, target)
os.replace = killed_at_the_second
staged.commit()
"""


@pytest.mark.parametrize("saved_since", [False, True])
def test_a_windows_cancel_between_two_moves_in_leaves_the_earlier_set_whole(saved_since, tmp_path):
    """A Windows cancel ends the worker outright, and nothing holds it off while a commit moves its files in (POSIX
    holds the signal): killed after the new a.txt was in, the next run put back only the earlier b.txt and c.txt,
    whose names were free, leaving the new a.txt beside them (a Windows review). The earlier set comes back whole."""
    import os
    import subprocess
    import sys

    from MultimodalRegistrationLib.core.files import write_text_atomically
    from MultimodalRegistrationLib.process.worker import library_root

    earlier = _three_earlier_files(tmp_path)
    run = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_MOVES, str(tmp_path)], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(library_root())}, check=False)  # fmt: skip
    assert run.returncode == 9, run.stderr[-2000:]
    assert (tmp_path / "a.txt").read_text() == "new a.txt"  # as the killed commit left it
    if saved_since:  # a file the user saved under that name since is theirs, not the killed commit's (a review)
        (tmp_path / "a.txt").write_text("saved since")
        (kept,) = tmp_path.glob(".replaced-*")
        later = kept.stat().st_mtime_ns + 10**9
        os.utime(tmp_path / "a.txt", ns=(later, later))
        earlier["a.txt"] = "saved since"
    write_text_atomically(tmp_path / "other.txt", "the next run here")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {**earlier, "other.txt": "the next run here"}


def test_a_reader_never_finds_a_replaced_file_missing_on_posix(tmp_path, monkeypatch):
    """Review: moving every earlier file aside first left each name empty until its new file moved in. On POSIX the
    earlier file is kept as a hard link, so the new one replaces it in one step."""
    import os

    from MultimodalRegistrationLib.core import replaced

    monkeypatch.setattr(replaced, "_WINDOWS", False)
    _three_earlier_files(tmp_path)
    present, replace = [], os.replace

    def seen(source, target):
        if ".partial-" in str(source):
            present.append(Path(target).exists())
        replace(source, target)

    monkeypatch.setattr(replaced.os, "replace", seen)
    _staged_three(tmp_path)
    assert present == [True, True] and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_a_commit_whose_setting_aside_fails_otherwise_keeps_every_earlier_file(tmp_path, monkeypatch):
    """Review: only a file held open was put back; any other error (a name too long for Windows once set aside)
    left the files set aside before it to be deleted with their folder."""
    import errno
    import os

    from MultimodalRegistrationLib.core import replaced

    monkeypatch.setattr(replaced, "_WINDOWS", True)
    earlier, replace = _three_earlier_files(tmp_path), os.replace

    def too_long(source, target):
        if Path(source) == tmp_path / "b.txt":
            raise OSError(errno.ENAMETOOLONG, "File name too long")
        replace(source, target)

    monkeypatch.setattr(replaced.os, "replace", too_long)
    with pytest.raises(OSError, match="too long"):
        _staged_three(tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == earlier


def test_a_mask_an_earlier_prep_named_relatively_goes_when_run_from_elsewhere(tmp_path, monkeypatch, capsys):
    """Older prep.json files name their outputs as typed: resolved from another working folder, the earlier
    fixed_mask.nrrd was kept beside new images it did not belong to (review)."""
    for role in ("fixed", "moving"):
        sitk.WriteImage(blob(), str(tmp_path / f"{role}.nrrd"))
    out = tmp_path / "out"
    argv = ["prep", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "moving.nrrd")]
    assert main(argv + ["--mask-fixed", "auto", "--output-dir", str(out)]) == EXIT_OK
    record = json.loads((out / "prep.json").read_text())
    record["outputs"] = {name: Path(path).name for name, path in record["outputs"].items()}  # as an older run wrote it
    (out / "prep.json").write_text(json.dumps(record))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(argv + ["--crop-common", "--output-dir", str(out)]) == EXIT_OK
    assert sorted(p.name for p in out.iterdir()) == ["fixed.nrrd", "moving.nrrd", "prep.json"]


def test_a_report_s_pictures_folder_may_hold_what_file_browsers_leave(tmp_path):
    """A .DS_Store or Thumbs.db in the figures folder made a QA rerun refuse (review); a file of the user's does."""
    from MultimodalRegistrationLib.core.errors import InputError
    from MultimodalRegistrationLib.qa.assess import check_report_path

    figures = tmp_path / "qa_figures"
    figures.mkdir()
    for name in (".DS_Store", "Thumbs.db", "desktop.ini", "fusion_after.png"):
        (figures / name).write_text("x")
    check_report_path(tmp_path / "qa.html")
    (figures / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds files mmreg did not write \(notes.txt\)"):
        check_report_path(tmp_path / "qa.html")


def test_a_file_staged_inside_another_set_is_not_said_to_be_written_when_that_set_is_stopped(tmp_path):
    """``mmreg prep`` stages each image with write_image, itself atomic: the inner move into the partial folder was
    counted, and a Ctrl-C before the set moved in said "its outputs were written first (.../.partial-.../fixed.nrrd)"
    while nothing was (a helper's sweep)."""
    from MultimodalRegistrationLib.core import files

    before = files.committed()
    with pytest.raises(KeyboardInterrupt), files.OutputSet() as outer:
        outer.write(tmp_path / "fixed.nrrd", lambda tmp: files.write_text_atomically(tmp, "staged"))
        raise KeyboardInterrupt
    assert files.committed() == before
    assert list(tmp_path.iterdir()) == []
    files.write_text_atomically(tmp_path / "summary.json", "{}")
    assert files.committed() == [*before, tmp_path / "summary.json"]


def test_an_output_at_the_windows_limit_is_written_within_max_path(tmp_path, monkeypatch):
    """A helper's imitation of Windows' MAX_PATH: an image written atomically inside a set of outputs is staged two
    partial folders deep, and the earlier limit (259 - 36) let a prep run to 100% and then fail. At the limit, every
    path the write makes fits 259 characters and every folder 247, with room for a 7-digit Windows process id."""
    import SimpleITK as sitk
    from MultimodalRegistrationLib.core.file_checks import WINDOWS_PATH_ROOM
    from MultimodalRegistrationLib.core.files import OutputSet
    from MultimodalRegistrationLib.core.images import write_image

    name = "moving_mask.nrrd"  # the longest name prep writes; it checks prep.json
    folder = tmp_path / ("d" * (WINDOWS_PATH_ROOM - len(str(tmp_path)) - 2 - len("prep.json")))
    assert len(str(folder / "prep.json")) == WINDOWS_PATH_ROOM
    folder.mkdir()
    write_image(sitk.Image([4, 4, 4], sitk.sitkUInt8), folder / name)  # an earlier run's file, set aside on commit
    longest, replace, mkdir = {"file": 0, "folder": 0}, os.replace, os.mkdir

    def replacing(source, target):
        longest["file"] = max(longest["file"], len(str(source)), len(str(target)))
        replace(source, target)

    def making(path, *arguments, **options):
        longest["folder"] = max(longest["folder"], len(str(path)))
        mkdir(path, *arguments, **options)

    monkeypatch.setattr(os, "replace", replacing)
    monkeypatch.setattr(os, "mkdir", making)
    with OutputSet() as staged:
        staged.write(folder / name, lambda tmp: write_image(sitk.Image([4, 4, 4], sitk.sitkUInt8), tmp))
    room = 2 * (7 - len(str(os.getpid())))  # two staging folders each name the process
    assert longest["file"] + room <= 259 and longest["folder"] + room <= 247, longest

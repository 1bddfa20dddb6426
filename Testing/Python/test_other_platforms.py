"""Windows and macOS behaviour checked on Linux: a scratch folder Windows will not delete, presets read under a
cp1252 default, stdout that cannot encode a path, free memory from GlobalMemoryStatusEx, a batch lock file that
can only be removed once closed, and workers that end with their parent where no parent-death signal exists
(a Windows job object, a macOS watcher process)."""

from __future__ import annotations

import ctypes
import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core import memory
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.process.batch_lock import LOCK_NAME, batch_lock
from MultimodalRegistrationLib.process.worker import library_root
from MultimodalRegistrationLib.registration import runs

PRESETS = Path(__file__).resolve().parents[2] / "Resources" / "Presets"
DESCRIPTION = "Łódź µm test"  # Ł is C5 81 in UTF-8; 0x81 is undefined in cp1252


def test_an_engine_run_keeps_its_result_when_windows_will_not_delete_its_log(tmp_path, monkeypatch):
    """The parent may still be reading the engine log as the run's scratch folder goes; Windows then refuses the
    delete, and the cleanup's error replaced the finished run's result (an 'internal' failure)."""
    output = object()

    def engine(request):
        (request.workdir / "elastix.log").write_text("done")
        return output

    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if str(path).endswith("elastix.log"):  # as Windows does while another process has the file open
            raise PermissionError(13, "being used by another process", str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(runs, "run_engine", engine)
    monkeypatch.setattr(os, "unlink", unlink)
    run = SimpleNamespace(workdir=tmp_path, fixed=None, moving=None, recipe=None, fixed_mask=None, moving_mask=None,
                          settings=SimpleNamespace(seed=0, threads=1), prepared=None, report=lambda *a, **k: None)  # fmt: skip
    assert runs._run_engine_from(run, "center", Transform.identity(), None, (0.0, 1.0)) is output


def _preset_file(tmp_path: Path, engine: str, bom: bool) -> Path:
    if engine == "elastix":
        rest = (PRESETS / "elastix" / "rigid.txt").read_text().splitlines(keepends=True)[1:]
        path, text = tmp_path / "mine.txt", f"// Description: {DESCRIPTION}\n" + "".join(rest)
    else:
        text = (PRESETS / "ants" / "rigid.json").read_text()
        before = text.split('"description": "', 1)[1].split('"', 1)[0]
        path, text = tmp_path / "mine.json", text.replace(before, DESCRIPTION, 1)
    path.write_bytes(text.encode("utf-8-sig" if bom else "utf-8"))
    return path


@pytest.mark.parametrize("bom", [False, True], ids=["utf-8", "utf-8 with BOM"])
@pytest.mark.parametrize("engine", ["elastix", "ants"])
def test_a_utf8_preset_reads_under_a_cp1252_default(tmp_path, monkeypatch, engine, bom):
    """Presets were read with the locale's encoding (cp1252 in Slicer 5.10 on Windows): 'Ł' stopped the load
    with a UnicodeDecodeError, and a BOM (PowerShell 5.1, old Notepad) was refused as a bad first line."""
    path = _preset_file(tmp_path, engine, bom)
    monkeypatch.setattr(io, "text_encoding", lambda encoding, stacklevel=2: encoding or "cp1252")
    preset = load_preset(engine, str(path))
    assert preset.description == DESCRIPTION
    assert (preset.recipe[0]["Transform"] if engine == "elastix" else preset.recipe["stages"][0]["transform"]) in (
        ["EulerTransform"], "Rigid")  # fmt: skip


def test_a_path_stdout_cannot_encode_does_not_crash_the_command(tmp_path):
    """With stdout redirected, Windows encodes it with the ANSI code page, strictly: 'wrote ...: <path>' with a
    character outside it raised UnicodeEncodeError after the outputs were written (exit 1)."""
    image = sitk.GetImageFromArray((100 * np.random.default_rng(0).random((12, 12, 12))).astype(np.int16))
    for role in ("fixed", "moving"):
        sitk.WriteImage(image, str(tmp_path / f"{role}.nrrd"))
    out = tmp_path / "out-Łµ"
    run = subprocess.run(
        [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", "prep", "--fixed", str(tmp_path / "fixed.nrrd"),
         "--moving", str(tmp_path / "moving.nrrd"), "--crop-common", "--output-dir", str(out)],
        capture_output=True, check=False, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(library_root()), PYTHONIOENCODING="ascii"),
    )  # fmt: skip
    stdout, stderr = run.stdout.decode("ascii"), run.stderr.decode("ascii")
    assert run.returncode == 0, stderr[-2000:]
    assert "UnicodeEncodeError" not in stderr
    assert f"wrote fixed: {tmp_path}{os.sep}out-\\u0141\\xb5{os.sep}fixed.nrrd" in stdout, stdout
    assert (out / "fixed.nrrd").is_file()


class _Kernel32:
    """GlobalMemoryStatusEx as Windows runs it: checks dwLength, writes ullAvailPhys at its offset (16)."""

    def __init__(self, succeeds: bool = True):
        self.succeeds = succeeds

    def GlobalMemoryStatusEx(self, reference) -> int:
        address = ctypes.cast(reference, ctypes.c_void_p).value
        if not self.succeeds or ctypes.c_uint32.from_address(address).value != 64:
            return 0
        ctypes.c_uint64.from_address(address + 16).value = 7 * 10**9
        return 1


class _WindowsOs:
    """``os`` as memory.py sees it on Windows (os.name patched for that module alone: pathlib follows os.name)."""

    name = "nt"

    def __getattr__(self, attribute):
        return getattr(os, attribute)


@pytest.mark.parametrize(("kernel32", "expected"), [(_Kernel32(), 7 * 10**9), (_Kernel32(False), None), (None, None)],
                         ids=["answers", "call fails", "no windll"])  # fmt: skip
def test_free_memory_on_windows_comes_from_global_memory_status(monkeypatch, kernel32, expected):
    """available_bytes() returned None on Windows (no /proc/meminfo, no SC_AVPHYS_PAGES), so the memory guard
    never refused an image too large for the machine."""
    monkeypatch.setattr(memory, "os", _WindowsOs())
    if kernel32 is None:
        monkeypatch.delattr(ctypes, "windll", raising=False)
    else:
        monkeypatch.setattr(ctypes, "windll", SimpleNamespace(kernel32=kernel32), raising=False)
    assert memory.available_bytes() == expected


def test_the_batch_lock_file_goes_once_closed_where_it_could_not_go_while_open(tmp_path, monkeypatch):
    """Windows cannot remove a file that is open: the lock file's removal failed and it stayed in every output
    folder. Now it is removed again after it is closed."""
    real_unlink, refused = Path.unlink, []

    def unlink(self, *args, **kwargs):
        if self.name == LOCK_NAME and not refused:  # the first try, while the file is open
            refused.append(self)
            raise PermissionError(13, "being used by another process", str(self))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    with batch_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).is_file()
    assert refused and not (tmp_path / LOCK_NAME).exists()


class _FakeKernel:
    """kernel32 as end_with_this_process calls it: records what it is given."""

    def __init__(self, assign_ok: bool = True):
        self.assign_ok, self.calls, self.closed = assign_ok, [], []

    def CreateJobObjectW(self, attributes, name):
        return 77

    def SetInformationJobObject(self, job, kind, pointer, size):
        import ctypes

        from MultimodalRegistrationLib.core.processes import _ExtendedLimits

        limits = ctypes.cast(pointer, ctypes.POINTER(_ExtendedLimits)).contents
        self.calls.append(("limits", job, kind, size, limits.BasicLimitInformation.LimitFlags))
        return 1

    def AssignProcessToJobObject(self, job, process):
        self.calls.append(("assign", job, process))
        return 1 if self.assign_ok else 0

    def CloseHandle(self, handle):
        self.closed.append(handle)
        return 1

    active = 2  # the launcher and the interpreter it started

    def QueryInformationJobObject(self, job, kind, pointer, size, returned):
        import ctypes

        from MultimodalRegistrationLib.core.processes import _AccountingInformation

        self.calls.append(("query", job, kind, size))
        ctypes.cast(pointer, ctypes.POINTER(_AccountingInformation)).contents.ActiveProcesses = self.active
        return 1

    def TerminateJobObject(self, job, code):
        self.calls.append(("terminate", job))
        self.active = 0
        return 1


@pytest.mark.parametrize("assign_ok", [True, False], ids=["assigned", "refused"])
def test_a_worker_on_windows_ends_with_the_process_that_started_it(assign_ok):
    """Windows has no parent-death signal: a worker of a crashed Slicer computed on unseen, and a killed batch's
    warm workers went on writing case folders (audit). Each worker is put in a job object that the system ends with
    its parent (kill on close); a refusal leaves the worker as before."""
    from types import SimpleNamespace

    from MultimodalRegistrationLib.core.processes import end_with_this_process, release_job

    kernel = _FakeKernel(assign_ok)
    job = end_with_this_process(SimpleNamespace(_handle=1234), kernel)
    # 144 bytes: JOBOBJECT_EXTENDED_LIMIT_INFORMATION on 64-bit Windows; 0x2000: kill on job close
    assert kernel.calls[0] == ("limits", 77, 9, 144, 0x2000)
    assert kernel.calls[1] == ("assign", 77, 1234)
    assert job == (77 if assign_ok else None) and kernel.closed == ([] if assign_ok else [77])
    release_job(job, kernel)
    assert kernel.closed == [77]
    assert end_with_this_process(SimpleNamespace(_handle=1234)) is None  # not Windows: nothing to do



def test_a_cancel_on_windows_stops_and_waits_for_every_process_of_the_workers_job():
    """Windows: a cancel judged the worker by its launcher alone, and ``taskkill /T`` misses a child whose launcher
    has ended (a review of Cancel): the interpreter could still hold the run's folder. Every process of the worker's
    job is ended, and the tree counts as running while the job holds any (48 bytes: the accounting structure)."""
    from types import SimpleNamespace

    from MultimodalRegistrationLib.core.processes import job_runs, stop_tree, tree_alive

    kernel = _FakeKernel()
    launcher_ended = SimpleNamespace(poll=lambda: 0)
    assert tree_alive(launcher_ended, 77, kernel)  # the interpreter of job 77 still runs
    assert kernel.calls[-1] == ("query", 77, 1, 48)
    stop_tree(launcher_ended, job=77, kernel=kernel)
    assert kernel.calls[-1] == ("terminate", 77)
    assert not tree_alive(launcher_ended, 77, kernel) and job_runs(77, kernel) is False
    assert job_runs(None, kernel) is None  # no job: the launcher's own state decides
    assert not tree_alive(launcher_ended, None, kernel)


@pytest.mark.parametrize("parent_ends", [True, False], ids=["parent ends", "worker ends"])
def test_a_worker_on_macos_is_stopped_by_a_watcher_when_its_parent_ends(parent_ends, tmp_path):
    """macOS has no parent-death signal either: a crashed Slicer left its workers computing (audit). A watcher
    process stops the worker's process group within a second of the parent ending, and ends with the worker."""
    import subprocess
    import time

    from MultimodalRegistrationLib.process.worker_side import watch_parent

    parent = subprocess.Popen(["sleep", "1" if parent_ends else "30"])
    worker = subprocess.Popen(["sleep", "30" if parent_ends else "1"], start_new_session=True)
    watcher = watch_parent(parent.pid, worker.pid, worker.pid)  # the worker leads its own group
    started = time.monotonic()
    if parent_ends:
        parent.wait()
        assert worker.wait(timeout=5) == -15 and time.monotonic() - started < 4
    else:
        assert worker.wait(timeout=5) == 0 and parent.poll() is None
    assert watcher.wait(timeout=3) == 0
    if not parent_ends:
        parent.kill()
    parent.wait()



class _Libc:
    """sysctlbyname as macOS answers it: 16 GB installed, ``level`` % of it counted free."""

    def __init__(self, level):
        self.level = level

    def sysctlbyname(self, name, value, size, new, new_size) -> int:
        answers = {b"hw.memsize": 16 * 10**9, b"kern.memorystatus_level": self.level}
        if answers.get(name) is None:
            return -1
        target = ctypes.cast(value, ctypes.c_void_p).value
        kind = ctypes.c_uint64 if ctypes.cast(size, ctypes.POINTER(ctypes.c_size_t)).contents.value == 8 else ctypes.c_uint32
        kind.from_address(target).value = answers[name]
        return 0


@pytest.mark.parametrize(("level", "expected"), [(40, 64 * 10**8), (None, None), (0, None)],
                         ids=["answers", "no level", "nonsense"])  # fmt: skip
def test_free_memory_on_macos_is_the_share_the_kernel_counts_free(level, expected):
    """available_bytes() returned None on macOS too (no /proc/meminfo, no SC_AVPHYS_PAGES): the memory guard never
    refused an image too large for the Mac (audit)."""
    assert memory._macos_available(_Libc(level)) == expected


def test_the_sidecar_files_macos_writes_on_usb_drives_are_not_sections(tmp_path):
    """On exFAT and network shares macOS writes a hidden '._name.png' beside each file: they sorted first and were
    stacked as extra, unreadable sections, every real one moved down (4 sections gave 8; audit)."""
    from MultimodalRegistrationLib.core.output_safety import same_place
    from MultimodalRegistrationLib.stack.sections import find_sections

    for number in range(1, 5):
        (tmp_path / f"s{number}.png").write_bytes(b"png")
        (tmp_path / f"._s{number}.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    assert [path.name for path in find_sections(str(tmp_path))] == ["s1.png", "s2.png", "s3.png", "s4.png"]
    (tmp_path.parent / "other spelling").symlink_to(tmp_path)  # a case-blind disk's 'Sections' for 'sections'
    assert same_place(tmp_path.parent / "other spelling", tmp_path)


def test_outputs_named_apart_only_by_capitals_are_refused_where_the_disk_ignores_them(tmp_path, monkeypatch):
    """macOS and Windows disks ignore capitals (and macOS Unicode composition): --output-transform reg.h5 with
    --output-inverse Reg.h5 passed, and the second file silently replaced the first (audit)."""
    from MultimodalRegistrationLib.core import output_safety
    from MultimodalRegistrationLib.core.errors import InputError

    outputs = {"--output-transform": tmp_path / "reg.h5", "--output-inverse": tmp_path / "Reg.h5",
               "--json": tmp_path / "Caf\u00e9.json", "--output-volume": tmp_path / "cafe\u0301.json"}  # fmt: skip
    monkeypatch.setattr(output_safety, "_CASE_BLIND", True)
    monkeypatch.setattr(output_safety, "_ACCENT_BLIND", True)  # macOS
    with pytest.raises(InputError, match="Reg.h5"):
        output_safety.check_outputs_apart({}, dict(list(outputs.items())[:2]))
    with pytest.raises(InputError):
        output_safety.check_outputs_apart({}, dict(list(outputs.items())[2:]))
    monkeypatch.setattr(output_safety, "_CASE_BLIND", False)  # Linux: two files
    monkeypatch.setattr(output_safety, "_ACCENT_BLIND", False)
    output_safety.check_outputs_apart({}, outputs)


def test_a_killed_commit_s_earlier_file_comes_back_and_not_its_macos_sidecar(tmp_path):
    """On exFAT and network shares macOS moves a '._' sidecar along with a moved file; it sorted first and came
    back in place of the earlier transform after a killed commit (audit)."""
    import subprocess

    from MultimodalRegistrationLib.core.replaced import REPLACED_PREFIX, recover_replaced

    ended = subprocess.Popen(["true"])
    ended.wait()  # the committing process, killed
    kept = tmp_path / f"{REPLACED_PREFIX}{ended.pid}-abcd"
    kept.mkdir()
    (kept / "._m0-T.h5").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (kept / "m0-T.h5").write_bytes(b"the earlier transform")
    (kept / "Thumbs.db").write_bytes(b"what Explorer leaves")
    recover_replaced(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["T.h5"] and (tmp_path / "T.h5").read_bytes() == b"the earlier transform"


def test_names_a_case_blind_disk_keeps_apart_are_not_refused(tmp_path, monkeypatch):
    """Casefolding took 'Maße' and 'Masse' for one name, which no disk does (review)."""
    from MultimodalRegistrationLib.core import output_safety

    monkeypatch.setattr(output_safety, "_CASE_BLIND", True)
    output_safety.check_outputs_apart({}, {"--output-transform": tmp_path / "Maße.h5", "--json": tmp_path / "Masse.h5"})


def test_a_folder_that_refuses_a_move_on_posix_is_not_called_open_elsewhere(tmp_path, monkeypatch):
    """On Linux and macOS a refused move is the folder's permissions: 'close it where it is open' misled (review)."""
    from MultimodalRegistrationLib.core import replaced
    from MultimodalRegistrationLib.core.errors import FileInUseError, InputError

    def refuse(source, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(replaced, "_WINDOWS", False)
    monkeypatch.setattr(replaced.os, "replace", refuse)
    with pytest.raises(InputError, match="make its folder writable") as refused:
        replaced.replace_path(tmp_path / "a", tmp_path / "b")
    assert not isinstance(refused.value, FileInUseError)


def test_a_batch_raises_macos_s_256_open_files_to_what_its_workers_need(monkeypatch):
    """macOS starts programs at 256 open files under an unlimited hard limit: the soft limit is raised to what the
    workers need, and a hard limit lower than that is where it stops."""
    from MultimodalRegistrationLib.core import open_files

    if open_files.resource is None:
        pytest.skip("no per-process open-file limit on this system (Windows)")
    infinity, asked = open_files.resource.RLIM_INFINITY, []
    limits = {"now": (256, infinity)}
    monkeypatch.setattr(open_files.resource, "getrlimit", lambda kind: limits["now"])
    monkeypatch.setattr(open_files.resource, "setrlimit", lambda kind, value: asked.append(value))
    assert open_files.allow_open_files(open_files.files_for_workers(100)) == 364 and asked == [(364, infinity)]
    assert open_files.allow_open_files(200) == 256 and len(asked) == 1  # already enough: left alone
    limits["now"] = (256, 300)
    assert open_files.allow_open_files(364) == 300 and asked[-1] == (300, 300)

    def macos(kind, value):  # above OPEN_MAX: refused even under an unlimited hard limit
        if value[0] > 10240:
            raise ValueError("current limit exceeds maximum limit")
        asked.append(value)

    limits["now"] = (256, infinity)
    monkeypatch.setattr(open_files.resource, "setrlimit", macos)
    assert open_files.allow_open_files(40_000) == 10240 and asked[-1] == (10240, infinity)


def test_a_sections_glob_typed_with_accents_finds_names_macos_stores_decomposed(tmp_path, monkeypatch):
    """Names copied from an HFS+ disk keep é as e + U+0301; a glob typed in Terminal has é composed, and glob
    compares the stored names, so 'Gewebe_é*.png' found no section on macOS (audit L6). Each spelling is tried."""
    import unicodedata

    from MultimodalRegistrationLib.core import output_safety
    from MultimodalRegistrationLib.stack.sections import find_sections

    monkeypatch.setattr(output_safety, "_ACCENT_BLIND", True)
    for number in (1, 2, 10):
        (tmp_path / unicodedata.normalize("NFD", f"coupé_{number}.png")).write_bytes(b"png")
    typed = str(tmp_path / unicodedata.normalize("NFC", "coupé_*.png"))
    found = [unicodedata.normalize("NFC", path.name) for path in find_sections(typed)]
    assert found == ["coupé_1.png", "coupé_2.png", "coupé_10.png"]


@pytest.mark.parametrize(("affinity", "cpu_max", "expected"), [
    (range(64), None, 64), (range(4), None, 4), (range(64), "200000 100000\n", 2), (range(64), "150000 100000", 2),
    (range(2), "800000 100000", 2), (range(64), "max 100000", 64), (None, None, 12),
], ids=["whole machine", "affinity (SLURM)", "quota (docker --cpus 2)", "quota 1.5", "affinity below quota",
        "no quota", "no affinity call (macOS, Windows)"])  # fmt: skip
def test_engines_and_batches_count_only_the_cores_this_process_may_use(affinity, cpu_max, expected, tmp_path,
                                                                        monkeypatch):
    """os.cpu_count() is the whole machine: a batch on 4 cores of a 64-core cluster node started 32 workers, each
    engine with 64 threads; in a container limited to 2 CPUs, likewise."""
    from MultimodalRegistrationLib.core import cores
    from MultimodalRegistrationLib.engines.registry import engine_spec

    if affinity is None:
        monkeypatch.delattr(cores.os, "sched_getaffinity", raising=False)
    else:
        monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: set(affinity), raising=False)
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 12)
    monkeypatch.setattr(cores, "CGROUP_V2_CPU_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(cores, "CGROUP_V1_QUOTA", (tmp_path / "quota", tmp_path / "period"))
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max)
    assert cores.usable_cores() == expected
    assert engine_spec("elastix").threads(None) == expected and engine_spec("elastix").threads(3) == 3


def test_a_sections_glob_in_a_folder_with_an_accent_finds_each_section_once(tmp_path, monkeypatch):
    """/Users/José/...: glob keeps the typed spelling of a folder without wildcards and macOS opens the folder under
    both, so trying both spellings found every section twice (review). One path per file (its inode)."""
    import unicodedata

    from MultimodalRegistrationLib.core import output_safety
    from MultimodalRegistrationLib.stack.sections import find_sections

    monkeypatch.setattr(output_safety, "_ACCENT_BLIND", True)
    composed, decomposed = (unicodedata.normalize(form, "José") for form in ("NFC", "NFD"))
    (tmp_path / composed).mkdir()
    (tmp_path / decomposed).symlink_to(tmp_path / composed)  # one folder under both spellings, as on APFS
    for number in (1, 2, 3):
        (tmp_path / composed / f"s{number}.png").write_bytes(b"png")
    assert [path.name for path in find_sections(str(tmp_path / composed / "*.png"))] == ["s1.png", "s2.png", "s3.png"]


def test_a_name_is_measured_as_its_file_system_counts_it(monkeypatch):
    """NTFS holds 255 UTF-16 units, ext4 and APFS 255 UTF-8 bytes: 100 CJK characters (300 bytes) are a valid
    Windows name, and had been refused there (a helper's Windows review)."""
    from pathlib import Path

    from MultimodalRegistrationLib.core import name_lengths
    from MultimodalRegistrationLib.core.errors import InputError

    name = "登録" * 50 + ".h5"  # 103 characters, 303 UTF-8 bytes
    with pytest.raises(InputError, match="is 303 bytes long"):
        name_lengths.check_name_lengths(Path("/data") / name, "output transform")
    monkeypatch.setattr(name_lengths, "_WINDOWS", True)
    name_lengths.check_name_lengths(Path("/data") / name, "output transform")  # 108 units with T.json beside it
    with pytest.raises(InputError, match="is 258 characters long"):
        name_lengths.check_name_lengths(Path("/data") / ("登" * 251 + ".h5"), "output transform")


def test_a_disk_without_file_ids_does_not_make_every_two_files_one(tmp_path, monkeypatch):
    """sshfs-win, WebDAV and some network shares on Windows give every file st_ino 0, so os.path.samefile took any
    two files for one: a rerun into an existing result was refused as destroying an input, and a folder of sections
    kept one of them (a Windows review). Imitated by zeroing st_ino in os.stat."""
    from MultimodalRegistrationLib.core.output_safety import check_outputs_apart, same_place
    from MultimodalRegistrationLib.stack.sections import find_sections

    for name in ("ct.nrrd", "mr.nrrd", "result.h5"):
        (tmp_path / name).write_bytes(name.encode())
    for index in range(3):
        sitk.WriteImage(sitk.Image([8, 8], sitk.sitkUInt8) + index, str(tmp_path / f"s{index}.png"))
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: os.stat_result((real_stat(path, *a, **k)[0], 0,
                                                                           *real_stat(path, *a, **k)[2:])))
    assert os.path.samefile(tmp_path / "ct.nrrd", tmp_path / "result.h5")  # the trouble, as such a disk shows it
    assert not same_place(tmp_path / "ct.nrrd", tmp_path / "result.h5")
    assert same_place(tmp_path / "ct.nrrd", tmp_path / "." / "ct.nrrd")
    check_outputs_apart({"fixed image": tmp_path / "ct.nrrd", "moving image": tmp_path / "mr.nrrd"},
                        {"--output-transform": tmp_path / "result.h5"})  # fmt: skip
    assert [path.name for path in find_sections(str(tmp_path / "s*.png"))] == ["s0.png", "s1.png", "s2.png"]


def test_a_path_too_long_for_windows_is_named_as_such(tmp_path, monkeypatch, capsys):
    """CPython gives Windows' 'file name exceeds range' (winerror 206) errno ENOENT, not ENAMETOOLONG: the
    too-long message never came, and the command ended in a traceback (a Windows review)."""
    from MultimodalRegistrationLib.cli import main as cli_main
    from MultimodalRegistrationLib.core.errors import EXIT_INPUT

    class WindowsError(FileNotFoundError):
        winerror = 206

    long_path = str(tmp_path / ("a" * 120) / ("b" * 150) / "result.h5")

    def handler(arguments):
        raise WindowsError(2, "The filename or extension is too long", long_path)

    monkeypatch.setattr(cli_main, "command_presets", handler)
    assert cli_main.main(["presets"]) == EXIT_INPUT
    assert "too long for this system" in capsys.readouterr().err


def _windows_will_not_delete_read_only_files(monkeypatch) -> None:
    import stat

    real_unlink = os.unlink

    def unlink(path, *, dir_fd=None):
        if not os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode & stat.S_IWUSR:
            raise PermissionError(13, "Access is denied", str(path))  # DeleteFile on a read-only file
        return real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "remove", unlink)


def test_a_read_only_earlier_output_is_replaced_as_on_other_systems(tmp_path, monkeypatch):
    """Windows will not delete a read-only file: the commit, its new files already in, failed as it dropped the
    earlier one ('this is a bug'), leaving a .replaced-* folder; a batch case's earlier result then could not be
    cleared (a Windows review). Imitated by an unlink that refuses files without write permission."""
    from MultimodalRegistrationLib.core import removal, replaced
    from MultimodalRegistrationLib.core.files import OutputSet
    from MultimodalRegistrationLib.process.case_results import clear, recover_earlier, set_aside

    monkeypatch.setattr(replaced, "_WINDOWS", True)  # earlier files are moved aside, as on Windows
    monkeypatch.setattr(removal, "_WINDOWS", True)
    _windows_will_not_delete_read_only_files(monkeypatch)
    (tmp_path / "T.h5").write_text("earlier")
    (tmp_path / "T.json").write_text("earlier")
    (tmp_path / "T.h5").chmod(0o444)
    with OutputSet() as staged:
        for name in ("T.h5", "T.json"):
            staged.write(tmp_path / name, lambda tmp, name=name: Path(tmp).write_text(f"new {name}"))
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == {"T.h5": "new T.h5", "T.json": "new T.json"}

    case = tmp_path / "case"
    (case / "qa_figures").mkdir(parents=True)
    for name in ("transform.h5", "qa_figures/checkerboard_after.png"):
        (case / name).write_text("earlier")
        (case / name).chmod(0o444)
    set_aside(case)
    (case / "case.json").write_text("{}")  # the rerun finished: its earlier result goes
    recover_earlier(case)
    assert sorted(path.name for path in case.iterdir()) == ["case.json"]
    (case / "transform.h5").write_text("new")
    (case / "transform.h5").chmod(0o444)
    clear(case)
    assert sorted(path.name for path in case.iterdir()) == []


def test_names_windows_holds_are_not_refused_there(tmp_path, monkeypatch):
    """The Windows name rule refuses only what Windows cannot hold: not a name that merely starts like a device, nor
    dots inside a name, nor a drive, nor '..' (a Windows review's rule, checked for over-reach)."""
    from pathlib import PureWindowsPath

    from MultimodalRegistrationLib.core import name_lengths

    monkeypatch.setattr(name_lengths, "_WINDOWS", True)
    for name in ("CONSOLE.h5", "COM10.h5", "auxiliary.nrrd", "run.1.h5", "a b (2).nii.gz", "µm 3.25.tif"):
        assert name_lengths.windows_name_trouble(name) is None, name
    name_lengths.check_windows_names(PureWindowsPath("C:/data/../out/T.h5"), "transform")
    name_lengths.check_windows_names(tmp_path / ".." / "T.h5", "transform")
    with pytest.raises(name_lengths.InputError, match="'LPT1.h5'.*device"):
        name_lengths.check_windows_names(PureWindowsPath("C:/data/LPT1.h5"), "transform")
    for device in ("CONOUT$.h5", "COM¹.nrrd"):
        assert "device" in name_lengths.windows_name_trouble(device)
    # a review: an existing folder whose name ends in a space is the user's and usable; only what is made is judged
    (tmp_path / "data ").mkdir()
    name_lengths.check_windows_names(tmp_path / "data " / "T.h5", "transform")
    with pytest.raises(name_lengths.InputError, match="'new ' cannot be written"):
        name_lengths.check_windows_names(tmp_path / "data " / "new " / "T.h5", "transform")


def test_a_windows_crash_status_is_named_and_memory_advised_where_it_fits():
    """A worker that crashed on Windows was reported as 'exit code 3221225477', with no word of memory even where
    the status means a failed allocation (a Windows review)."""
    from MultimodalRegistrationLib.process.exit_codes import exit_words

    assert exit_words(3221225477) == ("exit code 0xC0000005: an access violation", False)
    assert exit_words(0xC0000017)[1] and "out of memory" in exit_words(0xC0000017)[0]
    assert exit_words(0xE06D7363)[1] and exit_words(0xC0000409)[1]
    assert exit_words(0xC0000142) == ("exit code 0xC0000142: a Windows error status", False)
    assert exit_words(-9) == ("killed by signal 9 (the out-of-memory killer, or kill -9)", True)
    assert exit_words(-15) == ("killed by signal 15", False) and exit_words(1) == ("exit code 1", False)


SIGBREAK_AS_SIGUSR1 = """
import signal, sys
signal.SIGBREAK = signal.SIGUSR1  # Windows' Ctrl-Break, imitated where it does not exist
from MultimodalRegistrationLib.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_ctrl_break_stops_mmreg_as_sigterm_does(pair_files, tmp_path):
    """Windows: Ctrl-Break, or closing the console window, sends SIGBREAK, which mmreg did not handle: the run
    stopped without saying what it had written, its partial files left for the next run (a Windows review).
    Imitated by naming SIGUSR1 SIGBREAK: exit 143, 'terminated; nothing was written', no output left."""
    import time

    from test_signals import start_and_wait_for_the_engine

    process, scratch, lines = start_and_wait_for_the_engine(pair_files, tmp_path, mmreg=("-c", SIGBREAK_AS_SIGUSR1))
    process.send_signal(signal.SIGUSR1)
    assert process.wait(timeout=10) == 143, "".join(lines)[-2000:]
    time.sleep(0.2)  # the reader thread takes the last line
    assert "terminated; nothing was written" in "".join(lines)
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []
    assert list(scratch.iterdir()) == []


def test_a_file_that_cannot_go_leaves_the_rest_of_its_folder_to_go(tmp_path, monkeypatch):
    """A review: removing a folder with ignore_errors stopped at the first file that could not go (a picture open in a
    viewer on Windows), leaving the files after it, where shutil.rmtree had removed them."""
    from MultimodalRegistrationLib.core import removal

    monkeypatch.setattr(removal, "_WINDOWS", True)
    folder = tmp_path / "qa_figures"
    folder.mkdir()
    for name in ("a.png", "b.png", "open.png", "z.png"):
        (folder / name).write_text(name)
    real_unlink = os.unlink

    def unlink(path, *, dir_fd=None):
        if str(path).endswith("open.png"):
            raise PermissionError(13, "being used by another process", str(path))
        return real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    removal.remove_entry(folder, ignore_errors=True)
    assert sorted(path.name for path in folder.iterdir()) == ["open.png"]
    with pytest.raises(PermissionError):
        removal.remove_entry(folder / "open.png")

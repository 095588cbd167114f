"""The one harness of the benchmarks in bench/: timing, peak memory, the run's provenance, Markdown tables.

Every script measures with these, so a figure means the same in all of them:

* **timing**: ``stopwatch()`` (wall: ``time.perf_counter``; CPU: ``time.process_time``, every thread of this
  process), ``timed(fn, repeat)`` (the median of ``repeat`` calls), ``interleave(repeat, runners)`` (several
  candidates run in turn, baseline then ours, ``repeat`` rounds, so the machine's drift hits all alike) and
  ``median_run(runs, key)`` (the run of median wall, its other figures kept with it), ``Steps`` (a worker's
  time per named step);
* **a command's time and memory**: ``measure(cmd)`` runs it and returns a :class:`Measured`: wall, CPU (user +
  system of the command and of the descendants it waited for, from ``wait4``), each process's own peak RSS
  (VmHWM from /proc, sampled every 50 ms over the whole process tree), the largest sums of RSS and of PSS over
  the tree at one instant, and ``/usr/bin/time -f %M`` (the largest single process of the tree);
  ``self_peak_kb()`` is this process's own VmHWM (for a worker that reports its own peak);
* **provenance**: ``provenance(cmd)`` -- the command, the commit (``+ uncommitted changes`` when the checkout
  differs from it), the UTC date and time from the harness's import to the report, and ``machine()`` (CPUs,
  memory, Python, the load average when the run started);
* **reporting**: ``md_table(header, rows)`` (Markdown lines), ``mb(kb)``, ``say(msg)`` (progress on stderr).

A child process's ``ru_maxrss`` is not used for memory: it also counts the memory of the process that forked it,
up to the exec (the kernel records the old address space's high-water mark at exec, and with vfork that is the
parent's), so measured straight from a Python parent it would include the parent. VmHWM from /proc does not have
that problem, and ``/usr/bin/time`` forks from a small process. Standard library only: a worker process can
import it without slowing its own start.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_S = 0.05  # the memory sampler's period
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None  # Debian package `time`
STARTED = time.time()
LOAD_AT_START = os.getloadavg()


def say(msg: str) -> None:
    """Progress, on stderr (stdout is the report)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def mb(kb: float) -> float:
    return kb / 1024


# --- timing ----------------------------------------------------------------------------------------------------

@dataclass
class Stopwatch:
    wall_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of this process (all its threads), not of its children
    _w0: float = field(default_factory=time.perf_counter, repr=False)
    _c0: float = field(default_factory=time.process_time, repr=False)

    def lap(self) -> float:
        """Wall time since the start, while it runs (a figure taken part-way)."""
        return time.perf_counter() - self._w0


@contextmanager
def stopwatch():
    """``with stopwatch() as t: ...``; then ``t.wall_s`` and ``t.cpu_s`` (``t.lap()`` inside the block)."""
    t = Stopwatch()
    try:
        yield t
    finally:
        t.wall_s, t.cpu_s = time.perf_counter() - t._w0, time.process_time() - t._c0


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[Stopwatch, object]:
    """(median wall and median CPU of ``repeat`` calls of ``fn``, the last call's result)."""
    walls, cpus, out = [], [], None
    for _ in range(max(repeat, 1)):
        with stopwatch() as t:
            out = fn()
        walls.append(t.wall_s)
        cpus.append(t.cpu_s)
    return Stopwatch(statistics.median(walls), statistics.median(cpus)), out


class Steps:
    """Wall time per named step of a worker: ``with steps("read"): ...``; then ``steps.timings`` (seconds,
    rounded to ``digits``), in the order the steps ran."""

    def __init__(self, digits: int = 3) -> None:
        self.digits = digits
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        w0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - w0, self.digits)


def interleave(repeat: int, runners: Sequence[tuple[str, Callable[[int], object]]]) -> dict[str, list]:
    """``repeat`` rounds, each running every ``(label, fn)`` in turn as ``fn(round)``: baseline and ours measured
    alternately, so a slower hour of the machine weighs on both. Returns label -> results, in round order."""
    out: dict[str, list] = {label: [] for label, _ in runners}
    for n in range(repeat):
        for label, fn in runners:
            out[label].append(fn(n))
    return out


def median_run(runs: Iterable, key: Callable[[object], float] = lambda r: r.wall_s):
    """The run whose ``key`` (default: wall time) is the median (the upper one of an even count), whole: its
    memory and detail stay those of the same run."""
    ordered = sorted(runs, key=key)
    return ordered[len(ordered) // 2]


def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


# --- a command's time and memory ----------------------------------------------------------------------------------

@dataclass
class ProcPeak:
    pid: int
    ppid: int
    cmd: str
    hwm_kb: int = 0  # VmHWM: the process's own peak RSS (kernel high-water mark), as last seen
    rss_max_kb: int = 0  # largest VmRSS sampled
    anon_max_kb: int = 0  # largest RssAnon sampled (private heap: RSS minus mapped files and shmem)


@dataclass
class Measured:
    wall_s: float
    returncode: int
    stdout: str
    stderr: str
    procs: list[ProcPeak]  # procs[0] is the command's own process, then its descendants
    tree_peak_kb: int  # largest sampled sum of VmRSS over the tree
    tree_pss_peak_kb: int  # largest sampled sum of Pss (shared pages split between the processes mapping them)
    maxrss_kb: int  # /usr/bin/time %M (else os.wait4 ru_maxrss): the largest single process of the tree
    samples: int
    cpu_s: float = 0.0  # user + system CPU of the command and of the descendants it waited for

    def peak_kb(self, match: str) -> int:
        """The largest own peak of the descendants whose command line contains ``match``."""
        return max(self.peaks_kb(match), default=0)

    def peaks_kb(self, match: str) -> list[int]:
        """The own peaks of the descendants whose command line contains ``match``."""
        return [p.hwm_kb for p in self.procs[1:] if match in p.cmd]

    @property
    def root_kb(self) -> int:
        return self.procs[0].hwm_kb if self.procs else 0

    @property
    def largest_kb(self) -> int:
        """The largest single process's own peak, from the samples."""
        return max((p.hwm_kb for p in self.procs), default=0)

    @property
    def sum_of_peaks_kb(self) -> int:
        """Each process's own peak, summed: an upper bound of the tree's simultaneous peak."""
        return sum(p.hwm_kb for p in self.procs)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _fields_kb(text: str, names: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in names:
            out[key] = int(rest.split()[0])
    return out


def _process_tree(root: int) -> list[tuple[int, int]]:
    """(pid, ppid) of ``root`` and every process below it (no /proc/<pid>/task/<tid>/children here)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat")
        if stat is None:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [(root, 0)]
    while todo:
        pid, ppid = todo.pop()
        out.append((pid, ppid))
        todo.extend((c, pid) for c in children.get(pid, ()))
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


class TreeSampler(threading.Thread):
    """Every SAMPLE_S, the memory of every process under ``root`` (``skip``: a wrapper not to count)."""

    def __init__(self, root: int, skip: int | None = None) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.skip = skip
        self.stop = threading.Event()
        self.procs: dict[int, ProcPeak] = {}
        self.tree_peak_kb = 0
        self.tree_pss_peak_kb = 0
        self.samples = 0

    def sample(self) -> None:
        rss_total = pss_total = 0
        for pid, ppid in _process_tree(self.root):
            if pid == self.skip:
                continue
            status = _read(f"/proc/{pid}/status")
            kb = _fields_kb(status, ("VmRSS", "VmHWM", "RssAnon")) if status else {}
            if "VmRSS" not in kb:  # gone, or a zombie waiting to be reaped
                continue
            p = self.procs.get(pid)
            if p is None:
                p = self.procs[pid] = ProcPeak(pid, ppid, _cmdline(pid))
            elif p.cmd == self.procs.get(ppid, p).cmd:  # first seen between fork and exec: its parent's command
                p.cmd = _cmdline(pid)
            p.hwm_kb = max(p.hwm_kb, kb["VmHWM"])
            p.rss_max_kb = max(p.rss_max_kb, kb["VmRSS"])
            p.anon_max_kb = max(p.anon_max_kb, kb.get("RssAnon", 0))
            rss_total += kb["VmRSS"]
            rollup = _read(f"/proc/{pid}/smaps_rollup")
            pss_total += _fields_kb(rollup, ("Pss",)).get("Pss", 0) if rollup else 0
        self.tree_peak_kb = max(self.tree_peak_kb, rss_total)
        self.tree_pss_peak_kb = max(self.tree_pss_peak_kb, pss_total)
        self.samples += 1

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(SAMPLE_S)


def measure(cmd: list[str], *, env: dict[str, str] | None = None, stdout_to_null: bool = False,
            cwd: Path = ROOT) -> Measured:
    """Run ``cmd``, timing it and sampling its process tree's memory until it exits.

    The command runs under ``/usr/bin/time -f %M`` when that exists (see the module docstring: a child's
    ``ru_maxrss`` measured straight from this process would include this process)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".time") as maxrss_file, open(os.devnull, "wb") as null:
        full = [TIME, "-f", "%M", "-o", maxrss_file.name, *cmd] if TIME else cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=null if stdout_to_null else out, stderr=err, env=env, cwd=cwd)
        sampler = TreeSampler(proc.pid, skip=proc.pid if TIME else None)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; tell Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        maxrss = usage.ru_maxrss
        if TIME:
            text = Path(maxrss_file.name).read_text().strip().splitlines()
            maxrss = int(text[-1]) if text and text[-1].isdigit() else 0
    root = next((p.pid for p in sampler.procs.values() if p.ppid == proc.pid), proc.pid) if TIME else proc.pid
    procs = sorted(sampler.procs.values(), key=lambda p: (p.pid != root, p.pid))
    return Measured(wall, proc.returncode, stdout, stderr, procs, sampler.tree_peak_kb, sampler.tree_pss_peak_kb,
                    maxrss, sampler.samples, usage.ru_utime + usage.ru_stime)


def self_peak_kb() -> int:
    """This process's peak RSS (the kernel's high-water mark of its own address space, VmHWM)."""
    status = _read("/proc/self/status")
    kb = _fields_kb(status, ("VmHWM",)) if status else {}
    if "VmHWM" in kb:
        return kb["VmHWM"]
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB (may include the forking parent)


def warm(paths: Iterable[Path]) -> None:
    """Read each file once, so every path measured starts with it in the page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


# --- provenance ----------------------------------------------------------------------------------------------------

def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()


def head_commit() -> str:
    """The checkout's commit (short)."""
    return _git("rev-parse", "--short", "HEAD")


def commit() -> str:
    """The commit, with ``+ uncommitted changes`` when tracked files differ from it."""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return head_commit() + (" + uncommitted changes" if dirty else "")


def when() -> str:
    """UTC date and time from the harness's import to now, e.g. ``2026-12-07 09:10-09:14 UTC``."""
    start, end = time.gmtime(STARTED), time.gmtime()
    span = time.strftime("%Y-%m-%d %H:%M", start)
    if time.strftime("%Y-%m-%d", end) != time.strftime("%Y-%m-%d", start):
        return f"{span} to {time.strftime('%Y-%m-%d %H:%M', end)} UTC"
    later = time.strftime("%H:%M", end)
    return f"{span}{'–' + later if later != span[-5:] else ''} UTC"


def machine() -> str:
    """CPUs, memory, Python and the load average when the run started (the machine is shared: a high load
    slows every path measured)."""
    model = next((line.split(":", 1)[1].strip() for line in (_read("/proc/cpuinfo") or "").splitlines()
                  if line.startswith("model name")), platform.machine())
    mem = _fields_kb(_read("/proc/meminfo") or "", ("MemTotal",)).get("MemTotal", 0)
    return (f"{os.cpu_count()} CPUs ({model}), {mem / 2**20:.1f} GiB RAM, Python {platform.python_version()}, "
            f"load {LOAD_AT_START[0]:.1f} at start")


def command(script: str, argv: Sequence[str] | None = None) -> str:
    """``python bench/<script> <args>`` as the run was called (``argv``: its arguments, default sys.argv[1:])."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", f"bench/{Path(script).name}", *([shlex.join(args)] if args else [])])


def provenance(cmd: str) -> str:
    """One Markdown line: the command, the commit, the date and the machine."""
    return f"`{cmd}` at {commit()}, {when()}; {machine()}."


# --- reporting ---------------------------------------------------------------------------------------------------

def md_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> list[str]:
    """A Markdown table's lines; ``align``: one letter a column, ``l`` (default) or ``r``."""
    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]

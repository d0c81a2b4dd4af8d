"""Issue 29: two fwtool processes never corrupt each other. Real processes, bounded in time; no sleep-based races:
the test holds the lock itself, starts the contenders, waits for each one's own "Blocking: waiting for the lock"
line, then lets go — so the processes are known to overlap every run."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fwtool.core import locks
from fwtool.core.errors import Busy, Exit

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HOLD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from fwtool.core import locks
    with locks.hold(Path(sys.argv[1]), "the test thing", wait=sys.argv[2] == "wait"):
        print("acquired", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
""")


def start(*args, stdin=subprocess.PIPE, env=None):
    return subprocess.Popen([sys.executable, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env or ENV, cwd=ROOT)


def until_line(stream, word: str, limit: int = 400) -> str:
    """Read lines until one contains ``word`` (the contender's own event), at most ``limit`` lines."""
    for _ in range(limit):
        line = stream.readline()
        if not line:
            break
        if word in line:
            return line
    raise AssertionError(f"no line with {word!r}")


def test_second_process_waits_naming_the_holder_then_gets_the_lock(tmp_path):
    lock = tmp_path / "x.lock"
    first = start("-c", HOLD, str(lock), "wait")
    try:
        assert first.stdout.readline().strip() == "acquired"
        second = start("-c", HOLD, str(lock), "wait")
        line = until_line(second.stderr, "Blocking")
        assert f"pid {first.pid}" in line and "the test thing" in line
        first.stdin.write("\n")
        first.stdin.flush()
        assert second.stdout.readline().strip() == "acquired"
        second.stdin.write("\n")
        second.stdin.flush()
        assert second.wait(30) == 0 and first.wait(30) == 0
    finally:
        for p in (first,):
            p.kill()


def test_no_wait_fails_at_once_with_exit_11_naming_the_holder(tmp_path):
    lock = tmp_path / "x.lock"
    first = start("-c", HOLD, str(lock), "wait")
    try:
        assert first.stdout.readline().strip() == "acquired"
        with pytest.raises(Busy) as e:
            with locks.hold(lock, "the test thing", wait=False):
                pass
        assert e.value.code == Exit.BUSY == 11 and f"pid {first.pid}" in e.value.cause
    finally:
        first.kill()
        first.wait(30)


def test_a_killed_holders_lock_is_taken_over(tmp_path):
    lock = tmp_path / "x.lock"
    first = start("-c", HOLD, str(lock), "wait")
    assert first.stdout.readline().strip() == "acquired"
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert f"pid {first.pid}" in lock.read_text()  # its record is left behind...
    events = []
    with locks.hold(lock, "the test thing", wait=False, on_event=events.append):  # ...but never blocks anyone
        assert f"pid {os.getpid()}" in lock.read_text()
    assert events == ["took-over", "acquired"]
    assert not lock.exists()  # a clean release leaves nothing behind


def test_the_same_process_re_enters_its_own_lock(tmp_path):
    lock = tmp_path / "x.lock"
    with locks.hold(lock, "outer", wait=False):
        with locks.hold(lock, "inner (the build inside 'fwtool run')", wait=False):
            pass


# ---- vendor sync of one tree by two processes ------------------------------------------------------------------
def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


SYNC = textwrap.dedent("""
    import sys
    from fwtool.core import vendor
    dep = vendor.Dep("demo-tree", sys.argv[1], sys.argv[2], "1.0", "FWTOOL_DEMO_TREE_PATH", (), "examples", ())
    print(vendor.sync(dep, force=True), flush=True)
""")


@pytest.fixture
def tiny_repo(tmp_path):
    repo = tmp_path / "upstream"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    git("config", "user.email", "t@t", cwd=repo)
    git("config", "user.name", "t", cwd=repo)
    (repo / "a.txt").write_text("one\n")
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "one", cwd=repo)
    return repo, git("rev-parse", "HEAD", cwd=repo)


def test_two_forced_syncs_of_one_tree_both_succeed_with_a_verified_tree(tiny_repo, tmp_path):
    from fwtool.core import vendor

    repo, rev = tiny_repo
    env = {**ENV, "FWTOOL_CACHE_DIR": str(tmp_path / "cache"), "FWTOOL_CONFIG": str(tmp_path / "none.toml")}
    final = tmp_path / "cache" / "vendor" / f"demo-tree-{rev[:12]}"
    lock = locks.sibling_lock(final)
    with locks.hold(lock, "the tree (held by the test)"):
        procs = [start("-c", SYNC, repo.as_uri(), rev, env=env) for _ in range(2)]
        for p in procs:  # both are known to be waiting for the same tree
            until_line(p.stderr, "Blocking")
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all(o[0].strip() == str(final) for o in outs)
    assert (final / vendor.MARKER).read_text().strip().startswith(rev)
    assert git("rev-parse", "HEAD", cwd=final) == rev and (final / "a.txt").read_text() == "one\n"
    assert not final.with_name(final.name + ".partial").exists()


def test_sigterm_during_sync_leaves_nothing_that_looks_current(tiny_repo, tmp_path):
    repo, rev = tiny_repo
    env = {**ENV, "FWTOOL_CACHE_DIR": str(tmp_path / "cache"), "FWTOOL_CONFIG": str(tmp_path / "none.toml")}
    final = tmp_path / "cache" / "vendor" / f"demo-tree-{rev[:12]}"
    with locks.hold(locks.sibling_lock(final), "the tree (held by the test)"):
        p = start("-c", SYNC, repo.as_uri(), rev, env=env)
        until_line(p.stderr, "Blocking")
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    assert p.returncode != 0 and not final.exists()


# A git that stops before 'checkout' (the fetched objects are in the partial tree, the files not yet): it sends its
# pid through one FIFO and waits on another, so the test signals the sync while it is known to be mid-work.
PAUSING_GIT = """#!/bin/sh
case " $* " in
  *" checkout "*) echo $$ > "$GIT_PAUSED"; read x < "$GIT_RESUME" ;;
esac
exec "$REAL_GIT" "$@"
"""


def _paused_sync(tmp_path, repo, rev, env):
    import shutil
    import threading

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "git").write_text(PAUSING_GIT)
    (bin_dir / "git").chmod(0o755)
    paused, resume = tmp_path / "paused.fifo", tmp_path / "resume.fifo"
    for f in (paused, resume):
        f.unlink(missing_ok=True)
        os.mkfifo(f)
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "REAL_GIT": shutil.which("git"),
           "GIT_PAUSED": str(paused), "GIT_RESUME": str(resume)}
    p = start("-c", SYNC, repo.as_uri(), rev, env=env)
    got = []
    reader = threading.Thread(target=lambda: got.append(paused.read_text().strip()), daemon=True)
    reader.start()
    reader.join(60)
    assert got and got[0].isdigit(), "git never reached its checkout"
    return p, int(got[0])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("had_tree", [False, True], ids=["first-sync", "forced-re-sync"])
def test_a_signal_during_a_sync_leaves_no_half_synced_tree_taken_as_good(sig, had_tree, tiny_repo, tmp_path):
    """Signalled while git has fetched into the partial checkout but not checked out: the cache has either no tree
    for the commit (first sync) or the previous verified tree intact (a forced re-sync), never the partial one;
    the next sync works."""
    from fwtool.core import vendor

    repo, rev = tiny_repo
    env = {**ENV, "FWTOOL_CACHE_DIR": str(tmp_path / "cache"), "FWTOOL_CONFIG": str(tmp_path / "none.toml")}
    final = tmp_path / "cache" / "vendor" / f"demo-tree-{rev[:12]}"
    if had_tree:
        assert subprocess.run([sys.executable, "-c", SYNC, repo.as_uri(), rev], env=env, cwd=ROOT,
                              capture_output=True, timeout=120).returncode == 0
    p, git_pid = _paused_sync(tmp_path, repo, rev, env)
    try:
        assert final.with_name(final.name + ".partial").is_dir()  # mid-work, really
        p.send_signal(sig)
        p.communicate(timeout=60)
    finally:
        p.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(git_pid, signal.SIGKILL)  # the paused git a SIGTERMed sync could not stop
    assert p.returncode != 0
    if had_tree:
        assert (final / vendor.MARKER).read_text().strip().startswith(rev) and (final / "a.txt").read_text() == "one\n"
    else:
        assert not final.exists()
    dep = vendor.Dep("demo-tree", repo.as_uri(), rev, "1.0", "FWTOOL_DEMO_TREE_PATH", (), "examples", ())
    done = subprocess.run([sys.executable, "-c", SYNC, repo.as_uri(), rev], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert git("rev-parse", "HEAD", cwd=final) == rev and (final / vendor.MARKER).read_text().strip() == dep.stamp
    assert not final.with_name(final.name + ".partial").exists() and not final.with_name(final.name + ".old").exists()


# ---- cache files: a reader never sees half an entry ------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from fwtool.core.files import write_json
    print("start", flush=True)
    for i in range(300):
        write_json(Path(sys.argv[1]), {"i": i, "pad": "x" * 20000})
    print("done", flush=True)
""")


def test_a_cache_entry_written_while_another_process_reads_is_never_half_seen(tmp_path):
    from fwtool.core.files import read_json, write_json

    entry = tmp_path / "entry.json"
    write_json(entry, {"i": -1, "pad": ""})
    w = start("-c", WRITER, str(entry))
    assert w.stdout.readline().strip() == "start"
    seen = set()
    while w.poll() is None:
        v = read_json(entry)
        assert isinstance(v, dict) and set(v) == {"i", "pad"}, v  # never None (half a file) or torn
        seen.add(v["i"])
    assert w.wait(30) == 0 and read_json(entry)["i"] == 299


# ---- two builds into one folder --------------------------------------------------------------------------------
def model_in_image(out: Path, models: dict[str, bytes]) -> tuple[str, str]:
    """(the model report.json names, the model whose bytes firmware.bin embeds)."""
    report = json.loads((out / "report.json").read_text())
    image = (out / "firmware.bin").read_bytes()
    embedded = [name for name, data in models.items() if data in image]
    sha = report["model"]["sha256"]
    named = [name for name, data in models.items() if hashlib.sha256(data).hexdigest() == sha]
    return named[0], embedded[0] if len(embedded) == 1 else repr(embedded)


def test_two_builds_into_one_folder_give_a_report_and_image_of_the_same_model(tmp_path, real_build_reason):
    if real_build_reason:
        pytest.skip(real_build_reason)
    from modelgen import tiny_fc_model, two_in_two_out_model

    models = {"tiny": tiny_fc_model(), "two": two_in_two_out_model()}
    paths = {}
    for name, data in models.items():
        paths[name] = tmp_path / f"{name}.tflite"
        paths[name].write_bytes(data)
    out = tmp_path / "same"
    out.mkdir()
    env = {**ENV, "FWTOOL_CACHE_DIR": os.environ.get("FWTOOL_CACHE_DIR", "")} if os.environ.get(
        "FWTOOL_CACHE_DIR") else ENV
    with locks.hold(locks.folder_lock(out), "the build folder (held by the test)"):
        procs = {n: start("-m", "fwtool", "build", "-b", "pico", "-m", str(p), "--out", str(out), "--arena", "4096",
                          "--tflm-cores", "1", "--json", stdin=subprocess.DEVNULL, env=env)
                 for n, p in paths.items()}
        for p in procs.values():
            until_line(p.stderr, "Blocking")
    results = {n: p.communicate(timeout=600) for n, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values()), {n: r[1][-2000:] for n, r in results.items()}
    for n, (stdout, _) in results.items():  # each process reported the model it was given
        assert json.loads(stdout)["model"]["sha256"] == hashlib.sha256(models[n]).hexdigest()
    named, embedded = model_in_image(out, models)
    assert named == embedded, (named, embedded)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_build_leaves_nothing_that_looks_current(sig, tmp_path, real_build_reason):
    """Interrupted while CMake configures (its first line is the event): an earlier image/report in the folder is
    gone, no new one appears, and the folder's lock is free for the next build at once."""
    if real_build_reason:
        pytest.skip(real_build_reason)
    from modelgen import tiny_fc_model

    model = tmp_path / "tiny.tflite"
    model.write_bytes(tiny_fc_model())
    out = tmp_path / "out"
    out.mkdir()
    for stale in ("firmware.uf2", "firmware.bin", "report.json"):  # what an earlier build left
        (out / stale).write_text("old")
    p = start("-m", "fwtool", "build", "-b", "pico", "-m", str(model), "--out", str(out), "--arena", "4096", "-v",
              stdin=subprocess.DEVNULL)
    until_line(p.stderr, "PICO_SDK_PATH is")
    p.send_signal(sig)
    p.communicate(timeout=120)
    assert p.returncode == (int(Exit.INTERRUPTED) if sig == signal.SIGINT else -signal.SIGTERM)
    left = sorted(f.name for f in out.iterdir() if f.name.startswith("firmware.") or f.name == "report.json")
    assert left == []
    with locks.hold(locks.folder_lock(out), "the folder after the signal", wait=False):
        pass


def test_default_folders_of_different_models_and_options_do_not_collide(tmp_path):
    """What a CI matrix of validations in one checkout relies on (the parallel run itself: docs/concurrency.md)."""
    from fwtool.firmware.outdir import default_out_dir

    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    a.write_bytes(b"model a")
    b.write_bytes(b"model b")
    folders = {default_out_dir("pico", "validate-emu", model=m, arena=arena, cores=1, inputs=vec)
               for m in (a, b) for arena in (None, 40000) for vec in (b"\x00", b"\x01")}
    assert len(folders) == 8 and all(f.name.startswith("pico-validate-emu-") for f in folders)
    assert default_out_dir("pico", "validate-emu", model=a, inputs=b"\x00") == \
        default_out_dir("pico", "validate-emu", model=a, inputs=b"\x00")  # the same job reuses its folder
    assert default_out_dir("pico") == Path("build/pico")  # fwtool build's own default is unchanged

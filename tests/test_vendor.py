"""fwtool vendor: exact-commit shallow sync from a (local) git URL, verification, overrides, interruption."""
import re
import subprocess
from pathlib import Path

import pytest

from fwtool.core import config, vendor
from fwtool.core.errors import FwtoolError, MissingTool
from fwtool.model.tflite import tflm_ops


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def upstream(tmp_path):
    """A repository with two commits; the manifest pins the first."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    git("config", "user.email", "t@t", cwd=repo)
    git("config", "user.name", "t", cwd=repo)
    (repo / "keep.txt").write_text("v1\n")
    (repo / "big").mkdir()
    (repo / "big" / "blob.bin").write_bytes(b"x" * 1000)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "one", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo)
    (repo / "keep.txt").write_text("v2\n")
    git("commit", "-qam", "two", cwd=repo)
    return repo, first


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FWTOOL_CONFIG", str(tmp_path / "config.toml"))
    config.load.cache_clear()
    yield tmp_path
    config.load.cache_clear()


def dep(url, rev, exclude=("big",)):
    return vendor.Dep("demo", str(url), rev, "1.0", "FWTOOL_DEMO_PATH", ("rp2040",), "build", tuple(exclude))


def test_sync_fetches_exactly_the_pinned_commit(upstream, env, monkeypatch):
    repo, first = upstream
    d = dep(repo, first)
    assert vendor.locate(d).source == "missing"
    monkeypatch.setenv("FWTOOL_OFFLINE", "1")  # offline: no first-use fetch, the error names the exact command
    with pytest.raises(MissingTool, match="not in the cache") as e:
        vendor.require(d)
    assert "fwtool vendor sync demo" in e.value.fix and "FWTOOL_DEMO_PATH" in e.value.fix
    path = vendor.sync(d)
    assert (path / "keep.txt").read_text() == "v1\n"  # the pinned commit, not the branch tip
    assert not (path / "big").exists()  # excluded paths are not checked out
    assert git("rev-parse", "HEAD", cwd=path) == first
    assert git("rev-parse", "--is-shallow-repository", cwd=path) == "true"
    loc = vendor.locate(d)
    assert (loc.source, loc.path, loc.pinned) == ("cache", path, True)
    assert not path.with_name(path.name + ".partial").exists()
    # re-running is a no-op
    assert vendor.sync(d) == path


def test_unknown_commit_fails_and_leaves_nothing(upstream, env):
    repo, _ = upstream
    d = dep(repo, "0" * 40)
    with pytest.raises(FwtoolError, match="git fetch failed"):
        vendor.sync(d)
    assert not d.cache_path.exists() and not d.cache_path.with_name(d.cache_path.name + ".partial").exists()


def test_interrupted_sync_is_redone(upstream, env):
    repo, first = upstream
    d = dep(repo, first)
    partial = d.cache_path.with_name(d.cache_path.name + ".partial")
    partial.mkdir(parents=True)
    (partial / "junk").write_text("half a clone")
    d.cache_path.mkdir()
    (d.cache_path / "stale").write_text("no marker: incomplete")
    assert vendor.locate(d).source == "missing"
    path = vendor.sync(d)
    assert (path / "keep.txt").is_file() and not (path / "stale").exists() and not partial.exists()


def test_env_and_config_overrides(upstream, env, monkeypatch, tmp_path):
    repo, first = upstream
    d = dep(repo, first)
    (tmp_path / "config.toml").write_text(f'[vendor.demo]\npath = "{repo}"\n')
    config.load.cache_clear()
    loc = vendor.locate(d)
    assert loc.source == "config" and loc.path == repo and not loc.pinned  # repo HEAD is the second commit
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("FWTOOL_DEMO_PATH", str(other))
    assert vendor.locate(d).source == "env" and vendor.locate(d).path == other
    monkeypatch.setenv("FWTOOL_DEMO_PATH", str(tmp_path / "absent"))
    with pytest.raises(MissingTool, match="not found at"):
        vendor.require(d)


def test_config_url_mirror(upstream, env, tmp_path):
    repo, first = upstream
    d = dep("https://example.invalid/none.git", first)
    (tmp_path / "config.toml").write_text(f'[vendor.demo]\nurl = "{repo}"\n')
    config.load.cache_clear()
    assert (vendor.sync(d) / "keep.txt").read_text() == "v1\n"


def test_manifest_pins():
    m = vendor.manifest()
    assert m["pico-sdk"].rev.startswith("a1438dff") and m["pico-sdk"].version == "2.2.0"
    assert m["tinyusb"].rev.startswith("86ad6e56c") and m["pico-tflmicro"].rev.startswith("dfea53b")
    assert all(len(d.rev) == 40 for d in m.values())
    assert m["pico-sdk"].env == "PICO_SDK_PATH" and m["tinyusb"].env == "PICO_TINYUSB_PATH"


def test_sync_command_keeps_going_and_fails_at_the_end(upstream, env, monkeypatch):
    from click.testing import CliRunner

    from fwtool.cli import cli

    repo, first = upstream
    bad = dep(repo, "1" * 40)
    good = vendor.Dep("demo2", str(repo), first, "1.0", "FWTOOL_DEMO2_PATH", ("rp2040",), "build", ())
    monkeypatch.setattr(vendor, "manifest", lambda: {"demo": bad, "demo2": good})
    r = CliRunner().invoke(cli, ["vendor", "sync"])
    assert isinstance(r.exception, FwtoolError) and "1 of 2 tree(s) could not be synced" in r.exception.cause
    assert vendor.locate(good).source == "cache"  # the second tree was still fetched
    assert vendor.locate(bad).source == "missing"


def _code(text: str) -> list[str]:
    """C/C++ without comments and blank lines; pico-tflmicro's sync writes ``defined(ARDUINO)`` where TFLM has
    ``defined(CMSIS_NN)`` (both are defined in every fwtool build, rp2040.TFLM_DEFINES)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text).replace("defined(ARDUINO)", "defined(CMSIS_NN)")
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()]


def test_reference_kernels_from_other_trees_match_pico_tflmicro_headers():
    """A ``<tree>:<path>`` kernel (tflm_ops.toml: the reference LSTM from tflite-micro) is compiled against
    pico-tflmicro's headers and helper sources: its own header and the kernels/ headers it includes, and the
    sources implementing the headers only this op's kernels use (lstm_eval.cc, lstm_eval_common.cc; shared
    helpers such as kernel_util are pico-tflmicro's for every kernel), must be pico-tflmicro's code, comments
    aside. An upgrade of either pin that breaks this fails here, not as a silent mismatch on the board."""
    pins = vendor.manifest()
    pico = vendor.locate(pins["pico-tflmicro"]).path
    external = {op: e["kernel"] for op, e in tflm_ops().items() if ":" in e["kernel"]}
    assert external.get("UNIDIRECTIONAL_SEQUENCE_LSTM", "").startswith("tflite-micro:")
    for op, kernel in external.items():
        tree_name, rel = kernel.split(":", 1)
        tree = vendor.locate(pins[tree_name]).path
        if pico is None or tree is None:
            pytest.skip("pico-tflmicro / tflite-micro trees not synced (fwtool vendor sync)")
        src = tree / rel
        kdir = "tensorflow/lite/micro/kernels/"
        headers = {f"{kdir}{Path(rel).stem}.h"} | set(re.findall(rf'#include "({kdir}[\w/]+\.h)"', src.read_text()))
        pairs = [(h, h) for h in headers]
        kernels = [f for f in (pico / "src" / kdir).rglob("*.cpp") if "TFLMRegistration Register_" in f.read_text()]
        for h in headers:
            users = [f for f in kernels if f'#include "{h}"' in f.read_text()]
            if any(f.stem != Path(rel).stem for f in users):
                continue  # a helper other kernels share (kernel_util, fully_connected)
            for cc in sorted((tree / Path(h).parent).glob(f"{Path(h).stem}*.cc")):  # the sources implementing it
                ref = cc.relative_to(tree).as_posix()
                if cc.stem.endswith("_test") or "TFLMRegistration Register_" in cc.read_text():
                    continue
                pairs.append((ref, ref[:-len(".cc")] + ".cpp"))
        assert any(r.endswith("lstm_eval.cc") for r, _ in pairs) or op != "UNIDIRECTIONAL_SEQUENCE_LSTM"
        for ref, ours in pairs:
            mine = pico / "src" / ours
            assert mine.is_file(), f"{op}: pico-tflmicro has no {ours} (the reference kernel needs it)"
            assert _code((tree / ref).read_text()) == _code(mine.read_text()), \
                f"{op}: {tree_name}'s {ref} and pico-tflmicro's {ours} differ beyond comments"

"""fwtool vendor: exact-commit shallow sync from a (local) git URL, verification, overrides, interruption."""
import subprocess

import pytest

from fwtool.core import config, vendor
from fwtool.core.errors import FwtoolError, MissingTool


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


def test_sync_fetches_exactly_the_pinned_commit(upstream, env):
    repo, first = upstream
    d = dep(repo, first)
    assert vendor.locate(d).source == "missing"
    with pytest.raises(MissingTool, match="not in the cache") as e:
        vendor.require(d)
    assert "fwtool vendor sync" in e.value.fix and "FWTOOL_DEMO_PATH" in e.value.fix
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

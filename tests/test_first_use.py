"""Trees on first use (issue 20): a command that needs a pinned tree not in the cache fetches it (here from a
throw-away file:// repository), and --offline gives one error line with the exact command that fetches it."""
import hashlib
import subprocess

import pytest

from fwtool import cli
from fwtool.core import config, vendor
from fwtool.core.errors import Exit
from fwtool.model import examples
from modelgen import tiny_fc_model

MODEL = tiny_fc_model()


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """A tiny upstream repo holding a model as a C array header, pinned by a test manifest entry and catalog."""
    repo = tmp_path / "upstream"
    (repo / "src").mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    git("config", "user.email", "t@t", cwd=repo)
    git("config", "user.name", "t", cwd=repo)
    rows = ", ".join(f"0x{b:02x}" for b in MODEL)
    (repo / "src" / "model.h").write_text(f"alignas(8) const unsigned char demo_model[] = {{{rows}}};\n")
    (repo / "LICENSE").write_text("MIT\n")
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "one", cwd=repo)
    rev = git("rev-parse", "HEAD", cwd=repo)
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "cache"))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[vendor.demo-tree]\nurl = "{repo.as_uri()}"\n')
    monkeypatch.setenv("FWTOOL_CONFIG", str(cfg))
    monkeypatch.delenv("FWTOOL_OFFLINE", raising=False)
    config.load.cache_clear()
    dep = vendor.Dep("demo-tree", "https://example.invalid/demo.git", rev, "1.0", "FWTOOL_DEMO_TREE_PATH", (),
                     "examples", (), "MIT")
    monkeypatch.setattr(vendor, "manifest", lambda: {"demo-tree": dep})
    ex = examples.Example("demo", "demo-tree", "src/model.h", hashlib.sha256(MODEL).hexdigest(), "a demo", "inference")
    monkeypatch.setattr(examples, "catalog", lambda: {"demo": ex})
    yield dep
    vendor.set_offline(False)
    config.load.cache_clear()


def run(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        cli.main(list(argv))
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


def test_a_missing_tree_is_fetched_on_first_use(demo, capsys):
    assert vendor.locate(demo).source == "missing"
    code, out, err = run(capsys, "inspect", "example:demo", "--json", "--arena", "4096")
    assert code == 0, err
    assert "demo-tree 1.0: not in the cache yet; fetching it now" in err
    assert f"(commit {demo.rev[:12]} verified)" in err
    loc = vendor.locate(demo)
    assert loc.source == "cache" and git("rev-parse", "HEAD", cwd=loc.path) == demo.rev
    assert '"sha256": "' + hashlib.sha256(MODEL).hexdigest() in out  # the header's array, decoded
    code, _, err = run(capsys, "inspect", "example:demo", "--json", "--arena", "4096")
    assert code == 0 and "fetching" not in err  # second use: from the cache


@pytest.mark.parametrize("how", ["option", "env", "config"])
def test_offline_gives_one_line_with_the_exact_fix(demo, capsys, monkeypatch, tmp_path, how):
    argv = ["inspect", "example:demo"]
    if how == "option":
        argv.insert(0, "--offline")
    elif how == "env":
        monkeypatch.setenv("FWTOOL_OFFLINE", "1")
    else:
        cfg = tmp_path / "config.toml"
        cfg.write_text("offline = true\n" + cfg.read_text())
        config.load.cache_clear()
    code, out, err = run(capsys, *argv)
    assert code == int(Exit.MISSING_TOOL)
    lines = err.splitlines()
    assert lines == ["error: demo-tree 1.0 is not in the cache and fwtool is offline",
                     "  fix: run 'fwtool vendor sync demo-tree' once online (or set FWTOOL_DEMO_TREE_PATH to an "
                     "existing checkout)"]
    assert vendor.locate(demo).source == "missing"  # nothing fetched


def test_a_failed_first_use_fetch_is_tree_unavailable(demo, capsys, tmp_path):
    (tmp_path / "config.toml").write_text(f'[vendor.demo-tree]\nurl = "{(tmp_path / "gone").as_uri()}"\n')
    config.load.cache_clear()
    with pytest.raises(vendor.TreeUnavailable) as e:
        vendor.require(demo)
    assert "fetching it failed" in e.value.cause and "fwtool vendor sync demo-tree" in e.value.fix
    assert not list((tmp_path / "cache" / "vendor").glob("*"))  # no half-written tree left behind


def test_bad_offline_value_in_config_is_refused(demo, tmp_path, capsys):
    (tmp_path / "config.toml").write_text('offline = "yes"\n')
    config.load.cache_clear()
    code, _, err = run(capsys, "inspect", "example:demo")
    assert code == int(Exit.MISSING_TOOL) and "'offline' must be true or false" in err


def test_examples_lists_source_and_licence(demo, capsys):
    code, out, err = run(capsys, "examples", "--json")
    assert code == 0, err
    import json
    (row,) = json.loads(out)
    assert row["model"] == "example:demo" and row["license"] == "MIT" and row["source"]["rev"] == demo.rev
    assert row["available"] is False
    code, out, _ = run(capsys, "examples")
    assert "example:demo" in out and "licence MIT" in out and "fetched on first use" in out


def test_unknown_example_is_bad_input(demo, capsys):
    code, _, err = run(capsys, "inspect", "example:nope")
    assert code == int(Exit.BAD_INPUT) and "known: demo" in err and "fwtool examples" in err


def test_a_header_given_as_model_is_decoded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "cache"))
    h = tmp_path / "my model.h"
    h.write_text("const uint8_t g[] = {" + ", ".join(map(str, MODEL)) + "};\nconst int g_len = %d;\n" % len(MODEL))
    before = h.read_bytes()
    code, out, err = run(capsys, "inspect", str(h), "--json", "--arena", "4096")
    assert code == 0, err
    assert hashlib.sha256(MODEL).hexdigest() in out and h.read_bytes() == before
    h.write_text("const uint8_t g[] = {1, 2};\nconst uint8_t labels[] = {3};\n")
    code, _, err = run(capsys, "inspect", str(h))
    assert code == int(Exit.BAD_INPUT) and "'g', 'labels'" in err


def test_readme_build_offline_on_an_empty_cache_names_the_exact_command(tmp_path):
    """The README's build line, offline, with nothing in the cache: one error, one fix, exit 4, nothing written."""
    import os
    import sys

    env = {**os.environ, "FWTOOL_CACHE_DIR": str(tmp_path / "cache"), "FWTOOL_CONFIG": str(tmp_path / "none.toml")}
    env.pop("FWTOOL_OFFLINE", None)
    p = subprocess.run([sys.executable, "-m", "fwtool", "--offline", "build", "--board", "pico", "--model",
                        "example:fire_alarm", "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert p.returncode == int(Exit.MISSING_TOOL), p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ml-audio-classifier-example-for-pico ")
    assert "fwtool is offline" in lines[0]
    assert lines[1].startswith("  fix: run 'fwtool vendor sync ml-audio-classifier-example-for-pico' once online")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache" / "vendor").exists()

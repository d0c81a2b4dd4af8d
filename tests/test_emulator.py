"""Virtual board, Python side (always run): bootrom parsing, image loading, node/npm discovery, latency, the
single-core TFLM patch, run-failure mapping. The runner itself: tests/test_emulator_runner.py."""
import json
import os
import stat
import struct
from pathlib import Path

import pytest

import fakes_emulator as fe
from fwtool.emulator import bootrom, image, latency, node, session
from fwtool.core.errors import BadInput, Exit, FwtoolError, MissingTool

# -- bootrom.ts --------------------------------------------------------------------------------------------------


def _bootrom_words() -> list[int]:
    words = [0x20041F00, 0x000000EF, 0x00000035, 0x00000031] + [(i * 2654435761) & 0xFFFFFFFF for i in range(4092)]
    return words


def _bootrom_ts(words, per_line=8, trailing_comma=True, decimal_every=0) -> str:
    items = [str(w) if decimal_every and i % decimal_every == 0 else f"0x{w:08x}" for i, w in enumerate(words)]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n  ".join(lines) + ("," if trailing_comma else "")
    return ("// RP2040 bootrom binary, built from https://github.com/raspberrypi/pico-bootrom\n"
            "// revision: B1 (00a4a19114195e20fb817bdfbca1165e157eef37)\n\n"
            "/* a block comment with [brackets], 0x1234 */\n"
            f"export const bootromB1 = new Uint32Array([\n  {body}\n]);\n")


def test_bootrom_parse_gives_little_endian_words():
    words = _bootrom_words()
    data = bootrom.parse_bootrom_ts(_bootrom_ts(words, decimal_every=7))
    assert len(data) == 16384
    assert list(struct.unpack("<4096I", data)) == words
    assert data[:8] == bytes.fromhex("001f0420ef000000")


def test_bootrom_parse_without_trailing_comma_and_comments_inside():
    words = _bootrom_words()
    text = _bootrom_ts(words, trailing_comma=False).replace("0x00000035,", "0x00000035, // third\n", 1)
    assert struct.unpack_from("<3I", bootrom.parse_bootrom_ts(text)) == tuple(words[:3])


@pytest.mark.parametrize("mutate, message", [
    (lambda w: w[:-1], "holds 4095 bootrom words"),
    (lambda w: w + [0], "holds 4097 bootrom words"),
    (lambda w: [0x12345678] + w[1:], "RP2040 vector table"),
])
def test_bootrom_parse_rejects_wrong_content(mutate, message):
    with pytest.raises(bootrom.BootromError, match=message) as e:
        bootrom.parse_bootrom_ts(_bootrom_ts(mutate(_bootrom_words())))
    assert "fwtool vendor sync rp2040js" in e.value.fix


def test_bootrom_parse_rejects_non_numbers_and_missing_array():
    text = _bootrom_ts(_bootrom_words()).replace("0x00000031", "foo", 1)
    with pytest.raises(bootrom.BootromError, match="'foo'"):
        bootrom.parse_bootrom_ts(text)
    with pytest.raises(bootrom.BootromError, match="no 'bootromB1"):
        bootrom.parse_bootrom_ts("export const other = new Uint32Array([1, 2]);")
    with pytest.raises(bootrom.BootromError, match="32 bits"):
        bootrom.parse_bootrom_ts(_bootrom_ts(_bootrom_words()).replace("0x00000031", "0x100000000", 1))


def test_bootrom_file_from_an_overridden_tree_is_cached(tmp_path, monkeypatch):
    tree = tmp_path / "rp2040js"
    (tree / "demo").mkdir(parents=True)
    (tree / "demo" / "bootrom.ts").write_text(_bootrom_ts(_bootrom_words()))
    monkeypatch.setenv("FWTOOL_RP2040JS_PATH", str(tree))
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "cache"))
    first = bootrom.bootrom_file()
    assert first.read_bytes() == bootrom.parse_bootrom_ts((tree / "demo" / "bootrom.ts").read_text())
    assert first.parent == tmp_path / "cache" / "emulator"
    os.utime(first, (1, 1))
    assert bootrom.bootrom_file() == first and first.stat().st_mtime == 1  # not rewritten
    (tree / "demo" / "bootrom.ts").unlink()
    with pytest.raises(MissingTool, match="no demo/bootrom.ts"):
        bootrom.bootrom_file()


def test_bootrom_tree_missing_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTOOL_RP2040JS_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(MissingTool) as e:
        bootrom.bootrom_ts_path()
    assert "FWTOOL_RP2040JS_PATH" in e.value.fix and e.value.code == Exit.MISSING_TOOL


# -- images ------------------------------------------------------------------------------------------------------


def test_boot2_crc_matches_the_pico_sdk_algorithm():
    img = fe.print_then("hang")
    assert image.boot2_valid(img)
    broken = bytearray(img)
    broken[10] ^= 1
    assert not image.boot2_valid(bytes(broken))


def test_uf2_elf_hex_and_bin_give_the_same_flash(tmp_path):
    img = fe.print_then("hang") + bytes(range(256)) * 3  # 1 KiB: boot2 + data
    files = {"fw.bin": img, "fw.uf2": fe.to_uf2(img), "fw.elf": fe.to_elf([(0x10000000, img)]),
             "fw.hex": fe.to_hex(img).encode()}
    kinds = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        loaded = image.load(tmp_path / name)
        assert loaded.data[:len(img)] == img, name
        assert set(loaded.data[len(img):]) <= {0}, name  # only the UF2's page padding
        kinds[name] = loaded.kind
    assert kinds == {"fw.bin": "bin", "fw.uf2": "uf2", "fw.elf": "elf", "fw.hex": "hex"}


def test_elf_segments_go_to_their_load_address_and_gaps_are_erased_flash(tmp_path):
    boot2 = fe.print_then("hang")
    (tmp_path / "fw.elf").write_bytes(fe.to_elf([(0x10000000, boot2), (0x10001000, b"DATA")]))
    loaded = image.load(tmp_path / "fw.elf")
    assert loaded.segments == 2 and len(loaded.data) == 0x1004
    assert loaded.data[256:0x1000] == b"\xff" * (0x1000 - 256) and loaded.data[0x1000:] == b"DATA"


def test_uf2_blocks_out_of_order_are_placed_by_address(tmp_path):
    img = fe.print_then("hang") + b"\x11" * 256
    blocks = fe.to_uf2(img)
    (tmp_path / "fw.uf2").write_bytes(blocks[512:] + blocks[:512])
    assert image.load(tmp_path / "fw.uf2").data == img


@pytest.mark.parametrize("make, message", [
    (lambda: fe.to_elf([(0x20000000, fe.print_then("hang"))]), "outside flash"),
    (lambda: fe.to_elf([(0x10000000, fe.print_then("hang"))], machine=62), "not ARM"),
    (lambda: b"\x7fELF" + b"\0" * 20, "not a readable ELF"),
    (lambda: fe.to_uf2(b"\0" * 256), "valid RP2040 boot2"),
    (lambda: fe.to_uf2(fe.print_then("hang"))[:500], "not a valid UF2"),
    (lambda: fe.to_uf2(fe.print_then("hang")).replace(struct.pack("<I", 0xE48BFF56), struct.pack("<I", 0x16573617)),
     "family 0x16573617"),
    (lambda: b"\0" * 300, "valid RP2040 boot2"),
])
def test_bad_images_are_refused_with_a_reason(tmp_path, make, message):
    p = tmp_path / "fw.img"
    p.write_bytes(make())
    with pytest.raises(BadInput, match=message) as e:
        image.load(p)
    assert e.value.code == Exit.BAD_INPUT and e.value.fix


def test_missing_image_and_bad_hex(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        image.load(tmp_path / "nope.uf2")
    p = tmp_path / "fw.hex"
    p.write_text(fe.to_hex(fe.print_then("hang")).replace(":10", ":11", 1))
    with pytest.raises(BadInput, match="line 2 is not an Intel HEX record"):
        image.load(p)


# -- node / npm --------------------------------------------------------------------------------------------------


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.mark.parametrize("text, version", [("v20.20.2\n", (20, 20, 2)), ("18.0.0", (18, 0, 0)), ("node", None)])
def test_node_version_parsing(text, version):
    assert node.parse_node_version(text) == version


def test_old_or_missing_node_is_a_missing_tool_with_the_apt_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTOOL_NODE", str(_script(tmp_path / "node", "echo v16.20.0\n")))
    with pytest.raises(MissingTool, match="16.20.0 is too old") as e:
        node.find_node()
    assert "apt-get install nodejs npm" in e.value.fix and e.value.code == Exit.MISSING_TOOL
    monkeypatch.delenv("FWTOOL_NODE")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MissingTool, match="Node.js was not found"):
        node.find_node()
    monkeypatch.setenv("FWTOOL_NODE", str(_script(tmp_path / "node18", "echo v18.19.1\n")))
    assert node.find_node().version == (18, 19, 1)


FAKE_NPM = """
# fake npm: install --prefix DIR ... rp2040js@VER  -> DIR/node_modules/rp2040js + a lock file
echo "$@" >> "$FAKE_NPM_LOG"
while [ $# -gt 0 ]; do case "$1" in --prefix) shift; PREFIX="$1";; rp2040js@*) SPEC="$1";; esac; shift; done
VER="${SPEC#rp2040js@}"
mkdir -p "$PREFIX/node_modules/rp2040js/dist/esm"
echo "export const x = 1;" > "$PREFIX/node_modules/rp2040js/dist/esm/index.js"
echo "{\\"name\\": \\"rp2040js\\", \\"version\\": \\"$VER\\"}" > "$PREFIX/node_modules/rp2040js/package.json"
echo "{\\"packages\\": {\\"node_modules/rp2040js\\": {\\"integrity\\": \\"$FAKE_INTEGRITY\\"}}}" > "$PREFIX/package-lock.json"
"""


def test_rp2040js_is_installed_once_into_the_cache_and_integrity_checked(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _script(bindir / "npm", FAKE_NPM)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FWTOOL_RP2040JS_MODULE", raising=False)
    monkeypatch.setenv("FAKE_NPM_LOG", str(tmp_path / "npm.log"))
    monkeypatch.setenv("FAKE_INTEGRITY", "sha512-wrong")
    with pytest.raises(FwtoolError, match="integrity sha512-wrong"):
        node.ensure_rp2040js("9.9.9", "sha512-right")
    assert not (tmp_path / "cache" / "npm" / "rp2040js-9.9.9").exists()  # nothing half-installed
    monkeypatch.setenv("FAKE_INTEGRITY", "sha512-right")
    pkg = node.ensure_rp2040js("9.9.9", "sha512-right")
    assert pkg.source == "cache" and pkg.version == "9.9.9" and pkg.entry.is_file()
    assert pkg.package_dir == tmp_path / "cache" / "npm" / "rp2040js-9.9.9" / "node_modules" / "rp2040js"
    node.ensure_rp2040js("9.9.9", "sha512-right")
    assert len((tmp_path / "npm.log").read_text().splitlines()) == 2  # the second call did not run npm
    assert "--ignore-scripts" in (tmp_path / "npm.log").read_text()


def test_npm_failure_and_module_override(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _script(bindir / "npm", "echo 'npm error code E404' >&2\necho 'npm error 404 Not Found' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FWTOOL_RP2040JS_MODULE", raising=False)
    with pytest.raises(MissingTool, match="404 Not Found") as e:
        node.ensure_rp2040js("9.9.8", "sha512-x")
    assert "FWTOOL_RP2040JS_MODULE" in e.value.fix
    monkeypatch.setenv("FWTOOL_RP2040JS_MODULE", str(tmp_path))
    with pytest.raises(MissingTool, match="not an rp2040js package folder"):
        node.ensure_rp2040js()
    pkg = tmp_path / "mod"
    (pkg / "dist" / "esm").mkdir(parents=True)
    (pkg / "dist" / "esm" / "index.js").write_text("")
    (pkg / "package.json").write_text(json.dumps({"version": "1.4.1"}))
    monkeypatch.setenv("FWTOOL_RP2040JS_MODULE", str(pkg))
    assert node.ensure_rp2040js().to_dict() == {"path": str(pkg), "version": "1.4.1", "source": "env"}


# -- latency, failures -------------------------------------------------------------------------------------------


def test_latency_percentiles_are_nearest_rank_and_budget_uses_p95():
    us = [10_000] * 18 + [30_000, 50_000]  # 20 values: p95 is the 19th
    s = latency.latency_stats(us, budget_ms=32)
    assert (s.p50_ms, s.p95_ms, s.max_ms, s.mean_ms) == (10.0, 30.0, 50.0, 13.0)
    assert s.within_budget is True and "budget 32 ms: p95 within" in s.summary()
    assert latency.latency_stats(us, budget_ms=29.9).within_budget is False
    assert latency.latency_stats(us).within_budget is None
    assert latency.latency_stats([]) is None
    assert latency.percentile([5], 95) == 5.0


@pytest.mark.parametrize("reason, code, words", [
    ("emulated-limit", Exit.TIMEOUT, "--timeout"),
    ("wall-limit", Exit.TIMEOUT, "--timeout"),
    ("watchdog", Exit.FAILED, "watchdog"),
    ("breakpoint", Exit.FAILED, "panicked"),
    ("stopped", Exit.INTERRUPTED, None),
])
def test_run_failures_map_to_exit_codes_and_fixes(reason, code, words):
    e = session.failure(reason, "detail")
    assert e.code == code and "detail" in e.cause
    if words:
        assert words in e.fix


def test_timing_note_says_estimate_and_zero_wait_flash():
    assert "zero-wait flash" in session.TIMING_NOTE and "estimate" in session.TIMING_NOTE

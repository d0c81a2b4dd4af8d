"""Console text is text (issue 20): labels, paths and device names with '[', ']' or '[/x]' print unchanged."""
import subprocess
import sys


from fwtool.commands import record as record_cmd
from fwtool.core import ui
from fwtool.core.errors import Exit

TRICKY = ["[yes]", "a[b]c", "[/x]", "[bold]loud[/bold]", "/dev/ttyACM[0]", "C:\\clips\\[red]", "[link=x]y[/link]"]


def test_info_and_out_print_brackets_unchanged(capsys):
    for text in TRICKY:
        ui.info(f"label {text}")
        ui.out.print(f"port {text}")
        ui.err.print(text)
    cap = capsys.readouterr()
    for text in TRICKY:
        assert f"label {text}\n" in cap.err
        assert f"port {text}\n" in cap.out
        assert f"\n{text}\n" in "\n" + cap.err


def test_status_lines_are_not_markup(capsys):
    # rich's own Status would parse '[/x]' as a closing tag and raise MarkupError
    with ui.err.status("fwtool build: [/x] starting") as st:
        st.update("fwtool build: [yes] [/x] step")
        assert st.renderable.text.plain == "fwtool build: [yes] [/x] step"


def test_record_echoes_a_bracketed_label(tmp_path):
    # '[yes]' is not a file-name-safe label: the refusal names it exactly as typed (rich used to print '')
    p = subprocess.run([sys.executable, "-m", "fwtool", "record", "--port", "x", "--label", "[yes]", "--out",
                        str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == int(Exit.BAD_INPUT)
    assert p.stderr.splitlines()[0] == "error: label '[yes]' is not a plain name (letters, digits, _ and -, up to 64)"


def test_record_progress_keeps_brackets(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(record_cmd.rec, "record_clip", lambda port, seconds, on_meter=None: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    try:
        record_cmd.run_session(None, tmp_path, "a[/x]", 0.5, 1, 0, False, False)
    except KeyboardInterrupt:
        pass
    assert "clip 1/1: recording 'a[/x]' for 0.5 s ..." in capsys.readouterr().err

import click

from fwtool.audio.stt import ROUTE, PocketSphinx, make_server
from fwtool.core import ui
from fwtool.core.errors import Exit, FwtoolError


@click.command("stt-serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it local).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port (0: any).")
def stt_serve(host, port):
    """A local speech-to-text endpoint: POST /v1/audio/transcriptions (OpenAI-compatible) with pocketsphinx.

    For offline use and tests of 'fwtool monitor --on-detect ... --post'. Needs 'pip install pocketsphinx'
    (the English model is inside the wheel). Takes 16 kHz mono 16-bit WAV; Ctrl-C stops it.

    \b
    Examples:
      fwtool stt-serve --port 8000
      fwtool monitor --on-detect yes --post http://127.0.0.1:8000/v1/audio/transcriptions --expect-transcript weather
    """
    engine = PocketSphinx()
    try:
        srv = make_server(host, port, engine, on_request=lambda n, text: ui.info(f"{n / 16000:.2f} s -> {text!r}"))
    except OSError as e:
        raise FwtoolError(f"cannot listen on {host}:{port}: {e.strerror or e}", "pick another --port",
                          code=Exit.USAGE) from e
    ui.info(f"stt-serve: {engine.name} on http://{srv.server_address[0]}:{srv.server_address[1]}{ROUTE}")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()

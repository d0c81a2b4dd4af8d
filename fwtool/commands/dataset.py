"""``fwtool dataset synth``: bootstrap a keyword data set with local text-to-speech (espeak-ng, flite)."""
from __future__ import annotations

from pathlib import Path

import click

from fwtool.core import ui
from fwtool.train import synth as synth_mod


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{what} is a comma list of whole numbers, e.g. 35,50,65") from None


@click.group()
def dataset():
    """Make training data sets for 'fwtool train'.

    \b
    Examples:
      fwtool dataset synth --words yes,no --out data/
      fwtool train data/ --app kws --board pico
    """


@dataset.command("synth")
@click.option("--words", required=True, help="Comma list of keywords, e.g. yes,no (one folder each).")
@click.option("--out", "-o", "out", required=True, type=click.Path(path_type=Path), help="Data folder to write.")
@click.option("--voices", "n_voices", type=click.IntRange(1, 300), default=12, show_default=True,
              help="Voices per engine (espeak-ng: accent+variant pairs; flite: up to 5).")
@click.option("--pitches", default="35,50,65", show_default=True, help="espeak-ng pitches (0-99).")
@click.option("--speeds", default="140,175", show_default=True, help="Words per minute.")
@click.option("--engines", help="Comma list of espeak-ng, flite [every installed one].")
@click.option("--unknown-words", help="Comma list for _unknown_/ [a few Speech Commands words].")
@click.option("--noise-seconds", type=click.FloatRange(0, 600), default=30.0, show_default=True,
              help="Seconds of each synthetic background (white, pink, brown) in _background_noise_/.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def synth(words, out, n_voices, pitches, speeds, engines, unknown_words, noise_seconds, jobs, as_json):
    """Write OUT/<word>/<engine>-<voice>_nohash_p<pitch>s<speed>.wav (16 kHz mono 16-bit, 1 s), OUT/_unknown_/
    and OUT/_background_noise_/, ready for 'fwtool train OUT --app kws'. File names carry engine and voice, so the
    split keeps a voice in one set and --holdout can hold an engine or voice out.

    \b
    Examples:
      fwtool dataset synth --words yes,no --out data/
      fwtool dataset synth --words on,off --voices 30 --engines espeak-ng,flite --out data/
      fwtool train data/ --app kws --holdout '^flite'      # test on an engine never trained on
    """
    ui.set_json(as_json)
    with ui.err.status("fwtool dataset synth: starting") as status:
        s = synth_mod.synth([w.strip() for w in words.split(",") if w.strip()], out, n_voices,
                            _ints(pitches, "--pitches"), _ints(speeds, "--speeds"),
                            [e.strip() for e in engines.split(",")] if engines else None,
                            [u.strip() for u in unknown_words.split(",") if u.strip()] if unknown_words else None,
                            noise_seconds=noise_seconds, jobs=jobs,
                            on_progress=lambda i, n: status.update(f"fwtool dataset synth: {i}/{n} clips"))
    if as_json:
        ui.emit_json(s)
        return
    per = ", ".join(f"{w} {n}" for w, n in s["per_word"].items())
    click.echo(f"wrote     {s['clips']} clips to {s['out']}: {per}, _unknown_ {s['unknown']}; "
               f"{len(s['speakers'])} voices ({', '.join(s['engines'])}); background {', '.join(s['background'])}")
    click.echo(f"next:     fwtool train {s['out']} --app kws --board pico")

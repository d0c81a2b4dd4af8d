"""``fwtool train DATA_DIR --app kws|audio_classifier``: folders of labelled clips in, a checked int8 model out."""
from __future__ import annotations

from pathlib import Path

import click

from fwtool.audio import kws
from fwtool.core import ui
from fwtool.core.escape import terminal
from fwtool.train import augment, models
from fwtool.train.flow import TrainOptions, run


def _pct(v) -> str:
    return "  -  " if v is None else f"{v:5.1f}"


def print_report(r: dict) -> None:
    d, t, tr = r["dataset"], r["test"], r["training"]
    sets = ", ".join(f"{s} {v['clips']} clips/{v['groups']} groups ({v['examples']} examples)"
                     for s, v in d["sets"].items())
    click.echo(f"data      {terminal(r['data'])}: {d['clips']} clips, split by {d['grouping']}: {sets}")
    fe = r["front_end"]
    warm = (f", warm-up {fe['warm_up_s']:g} s ({fe['warm_up_frames']} frames dropped)" if fe["warm_up_s"] is not None
            else ", fresh front end per clip" if fe["app"] == "kws" else "")
    click.echo(f"features  {fe['app']} {fe['frames']}x{fe['bins']}{warm}; cache {r['features_cache']['hits']} hits, "
               f"{r['features_cache']['computed']} computed")
    h = tr["history"]
    click.echo(f"model     {terminal(r['model'])} ({r['parameters']:,} parameters): {h['epochs_run']} epochs in "
               f"{tr['seconds']:.1f} s, best epoch {h['best_epoch']} (val accuracy "
               f"{100 * max(h.get('val_accuracy', [0])):.1f}%)")
    q = r["int8"]
    click.echo(f"int8      {q['bytes']:,} B, input scale {q['input']['scale']:.6g} zero point "
               f"{q['input']['zero_point']}, ops {', '.join(q['ops'])}")
    click.echo(f"test      {t['clips']} examples: accuracy float {_pct(t['float_accuracy'])}%  int8 "
               f"{_pct(t['int8_accuracy'])}%  (agreement {t['agreement']}%)")
    click.echo(f"          {'class':14} {'clips':>5} {'float %':>7} {'int8 %':>7} {'ROC AUC':>7}")
    for lab, c in t["per_class"].items():
        auc = "   -" if c["roc_auc"] is None else f"{c['roc_auc']:.3f}"
        click.echo(f"          {terminal(lab)[:14]:14} {c['clips']:5} {_pct(c['float_accuracy']):>7} "
                   f"{_pct(c['int8_accuracy']):>7} {auc:>7}")
    labels, m = t["confusion"]["labels"], t["confusion"]["matrix"]
    click.echo("confusion rows true, columns predicted (int8): " + " ".join(terminal(x)[:8] for x in labels))
    for lab, row in zip(labels, m):
        click.echo(f"          {terminal(lab)[:14]:14} " + " ".join(f"{v:5}" for v in row))
    if t["worst"]:
        click.echo("worst     " + "; ".join(f"{terminal(w['clip'])} ({w['label']} {w['score']:.2f}, said "
                                            f"{w['predicted']})" for w in t["worst"][:5]))
    st = r.get("streaming")
    if st:
        c, dflt = st["chosen"], st["micro_speech_default"]
        click.echo(f"streaming {st['seconds'] / 60:.1f} min, {st['keyword_events']} keywords + "
                   f"{st['events'] - st['keyword_events']} others through the host twin: chosen threshold "
                   f"{c['threshold']} smoothing {c['smoothing']}: FRR {100 * c['frr']:.1f}%, {c['fa_per_hour']} FA/h "
                   f"(target <= {st['max_fa_per_hour']:g}{'' if st['meets_target'] else ', NOT met'}; resolution "
                   f"{st['fa_resolution_per_hour']} FA/h)")
        click.echo(f"          micro_speech's 0.8/10: FRR {100 * dflt['frr']:.1f}%, {dflt['fa_per_hour']} FA/h")
    b = r.get("board")
    if b:
        click.echo(f"board     {b['board']}: builds (ops, input contract, arena {b['arena_bytes']:,} B, fit checked)")
    for n in r["notes"]:
        click.echo(f"note      {terminal(n)}")
    o = r["outputs"]
    click.echo(f"wrote     {terminal(o['model'])}, {terminal(o['labels'])}, {terminal(o['split'])}, "
               f"{terminal(o['report'])}" + (f", {terminal(o['detection'])}" if o["detection"] else "") +
               (f", {len(o['plots'])} plots" if o["plots"] else ""))
    click.echo(f"time      {r['seconds']:.0f} s")
    for cmd in r["next"]:
        click.echo(f"next:     {terminal(cmd)}")


@click.command("train")
@click.argument("data", type=click.Path(path_type=Path), metavar="DATA_DIR")
@click.option("--app", "-a", required=True, type=click.Choice(["kws", "audio_classifier"]),
              help="The firmware app the model is for (its front end computes the features).")
@click.option("--model", "-m", "model_name", metavar="NAME|FILE.py",
              help=f"Built-in {', '.join(models.BUILTIN)} [kws: tiny_conv, classifier: cnn2d], or a .py file "
                   "defining build(input_shape, n_classes) -> Keras model.")
@click.option("--out", "-o", "out_dir", type=click.Path(path_type=Path), help="Output folder [train/<app>].")
@click.option("--keywords", help="kws: comma list of keyword folders, in the order the firmware reports them; "
                                 "other folders become 'unknown' [every folder, sorted].")
@click.option("--epochs", type=click.IntRange(1, 1000), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--patience", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Early stopping: epochs without a better validation loss.")
@click.option("--learning-rate", type=click.FloatRange(0, 1, min_open=True), default=0.003, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds split, augmentation and training.")
@click.option("--group-by", metavar="REGEX",
              help="Group clips (speaker/session) by this expression's first group in the file name [the part "
                   "before _nohash_, else fwtool record's session].")
@click.option("--holdout", metavar="REGEX", help="Groups matching this all go to the test set (e.g. an engine).")
@click.option("--val-fraction", type=click.FloatRange(0, 0.5), default=0.1, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0, 0.5), default=0.1, show_default=True)
@click.option("--augment", "copies", type=click.IntRange(0, 20), default=2, show_default=True,
              help="Augmented variants per training clip (shift, gain, background at random SNR, reverb).")
@click.option("--no-warm-up", is_flag=True, help="kws: features from a fresh front end per clip (not the "
                                                 "device's listening state).")
@click.option("--board", "-b", help="Also run the build's op, input and fit checks for this board.")
@click.option("--stream-minutes", type=click.FloatRange(0.5, 600), default=5.0, show_default=True,
              help="kws: length of the streaming evaluation.")
@click.option("--max-fa-per-hour", type=click.FloatRange(0), default=2.0, show_default=True,
              help="kws: false accepts per hour the chosen threshold/smoothing may have.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def train(data, app, model_name, out_dir, keywords, epochs, batch_size, patience, learning_rate, seed, group_by,
          holdout, val_fraction, test_fraction, copies, no_warm_up, board, stream_minutes, max_fa_per_hour, no_plots,
          as_json):
    """Train a model for an audio app on DATA_DIR/<label>/*.wav, with the device's own features.

    Clips are 16 kHz mono 16-bit WAVs (others refused with the sox command). Optional DATA_DIR/_background_noise_/
    (long recordings: mixed under clips, warm-up, silence), _unknown_/ (kws) and _impulse_responses_/. The split
    never puts a speaker/session in two sets (split.json). Augmentation works on the waveform before the front end;
    kws features are computed after ~1 s of background (the listening device's state). The int8 model comes from
    fwtool quantize's recipe (kws input pinned to the preprocessor's 26/256, -128). Report: float vs int8 per
    class, confusion matrix, ROC AUC, worst clips; kws adds a streaming evaluation that picks the detection
    threshold and smoothing (detection.json for fwtool build --detection). Needs TensorFlow: pip install
    'fwtool[tf]'. Exit 3 on bad data (nothing written), 4 without TensorFlow.

    \b
    Examples:
      fwtool dataset synth --words yes,no --out data/
      fwtool train data/ --app kws --board pico
      fwtool train data/ --app kws --keywords yes,no --model ds_cnn --holdout '^espeak-en-us' --epochs 40
      fwtool train alarms/ --app audio_classifier --out train/alarm --json > report.json
      fwtool train data/ --app kws --model my_model.py      # def build(input_shape, n_classes): ...
    """
    ui.set_json(as_json)
    opts = TrainOptions(
        data=data, app=app, out_dir=out_dir or Path("train") / app, model=model_name,
        keywords=[k.strip() for k in keywords.split(",") if k.strip()] if keywords else None, epochs=epochs,
        batch=batch_size, patience=patience, lr=learning_rate, seed=seed, group_by=group_by, holdout=holdout,
        val_fraction=val_fraction, test_fraction=test_fraction, policy=augment.Policy(copies=copies),
        warm_up_seconds=None if no_warm_up else kws.WARM_UP_SECONDS, board=board,
        stream_seconds=stream_minutes * 60, max_fa_per_hour=max_fa_per_hour, plots=not no_plots)
    with ui.err.status("fwtool train: starting") as status:
        state = {"epochs": epochs}

        def on_batch(e, b, n, logs):
            acc = logs.get("accuracy")
            status.update(f"fwtool train: epoch {e + 1}/{state['epochs']} {ui.bar(b, n, 20)} {b}/{n}"
                          + (f"  loss {logs['loss']:.3f} acc {acc:.3f}" if acc is not None else ""))

        def on_epoch(e, logs):
            if not as_json:
                ui.err.print(f"epoch {e + 1:3}/{epochs}: loss {logs.get('loss', 0):.4f} accuracy "
                             f"{logs.get('accuracy', 0):.3f}  val_loss {logs.get('val_loss', 0):.4f} val_accuracy "
                             f"{logs.get('val_accuracy', 0):.3f}", markup=False, highlight=False)

        report = run(opts, on_step=lambda s: status.update(f"fwtool train: {s}"), on_batch=on_batch,
                     on_epoch=on_epoch)
    if as_json:
        ui.emit_json(report)
    else:
        print_report(report)

"""``DATA_DIR/<label>/*.wav`` in, a checked list of clips with their groups and a leak-free split out.

Layout (what ``fwtool record --label X --out DATA_DIR/X`` and ``fwtool dataset synth`` write):

- ``<label>/*.wav``: one folder per class; the folder name is the label the firmware prints (letters, digits, _ and
  -, as fwtool record's --label), refused otherwise.
- ``_background_noise_/*.wav``: long recordings mixed under the clips and used for warm-up and silence.
- ``_unknown_/*.wav``: other speech (kws: the "unknown" class; other label folders not named as keywords join it).
- ``_impulse_responses_/*.wav``: room impulse responses for reverberation (else a simple room model).

Groups: clips of one speaker or recording session stay in one split. ``--group-by REGEX`` (its first group, else
the whole match, searched in the file name); by default Speech Commands' convention (the name part before
``_nohash_``), else fwtool record's session (clips of one label recorded less than SESSION_GAP_S apart), else the
clip itself (and the report says that the test set then measures new takes, not new speakers).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fwtool.audio import record, wav
from fwtool.core.errors import BadInput

BACKGROUND = "_background_noise_"
UNKNOWN = "_unknown_"
IMPULSES = "_impulse_responses_"
SPECIAL = (BACKGROUND, UNKNOWN, IMPULSES)
SILENCE_LABEL, UNKNOWN_LABEL = "silence", "unknown"  # the kws firmware's first two labels (kFirstKeyword = 2)
NOHASH = re.compile(r"^(.+?)_nohash_")
RECORD_NAME = re.compile(r"^(?P<label>.+)_(?P<t>\d{8}T\d{6})\.(?P<ms>\d{3})Z(?:-\d+)?$")
SESSION_GAP_S = 300  # fwtool record clips further apart than this are separate sessions
MAX_CLIPS = 200_000


@dataclass
class Clip:
    path: Path
    label: str  # the class it trains (kws: a keyword, or "unknown")
    folder: str
    sha: str  # content hash of the samples
    group: str = ""
    split: str = ""
    pcm: np.ndarray = field(default=None, repr=False)


@dataclass
class Dataset:
    root: Path
    labels: list[str]  # firmware order (kws: silence, unknown, keywords...)
    clips: list[Clip]
    background: list[tuple[str, np.ndarray]]
    impulses: list[tuple[str, np.ndarray]]
    grouping: str  # how groups were found
    notes: list[str] = field(default_factory=list)

    def of(self, split: str) -> list[Clip]:
        return [c for c in self.clips if c.split == split]


def _wavs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")


def _read(p: Path, max_seconds: float | None = None) -> np.ndarray:
    return wav.read_wav(p, max_seconds) if max_seconds else wav.read_wav(p)  # refuses with the sox fix line


def scan(root: Path, app: str, keywords: list[str] | None = None, min_clips: int = 2,
         max_clip_seconds: float = 10.0) -> Dataset:
    """Read and check every clip (all refusals before any training). Raises BadInput with the file named."""
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"data folder {root} does not exist or is not a folder",
                       "record clips first: fwtool record --label yes --out DATA/yes (or fwtool dataset synth)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = [p for p in folders if p.name not in SPECIAL]
    for p in classes:
        try:
            record.check_label(p.name)
        except BadInput:
            raise BadInput(f"label folder '{p.name}' is not a name the firmware can print (letters, digits, _ and "
                           "-, starting with a letter or digit, up to 64)",
                           f"rename it, e.g. mv '{p}' '{p.parent / _suggest(p.name)}'") from None
    if app == "kws":
        names = [p.name for p in classes]
        for reserved in (SILENCE_LABEL, UNKNOWN_LABEL):
            if reserved in names:
                raise BadInput(f"label folder '{reserved}' clashes with the kws app's generated '{reserved}' class",
                               f"put other speech in {UNKNOWN}/ and background recordings in {BACKGROUND}/")
        if keywords:
            missing = [k for k in keywords if k not in names]
            if missing:
                raise BadInput(f"--keywords names {', '.join(missing)}, which has no folder in {root}",
                               f"keyword folders found: {', '.join(names) or 'none'}")
        kw = keywords or names
        labels = [SILENCE_LABEL, UNKNOWN_LABEL] + kw
    else:
        kw = [p.name for p in classes]
        labels = list(kw)
    if not kw:
        raise BadInput(f"{root} has no label folders (<label>/*.wav)",
                       "record clips: fwtool record --label yes --out DATA/yes")
    if app == "audio_classifier" and len(labels) < 2:
        raise BadInput(f"{root} has one class ({labels[0]}); a classifier needs two or more",
                       "add a folder of the other sounds (e.g. background/ with recordings of the room)")
    clips: list[Clip] = []
    sources = [(p, p.name if p.name in kw else UNKNOWN_LABEL) for p in classes]
    if (root / UNKNOWN).is_dir():
        if app != "kws":
            raise BadInput(f"{UNKNOWN}/ is the kws app's 'unknown' class; the audio_classifier has none",
                           f"rename {UNKNOWN}/ to a class name, or train --app kws")
        sources.append((root / UNKNOWN, UNKNOWN_LABEL))
    for folder, label in sources:
        files = _wavs(folder)
        if label in kw and len(files) < min_clips:
            raise BadInput(f"class '{label}' has {len(files)} clip{'s' if len(files) != 1 else ''}; training needs "
                           f"at least {min_clips} (a few dozen per class, from several speakers)",
                           f"record more: fwtool record --label {label} --out {folder}")
        for p in files:
            pcm = _read(p, max_clip_seconds)
            clips.append(Clip(p, label, folder.name, hashlib.sha256(pcm.tobytes()).hexdigest(), pcm=pcm))
            if len(clips) > MAX_CLIPS:
                raise BadInput(f"{root} holds more than {MAX_CLIPS:,} clips", "train on a subset")
    seen: dict[str, Clip] = {}
    for c in clips:
        other = seen.setdefault(c.sha, c)
        if other is not c and other.label != c.label:
            raise BadInput(f"the same audio is in two classes: {other.folder}/{other.path.name} and "
                           f"{c.folder}/{c.path.name}", "delete the copy from the wrong class")
    background = [(p.name, _read(p)) for p in _wavs(root / BACKGROUND)] if (root / BACKGROUND).is_dir() else []
    impulses = [(p.name, _read(p, 2.0)) for p in _wavs(root / IMPULSES)] if (root / IMPULSES).is_dir() else []
    return Dataset(root, labels, clips, background, impulses, "")


def _suggest(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-") or "label"
    return s[:64]


# ----------------------------------------------------------------------------------------------------- groups

def _record_time(stem: str) -> datetime | None:
    m = RECORD_NAME.match(stem)
    if not m:
        return None
    t = datetime.strptime(m.group("t"), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    return t.replace(microsecond=int(m.group("ms")) * 1000)


def assign_groups(ds: Dataset, group_by: str | None = None) -> None:
    """Set ``clip.group`` for every clip (see the module docstring for the rules)."""
    if group_by:
        try:
            rx = re.compile(group_by)
        except re.error as e:
            raise BadInput(f"--group-by {group_by!r} is not a regular expression: {e}",
                           r"e.g. --group-by '^([a-z]+-[^_]+)' (the speaker part of the file name)") from None
        bad = []
        for c in ds.clips:
            m = rx.search(c.path.stem)
            if not m:
                bad.append(c)
                continue
            c.group = m.group(1) if rx.groups else m.group(0)
        if bad:
            raise BadInput(f"{len(bad)} clips do not match --group-by {group_by!r} (first: "
                           f"{bad[0].folder}/{bad[0].path.name})", "fix the expression so every clip name matches")
        ds.grouping = f"--group-by {group_by}"
        return
    if all(NOHASH.match(c.path.stem) for c in ds.clips):
        for c in ds.clips:
            c.group = NOHASH.match(c.path.stem).group(1)
        ds.grouping = "speaker (file name before _nohash_)"
        return
    times = [_record_time(c.path.stem) for c in ds.clips]
    if all(t is not None for t in times):
        order = sorted(range(len(ds.clips)), key=lambda i: (ds.clips[i].folder, times[i]))
        session, prev = 0, None
        for i in order:
            c = ds.clips[i]
            if prev is None or prev[0] != c.folder or (times[i] - prev[1]).total_seconds() > SESSION_GAP_S:
                session += 1
            c.group = f"{c.folder}-session{session}"
            prev = (c.folder, times[i])
        ds.grouping = f"fwtool record session (clips < {SESSION_GAP_S} s apart)"
        return
    for c in ds.clips:
        c.group = f"{c.folder}/{c.path.stem}"
    ds.grouping = "clip (no speaker or session in the file names)"
    ds.notes.append("file names carry no speaker or session (Speech Commands' <speaker>_nohash_<n>.wav, fwtool "
                    "record's names), so clips were split one by one: the test set measures new takes of the same "
                    "voices; use --group-by REGEX to split by speaker")


def split(ds: Dataset, seed: int, val_fraction: float, test_fraction: float, holdout: str | None = None) -> None:
    """Assign whole groups to train / val / test (``clip.split``); ``holdout`` groups all go to test."""
    groups: dict[str, int] = {}
    for c in ds.clips:
        groups[c.group] = groups.get(c.group, 0) + 1
    held = set()
    if holdout:
        try:
            rx = re.compile(holdout)
        except re.error as e:
            raise BadInput(f"--holdout {holdout!r} is not a regular expression: {e}",
                           "e.g. --holdout '^flite'") from None
        held = {g for g in groups if rx.search(g)}
        if not held:
            raise BadInput(f"--holdout {holdout!r} matches no group (groups: {', '.join(sorted(groups)[:5])}...)",
                           "match the group names (see split.json or --group-by)")
        if len(held) == len(groups):
            raise BadInput(f"--holdout {holdout!r} matches every group; nothing is left to train on",
                           "hold out fewer groups")
    rest = sorted(g for g in groups if g not in held)
    rng = np.random.default_rng(seed)
    rest = [rest[i] for i in rng.permutation(len(rest))]
    total = sum(groups[g] for g in rest)
    where: dict[str, str] = {g: "test" for g in held}
    want_test = 0 if held else test_fraction * total
    if len(rest) < (2 if held else 3):
        raise BadInput(f"the clips form {len(groups)} group(s) ({ds.grouping}); a split that never puts one group "
                       "in two sets needs at least 3", "add speakers or sessions, or group by clip: --group-by '.*'")
    n_test = n_val = 0
    for g in rest:
        if n_test < want_test or (not held and n_test == 0):
            where[g], n_test = "test", n_test + groups[g]
        elif n_val < val_fraction * total or n_val == 0:
            where[g], n_val = "val", n_val + groups[g]
        else:
            where[g] = "train"
    if "train" not in where.values():
        raise BadInput(f"after the validation and test groups no group is left to train on ({len(groups)} groups)",
                       "lower --val-fraction/--test-fraction or add speakers")
    for c in ds.clips:
        c.split = where[c.group]


def split_record(ds: Dataset, seed: int) -> dict:
    """``split.json``: which clip went where, by group (paths relative to DATA_DIR)."""
    out = {"grouping": ds.grouping, "seed": seed, "labels": ds.labels, "sets": {}}
    for s in ("train", "val", "test"):
        cl = ds.of(s)
        out["sets"][s] = {"groups": sorted({c.group for c in cl}), "clips": len(cl),
                          "files": [f"{c.folder}/{c.path.name}" for c in cl]}
    return out

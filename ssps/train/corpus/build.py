"""Build the whole corpus: voices -> plan -> rooms -> audio -> manifests, trials, meta.

Output layout (VoxCeleb style), all under `out`:

    wav/<speaker>/<recording>/<utt>.wav      16 kHz mono 16-bit PCM
    train.csv, synth_dev.csv, synth_cal.csv, real_uqm.csv, fsdd.csv
        path,speaker,recording,duration,source,labeled  (path relative to `out`)
    trials_synth_dev.txt, trials_synth_cal.txt, trials_real_uqm.txt, trials_fsdd.txt
        label path1 path2                    (paths relative to wav/)
    recordings.jsonl                         voice, channel, texts of each TTS recording
    meta.json                                seed, counts, sources, splits, licences, time
"""

from __future__ import annotations

import csv
import json
import resource
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import real
from .plan import SYNTH_CAL, SYNTH_DEV, TRAIN, assign_splits, plan_recordings, rng_for
from .render import RenderedRecording, UtteranceRow, probe_voice, render_recording
from .trials import make_trials, write_trials
from .voices import (
    INSTALL_HINT,
    LICENCES,
    MissingSystemPackages,
    Person,
    discover_people,
)

ROOM_POOL_SIZE = 256  # recordings draw their room from this many simulated rooms
ROOM_RT60_RANGE = (0.2, 0.7)  # realistic rooms (FINDINGS.md, round 2)
ROOMS_PER_TASK = 8
MANIFEST_COLUMNS = ["path", "speaker", "recording", "duration", "source", "labeled"]


@dataclass
class BuildOptions:
    out: Path
    seed: int = 0
    speakers: int | None = None  # synthetic people; None = every usable voice
    recordings_per_speaker: int = 20
    utterances_per_recording: int = 5
    dev_speakers: int = 16
    cal_speakers: int = 6
    workers: int = 2
    real_sources: bool = True
    real_limit: int | None = None  # at most this many utterances per real recording
    fsdd_dir: Path = real.FSDD_RECORDINGS
    overwrite: bool = False


@dataclass
class Manifest:
    name: str  # file stem: "train"
    # (row, source, labeled) triples
    rows: list[tuple[UtteranceRow, str, int]] = field(default_factory=list)

    def add(self, rows: list[UtteranceRow], source: str, labeled: int) -> None:
        self.rows.extend((row, source, labeled) for row in rows)


class OutputNotEmpty(RuntimeError):
    pass


def build_corpus(options: BuildOptions) -> dict:
    started = time.time()
    _check_sources(options)
    out = _prepare_output(options.out, options.overwrite)
    wav_root = out / "wav"
    with ProcessPoolExecutor(max_workers=options.workers) as pool:
        people, skipped_voices = _usable_people(pool, options)
        splits = assign_splits(
            people, options.dev_speakers, options.cal_speakers, options.seed
        )
        recording_count = len(people) * options.recordings_per_speaker
        rooms = _simulate_rooms(
            pool, min(ROOM_POOL_SIZE, recording_count), options.seed
        )
        plans = plan_recordings(
            people,
            splits,
            options.recordings_per_speaker,
            options.utterances_per_recording,
            len(rooms),
            options.seed,
        )
        _log(f"{len(people)} people, {len(plans)} recordings, {len(rooms)} rooms")
        rendered = _render_synthetic(pool, plans, rooms, wav_root)
        real_rows = (
            _render_real(pool, options, wav_root) if options.real_sources else {}
        )

    manifests = _manifests(rendered, real_rows)
    for manifest in manifests.values():
        _write_manifest(out / f"{manifest.name}.csv", manifest)
    trial_counts = _write_all_trials(out, manifests, options.seed)
    _write_recordings_log(out / "recordings.jsonl", rendered)
    meta = _meta(
        options,
        people,
        splits,
        rendered,
        manifests,
        trial_counts,
        skipped_voices,
        len(rooms),
        time.time() - started,
        _cpu_seconds(),
    )
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    _log(
        f"done in {meta['build_seconds']:.0f} s wall, {meta['build_cpu_seconds']:.0f} s CPU: "
        f"{meta['counts']}"
    )
    return meta


# -- Checks and the output folder ------------------------------------------------------


def _check_sources(options: BuildOptions) -> None:
    """Fail early, naming the install script, when system packages are missing."""
    from .voices import check_system_programs

    check_system_programs()
    if options.real_sources:
        missing = [
            str(p) for p in (real.UQM_ZIP, real.ASTERISK_SOUNDS) if not p.exists()
        ]
        if missing:
            raise MissingSystemPackages(
                f"missing real-speech packages ({', '.join(missing)}): {INSTALL_HINT}"
                " (or pass --no-real)"
            )


def _prepare_output(out: Path, overwrite: bool) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputNotEmpty(f"{out} is not empty; pass --overwrite to replace it")
        if not ((out / "meta.json").exists() or (out / "wav").is_dir()):
            # --overwrite deletes the folder: only do that to something we built.
            raise OutputNotEmpty(
                f"{out} is not empty and does not look like a corpus; "
                "refusing to delete it"
            )
        shutil.rmtree(out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    return out


# -- Voices and rooms ------------------------------------------------------------------


def _usable_people(pool, options: BuildOptions) -> tuple[list[Person], dict[str, str]]:
    """Pick people in a seeded order, keeping only voices that pass a test sentence.

    Only candidates that might be used are probed, so small builds stay fast.
    """
    candidates = discover_people()
    order = rng_for(options.seed, "people").permutation(len(candidates))
    wanted = len(candidates) if options.speakers is None else options.speakers
    chosen, skipped = [], {}
    position = 0
    while len(chosen) < wanted and position < len(order):
        batch = [
            candidates[i] for i in order[position : position + wanted - len(chosen)]
        ]
        position += len(batch)
        voices = [voice for person in batch for voice in person.voices]
        problems = dict(zip(voices, pool.map(probe_voice, voices)))
        for person in batch:
            good = [v for v in person.voices if problems[v] is None]
            skipped.update(
                {
                    f"{v.engine}:{v.name}": problems[v]
                    for v in person.voices
                    if problems[v] is not None
                }
            )
            if good:
                chosen.append(Person(person.person_id, person.gender, good))
    if skipped:
        _log(
            f"skipped {len(skipped)} TTS voices that fail: {', '.join(sorted(skipped))}"
        )
    return sorted(chosen, key=lambda p: p.person_id), skipped


def _simulate_rooms(pool, count: int, seed: int) -> list:
    from ..rooms import simulate_room_impulse_responses

    sizes = [
        min(ROOMS_PER_TASK, count - start) for start in range(0, count, ROOMS_PER_TASK)
    ]
    seeds = [int(rng_for(seed, "rooms", i).integers(2**31)) for i in range(len(sizes))]
    chunks = pool.map(
        simulate_room_impulse_responses,
        sizes,
        [16000] * len(sizes),
        seeds,
        [ROOM_RT60_RANGE] * len(sizes),
    )
    return [room for chunk in chunks for room in chunk]


# -- Audio -----------------------------------------------------------------------------


def _render_synthetic(pool, plans, rooms, wav_root: Path) -> list[RenderedRecording]:
    impulse_responses = [
        None if p.channel.room_index is None else rooms[p.channel.room_index]
        for p in plans
    ]
    rendered = []
    for done, result in enumerate(
        pool.map(render_recording, plans, impulse_responses, [wav_root] * len(plans)), 1
    ):
        rendered.append(result)
        if done % max(1, len(plans) // 20) == 0 or done == len(plans):
            _log(f"synthetic recordings: {done}/{len(plans)}")
    failures = sum(len(r.failures) for r in rendered)
    if failures:
        _log(f"{failures} utterances could not be synthesized (listed in meta.json)")
    return rendered


def _render_real(
    pool, options: BuildOptions, wav_root: Path
) -> dict[str, list[UtteranceRow]]:
    """source -> rows. Biggest jobs first so the two workers finish together."""
    jobs = (
        real.uqm_jobs(options.real_limit, options.seed)
        + real.asterisk_jobs(options.real_limit, options.seed)
        + real.fsdd_jobs(options.real_limit, options.seed, Path(options.fsdd_dir))
    )
    if not any(job.source == "fsdd" for job in jobs):
        _log(f"FSDD not found under {options.fsdd_dir}: no trials_fsdd.txt")
    jobs.sort(key=lambda job: -len(job.members))
    rows: dict[str, list[UtteranceRow]] = {}
    for job, job_rows in zip(
        jobs, pool.map(real.render_real, jobs, [wav_root] * len(jobs))
    ):
        rows.setdefault(job.source, []).extend(job_rows)
    _log(
        "real speech: "
        + ", ".join(f"{k} {len(v)} utterances" for k, v in sorted(rows.items()))
    )
    return rows


# -- Manifests, trials, logs -----------------------------------------------------------


def _manifests(rendered, real_rows) -> dict[str, Manifest]:
    manifests = {
        name: Manifest(name)
        for name in (TRAIN, SYNTH_DEV, SYNTH_CAL, "real_uqm", "fsdd")
    }
    for recording in rendered:
        manifests[recording.plan.split].add(recording.rows, "tts", 1)
    # Asterisk: extra real training audio; its labels are voices, not verified people.
    manifests[TRAIN].add(real_rows.get("asterisk", []), "asterisk", 0)
    manifests["real_uqm"].add(real_rows.get("uqm", []), "uqm", 1)
    manifests["fsdd"].add(real_rows.get("fsdd", []), "fsdd", 1)
    return {name: m for name, m in manifests.items() if m.rows}


def _write_manifest(path: Path, manifest: Manifest) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for row, source, labeled in sorted(
            manifest.rows, key=lambda item: item[0].path
        ):
            writer.writerow(
                [
                    f"wav/{row.path}",
                    row.speaker,
                    row.recording,
                    f"{row.duration:.3f}",
                    source,
                    labeled,
                ]
            )


def _write_all_trials(
    out: Path, manifests: dict[str, Manifest], seed: int
) -> dict[str, int]:
    counts = {}
    # uqm and FSDD speakers mostly have a single session: same-recording targets there.
    for name, cross_only in (
        (SYNTH_DEV, True),
        (SYNTH_CAL, True),
        ("real_uqm", False),
        ("fsdd", False),
    ):
        if name not in manifests:
            continue
        rows = [row for row, _, _ in manifests[name].rows]
        trials = make_trials(
            rows, rng_for(seed, "trials", name), cross_recording_only=cross_only
        )
        write_trials(out / f"trials_{name}.txt", trials)
        counts[name] = len(trials)
    return counts


def _write_recordings_log(path: Path, rendered: list[RenderedRecording]) -> None:
    with path.open("w") as handle:
        for recording in rendered:
            plan = recording.plan
            handle.write(
                json.dumps(
                    {
                        "recording": plan.recording_id,
                        "split": plan.split,
                        "voice": asdict(plan.voice),
                        "channel": plan.channel.describe(),
                        "utterances": [
                            {
                                "path": r.path,
                                "text": r.text,
                                "rate": round(r.rate, 3),
                                "pitch": round(r.pitch, 3),
                                "duration": r.duration,
                            }
                            for r in recording.rows
                        ],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )


def _meta(
    options,
    people,
    splits,
    rendered,
    manifests,
    trial_counts,
    skipped_voices,
    room_count,
    seconds,
    cpu_seconds,
) -> dict:
    failures = [f for r in rendered for f in r.failures]
    return {
        "seed": options.seed,
        "options": {
            k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()
        },
        "build_seconds": round(seconds, 1),
        # Wall time depends on what else runs on the machine; CPU time much less so.
        "build_cpu_seconds": round(cpu_seconds, 1),
        "counts": {
            name: {
                "speakers": len({row.speaker for row, _, _ in m.rows}),
                "recordings": len({row.recording for row, _, _ in m.rows}),
                "utterances": len(m.rows),
                "hours": round(sum(row.duration for row, _, _ in m.rows) / 3600, 2),
            }
            for name, m in manifests.items()
        },
        "trials": trial_counts,
        "held_out": {
            SYNTH_DEV: sorted(p for p, s in splits.items() if s == SYNTH_DEV),
            SYNTH_CAL: sorted(p for p, s in splits.items() if s == SYNTH_CAL),
            "real_uqm": "all uqm-voice characters (never in train)",
            "fsdd": "all 6 FSDD speakers (never in train)",
        },
        "speakers": {
            person.person_id: {
                "split": splits[person.person_id],
                "source": "tts",
                "gender": person.gender,
                "voices": [f"{v.engine}:{v.name}" for v in person.voices],
                "real_person": _real_person(person),
            }
            for person in people
        },
        "real_sources": {
            "asterisk": "in train.csv with labeled=0: one professional voice per folder "
            "(speaker = voice name; en_US and es_MX Allison share a label)",
            "real_uqm": "uqm-voice characters; folder = recording; merged "
            f"{real.UQM_SAME_VOICE}; dropped {sorted(real.UQM_UNUSABLE)}",
            "fsdd": f"{real.FSDD_DIGITS_PER_UTTERANCE} digit clips joined per utterance",
        },
        "rooms": {"simulated": room_count, "rt60_target_range_s": ROOM_RT60_RANGE},
        "skipped_voices": skipped_voices,
        "failed_utterances": {"count": len(failures), "examples": failures[:20]},
        "licences": {**LICENCES, **real.LICENCES},
    }


def _real_person(person: Person) -> str:
    engine_of = {v.engine for v in person.voices}
    name = person.person_id.split("-", 1)[1]
    if person.person_id.startswith("cmu-"):
        return f"CMU speaker {name} (engines: {', '.join(sorted(engine_of))})"
    if person.person_id.startswith("mbrola-"):
        return f"speaker of the MBROLA database {name}"
    return f"voice talent of the RHVoice voice {name}"


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the worker processes)."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def _log(message: str) -> None:
    print(
        f"[corpus {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True
    )

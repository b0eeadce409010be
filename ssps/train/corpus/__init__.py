"""An offline, seeded, multi-session speaker corpus in the VoxCeleb layout.

Speakers are TTS voices built from real people (espeak-ng + MBROLA, RHVoice, flite), each
recorded in many simulated "recordings" (room, microphone, codec, noise floor), plus real
speech (uqm-voice, Asterisk prompts, FSDD) for training extras and held-out trials.

    python -m ssps.train.corpus build --out data/corpus --seed 0

See README.md beside this file for the layout, the measured build and the diagnostics.
"""

from .build import BuildOptions, OutputNotEmpty, build_corpus
from .voices import MissingSystemPackages

__all__ = ["BuildOptions", "MissingSystemPackages", "OutputNotEmpty", "build_corpus"]

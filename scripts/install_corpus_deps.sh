#!/usr/bin/env bash
# Install everything `python -m ssps.train.corpus build` needs, on Debian 12 as root.
#
#   sudo bash scripts/install_corpus_deps.sh        # or plain `bash` when already root
#
# What it does:
#   1. enables the Debian `contrib` and `non-free` components (MBROLA, RHVoice and
#      uqm-voice live there) and runs `apt-get update`;
#   2. installs the speech engines and voices: espeak-ng, mbrola + every mbrola-* voice,
#      rhvoice + librhvoice5 (the library, used in-process) + every rhvoice-* language
#      pack, flite; sox (codecs); the real-voice
#      sources uqm-voice and asterisk-core-sounds-*-wav;
#   3. pip-installs the Python packages: into the active virtualenv, else into the
#      repository's .venv when it exists, else into python3.
# Safe to run twice.  Set SKIP_PIP=1 to do only the system part.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root (apt-get needs it): sudo bash $0" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

enable_contrib_non_free() {
    # deb822 sources (Debian 12 default) ...
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        sed -i -E 's/^Components: main$/Components: main contrib non-free/' "$f"
    done
    # ... and the classic one-line format, if used.
    if [ -f /etc/apt/sources.list ]; then
        sed -i -E '/^deb /{/contrib/!s/ main$/ main contrib non-free/}' /etc/apt/sources.list
    fi
}

# Names of available packages matching a regular expression (voices come and go).
available() {
    apt-cache search --names-only "$1" | awk '{print $1}' | sort
}

enable_contrib_non_free
apt-get update -q

mbrola_voices=$(available '^mbrola-[a-z]+[0-9]+$')
rhvoice_langs=$(available '^rhvoice-[a-z]+$' | grep -v -E '^rhvoice-(dev|speechd|data)$' || true)
asterisk_sounds=$(available '^asterisk-core-sounds-[a-z-]+-wav$')

# shellcheck disable=SC2086  # word splitting of the lists is intended
apt-get install -y -q --no-install-recommends \
    espeak-ng mbrola $mbrola_voices \
    rhvoice librhvoice5 $rhvoice_langs \
    flite sox libsox-fmt-all \
    uqm-voice $asterisk_sounds

if [ "${SKIP_PIP:-0}" != "1" ]; then
    repo_venv="$(cd "$(dirname "$0")/.." && pwd)/.venv"
    if [ -n "${VIRTUAL_ENV:-}" ]; then
        python="$VIRTUAL_ENV/bin/python"
    elif [ -x "$repo_venv/bin/python" ]; then
        python="$repo_venv/bin/python"
    else
        python=python3
    fi
    "$python" -m pip install -q numpy scipy soundfile soxr pyroomacoustics rhvoice-wrapper
fi

echo "corpus dependencies installed:"
echo "  mbrola voices: $(echo $mbrola_voices | wc -w)"
echo "  rhvoice packages: $(echo $rhvoice_langs | tr '\n' ' ')"
echo "  asterisk sounds: $(echo $asterisk_sounds | tr '\n' ' ')"

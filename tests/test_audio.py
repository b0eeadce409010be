"""Audio decoding and validation: every bad input is an AudioError with a stable code."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import soundfile as sf

from ssps import AudioError, NarrowBandWarning, load_audio

RATE = 16_000


def error_code(source, rate=RATE) -> str:
    with pytest.raises(AudioError) as caught:
        load_audio(source, rate)
    assert str(caught.value), "an error message must say what to do"
    return caught.value.code


def test_wav_file_is_mono_float32_at_the_requested_rate(speech):
    audio = load_audio(speech["a1"], RATE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == sf.info(speech["a1"]).frames


def test_48k_stereo_is_downmixed_and_resampled(speech):
    frames = sf.info(speech["a_48k_stereo"]).frames
    audio = load_audio(speech["a_48k_stereo"], RATE)
    assert audio.ndim == 1 and abs(len(audio) - frames / 3) <= 1


def test_8k_input_warns_narrow_band_and_is_upsampled(speech):
    with pytest.warns(NarrowBandWarning):
        audio = load_audio(speech["a_8k"], RATE)
    assert abs(len(audio) - 2 * sf.info(speech["a_8k"]).frames) <= 1


def test_path_bytes_file_object_and_array_agree(speech):
    path = speech["a1"]
    reference = load_audio(path, RATE)
    data = path.read_bytes()
    array, rate = sf.read(path, dtype="float32")
    with open(path, "rb") as f:
        from_file = load_audio(f, RATE)
    for audio in (load_audio(str(path), RATE), load_audio(data, RATE), load_audio(io.BytesIO(data), RATE), from_file,
                  load_audio((array, rate), RATE)):
        np.testing.assert_array_equal(audio, reference)


def test_int16_and_channels_first_arrays(speech):
    array, rate = sf.read(speech["a1"], dtype="int16")
    reference = load_audio(speech["a1"], RATE)
    np.testing.assert_allclose(load_audio((array, rate), RATE), reference, atol=1e-6)
    stereo_first = np.stack([reference, reference])  # [channels, samples]
    np.testing.assert_allclose(load_audio((stereo_first, RATE), RATE), reference, atol=1e-7)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "MP3"])
def test_compressed_formats_decode(speech, tmp_path, fmt):
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    array, rate = sf.read(speech["a1"], dtype="float32")
    path = tmp_path / f"clip.{fmt.lower()}"
    try:
        sf.write(path, array, rate, format=fmt)
    except sf.LibsndfileError as err:
        pytest.skip(f"this libsndfile cannot encode {fmt}: {err}")
    audio = load_audio(path, RATE)
    assert abs(len(audio) - len(array)) < 0.1 * RATE  # codecs may pad a frame


def test_missing_file(tmp_path):
    assert error_code(tmp_path / "nope.wav") == "file_not_found"
    assert error_code(tmp_path) == "file_not_found"  # a directory is not a file


def test_empty_file_and_empty_bytes(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert error_code(empty) == "empty_audio"
    assert error_code(b"") == "empty_audio"


def test_wav_with_zero_samples(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), RATE)
    assert error_code(path) == "empty_audio"
    assert error_code((np.zeros(0, dtype=np.float32), RATE)) == "empty_audio"


def test_truncated_wav(speech, tmp_path):
    data = speech["a1"].read_bytes()
    header_cut = tmp_path / "header_cut.wav"
    header_cut.write_bytes(data[:20])
    assert error_code(header_cut) == "undecodable"
    # Cut inside the samples: the header promises more than there is. libsndfile reads what
    # is there; a correct (shorter) result is acceptable, a crash or hang is not.
    data_cut = tmp_path / "data_cut.wav"
    data_cut.write_bytes(data[: len(data) // 2])
    try:
        audio = load_audio(data_cut, RATE)
    except AudioError as err:
        assert err.code == "undecodable"
    else:
        assert 0 < len(audio) < len(load_audio(speech["a1"], RATE))


def test_text_file_renamed_wav_and_random_bytes(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 50)
    assert error_code(text) == "undecodable"
    assert error_code(np.random.default_rng(0).bytes(4096)) == "undecodable"


def test_nan_and_inf_samples(tmp_path):
    audio = 0.1 * np.random.default_rng(0).standard_normal(RATE).astype(np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        corrupted = audio.copy()
        corrupted[100] = bad
        assert error_code((corrupted, RATE)) == "non_finite"
    path = tmp_path / "nan.wav"
    corrupted = audio.copy()
    corrupted[5] = np.nan
    sf.write(path, corrupted, RATE, subtype="FLOAT")
    assert error_code(path) == "non_finite"


def test_all_zero_audio_is_silent(tmp_path):
    assert error_code((np.zeros(RATE, dtype=np.float32), RATE)) == "silent"
    path = tmp_path / "zeros.wav"
    sf.write(path, np.zeros(RATE, dtype=np.int16), RATE)
    assert error_code(path) == "silent"


def test_sources_that_are_not_audio():
    assert error_code(np.ones(RATE, dtype=np.float32)) == "bad_input"  # no sample rate
    assert error_code(12345) == "bad_input"
    assert error_code((np.ones(10), 0)) == "bad_input"
    assert error_code((np.array(["a", "b"]), RATE)) == "bad_input"
    assert error_code((np.ones((2, 2, 2)), RATE)) == "bad_input"


def test_wide_band_input_does_not_warn(speech):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NarrowBandWarning)
        load_audio(speech["a1"], RATE)

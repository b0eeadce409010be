"""Simulated room impulse responses, for when no measured RIR folder is available.

Both the corpus builder (`ssps.train.corpus`) and the training augmentation use
`simulate_room_impulse_responses`; keep its signature stable.
"""

from __future__ import annotations

import numpy as np
import pyroomacoustics as pra

# Shoebox sizes in metres (length, width, height): from a small office to a classroom.
ROOM_SIZE_MIN = np.array([3.0, 2.5, 2.4])
ROOM_SIZE_MAX = np.array([9.0, 7.0, 3.5])
# Talker and microphone stay this far from every wall, and this far from each other.
WALL_CLEARANCE_M = 0.4
SOURCE_MIC_DISTANCE_M = (0.5, 3.0)
# Image-source order grows with RT60 and the cost grows with its cube; this cap keeps
# one response under ~1 s of CPU while leaving the decay audible.
MAX_IMAGE_ORDER = 60


def simulate_room_impulse_responses(
    count: int,
    sample_rate: int,
    seed: int,
    rt60_range: tuple[float, float] = (0.2, 0.9),
) -> list[np.ndarray]:
    """Simulate `count` room impulse responses with pyroomacoustics (image-source method).

    Each response comes from a random shoebox room whose wall absorption is chosen by
    Sabine's formula for a reverberation time drawn uniformly from `rt60_range` (seconds),
    with the talker and the microphone at random positions 0.5-3 m apart. The simulated
    decay is usually somewhat longer than the Sabine target, so treat `rt60_range` as a
    knob, not a measurement.

    Returns float32 mono arrays at `sample_rate`, trimmed to start 1 ms before the
    direct path (so convolving does not delay the speech) and scaled to a peak of 1.0.
    The same (count, sample_rate, seed, rt60_range) always gives the same responses.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    low, high = rt60_range
    if not 0 < low <= high:
        raise ValueError(f"rt60_range must satisfy 0 < low <= high, got {rt60_range}")
    rng = np.random.default_rng(seed)
    return [
        _simulate_one_room(rng, sample_rate, rng.uniform(low, high))
        for _ in range(count)
    ]


def _simulate_one_room(
    rng: np.random.Generator, sample_rate: int, rt60: float
) -> np.ndarray:
    room_size = _draw_room_size(rng, rt60)
    absorption, image_order = pra.inverse_sabine(rt60, room_size)
    room = pra.ShoeBox(
        room_size,
        fs=sample_rate,
        materials=pra.Material(absorption),
        max_order=min(image_order, MAX_IMAGE_ORDER),
    )
    source, microphone = _draw_source_and_microphone(rng, room_size)
    room.add_source(source)
    room.add_microphone(microphone)
    room.compute_rir()
    return _trim_and_normalise(
        np.asarray(room.rir[0][0], dtype=np.float64), sample_rate
    )


def _draw_room_size(rng: np.random.Generator, rt60: float) -> np.ndarray:
    # Sabine cannot give a short RT60 in a big room (absorption would exceed 1):
    # redraw until the pair is physically possible, shrinking the room if it never is.
    for _ in range(100):
        size = rng.uniform(ROOM_SIZE_MIN, ROOM_SIZE_MAX)
        if _sabine_is_feasible(rt60, size):
            return size
    return ROOM_SIZE_MIN.copy()


def _sabine_is_feasible(rt60: float, room_size: np.ndarray) -> bool:
    try:
        absorption, _ = pra.inverse_sabine(rt60, room_size)
    except ValueError:
        return False
    return 0.0 < absorption < 1.0


def _draw_source_and_microphone(
    rng: np.random.Generator, room_size: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    low = np.full(3, WALL_CLEARANCE_M)
    high = room_size - WALL_CLEARANCE_M
    while True:
        source = rng.uniform(low, high)
        microphone = rng.uniform(low, high)
        distance = np.linalg.norm(source - microphone)
        if SOURCE_MIC_DISTANCE_M[0] <= distance <= SOURCE_MIC_DISTANCE_M[1]:
            return source, microphone


def _trim_and_normalise(rir: np.ndarray, sample_rate: int) -> np.ndarray:
    direct_path = int(np.argmax(np.abs(rir)))
    start = max(0, direct_path - sample_rate // 1000)
    rir = rir[start:]
    # Drop the numerically silent tail the simulator pads on.
    audible = np.nonzero(np.abs(rir) > 1e-4 * np.abs(rir).max())[0]
    rir = rir[: audible[-1] + 1]
    return (rir / np.abs(rir).max()).astype(np.float32)

"""The turn-taking set: its definition, the WAVs it writes, and how a cut-off is judged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from assistant.audio.wav import read_wav
from assistant.bench.turnset import COMPLETE, PAUSED, TURN_SET, write_turnset
from assistant.bench.turntaking import lost_second_part


def test_the_set_has_enough_complete_and_paused_requests() -> None:
    assert len(COMPLETE) >= 20 and len(PAUSED) >= 20
    assert all(0.6 <= pause <= 1.2 and first and second for first, pause, second in PAUSED)
    assert all(pause == 0.0 and not second for _, pause, second in COMPLETE)


def test_write_turnset_lays_out_wake_word_pause_and_noise(tmp_path: Path) -> None:
    items = [TURN_SET[0], PAUSED[0]]
    made = write_turnset(tmp_path, items=items, noise_rms=0.003)
    assert [u.paused for u in made] == [False, True]
    paused = made[1]
    assert paused.second_start_s is not None
    assert abs(paused.second_start_s - paused.first_end_s - PAUSED[0][1]) < 1e-3
    audio = read_wav(paused.path)
    noise = audio[: int(0.9 * 16000)]
    assert 0.001 < float(np.sqrt(np.mean(noise**2))) < 0.01  # room noise, no speech before the wake word
    middle = audio[int((paused.first_end_s + 0.05) * 16000) : int((paused.second_start_s - 0.05) * 16000)]
    assert float(np.abs(middle).max()) < 0.05  # the pause is silent but for the noise
    assert json.loads((tmp_path / "turnset.json").read_text())[1]["second"] == PAUSED[0][2]


def test_a_transcript_without_the_words_after_the_pause_is_a_cut_off(tmp_path: Path) -> None:
    (u,) = write_turnset(tmp_path, items=[PAUSED[0]], noise_rms=0.0)  # "remind me to" ... "call my sister"
    assert lost_second_part(u, ["Remind me to..."])
    assert not lost_second_part(u, ["Remind me to call my sister."])
    assert lost_second_part(u, [])


def test_numbers_after_the_pause_count_as_heard_in_digits(tmp_path: Path) -> None:
    item = next(i for i in PAUSED if i[2] == "fifty percent")  # "turn the volume up to" ... "fifty percent"
    (u,) = write_turnset(tmp_path, items=[item], noise_rms=0.0)
    assert not lost_second_part(u, ["Turn the volume up to 50%."])
    assert lost_second_part(u, ["Turn the volume up to."])

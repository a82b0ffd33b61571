"""`assistant check`'s fix column: the command to run, taken from the loader's own error."""

from __future__ import annotations

from pathlib import Path

from assistant.check import _fix_from, _load
from assistant.config import SttConfig, VadConfig
from assistant.engines.stt import load_stt
from assistant.engines.vad import load_vad


def test_a_missing_bundled_model_shows_the_download_command_not_its_path(tmp_path: Path) -> None:
    engine, rows = _load("stt", lambda: load_stt(SttConfig(model="base.en"), tmp_path))
    assert engine is None and len(rows) == 1 and not rows[0].ok
    assert str(tmp_path) in rows[0].detail, "the detail names the missing file"
    assert rows[0].fix == f"assistant models download base.en --dir {tmp_path}"


def test_a_fix_in_brackets_loses_the_closing_bracket(tmp_path: Path) -> None:
    own = tmp_path / "mine" / "vad.onnx"
    engine, rows = _load("vad", lambda: load_vad(VadConfig(model=str(own)), tmp_path))
    assert engine is None and not rows[0].ok
    assert rows[0].fix == f"assistant models download silero_vad --dir {tmp_path}"


def test_the_first_marker_wins_and_colons_after_it_stay() -> None:
    message = "model 'qwen2.5:1.5b' not found at http://127.0.0.1:11434\nFix: ollama pull qwen2.5:1.5b"
    assert _fix_from(message) == "ollama pull qwen2.5:1.5b"
    assert _fix_from("C:/models/x.bin is missing; run: assistant models download x") == "assistant models download x"
    assert _fix_from("a prefix: is not a marker") == ""

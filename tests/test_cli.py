"""The one-shot commands and `assistant check`, through the real command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from assistant import config as config_module
from assistant.audio.wav import read_wav
from assistant.testing.ollama_server import OllamaTestServer
from tests.conftest import ROOT, sounds_like


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def test_default_yaml_documents_exactly_the_defaults() -> None:
    data = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    documented = config_module.Config.model_validate(data)
    built_in = config_module.Config(models_dir=documented.models_dir, state_dir=documented.state_dir)
    assert documented == built_in

    def keys(model: type[config_module.BaseModel], prefix: str = "") -> set[str]:
        out = set()
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, config_module.BaseModel):
                out |= keys(annotation, f"{prefix}{name}.")
            else:
                out.add(f"{prefix}{name}")
        return out

    def flat(data: dict[str, object], prefix: str = "") -> set[str]:
        out = set()
        for key, value in data.items():
            if isinstance(value, dict) and value and f"{prefix}{key}" not in ("llm.options",):
                out |= flat(value, f"{prefix}{key}.")
            else:
                out.add(f"{prefix}{key}")
        return out

    assert flat(data) == keys(config_module.Config), "every key is documented in config/default.yaml"


def test_layered_files_and_set_overrides(tmp_path: Path) -> None:
    base, device = tmp_path / "base.yaml", tmp_path / "device.yaml"
    base.write_text("llm:\n  model: a\n  host: http://server:11434\nwake:\n  threshold: 0.6\n")
    device.write_text("llm:\n  model: b\n")
    loaded = config_module.load([base, device], ["wake.models=[x.onnx, y.onnx]", "tts.speed=1.5"])
    assert (loaded.llm.model, loaded.llm.host) == ("b", "http://server:11434")
    assert loaded.wake.models == ("x.onnx", "y.onnx") and loaded.wake.threshold == 0.6
    assert loaded.tts.speed == 1.5


def test_config_validate_and_show(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("stt:\n  threads: 4\n")
    bad.write_text("stt:\n  threads: many\n")
    assert cli("config", "validate", str(good)).returncode == 0
    done = cli("config", "validate", str(bad))
    assert done.returncode == 78
    assert "stt.threads = 'many'" in done.stderr and "integer" in done.stderr
    shown = yaml.safe_load(cli("config", "show", "--set", "llm.model=qwen").stdout)
    assert shown["llm"]["model"] == "qwen"
    broken = tmp_path / "broken.yaml"
    broken.write_text("llm: [unclosed\n")
    done = cli("config", "validate", str(broken))
    assert done.returncode == 78 and "not valid YAML" in done.stderr and "line" in done.stderr


def test_say_and_transcribe(test_config: Path, speech: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "say.wav"
    done = cli("say", "--config", str(test_config), "Paris is the capital of France.", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert len(read_wav(out)) > 16000
    done = cli("transcribe", "--config", str(test_config), str(out))  # what the voice said, heard back
    assert done.returncode == 0, done.stderr
    # Piper's speech varies from run to run a little, and so does tiny.en on it ("Carises the capital").
    assert sounds_like(done.stdout.strip(), "Paris is the capital of France", errors=2), done.stdout
    done = cli("transcribe", "--config", str(test_config), str(speech["question"]))
    assert done.returncode == 0, done.stderr
    assert sounds_like(done.stdout.strip(), "what is the capital of France"), done.stdout


def test_check_table(test_config: Path, tmp_path: Path) -> None:
    with OllamaTestServer(models=["test-model"]) as server:
        done = cli("check", "--config", str(test_config), "--set", f"llm.host={server.url}")
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["PART", "STATUS"]
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith(" ")}
    for part in ("config", "llm.server", "llm.model"):
        assert " OK " in rows[part] + " ", rows
    for i, line in enumerate(lines):  # every failing part says how to fix it, on the next line
        if "  FAIL  " in line:
            assert lines[i + 1].strip().startswith("fix:"), done.stdout
    ok_rows = [line for line in lines if "  OK  " in line]
    assert any("hey_jarvis" in line for line in ok_rows), done.stdout
    assert any(line.startswith("end of turn") for line in ok_rows), done.stdout
    assert any("cpu" in line for line in ok_rows), "each engine reports its compute device"
    # This machine has no sound card, so the audio rows fail with a fix, and so does the command.
    audio = [line for line in lines if line.startswith("audio")]
    if any("FAIL" in line for line in audio):
        assert done.returncode == 1
        assert "fix:" in done.stdout
    with OllamaTestServer(models=["other"]) as server:
        done = cli("check", "--config", str(test_config), "--set", f"llm.host={server.url}")
    assert done.returncode == 1
    assert "ollama pull test-model" in done.stdout


def test_check_names_missing_model_and_fix(test_config: Path, tmp_path: Path) -> None:
    done = cli(
        "check",
        "--config",
        str(test_config),
        "--set",
        f"models_dir={tmp_path}",
        "--set",
        "llm.host=http://127.0.0.1:9",
        "--set",
        "turn.mode=smart_turn",
    )
    assert done.returncode == 1
    assert "assistant models download" in done.stdout
    assert "assistant models download smart-turn-v3.2" in done.stdout  # the end-of-turn model's row
    assert "Traceback" not in done.stdout + done.stderr

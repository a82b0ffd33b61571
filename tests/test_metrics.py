"""Prometheus metrics: derived from bus events, scraped over HTTP, parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from assistant.events import (
    AudioStarted,
    DeviceLost,
    DeviceRestored,
    Error,
    Event,
    EventBus,
    Muted,
    SpeechStopped,
    StateChanged,
    TurnLatency,
    Wake,
)
from assistant.metrics import Metrics, serve_metrics
from assistant.testing.ollama_server import OllamaTestServer
from tests.conftest import ROOT, concat, silence
from tests.test_run_with_server import free_port


@dataclass(frozen=True)
class LlmFallback(Event):
    """Stands in for the LLM client's fallback event, which only its `type` and `host` identify."""

    type: ClassVar[str] = "llm_fallback"
    host: str


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(parsed: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return parsed[(name, tuple(sorted(labels.items())))]


def test_events_become_counters_histograms_and_gauges(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    bus = EventBus()
    metrics = Metrics("http://10.0.0.2:11434", thermal_zone=zone)
    bus.subscribe(metrics)
    latency = TurnLatency(
        3.0,
        endpointing_ms=700.0,
        stt_ms=120.0,
        llm_first_token_ms=250.0,
        tts_ms=90.0,
        end_of_speech_to_first_audio_ms=1300.0,
    )
    for event in [
        StateChanged(0.0, "idle", "idle"),
        # A good turn.
        Wake(1.0, "hey_jarvis", 0.9),
        StateChanged(1.0, "listening", "idle"),
        SpeechStopped(2.0, 0.8),
        StateChanged(2.1, "thinking", "listening"),
        AudioStarted(3.0),
        StateChanged(3.0, "speaking", "thinking"),
        latency,
        # A failed turn (the LLM was down): an apology, still a turn.
        Wake(10.0, "hey_jarvis", 0.8),
        SpeechStopped(11.0, 0.5),
        Error(11.5, "llm_unreachable", "down"),
        Error(11.6, "tts_failed", "later error, same turn"),
        AudioStarted(12.0),
        TurnLatency(12.5, stt_ms=100.0),
        # Barge-in while speaking, then a lost request (a new wake word before any reply).
        Wake(20.0, "hey_jarvis", 0.9),
        SpeechStopped(21.0, 0.5),
        AudioStarted(22.0),
        Wake(23.0, "alexa", 0.7),
        SpeechStopped(24.0, 0.5),
        Wake(24.5, "hey_jarvis", 0.9),
        # The microphone goes and comes back; the LLM client falls back to another host.
        DeviceLost(30.0, "microphone", "pulse", "gone", 1.0),
        DeviceRestored(35.0, "microphone", "pulse", 5.0),
        DeviceLost(36.0, "speaker", "pulse", "gone", 1.0),
        LlmFallback(40.0, "http://127.0.0.1:11434"),
        Muted(41.0, True),
    ]:
        bus.publish(event)
    parsed = samples(metrics.render().decode())
    assert value(parsed, "assistant_wakes_total", model="hey_jarvis") == 4
    assert value(parsed, "assistant_wakes_total", model="alexa") == 1
    assert value(parsed, "assistant_turns_total") == 2
    assert value(parsed, "assistant_failed_turns_total", code="llm_unreachable") == 1
    assert ("assistant_failed_turns_total", (("code", "tts_failed"),)) not in parsed  # one code per turn
    assert value(parsed, "assistant_errors_total", code="tts_failed") == 1
    assert value(parsed, "assistant_barge_ins_total") == 1
    assert value(parsed, "assistant_lost_turns_total") == 1
    assert value(parsed, "assistant_device_reconnects_total", device="microphone") == 1
    assert value(parsed, "assistant_device_up", device="microphone") == 1
    assert value(parsed, "assistant_device_up", device="speaker") == 0
    assert value(parsed, "assistant_llm_fallbacks_total") == 1
    assert value(parsed, "assistant_llm_host", host="http://127.0.0.1:11434") == 1
    assert value(parsed, "assistant_llm_host", host="http://10.0.0.2:11434") == 0
    assert value(parsed, "assistant_state", state="muted") == 1
    assert value(parsed, "assistant_state", state="speaking") == 0
    assert value(parsed, "assistant_stt_seconds_count") == 2
    assert value(parsed, "assistant_stt_seconds_sum") == pytest.approx(0.22)
    assert value(parsed, "assistant_endpointing_seconds_count") == 1
    assert value(parsed, "assistant_end_of_speech_to_first_audio_seconds_bucket", le="1.5") == 1
    assert value(parsed, "assistant_end_of_speech_to_first_audio_seconds_bucket", le="1.0") == 0
    assert value(parsed, "assistant_llm_first_token_seconds_sum") == pytest.approx(0.25)
    assert value(parsed, "assistant_tts_first_audio_seconds_count") == 1
    assert value(parsed, "assistant_soc_temperature_celsius") == pytest.approx(48.312)
    assert value(parsed, "process_resident_memory_bytes") > 10_000_000


def test_no_thermal_zone_no_temperature(tmp_path: Path) -> None:
    parsed = samples(Metrics("h", thermal_zone=tmp_path / "absent").render().decode())
    assert not any(name == "assistant_soc_temperature_celsius" for name, _ in parsed)


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_own_listener_checks_the_token() -> None:
    metrics = Metrics("http://127.0.0.1:11434")
    metrics(Wake(1.0, "hey_jarvis", 0.9))
    port, ready = free_port(), asyncio.Event()
    task = asyncio.create_task(serve_metrics(metrics, "127.0.0.1", port, "s3cret", ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        url = f"http://127.0.0.1:{port}/metrics"
        status, body = await asyncio.to_thread(_get, url)
        assert status == 401 and "Bearer" in body
        assert (await asyncio.to_thread(_get, url, "wrong"))[0] == 401
        status, body = await asyncio.to_thread(_get, url, "s3cret")
        assert status == 200
        assert value(samples(body), "assistant_wakes_total", model="hey_jarvis") == 1
        assert (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/other", "s3cret"))[0] == 404
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_off_loopback_without_a_token_exits_78(test_config: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "run",
            "--config",
            str(test_config),
            "--set",
            "metrics.enabled=true",
            "--set",
            "metrics.port=9999",
            "--set",
            "metrics.host=0.0.0.0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 78, run.stderr
    assert "metrics.host = '0.0.0.0' is not a loopback address: set metrics.token" in run.stderr
    assert "Traceback" not in run.stderr


def test_metrics_needs_somewhere_to_be_served(test_config: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "config",
            "show",
            "--config",
            str(test_config),
            "--set",
            "metrics.enabled=true",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 78 and "set metrics.port" in run.stderr and "server.enabled" in run.stderr


def test_run_serves_metrics_with_the_realtime_server(
    test_config: Path, models_dir: Path, speech: dict[str, Path], tmp_path: Path
) -> None:
    """A real turn through `assistant run`, scraped at the realtime server's /metrics under its token."""
    port = free_port()
    wav = concat(tmp_path / "in.wav", speech["wake_and_question"], silence(tmp_path / "quiet.wav", 40))
    with OllamaTestServer(models=["test-model"], reply="Paris is the capital of France.") as ollama:
        llm_url = ollama.url
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assistant",
                "run",
                "--config",
                str(test_config),
                "--input",
                str(wav),
                "--output",
                str(tmp_path / "out.wav"),
                "--events",
                "-",
                "--set",
                f"stt.model={models_dir / 'whisper/ggml-tiny.en-real.bin'}",
                "--set",
                f"tts.voice={models_dir / 'piper/en_US-joe-medium.onnx'}",
                "--set",
                f"llm.host={llm_url}",
                "--set",
                "server.enabled=true",
                "--set",
                f"server.port={port}",
                "--set",
                "server.token=tok",
                "--set",
                "metrics.enabled=true",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            seen = []
            for line in process.stdout:  # the process ends (and stdout with it) at the latest with the WAV
                seen.append(json.loads(line)["type"])
                if seen[-1] == "turn":
                    break
            assert "turn" in seen, seen
            url = f"http://127.0.0.1:{port}/metrics"
            assert _get(url)[0] == 401
            status, body = _get(url, "tok")
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
    assert status == 200, body
    parsed = samples(body)
    assert value(parsed, "assistant_wakes_total", model="hey_jarvis") == 1
    assert value(parsed, "assistant_turns_total") == 1
    assert value(parsed, "assistant_stt_seconds_count") == 1
    assert value(parsed, "assistant_end_of_speech_to_first_audio_seconds_count") == 1
    assert value(parsed, "assistant_llm_host", host=llm_url) == 1
    assert value(parsed, "assistant_device_up", device="microphone") == 1
    assert process.returncode == 0, stderr


def test_alert_rules_fire_as_documented() -> None:
    """deploy/prometheus: the scrape config and the two alert rules, checked by Prometheus' own promtool."""
    import shutil

    from tests.conftest import missing

    promtool = shutil.which("promtool")
    if promtool is None:
        missing("no promtool: install Debian's prometheus package")
    assert promtool is not None
    folder = ROOT / "deploy" / "prometheus"
    done = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0 and "2 rules found" in done.stdout, done.stdout + done.stderr

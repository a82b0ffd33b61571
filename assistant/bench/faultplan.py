"""The fault soak's plan and its reckoning: where faults land, what recovered when, which turns were lost.

Pure functions of the script's cues and the probed events (clock seconds in `Event.t`, wall seconds
beside them), so they are tested on made-up timelines (tests/test_fault_soak.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.bench.script import Cue
from assistant.core.ports import SAMPLE_RATE
from assistant.events import DeviceLost, DeviceRestored, Error, Event, LlmDone, LlmHostDown, LlmHostUp, TurnLatency

BEFORE_WAKE_S = 1.0  # a "before_wake" fault comes this long (of input) before the wake word


@dataclass(frozen=True)
class Fault:
    """One planned fault: what goes away, at which scripted turn, how, and for how long (wall seconds)."""

    kind: str  # "server" (the Ollama test server is killed) or "device" (the sound device is pulled)
    cue: int  # the index of the scripted turn it hits
    trigger: str  # "before_wake", or "mid_reply": the reply's first token (server) or first audio (device)
    at_s: float  # clock time from which it is armed
    out_s: float


@dataclass(frozen=True)
class Outage:
    """A fault as it happened: perf seconds and clock seconds when it began and when the thing came back."""

    fault: Fault
    started_at: float
    started_t: float
    back_at: float
    back_t: float


@dataclass(frozen=True)
class Recovery:
    """What the assistant noticed of one outage and when it had recovered (`window` in clock seconds)."""

    kind: str
    cue: int
    trigger: str
    away_s: float
    noticed: tuple[str, ...]  # devices lost, or "llm" for a host marked down
    recovered: bool
    recovery_s: float | None  # wall seconds from coming back to recovered (0 when nothing was noticed)
    window: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cue": self.cue,
            "trigger": self.trigger,
            "away_s": round(self.away_s, 2),
            "noticed": list(self.noticed),
            "recovered": self.recovered,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 3),
            "window_t": [round(self.window[0], 2), round(self.window[1], 2)],
        }


@dataclass(frozen=True)
class TurnOutcome:
    cue: int
    wake_t: float
    completed: bool
    in_window: bool
    why: str  # for a lost turn: the errors, or what never happened


def slots(n: int) -> list[int]:
    """The turns a fault may hit: every other one from the second, never the last, so the warm-up turn
    is clean and every fault's turn is followed by one that must be answered."""
    return list(range(1, n - 1, 2))


def plan_faults(cues: Sequence[Cue], every_s: float, server_down_s: float, device_away_s: float) -> list[Fault]:
    """The device pulled twice (at the slots nearest a third and two thirds of the turns), the server killed
    every `every_s` of input (at the free slot nearest each time, if one is within half of `every_s`); in time
    order, kinds of trigger alternating."""
    free = slots(len(cues))
    picked: list[tuple[str, int, str]] = []
    for k, third in enumerate((1, 2)):
        if free:
            nearest = min(free, key=lambda i: abs(i - len(cues) * third / 3))
            free.remove(nearest)
            picked.append(("device", nearest, "mid_reply" if k == 0 else "before_wake"))
    last_s = cues[-1].wake_start / SAMPLE_RATE if cues else 0.0
    after = 0  # server faults go in order: each after the one before
    for k in itertools.count():
        target_s = (k + 0.5) * every_s
        if target_s > last_s:
            break
        near = [i for i in free if i > after and abs(cues[i].wake_start / SAMPLE_RATE - target_s) <= every_s / 2]
        if not near:
            continue
        after = min(near, key=lambda i: abs(cues[i].wake_start / SAMPLE_RATE - target_s))
        free.remove(after)
        count = sum(1 for kind, _, _ in picked if kind == "server")
        picked.append(("server", after, "before_wake" if count % 2 == 0 else "mid_reply"))
    faults = []
    for kind, index, trigger in sorted(picked, key=lambda p: p[1]):
        cue = cues[index]
        at_s = (
            cue.wake_start / SAMPLE_RATE - BEFORE_WAKE_S if trigger == "before_wake" else cue.speech_end / SAMPLE_RATE
        )
        faults.append(Fault(kind, index, trigger, max(0.0, at_s), server_down_s if kind == "server" else device_away_s))
    return faults


def recoveries(outages: Sequence[Outage], events: Sequence[tuple[float, Event]]) -> list[Recovery]:
    """For each outage: what was noticed from its start up to the next outage of its kind, and when all
    of that was back (whenever that was).

    A device outage is recovered once every device lost in it is restored; a server outage once the host
    marked down is up again.  An outage nothing noticed recovered at once (its window ends when it came back).
    """
    out = []
    for index, outage in enumerate(outages):
        kind = outage.fault.kind
        until = next((o.started_at for o in outages[index + 1 :] if o.fault.kind == kind), float("inf"))
        seen = [(at, e) for at, e in events if outage.started_at <= at < until]
        later = [(at, e) for at, e in events if at >= outage.started_at]
        if kind == "device":
            lost = {e.device: at for at, e in seen if isinstance(e, DeviceLost)}
            back: dict[str, tuple[float, float]] = {}
            for at, e in later:
                if isinstance(e, DeviceRestored) and e.device in lost and at >= lost[e.device] and e.device not in back:
                    back[e.device] = (at, e.t)
            noticed = tuple(sorted(lost))
            done = [back[d] for d in noticed if d in back]
            recovered = len(done) == len(noticed)
        else:
            down = next((at for at, e in seen if isinstance(e, LlmHostDown)), None)
            noticed = () if down is None else ("llm",)
            up = next(
                ((at, e.t) for at, e in later if isinstance(e, LlmHostUp) and down is not None and at >= down), None
            )
            done = [] if up is None else [up]
            recovered = down is None or up is not None
        away_s = outage.back_at - outage.started_at
        if not noticed:
            out.append(Recovery(outage.fault.kind, outage.fault.cue, outage.fault.trigger, away_s, noticed, True, 0.0,
                                (outage.started_t, outage.back_t)))  # fmt: skip
            continue
        end_at, end_t = max(done) if recovered else (float("inf"), float("inf"))
        recovery_s = max(0.0, end_at - outage.back_at) if recovered else None
        out.append(Recovery(outage.fault.kind, outage.fault.cue, outage.fault.trigger, away_s, noticed, recovered,
                            recovery_s, (outage.started_t, max(end_t, outage.back_t))))  # fmt: skip
    return out


def account_turns(
    cues: Sequence[Cue], events: Sequence[Event], windows: Sequence[tuple[float, float]], reply_window_s: float
) -> list[TurnOutcome]:
    """Each scripted turn: answered or lost, and whether its span meets a fault window.

    Its events are those from its wake word to the next turn's (the last one's go on past the input, as
    the loop finishes it).  Answered: the LLM's reply came and was played with no error before the turn
    ended.  Its span runs from the wake word to the end of its slot in the script, or to its end where it
    ran longer (a slow machine)."""
    out = []
    for index, cue in enumerate(cues):
        lo = cue.wake_start / SAMPLE_RATE
        following = cues[index + 1].wake_start / SAMPLE_RATE if index + 1 < len(cues) else float("inf")
        mine = [e for e in events if lo <= e.t < following]
        ended = next((e for e in mine if isinstance(e, TurnLatency)), None)
        hi = min(following, cue.speech_end / SAMPLE_RATE + reply_window_s)
        hi = max(hi, ended.t) if ended is not None else hi
        errors = [e for e in mine if isinstance(e, Error) and (ended is None or e.t <= ended.t)]
        replied = any(isinstance(e, LlmDone) and e.text.strip() for e in mine)
        played = ended is not None and ended.end_of_speech_to_first_audio_ms is not None
        completed = replied and played and not errors
        if completed:
            why = ""
        elif errors:
            why = "; ".join(f"{e.code}: {e.message}" for e in errors)[:300]
        else:
            why = "no turn" if ended is None else ("no reply" if not replied else "nothing played")
        in_window = any(start <= hi and lo <= stop for start, stop in windows)
        out.append(TurnOutcome(index, round(lo, 2), completed, in_window, why))
    return out

"""The fault soak's figures and goals (from its turns, recoveries and resource samples), and its printout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from assistant.bench.faultplan import Recovery, TurnOutcome

RECOVERY_GOAL_S = 10.0
RSS_GOAL_MB = 5.0


def summarise(
    out: dict[str, Any],
    turns: Sequence[TurnOutcome],
    found: Sequence[Recovery],
    samples: dict[str, Any],
    after_close: dict[str, float],
) -> dict[str, Any]:
    """The figures and the goals, from the run's turns, recoveries and resource samples."""
    out["turns_expected"] = len(turns)
    out["turns_completed"] = sum(1 for t in turns if t.completed)
    out["turns_lost_in_fault_windows"] = sum(1 for t in turns if not t.completed and t.in_window)
    lost_outside = [t for t in turns if not t.completed and not t.in_window]
    out["turns_lost_outside_fault_windows"] = len(lost_outside)
    out["lost_outside"] = [asdict(t) for t in lost_outside[:20]]
    out["lost_inside"] = [asdict(t) for t in turns if not t.completed and t.in_window][:20]
    out["faults"] = [r.as_dict() for r in found]
    times = [r.recovery_s for r in found if r.recovery_s is not None]
    out["recovery_s_max"] = {
        kind: max((r.recovery_s for r in found if r.kind == kind and r.recovery_s is not None), default=None)
        for kind in ("server", "device")
    }
    out["faults_recovered"] = sum(1 for r in found if r.recovered)
    warm = samples.get("warm") or samples.get("end") or after_close
    end = samples.get("end") or after_close
    trail = [warm, *samples["turns"], end]
    out["rss_after_warmup_mb"], out["rss_end_mb"] = warm["rss_mb"], end["rss_mb"]
    out["rss_growth_mb"] = round(end["rss_mb"] - warm["rss_mb"], 1)
    # One-time costs (first reconnects, first failed turns) against a leak: the growth from the first
    # turn after each kind of fault has happened and recovered once.
    firsts = [next((r.window[1] for r in found if r.kind == kind), None) for kind in ("server", "device")]
    seasoned = max((t for t in firsts if t is not None), default=None)
    later = next((s for s in samples["turns"] if seasoned is not None and s["t"] > seasoned), None)
    out["rss_after_first_faults_mb"] = None if later is None else later["rss_mb"]
    out["rss_growth_after_first_faults_mb"] = None if later is None else round(end["rss_mb"] - later["rss_mb"], 1)
    out["fds_after_warmup"], out["fds_end"] = warm["fds"], end["fds"]
    out["fds_max"] = max(s["fds"] for s in trail)
    out["threads_after_warmup"], out["threads_end"] = warm["threads"], end["threads"]
    out["threads_max"] = max(s["threads"] for s in trail)
    out["after_close"] = after_close
    out["samples"] = samples["turns"]
    all_back = bool(found) and all(r.recovered for r in found)
    out["goals"] = [
        goal("0 process restarts for device and server faults", out["process_restarts"], out["process_restarts"] == 0),
        goal(
            f"every fault recovered within {RECOVERY_GOAL_S:.0f} s of coming back",
            max(times, default=None),
            all_back and max(times, default=0.0) <= RECOVERY_GOAL_S,
        ),
        goal("0 turns lost outside the fault windows", len(lost_outside), not lost_outside),
        goal(f"RSS growth <= {RSS_GOAL_MB:.0f} MB after warm-up", out["rss_growth_mb"], out["rss_growth_mb"] <= 5),
        goal("flat file-descriptor count", f"{warm['fds']} -> {end['fds']}", end["fds"] <= warm["fds"]),
    ]
    return out


def goal(name: str, value: Any, met: bool) -> dict[str, Any]:
    return {"goal": name, "value": value, "met": met}


def render(r: dict[str, Any]) -> str:
    """The fault soak as a few lines of text."""
    lines = [
        f"fault soak: {r['minutes']} min of input ({r['input_s']} s) in {r['wall_s']} s; "
        f"process restarts {r['process_restarts']}" + (f" (crash: {r['crash']})" if r.get("crash") else ""),
        f"turns: {r['turns_completed']}/{r['turns_expected']} completed; lost in fault windows "
        f"{r['turns_lost_in_fault_windows']}, outside {r['turns_lost_outside_fault_windows']}; "
        f"false wakes {r['false_wakes']}",
    ]
    for f in r["faults"]:
        took = "never" if f["recovery_s"] is None else f"{f['recovery_s']:.2f} s"
        lines.append(
            f"  {f['kind']:<6} turn {f['cue']:>3} {f['trigger']:<11} away {f['away_s']:5.1f} s; "
            f"noticed: {', '.join(f['noticed']) or 'nothing'}; recovered {took} after coming back"
        )
    lines.append(
        f"RSS warm -> end: {r['rss_after_warmup_mb']} -> {r['rss_end_mb']} MB ({r['rss_growth_mb']:+}; "
        f"{r['rss_growth_after_first_faults_mb']} after the first fault of each kind); "
        f"fds {r['fds_after_warmup']} -> {r['fds_end']} (max {r['fds_max']}); "
        f"threads {r['threads_after_warmup']} -> {r['threads_end']} (max {r['threads_max']})"
    )
    for g in r["goals"]:
        lines.append(f"  {'PASS' if g['met'] else 'MISS'}  {g['goal']} ({g['value']})")
    return "\n".join(lines)

"""History trimming and forgetting."""

from __future__ import annotations

from assistant.core.history import History


def test_bounded_by_turns() -> None:
    h = History("sys", max_turns=2, forget_after_s=0)
    for i in range(4):
        h.add(f"q{i}", f"a{i}", now=float(i))
    msgs = h.messages("q4", now=5.0)
    assert [(m.role, m.content) for m in msgs] == [
        ("system", "sys"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
        ("assistant", "a3"),
        ("user", "q4"),
    ]


def test_forgotten_after_idle() -> None:
    h = History("sys", max_turns=5, forget_after_s=60)
    h.add("q", "a", now=0.0)
    assert len(h.messages("x", now=59.0)) == 4
    assert [m.role for m in h.messages("x", now=61.0)] == ["system", "user"]
    assert len(h) == 0


def test_prefix_for_warming_and_unheard_reply() -> None:
    h = History("sys", max_turns=5, forget_after_s=0)
    h.add("q", "", now=0.0)  # interrupted before anything was heard
    assert [m.role for m in h.messages(None, now=1.0)] == ["system", "user"]


def test_zero_turns_keeps_nothing() -> None:
    h = History("", max_turns=0, forget_after_s=0)
    h.add("q", "a", now=0.0)
    assert h.messages("x", now=0.0)[0].content == "x"

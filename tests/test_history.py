"""History trimming and forgetting."""

from __future__ import annotations

from assistant.core.history import History
from assistant.core.ports import ToolCall


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


def test_an_exchange_keeps_the_device_calls_made_for_its_answer() -> None:
    h = History("sys", max_turns=5, forget_after_s=0)
    call = ToolCall("start_timer", {"duration_s": 600, "name": "pasta"})
    done = "Pasta timer set for 10 minutes."
    h.add("the pasta needs ten minutes", "I will tell you.", now=0.0, calls=((call, done),))
    msgs = h.messages("how long is left?", now=1.0)
    assert [(m.role, m.content, m.tool_calls, m.tool_name) for m in msgs] == [
        ("system", "sys", (), None),
        ("user", "the pasta needs ten minutes", (), None),
        ("assistant", "", (call,), None),
        ("tool", done, (), "start_timer"),
        ("assistant", "I will tell you.", (), None),
        ("user", "how long is left?", (), None),
    ]


def test_calls_are_kept_when_the_answer_was_cut_before_a_word() -> None:
    h = History("", max_turns=5, forget_after_s=0)
    call = ToolCall("cancel_timer", {"all": True})
    h.add("cancel my timers", "", now=0.0, calls=((call, "All timers cancelled."),))
    assert [m.role for m in h.messages(None, now=1.0)] == ["user", "assistant", "tool"]

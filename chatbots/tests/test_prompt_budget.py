from __future__ import annotations

from dataclasses import dataclass

from chatbots.llm.prompt import build_messages, estimate_tokens
from chatbots.models import Bot


@dataclass
class FakePassage:
    chunk_id: int
    content: str
    source_id: int = 1
    source_title: str = "Handbook"
    url: str | None = None
    page: int | None = None
    score: float = 1.0
    start: float | None = None  # a recording's moment (audio and video sources)


def test_prompt_keeps_question_best_passages_and_newest_turns_within_budget() -> None:
    bot = Bot(name="b", system_prompt="Be brief.", history_turns=10, answer_style="strict", language="auto")
    passages = [FakePassage(i, f"passage {i} " + "word " * 300) for i in range(10)]
    history = []
    for i in range(10):
        history += [{"role": "user", "content": f"question {i} " + "x" * 400},
                    {"role": "assistant", "content": f"answer {i} " + "y" * 400}]  # fmt: skip
    question = {"role": "user", "content": "What now?"}

    prompt = build_messages(bot=bot, messages=[*history, question], passages=passages, budget_tokens=2000)

    assert sum(estimate_tokens(m["content"]) for m in prompt) <= 2000 + 50
    assert prompt[-1] == question
    system = prompt[0]["content"]
    assert "passage 0 " in system and "passage 9 " not in system  # best first, the rest did not fit
    kept = prompt[1:-1]
    assert kept and kept[-1]["content"].startswith("answer 9")  # the newest turns survive
    assert all(not m["content"].startswith("question 0") for m in kept)


def test_history_window_limits_turns_even_with_room_to_spare() -> None:
    bot = Bot(name="b", history_turns=1, answer_style="mixed", language="de")
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
                {"role": "user", "content": "e"}]  # fmt: skip
    prompt = build_messages(bot=bot, messages=messages, passages=[], budget_tokens=6000)
    assert [m["content"] for m in prompt[1:]] == ["c", "d", "e"]
    assert "German" in prompt[0]["content"]

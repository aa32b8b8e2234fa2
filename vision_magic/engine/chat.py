"""Conversations: follow-up questions that send the earlier turns (images included) before the new one.

``%%ask_image --continue`` continues the last thread, ``--chat NAME`` keeps several apart, ``--new`` starts
over; :func:`chat` returns a thread as an object with its messages, total usage and cost.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .answer import Answer

DEFAULT = "default"


@dataclass(repr=False)
class Chat:
    """One conversation thread.

    Attributes
    ----------
    name : the thread's name (``--chat NAME``).
    messages : the turns as sent on the wire (user messages with their images, assistant answers); the
        system message is not part of the thread, it is added to every request.
    answers : the :class:`Answer` of every turn, in order.

    Examples
    --------
    >>> c = Chat("demo")
    >>> c.record(Answer(text="A red square.", model="gpt-4o", usage={"prompt_tokens": 90, "completion_tokens": 4},
    ...                 request={"messages": [{"role": "user", "content": [{"type": "text", "text": "What?"}]}]}))
    >>> c
    <Chat 'demo': 1 turn(s), 90 tokens in, 4 out>
    >>> print(c.to_markdown())
    ## demo
    <BLANKLINE>
    **You:** What?
    <BLANKLINE>
    **gpt-4o:** A red square.
    <BLANKLINE>
    """

    name: str = DEFAULT
    messages: list[dict[str, Any]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def ask(self, prompt: str, *sources: Any, **options: Any) -> Answer:
        """Ask a follow-up in this thread: earlier turns are sent first; the answer joins the thread.

        Takes :func:`vision_magic.ask`'s arguments (display, labels, and every option: model, detail, cache,
        refresh, schema, ...).

        Examples
        --------
        >>> c = vision_magic.chat("figure")  # doctest: +SKIP
        >>> c.ask("What does this plot show?", fig)  # doctest: +SKIP
        >>> c.ask("And the left panel?")  # doctest: +SKIP
        """
        from .run import ask

        answer = ask(prompt, *sources, history=list(self.messages), **options)
        self.record(answer)
        return answer

    def record(self, answer: Answer) -> None:
        """Add a finished answer (and the question it answered) to the thread; dry runs are not added."""
        if answer.dry_run or not answer.request:
            return
        question = copy.deepcopy(answer.request["messages"][-1])
        self.messages.append(question)
        self.messages.append({"role": "assistant", "content": answer.text})
        self.answers.append(answer)

    def reset(self) -> None:
        """Forget every turn."""
        self.messages.clear()
        self.answers.clear()

    @property
    def usage(self) -> dict[str, int]:
        """Total tokens of the thread's answers (replayed ones included)."""
        total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for a in self.answers:
            for k in total:
                total[k] += int((a.usage or {}).get(k, 0) or 0)
        return total

    @property
    def cost(self) -> float | None:
        """Total USD of the thread, or None when no answer's price is known."""
        known = [a.cost for a in self.answers if a.cost is not None]
        return sum(known) if known else None

    def to_markdown(self) -> str:
        """The thread as Markdown: each question (with its image count) and answer."""
        lines = [f"## {self.name}", ""]
        answers = iter(self.answers)
        for msg in self.messages:
            if msg["role"] == "user":
                content = msg["content"]
                text = content if isinstance(content, str) else ""
                n = 0
                if isinstance(content, list):
                    text = "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
                    n = sum(1 for p in content if p.get("type") == "image_url")
                images = f" *({n} image{'s' if n != 1 else ''})*" if n else ""
                lines += [f"**You:**{images} {text}", ""]
            elif msg["role"] == "assistant":
                a = next(answers, None)
                who = a.model if a is not None and a.model else "assistant"
                lines += [f"**{who}:** {msg['content']}", ""]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        u = self.usage
        turns = len(self.answers)
        money = f", ${self.cost:.4f}" if self.cost is not None else ""
        return (
            f"<Chat {self.name!r}: {turns} turn(s), {u['prompt_tokens']} tokens in, "
            f"{u['completion_tokens']} out{money}>"
        )


def chat(name: str = DEFAULT) -> Chat:
    """The conversation thread ``name`` of this session (created empty on first use).

    Examples
    --------
    >>> chat("figures").name
    'figures'
    >>> chat("figures") is chat("figures")
    True
    """
    from .session import current

    threads = current().chats
    if name not in threads:
        threads[name] = Chat(name)
    return threads[name]


def chats() -> dict[str, Chat]:
    """Every thread of this session by name."""
    from .session import current

    return dict(current().chats)

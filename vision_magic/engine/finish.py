"""The one place an answer is finished: its cost, its structured data, its record, and whether it is stored.

Every way of asking (``ask``, the magic, the panel, ``ask_many``) ends here, for a sent answer and for one
replayed from the store alike, so cost, parsing and the record (:mod:`vision_magic.engine.record`) are
computed once, by one method.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..images.profiles import cost
from .answer import Answer
from .record import record_of, request_key

if TYPE_CHECKING:
    from .question import Question


def store_key(q: Question) -> str | None:
    """The replay-store key of ``q`` (endpoint-independent: :func:`vision_magic.engine.record.request_key`),
    or None when the store is off for it (``cache=False``)."""
    if not q.options.cache:
        return None
    return request_key(q)


def new_answer(q: Question) -> Answer:
    """An empty :class:`Answer` for ``q`` that records what is sent and the estimated image tokens."""
    return Answer(
        model=q.model, images=q.images, prompt=q.prompt, request=q.body, estimated_tokens=q.image_tokens
    )


def replay(q: Question, answer: Answer, key: str | None, started: float | None = None) -> bool:
    """Fill ``answer`` from the store when ``key`` holds one (marked replayed, then finished); else False.
    ``started`` (``time.monotonic()`` when asked) times the answer."""
    if key is None or q.options.refresh:
        return False
    from . import replay_store

    hit = replay_store.get(key, q.cfg)
    if hit is None:
        return False
    answer.text = hit["text"]
    answer.model = hit["model"] or answer.model
    answer.usage = hit["usage"]
    answer.finish_reason = hit["finish_reason"]
    answer.replayed = True
    finish(q, answer, started=started)
    return True


def finish(q: Question, answer: Answer, key: str | None = None, started: float | None = None) -> Answer:
    """Compute the cost from the usage, parse structured output of a complete answer, make its record
    (``answer.record``), and store a complete, newly sent answer with its record under ``key``. ``started``
    (``time.monotonic()`` when it was asked) sets ``answer.elapsed_s``.

    Examples
    --------
    >>> from vision_magic.engine.question import build_question  # doctest: +SKIP
    >>> finish(q, Answer(text='{"a": 1}', usage={"prompt_tokens": 90, "completion_tokens": 4})).cost  # doctest: +SKIP
    0.000265
    """
    if started is not None:
        answer.elapsed_s = time.monotonic() - started
    usage = answer.usage or {}
    answer.cost = (
        cost(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), q.profile)
        if answer.usage
        else None
    )
    if q.structured and answer.text and not answer.incomplete and answer.data is None:
        from .structured import not_json_advice, parse

        try:
            answer.data = parse(answer.text, q.options.schema)
        except ValueError as e:
            why = str(e)
            answer.error = (
                f"{why}: {not_json_advice(q.endpoint.json_mode or 'json_object')}"
                if "not valid JSON" in why
                else why
            )
    answer.record = record_of(q, answer, answer.elapsed_s)
    if key is not None and not answer.replayed:
        from . import replay_store  # sqlite3 is imported by the first question that uses the store

        replay_store.put(key, answer, q.cfg)
    return answer

"""The one ask path: a question is dry-run, replayed or sent, then finished, and drawn into a view.

:func:`ask` is the Python API; the magic, the panel and ``Chat.ask`` build their :class:`AskOptions` and land
in :func:`answer_question` too (``ask_many`` shares its pieces: :mod:`vision_magic.engine.finish`).
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import APIError, VisionMagicError, one_line
from .answer import Answer
from .endpoints import make_client
from .finish import finish, new_answer, replay, store_key
from .options import AskOptions, with_option_keywords
from .question import Question, build_question
from .record import record_of
from .recordings import refuse_unrecorded
from .send import Budget, run
from .session import current
from .views import AnswerView


def answer_question(q: Question, view: AnswerView | None = None, answer: Answer | None = None) -> Answer:
    """Dry-run, replay or send ``q``; draw it into ``view`` (None: draw nothing); return the finished answer.

    Whatever arrived before an error or interrupt stays in the answer (marked incomplete, ``error`` set) and
    in the view; when nothing arrived the view is blanked. Then the error goes on up. ``answer`` (default: a new one) is filled in place, so a caller on another
    thread can hold it while it fills.
    """
    if q.options.batch:
        raise VisionMagicError(
            "via='batch' hands many images to the Batch API: use vision_magic.ask_many(..., via='batch') "
            "or %%ask_image --each --batch"
        )
    started = time.monotonic()
    session = current()
    answer = answer if answer is not None else new_answer(q)
    session.last_answer = answer
    if q.options.dry_run:
        answer.dry_run = True
        answer.record = record_of(q, answer)
        if q.endpoint.api == "responses":  # show what would go over the wire
            from .responses import responses_body

            answer.request = responses_body(q.body)
        if view is not None:
            view.dry_run(answer, " ".join(q.notes))
        return answer
    key = store_key(q)
    if replay(q, answer, key, started):
        if view is not None:
            view.finish(answer)
        return answer
    refuse_unrecorded(q)  # replay_only: one line, nothing sent, nothing drawn
    try:
        client = make_client(q.cfg, q.endpoint, max_retries=0, reuse=True)  # retries, deadline: send.Budget
        run(
            client,
            q.body,
            answer,
            on_text=view.update if view is not None else None,
            budget=Budget.from_settings(q.cfg),
            on_open=view.start if view is not None else None,
            api=q.endpoint.api,
        )
    except BaseException as e:
        if isinstance(e, APIError):  # offered models, a 413's cause (imported on the first error)
            from .server_models import advise

            advised = advise(e, q)
        else:
            advised = e
        answer.incomplete = True
        if answer.error is None:
            answer.error = "interrupted" if isinstance(e, KeyboardInterrupt) else one_line(advised)
        finish(q, answer, started=started)
        if view is not None:
            if answer.text:
                view.finish(answer)  # what arrived stays visible, marked as cut off
            else:
                view.discard()  # nothing arrived: the error's one line is all there is to see
        if advised is not e:
            raise advised from None
        raise
    finish(q, answer, key, started)
    if view is not None:
        view.finish(answer)
    return answer


@with_option_keywords
def ask(
    prompt: str,
    *sources: Any,
    display: bool = True,
    labels: list[str] | None = None,
    history: list[dict[str, Any]] | None = None,
    **options: Any,
) -> Answer:
    """Ask a model about images; stream the answer as Markdown into the notebook; return an :class:`Answer`.

    Sources are anything :func:`vision_magic.content_parts` takes; with none, the last image the notebook
    showed is used. Options (``model``, ``detail``, ``system``, ``max_tokens``, ``temperature``, ``seed``,
    ``stream``, ``resize``, ``dry_run``, ``cache``, ``refresh``, ``json_mode``, ``schema``: see
    :class:`vision_magic.engine.options.AskOptions`) default to ``%config VisionMagic``.

    An identical question asked before is replayed from the persistent store (marked as replayed, nothing
    sent) unless ``cache=False`` (bypass) or ``refresh=True`` (ask again and store the new answer).
    ``json_mode=True`` or ``schema=`` (a pydantic model or JSON schema) put the parsed answer in
    ``Answer.data``; ``history`` (earlier messages) is sent before the question, see :func:`vision_magic.chat`.

    Examples
    --------
    >>> import vision_magic
    >>> a = vision_magic.ask("What is in the image?", "photo.jpg", detail="low")  # doctest: +SKIP
    >>> a.text, a.usage  # doctest: +SKIP
    ('A cat on a sofa.', {'prompt_tokens': 95, 'completion_tokens': 7, 'total_tokens': 102})
    """
    q = build_question(prompt, sources, AskOptions.from_kwargs(**options), labels=labels, history=history)
    return answer_question(q, current().view() if display else None)

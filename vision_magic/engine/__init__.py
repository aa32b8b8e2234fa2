"""The engine: a question in, an answer out, through the official ``openai`` SDK.

Rules (checked by ``tests/test_layers.py``): imports :mod:`vision_magic.images`, :mod:`vision_magic.errors`,
``openai``, ``traitlets`` and the standard library; never ``IPython``, ``ipywidgets`` nor
:mod:`vision_magic.frontends`. Answers are drawn through the :class:`~vision_magic.engine.views.AnswerView`
a front end hands over, never by the engine itself.

Modules, in the order a question passes them
--------------------------------------------
options       :class:`AskOptions`, the one options object every front end builds.
config        the ``VisionMagic`` traitlets configurable (``%config`` defaults).
session       what one kernel remembers: settings, last answer and table, last image shown, chats, view factory.
outputs       earlier cells' images (``@N``, ``@N:K``, ``@-1``): the bounded store and resolving references.
endpoints     per-server facts (Endpoint table), base URL, API key lookup, the openai client (one per endpoint).
warm          after ``%load_ext``, while no cell runs: the openai SDK imported and the client made on a thread.
question      :func:`build_question`: options + sources + endpoint -> prepared images and request body.
wire          the Chat Completions request body.
structured    JSON mode and structured outputs: ``response_format`` and parsing.
send          sending (streamed, whole, or concurrently with retries) and one-line API errors.
finish        the one place an answer is finished: cost, structured data, its record, storing.
record        what was asked and answered as plain data: the endpoint-independent replay key, the record.
recordings    recorded answers read back from a saved notebook (``replay_from``), and ``replay_only``.
replay_store  the persistent SQLite store of answers (storage only).
run           :func:`ask` and :func:`answer_question`: dry run, replay or send, then finish and draw.
batch         :func:`ask_many`: one question per image, concurrently, into a DataFrame.
chat          conversation threads (follow-ups send the earlier turns).
estimate      sizes, tokens and cost before sending.
parts         :func:`content_parts` as exported: the pure converter plus ``@N`` references.
answer        the :class:`Answer` record.
views         the protocol a front end's view implements.
"""

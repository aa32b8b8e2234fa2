"""The URL paths the server answers."""

from __future__ import annotations

import re

# POST: /v1/chat/completions, /chat/completions, Azure-style /openai/deployments/{name}/chat/completions
CHAT_PATH = re.compile(
    r"(?:/v1)?/chat/completions|/openai/deployments/(?P<deployment>[^/]+)/chat/completions"
)
# GET: /v1/models, /models, /v1/models/{id}
MODEL_PATH = re.compile(r"(?:/v1)?/models(?:/(?P<model>[^/]+))?")
# POST: the Responses API, /v1/responses (also /responses)
RESPONSES_PATH = re.compile(r"(?:/v1)?/responses")

"""The URL paths the server answers."""

from __future__ import annotations

import re

# POST: /v1/chat/completions, /chat/completions, Azure-style /openai/deployments/{name}/chat/completions
CHAT_PATH = re.compile(
    r"(?:/v1)?/chat/completions|/openai/deployments/(?P<deployment>[^/]+)/chat/completions"
)
# GET: /v1/models, /models, /v1/models/{id}
MODEL_PATH = re.compile(r"(?:/v1)?/models(?:/(?P<model>[^/]+))?")
# POST /v1/files (upload); GET /v1/files/{id} and /v1/files/{id}/content
FILES_PATH = re.compile(r"(?:/v1)?/files(?:/(?P<file_id>[^/]+)(?P<content>/content)?)?")
# POST /v1/batches (create), GET /v1/batches (list), GET /v1/batches/{id}, POST /v1/batches/{id}/cancel
BATCHES_PATH = re.compile(r"(?:/v1)?/batches(?:/(?P<batch_id>[^/]+)(?P<cancel>/cancel)?)?")
# POST: the Responses API, /v1/responses (also /responses)
RESPONSES_PATH = re.compile(r"(?:/v1)?/responses")

"""The error catalogue: every problem code Spinbot answers with, its HTTP status, whether a retry may
help and what to do next. The API's problem+json, the /v1 error objects, the CLI and docs/api.md come
from (or are checked against) this table; a new code is added here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    """One problem code: `status` (HTTP), `retryable` (the same request may succeed later; an answer then
    carries `Retry-After: retry_after_s` seconds when that is set), `hint` (what to do next, used when
    the error itself gives none)."""

    status: int
    retryable: bool
    hint: str
    retry_after_s: int | None = None


#: seconds an answer 503 asks clients to wait before they try again
RETRY_AFTER_S = 5

_RETRY = "retry later"

CODES: dict[str, ErrorCode] = {
    # requests the API refuses as sent
    "bad_request": ErrorCode(400, False, "see /docs for what this route takes"),
    "unauthorized": ErrorCode(401, False, "send `Authorization: Bearer <key>` with a key from SPINBOT_API_KEYS"),
    "forbidden": ErrorCode(403, False, "use an API key allowed to do this"),
    "not_found": ErrorCode(404, False, "see /docs for the API's routes"),
    "method_not_allowed": ErrorCode(405, False, "see /docs for the methods allowed"),
    "conflict": ErrorCode(409, False, "check the resource's state and retry"),
    "content_too_large": ErrorCode(413, False, "send less"),
    "unsupported_media_type": ErrorCode(415, False, "see /docs for the content types this route takes"),
    "range_not_satisfiable": ErrorCode(416, False, "ask for a range inside the artifact"),
    "unprocessable_content": ErrorCode(422, False, "see /docs"),
    "too_many_requests": ErrorCode(429, True, _RETRY),
    "invalid_request": ErrorCode(422, False, "fix the fields listed in `errors`; see /docs"),
    "invalid_text": ErrorCode(422, False, "remove NUL characters and unpaired surrogates"),
    "json_too_deep": ErrorCode(422, False, "send the data flatter"),
    "too_large": ErrorCode(413, False, "send less, or raise the server's limit"),
    "too_many_pixels": ErrorCode(413, False, "send a smaller picture, or raise SPINBOT_MAX_IMAGE_MEGAPIXELS"),
    "graph_too_large": ErrorCode(413, False, "split the work into smaller jobs"),
    "invalid_attachment": ErrorCode(422, False, "send data:<type>;base64,<payload>"),
    "unsupported_attachment": ErrorCode(415, False,
                                        "attach images (image/*), audio (audio/*), video (video/*) or text (text/*)"),
    "invalid_graph": ErrorCode(422, False, "fix the graph; the schema is manifests/langgraph.v1.schema.json"),
    "graph_refused": ErrorCode(422, False, "fix the evaluator's findings and retry"),
    "plan_refused": ErrorCode(422, False, "rephrase the goal, or run a fixed pipeline (GET /api/pipelines)"),
    "invalid_pipeline_params": ErrorCode(422, False, "GET /api/pipelines lists each pipeline's params"),
    "unbuildable": ErrorCode(422, False, "ask for something the running services can make"),
    "unknown_service": ErrorCode(422, False, "GET /api/capabilities lists the services that run now"),
    "model_not_found": ErrorCode(404, False, "GET /v1/models lists the models"),
    "no_ui": ErrorCode(404, False, "use the API (/docs) or reinstall Spinbot"),
    "artifact_missing": ErrorCode(404, False, "re-run the job that produced it"),
    "artifact_not_found": ErrorCode(422, False, "use the key of an artifact or upload that exists"),
    "profile_exists": ErrorCode(409, False, "choose another name, or delete that profile first"),
    "profile_failed": ErrorCode(409, False, "delete the profile and make it again from a clearer voice sample"),
    "not_a_prepared_voice": ErrorCode(422, False, "use a voice that voice.prepare made"),
    "cancel_failed": ErrorCode(409, True, "retry in a moment"),
    "not_retryable": ErrorCode(409, False, "wait for the job to end (or cancel it) first"),
    # limits that lift by themselves
    "too_many_jobs": ErrorCode(429, True, "wait for a job to finish or cancel one, then retry", 10),
    "too_many_streams": ErrorCode(429, True, "close a stream you no longer read, then retry", 5),
    # the server's own parts
    "redis_unavailable": ErrorCode(503, True, "retry; if it persists, check that Redis runs and SPINBOT_REDIS_URL",
                                   RETRY_AFTER_S),
    "postgres_unavailable": ErrorCode(503, True, "retry; if it persists, check that Postgres runs and "
                                      "SPINBOT_DATABASE_URL", RETRY_AFTER_S),
    "postgres_busy": ErrorCode(503, True, "retry; every Postgres connection was busy", RETRY_AFTER_S),
    "artifact_store_unavailable": ErrorCode(503, True, "retry; if it persists, check S3/MinIO", RETRY_AFTER_S),
    "engine_unavailable": ErrorCode(503, True, "start the engine this service needs, then retry", RETRY_AFTER_S),
    "llm_unavailable": ErrorCode(503, True, "start Ollama (SPINBOT_OLLAMA_URL), then retry", RETRY_AFTER_S),
    "llm_timeout": ErrorCode(503, True, "retry; the model was too slow (SPINBOT_OLLAMA_TIMEOUT_S)", RETRY_AFTER_S),
    "llm_garbage": ErrorCode(422, False, "rephrase the goal; the model's answer did not fit the schema"),
    "llm_prompt_too_long": ErrorCode(422, False, "shorten the goal, or raise SPINBOT_OLLAMA_NUM_CTX_MAX"),
    "timeout": ErrorCode(503, True, "retry; the step ran past its time limit", RETRY_AFTER_S),
    "transient": ErrorCode(503, True, _RETRY, RETRY_AFTER_S),
    "server_shutting_down": ErrorCode(503, True, "retry once the server is back", RETRY_AFTER_S),
    "permanent": ErrorCode(422, False, "change the request; retrying it as is cannot help"),
    "cancelled": ErrorCode(500, False, "run it again if you still want it"),
    "lost_claim": ErrorCode(500, False, "another executor took the job over; nothing to do"),
    "internal": ErrorCode(500, False, "this is a bug in Spinbot; the server log has the traceback"),
    "internal_server_error": ErrorCode(500, False, "this is a bug in Spinbot; the server log has the traceback"),
    "service_unavailable": ErrorCode(503, True, _RETRY, RETRY_AFTER_S),
    "error": ErrorCode(500, False, "the server log has the details"),
    # the command line only
    "bad_input": ErrorCode(422, False, "fix the file: a langgraph.v1 graph"),
    "no_running_spinbot": ErrorCode(503, True, "start `spinbot up`, or check SPINBOT_REDIS_URL"),
    "unsafe_setup": ErrorCode(422, False, "fix the Redis setup it names"),
    "up_refused": ErrorCode(422, False, "fix the setting it names"),
}

#: the code of a bare HTTP error (a route that does not exist, a method not allowed) by its status
BY_STATUS: dict[int, str] = {CODES[c].status: c for c in (
    "bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed", "conflict", "content_too_large",
    "unsupported_media_type", "range_not_satisfiable", "unprocessable_content", "too_many_requests",
    "internal_server_error", "service_unavailable")}


def lookup(code: str) -> ErrorCode:
    """The catalogue entry of `code`; KeyError for a code that is not catalogued (a bug: add it to CODES)."""
    return CODES[code]

"""Every Redis stream, group and key name in one place."""

from __future__ import annotations

PREFIX = "spinbot"
PLANES = ("control", "gpu")
GROUP = "executors"

DEAD_LETTER_STREAM = f"{PREFIX}:deadletter"
JOBS_INDEX = f"{PREFIX}:jobs"  # sorted set: job id -> created timestamp
ACTIVE_JOBS = f"{PREFIX}:jobs:active"  # set of job keys not yet finished (re-issue scans these)
CANCEL_CHANNEL = f"{PREFIX}:cancel"
RECONCILE_LOCK = f"{PREFIX}:reconcile:lock"  # the executor sweeping for lost stream entries now
EVENTS_MAXLEN = 10_000
#: Sorted set: chat message id -> expiry (unix s) of the claim of the API process following its turn
#: (0: nobody follows it); any API answers a lapsed turn when its job ends (conversation/turns.py).
OPEN_TURNS = f"{PREFIX}:turns:open"


def plane_stream(plane: str) -> str:
    return f"{PREFIX}:plane:{plane}"


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def job_events_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:events"


def owner_jobs_key(owner: str) -> str:
    """Set of the job keys of `owner`'s jobs not known to have ended (the per-key job limit counts these)."""
    return f"{PREFIX}:owner:{owner}:jobs"


def owner_streams_key(owner: str) -> str:
    """Sorted set: lease id -> expiry (Redis server time, ms) of `owner`'s open event streams, all APIs."""
    return f"{PREFIX}:owner:{owner}:streams"


def manifests_key(plane: str) -> str:
    """Hash: executor id -> that executor's live manifest (JSON) for one plane."""
    return f"{PREFIX}:manifests:{plane}"


#: Sorted set: "plane:executor" -> heartbeat deadline (Redis server time, epoch seconds).
MANIFEST_DEADLINES = f"{PREFIX}:manifests:deadlines"


def artifact_key(job_id: str, node_id: str, name: str) -> str:
    """Deterministic artifact key: a re-run of a node overwrites, never duplicates."""
    return f"jobs/{job_id}/{node_id}/{name}"


def upload_key(owner: str, upload_id: str, name: str) -> str:
    """Where a client's upload lives: every object a key owns sits under `uploads/{owner}/` or its jobs."""
    return f"uploads/{owner}/{upload_id}/{name}"


def owned_prefixes(owner: str, job_id: str) -> tuple[str, str]:
    """Key prefixes a job may read without asking Postgres: its owner's uploads and its own artifacts."""
    return f"uploads/{owner}/", f"jobs/{job_id}/"

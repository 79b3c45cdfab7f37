"""Which exceptions mean the queue's Redis is unreachable (an outage, not a job's failure)."""

from __future__ import annotations

import redis.exceptions

#: Redis unreachable, as an executor's loops see it (connection refused, reset, timed out).
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, OSError)
#: Inside a task only the queue client's connection errors are an outage; anything else is the node's failure.
QUEUE_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

"""The queue: the one package that speaks the Redis Streams protocol of jobs and planes.

Layout (names in spinbot.constants; the record's fields in record.py):
- job_key(id): the job record, a hash (record.py).
- job_events_key(id): the job's event stream (type, data JSON); its ids are what clients resume from.
- plane_stream(plane): entries {job, version, progress, delta?, reissued?}; consumer group constants.GROUP.

Who does what:
- `JobQueue` (client.py), the producer and readers: submit, get, live_fields, read/archived events,
  follow (through its `EventHub`, hub.py: many followers over few connections), cancel, the Postgres
  sync; `run` submits and answers with the `Job` its submitter follows it by (events, state, cancel);
  `JobQueue.recovery` (recovery.py): recover at start, the live sweep.
- `Consumer` (consumer.py), an executor's side: claim_new / claim_own_pending / autoclaim -> `Claim`s,
  heartbeat, release, drop, dead_letter, read_record / read_since (catch up from hand-off deltas).
- `Lease` (lease.py): every write to a claimed job, fenced: one Lua script checks that the writer
  still owns the entry (XPENDING names its consumer), then writes fields and events and, in the same
  script, hands off (XADD to the next plane) and acks (XACK+XDEL). The scripts are in lua/*.lua.
- `RecordWriter` (writer.py): transitions and events to Postgres in the background, with full graph
  snapshots only now and then.
- `StubQueue` (stub.py): the same interface in memory, for unit tests of executor logic without Redis.
"""

from spinbot.queue.client import Job, JobQueue
from spinbot.queue.consumer import Consumer
from spinbot.queue.errors import QUEUE_DOWN, REDIS_DOWN
from spinbot.queue.hub import ZERO, EventHub, is_terminal, valid_id
from spinbot.queue.interface import Claim
from spinbot.queue.lease import Lease
from spinbot.queue.record import (
    DELTA_FIELD,
    NODE_FIELD,
    TERMINAL_JOB,
    Event,
    JobState,
    as_str,
    decode_event,
    decode_hash,
    doc_with_states,
    dumps,
    loads,
    node_state,
    node_states,
)
from spinbot.queue.writer import RecordWriter, Snapshot, snapshot_interval

__all__ = [
    "DELTA_FIELD", "NODE_FIELD", "QUEUE_DOWN", "REDIS_DOWN", "TERMINAL_JOB", "ZERO", "Claim", "Consumer", "Event",
    "EventHub", "Job", "JobQueue", "JobState", "Lease", "RecordWriter", "Snapshot", "as_str", "decode_event",
    "decode_hash", "doc_with_states", "dumps", "is_terminal", "loads", "node_state", "node_states",
    "snapshot_interval", "valid_id",
]

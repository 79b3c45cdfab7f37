-- The durable record of jobs: one row per job, a graph snapshot per transition, events, artifacts.
CREATE TABLE jobs (
    id           text PRIMARY KEY,
    owner        text NOT NULL,
    workflow_id  text NOT NULL,
    status       text NOT NULL,
    progress     real NOT NULL DEFAULT 0,
    plane        text,
    version      integer NOT NULL DEFAULT 0,
    goal         text NOT NULL DEFAULT '',
    pipeline     text,
    error        jsonb,
    graph        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX jobs_owner_created ON jobs (owner, created_at DESC);
CREATE INDEX jobs_unfinished ON jobs (status) WHERE status IN ('queued', 'running');

CREATE TABLE graph_snapshots (
    job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    status      text NOT NULL,
    plane       text,
    graph       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, version)
);

CREATE TABLE job_events (
    job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event_id    text NOT NULL,          -- the Redis stream id, so replays are idempotent
    type        text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, event_id)
);

CREATE TABLE artifacts (
    key           text PRIMARY KEY,
    job_id        text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    node_id       text NOT NULL,
    name          text NOT NULL,
    content_type  text NOT NULL,
    size          bigint NOT NULL,
    sha256        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX artifacts_job ON artifacts (job_id);

-- The content-addressed node cache: one row per (owner, key); key = sha256 of service, version,
-- canonical params and the digests of the resolved inputs (spinbot.nodecache.node_key). Scoped per
-- owner: an owner reuses only what its own jobs made. First writer wins (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE node_cache (
    owner        text NOT NULL,
    key          text NOT NULL,
    service      text NOT NULL,
    version      text NOT NULL,
    outputs      jsonb NOT NULL,
    artifacts    jsonb NOT NULL DEFAULT '[]',   -- [{"key": ..., "sha256": ...}] the outputs hold
    job_id       text NOT NULL,                 -- the job that made it (no FK: jobs may be pruned)
    node_id      text NOT NULL,
    seconds      real,
    hits         integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_hit_at  timestamptz,
    PRIMARY KEY (owner, key)
);

-- spinbot.history reads the newest completed node events every minute for the learned estimates.
CREATE INDEX job_events_completed_nodes ON job_events (created_at DESC)
    WHERE type = 'node' AND data->>'status' = 'completed';

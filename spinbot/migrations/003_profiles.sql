-- Profiles: a person's face and voice, prepared once and reused by later goals (one API key owns each).
-- `assets` maps a kind to what a profile keeps of it: {"portrait": {"key": ...}, "voice": {"key": ...,
-- "job": ..., "node": ..., "features": {...}, "reference_text": ...}}; a LoRA joins later as one more kind.
CREATE TABLE profiles (
    id           text PRIMARY KEY,
    owner        text NOT NULL,
    name         text NOT NULL,
    is_default   boolean NOT NULL DEFAULT false,
    assets       jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'ready' CHECK (status IN ('preparing', 'ready', 'failed')),
    error        jsonb,
    pending_job  text,                    -- the job preparing an asset, until it ends (no FK: jobs may be pruned)
    jobs         text[] NOT NULL DEFAULT '{}',  -- every job that made something this profile keeps
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX profiles_owner_name ON profiles (owner, lower(name));
CREATE UNIQUE INDEX profiles_owner_default ON profiles (owner) WHERE is_default;

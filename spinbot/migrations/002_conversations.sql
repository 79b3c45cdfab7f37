-- Chat history: conversations and their messages, and the files users attach to them.
CREATE TABLE conversations (
    id          text PRIMARY KEY,
    owner       text NOT NULL,
    title       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_owner_updated ON conversations (owner, updated_at DESC);

CREATE TABLE messages (
    id               bigserial PRIMARY KEY,
    conversation_id  text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content          text NOT NULL DEFAULT '',
    job_id           text,               -- the job this turn started, if any (no FK: jobs may be pruned)
    graph            jsonb,              -- the plan shown in this turn, if any
    attachments      jsonb NOT NULL DEFAULT '[]',
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

CREATE TABLE uploads (
    key           text PRIMARY KEY,      -- uploads/{owner}/{id}/{name}
    owner         text NOT NULL,
    name          text NOT NULL,
    content_type  text NOT NULL,
    size          bigint NOT NULL,
    sha256        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

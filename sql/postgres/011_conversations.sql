-- Conversation figures (docs/recordings.md "Conversation figures"), as
-- sql/sqlite/018_conversations.sql: one row per analysed recording, keyed
-- by the recording (call ids change when calls merge; `rebuild` keeps
-- recordings), 'ok' with the figures rounded to two decimals or 'failed'
-- with the reason.
CREATE TABLE conversations (
    recording_id             BIGINT  PRIMARY KEY REFERENCES recordings(id),
    status                   TEXT    NOT NULL CHECK (status IN ('ok', 'failed')),
    error                    TEXT,
    agent_talk_seconds       DOUBLE PRECISION,
    customer_talk_seconds    DOUBLE PRECISION,
    talk_ratio               DOUBLE PRECISION,
    overtalk_seconds         DOUBLE PRECISION,
    longest_silence_seconds  DOUBLE PRECISION,
    silence_seconds          DOUBLE PRECISION,
    interruptions            BIGINT,
    agent_first_word_seconds DOUBLE PRECISION,
    segments                 TEXT,
    computed_at              TEXT    NOT NULL
);

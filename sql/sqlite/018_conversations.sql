-- Conversation figures (docs/recordings.md "Conversation figures"): one row
-- per recording whose two sides were analysed, computed from the audio in
-- the step that merged or stored it (or by `callvault recordings analyze`).
-- Keyed by the recording, not the call: call ids are derived from the legs
-- and may change when calls merge, and `callvault rebuild` clears calls but
-- keeps recordings, so the figures survive it. `status` is 'ok' (figures
-- set) or 'failed' (`error` says why, the figures are NULL). The figures
-- are kept rounded to two decimals as the API shows them, so a search
-- filter matches what the user reads; `segments` is the JSON array the
-- API shows.
CREATE TABLE conversations (
    recording_id             INTEGER PRIMARY KEY REFERENCES recordings(id),
    status                   TEXT    NOT NULL CHECK (status IN ('ok', 'failed')),
    error                    TEXT,
    agent_talk_seconds       REAL,
    customer_talk_seconds    REAL,
    talk_ratio               REAL,
    overtalk_seconds         REAL,
    longest_silence_seconds  REAL,
    silence_seconds          REAL,
    interruptions            INTEGER,
    agent_first_word_seconds REAL,
    segments                 TEXT,
    computed_at              TEXT    NOT NULL
);

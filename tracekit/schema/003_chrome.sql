-- tracekit schema: the plain Chrome JSON (catapult / Perfetto style) phases. Documented in docs/schema.md.
-- B/E duration pairs are rows of `events` (ph = 'B'); unmatched B/E/b/e/S/F are in `other_events` (note).

-- Counter ('C') events: one row per event and series (each key of its args object).
CREATE TABLE IF NOT EXISTS counters (
    trace_id  INTEGER NOT NULL,
    event_id  BIGINT NOT NULL,      -- position of the C event in traceEvents
    pid       VARCHAR,
    tid       VARCHAR,
    cat       VARCHAR,
    name      VARCHAR,
    id        VARCHAR,              -- the event's id, if any (Perfetto names the track "<name> id: <id>")
    ts_ns     BIGINT NOT NULL,
    series    VARCHAR NOT NULL,     -- the args key
    value     DOUBLE                -- the args value (number, or a string holding a number); NULL if neither
);

-- Async slices: nestable async b/e pairs and legacy async S/F pairs.
CREATE TABLE IF NOT EXISTS async_slices (
    trace_id      INTEGER NOT NULL,
    event_id      BIGINT NOT NULL,  -- position of the b (or S) event
    ph            VARCHAR NOT NULL, -- 'b' (nestable) or 'S' (legacy)
    cat           VARCHAR,
    name          VARCHAR,
    id            VARCHAR,          -- id, else id2.global, else 'local:<pid>:<id2.local>'
    scope         VARCHAR,          -- the event's "scope" field, if any
    pid           VARCHAR,
    tid           VARCHAR,
    ts_ns         BIGINT NOT NULL,
    dur_ns        BIGINT NOT NULL,  -- end_ns - ts_ns
    end_ns        BIGINT NOT NULL,
    end_event_id  BIGINT NOT NULL,  -- position of the e (or F) event that closed it
    depth         INTEGER NOT NULL, -- nesting among open slices with the same (cat, id, scope); 0 = outermost
    args          JSON,             -- the b's args merged with the e's (the e's win on equal keys)
    note          VARCHAR           -- e.g. 'end name: X' when the closing event names another slice
);

-- Async instants: nestable 'n' events and legacy async steps 'T' / 'p'.
CREATE TABLE IF NOT EXISTS async_instants (
    trace_id  INTEGER NOT NULL,
    event_id  BIGINT NOT NULL,
    ph        VARCHAR NOT NULL,     -- 'n', 'T' or 'p'
    cat       VARCHAR,
    name      VARCHAR,
    id        VARCHAR,              -- as in async_slices
    scope     VARCHAR,
    pid       VARCHAR,
    tid       VARCHAR,
    ts_ns     BIGINT NOT NULL,
    args      JSON,
    note      VARCHAR               -- 'no S with this id' for a T/p step whose operation never started
);

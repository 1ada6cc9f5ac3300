-- tracekit schema v2: base tables. Documented in docs/schema.md.
-- Times are exact integer nanoseconds on the trace's own clock (Kineto `ts` µs × 1000).

CREATE TABLE IF NOT EXISTS tracekit_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

CREATE SEQUENCE IF NOT EXISTS trace_id_seq START 1;

-- One row per ingested trace file.
CREATE TABLE IF NOT EXISTS traces (
    trace_id           INTEGER PRIMARY KEY,
    name               VARCHAR NOT NULL,      -- the file's name (traceName stays in metadata)
    path               VARCHAR NOT NULL,      -- absolute source path at ingest time
    sha256             VARCHAR NOT NULL UNIQUE, -- of the file's decompressed content
    file_bytes         BIGINT NOT NULL,       -- size on disk (compressed if .gz)
    json_bytes         BIGINT NOT NULL,       -- decompressed JSON size
    base_time_ns       BIGINT,                -- baseTimeNanoseconds (Unix epoch of the trace clock), if recorded
    span_start_ns      BIGINT,                -- earliest ts_ns of any event
    span_end_ns        BIGINT,                -- latest end_ns of any event
    device_properties  JSON,                  -- deviceProperties (else computeProperties), if recorded
    metadata           JSON,                  -- every other top-level key (schemaVersion, cuda versions, ...)
    event_count        BIGINT NOT NULL,       -- elements of traceEvents
    time_parse         VARCHAR NOT NULL,      -- 'binary64-exact' or 'decimal' (docs/schema.md#exact-time)
    tracekit_version   VARCHAR NOT NULL,
    ingested_at        TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Every complete ('X') event, any category (unknown categories are kept).
CREATE TABLE IF NOT EXISTS events (
    trace_id     INTEGER NOT NULL,
    event_id     BIGINT NOT NULL,   -- position in traceEvents (0-based): unique within a trace
    cat          VARCHAR,           -- the category as written
    category     VARCHAR,           -- canonical category (category_aliases; else lower(cat)): filter on this
    name         VARCHAR,
    pid          VARCHAR,           -- as written (Kineto uses ints, and strings such as 'Spans')
    tid          VARCHAR,
    ts_ns        BIGINT NOT NULL,
    dur_ns       BIGINT NOT NULL,
    end_ns       BIGINT NOT NULL,   -- ts_ns + dur_ns
    device       INTEGER,           -- args.device (GPU events)
    stream       BIGINT,            -- args.stream (GPU events)
    correlation  BIGINT,            -- args.correlation, else its launch flow's id (runtime calls and their GPU work)
    external_id  BIGINT,            -- args."External id" (or "external id", PyTorch 1.8-1.10): CPU op <-> its launches
    parent_id    BIGINT,            -- innermost enclosing event on the same track (pid, tid)
    depth        INTEGER NOT NULL,  -- 0 = top level on its track
    nested       BOOLEAN NOT NULL,  -- false: overlaps its parent's end (does not nest); kept, flagged
    launch_id    BIGINT,            -- GPU events: the runtime/driver call that launched it (by correlation)
    op_id        BIGINT,            -- GPU events and runtime calls: the CPU op that was running (External id)
    ph           VARCHAR,           -- 'X' complete event, 'B' a B/E pair (event_id = the B's position)
    args         JSON
);

-- Instant ('i'/'I') events other than [memory]; they nest like zero-length events.
CREATE TABLE IF NOT EXISTS instants (
    trace_id   INTEGER NOT NULL,
    event_id   BIGINT NOT NULL,
    cat        VARCHAR,
    name       VARCHAR,
    pid        VARCHAR,
    tid        VARCHAR,
    ts_ns      BIGINT NOT NULL,
    scope      VARCHAR,             -- 's': 't' thread, 'p' process, 'g' global
    parent_id  BIGINT,
    args       JSON
);

-- The profiler's [memory] instant events (profile_memory=True): one per allocation/free.
CREATE TABLE IF NOT EXISTS memory (
    trace_id         INTEGER NOT NULL,
    event_id         BIGINT NOT NULL,
    pid              VARCHAR,
    tid              VARCHAR,
    ts_ns            BIGINT NOT NULL,
    bytes            BIGINT NOT NULL,  -- signed: > 0 allocation, < 0 free
    addr             BIGINT,
    total_allocated  BIGINT,           -- allocator's live bytes after this event
    total_reserved   BIGINT,
    device_type      INTEGER,          -- 0 CPU, 1 CUDA (c10::DeviceType)
    device_id        INTEGER,
    parent_id        BIGINT            -- innermost CPU event running on that thread (an op or annotation)
);

-- Flow arrows ('s' start / 'f' finish / 't' step), e.g. ac2g: CPU launch -> GPU kernel.
CREATE TABLE IF NOT EXISTS flows (
    trace_id    INTEGER NOT NULL,
    flow_id     VARCHAR NOT NULL,      -- the event's id (for ac2g: the correlation id)
    cat         VARCHAR,
    name        VARCHAR,
    start_pid   VARCHAR,
    start_tid   VARCHAR,
    start_ts_ns BIGINT,
    end_pid     VARCHAR,
    end_tid     VARCHAR,
    end_ts_ns   BIGINT
);

-- One row per (pid, tid) that holds events, with names from the 'M' metadata events.
CREATE TABLE IF NOT EXISTS tracks (
    trace_id      INTEGER NOT NULL,
    pid           VARCHAR,
    tid           VARCHAR,
    kind          VARCHAR NOT NULL,    -- 'gpu' (category kernel/gpu_memcpy/gpu_memset/gpu_user_annotation), 'cpu', 'other'
    process_name  VARCHAR,
    thread_name   VARCHAR,
    events        BIGINT NOT NULL
);

-- Any other event phase ('M' metadata, 'P' samples, objects, marks...), kept verbatim, and the B/E/b/e/S/F
-- events that found no partner (see `note`).
CREATE TABLE IF NOT EXISTS other_events (
    trace_id   INTEGER NOT NULL,
    event_id   BIGINT NOT NULL,
    ph         VARCHAR,
    cat        VARCHAR,
    name       VARCHAR,
    pid        VARCHAR,
    tid        VARCHAR,
    ts_ns      BIGINT,
    args       JSON,
    note       VARCHAR              -- why it is here when its phase has a table: 'unmatched B', 'unmatched E', ...
);

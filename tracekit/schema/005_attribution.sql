-- tracekit schema v3: analysis results as tables. Documented in docs/schema.md ("Results: kernel_components").
-- Written by `tracekit attribute` (and TraceDB.attribute): a trace attributed again has its rows replaced,
-- in one transaction. An older database gains the table when opened for writing (docs/schema.md#migration).

-- What attribution decided for each unit of a trace: every kernel (on CPU-only traces, every CPU event whose
-- self time counts) gets exactly one component; the rows' time_ns add up to the report's total exactly.
CREATE TABLE IF NOT EXISTS kernel_components (
    trace_id   INTEGER NOT NULL,  -- the trace (traces.trace_id)
    event_id   BIGINT NOT NULL,   -- the kernel (events.event_id); on CPU-only traces the CPU event
    component  VARCHAR NOT NULL,  -- rmsnorm, gated_mlp, conv, ssm, final_linear or other
    layer      INTEGER,           -- the model layer (0-based), when known
    reason     VARCHAR,           -- the evidence: the stage that decided (scope, rule components.toml#N, gemm in_proj, default, ...)
    time_ns    BIGINT NOT NULL,   -- the time the unit counts: the kernel's dur_ns; on CPU-only traces the event's self time
    forward    INTEGER,           -- generate traces: the forward (0-based, in time order) holding the kernel
    phase      VARCHAR            -- generate traces: prefill or decode
);

-- tracekit schema v2: typed views and macros over the base tables (docs/schema.md).
-- Every filter is on events.category (canonical, see 004_categories.sql), never on the raw cat.

-- Typed columns read from args never fail on a value of another type: they are NULL (the raw value stays in
-- `args`). An integer column takes a JSON integer or a string holding one (Kineto's XPU plugin quotes numbers),
-- never a fraction, boolean or array; a number column any JSON number or numeric string; a list column a JSON
-- array of integers only (a string "[128,1,1]" is NULL). docs/schema.md, "Typed views".
CREATE OR REPLACE MACRO arg_int(text) AS
    CASE WHEN regexp_full_match(text, '\s*-?[0-9]+\s*') THEN TRY_CAST(text AS BIGINT) END;
CREATE OR REPLACE MACRO arg_number(text) AS TRY_CAST(text AS DOUBLE);
CREATE OR REPLACE MACRO arg_int_list(value) AS
    CASE WHEN regexp_full_match(CAST(value AS VARCHAR), '\[\s*(-?[0-9]+\s*(,\s*-?[0-9]+\s*)*)?\]')
         THEN TRY_CAST(value AS INTEGER[]) END;

CREATE OR REPLACE VIEW kernels AS
SELECT e.trace_id, e.event_id, e.name, e.ts_ns, e.dur_ns, e.end_ns, e.device, e.stream,
       e.correlation, e.external_id, e.launch_id, e.op_id, e.parent_id AS gpu_annotation_id,
       arg_int_list(e.args->'$.grid')                AS grid,
       arg_int_list(e.args->'$.block')               AS block,
       TRY_CAST(arg_int(e.args->>'$."registers per thread"') AS INTEGER) AS registers_per_thread,
       arg_int(e.args->>'$."shared memory"')       AS shared_memory,
       arg_number(e.args->>'$."blocks per SM"')    AS blocks_per_sm,
       arg_number(e.args->>'$."warps per SM"')     AS warps_per_sm,
       arg_number(e.args->>'$."est. achieved occupancy %"') AS occupancy_pct,
       e.args
FROM events e WHERE e.category = 'kernel';

CREATE OR REPLACE VIEW gpu_events AS
SELECT trace_id, event_id, cat, category, name, ts_ns, dur_ns, end_ns, device, stream, correlation,
       external_id, launch_id, op_id, parent_id, args
FROM events WHERE category IN ('kernel', 'gpu_memcpy', 'gpu_memset');

CREATE OR REPLACE VIEW memcpy AS
SELECT trace_id, event_id, name, ts_ns, dur_ns, end_ns, device, stream, correlation, launch_id, op_id,
       arg_int(args->>'$.bytes') AS bytes,
       arg_number(args->>'$."memory bandwidth (GB/s)"') AS bandwidth_gbps, args
FROM events WHERE category = 'gpu_memcpy';

CREATE OR REPLACE VIEW memset AS
SELECT trace_id, event_id, name, ts_ns, dur_ns, end_ns, device, stream, correlation, launch_id, op_id,
       arg_int(args->>'$.bytes') AS bytes,
       arg_number(args->>'$."memory bandwidth (GB/s)"') AS bandwidth_gbps, args
FROM events WHERE category = 'gpu_memset';

CREATE OR REPLACE VIEW cpu_ops AS
SELECT trace_id, event_id, name, pid, tid, ts_ns, dur_ns, end_ns, external_id, parent_id, depth, nested,
       args->'$."Input Dims"'    AS input_dims,
       args->'$."Input type"'    AS input_types,
       args->'$."Input Strides"' AS input_strides,
       args->'$."Concrete Inputs"' AS concrete_inputs,
       arg_int(args->>'$."Sequence number"') AS sequence_number,
       args
FROM events WHERE category = 'cpu_op';

CREATE OR REPLACE VIEW runtime AS
SELECT trace_id, event_id, cat, category, name, pid, tid, ts_ns, dur_ns, end_ns, correlation, external_id,
       op_id, parent_id, TRY_CAST(arg_int(args->>'$.cbid') AS INTEGER) AS cbid, args
FROM events WHERE category IN ('cuda_runtime', 'cuda_driver');

CREATE OR REPLACE VIEW annotations AS
SELECT trace_id, event_id, name, pid, tid, ts_ns, dur_ns, end_ns, external_id, parent_id, depth, args
FROM events WHERE category = 'user_annotation';

CREATE OR REPLACE VIEW gpu_annotations AS
SELECT trace_id, event_id, name, device, pid, tid, ts_ns, dur_ns, end_ns, external_id, parent_id, depth, args
FROM events WHERE category = 'gpu_user_annotation';

-- The chain of events enclosing one event, innermost first (like Perfetto's ancestor_slice).
-- For a GPU event the chain is its launching CPU op (op_id) and that op's enclosing CPU events,
-- followed by the GPU annotations enclosing it on its stream.
CREATE OR REPLACE MACRO ancestors(tr, ev) AS TABLE
WITH RECURSIVE
start AS (
    SELECT e.trace_id, e.event_id, e.op_id, e.parent_id, e.category FROM events e
    WHERE e.trace_id = tr AND e.event_id = ev
),
chain(trace_id, event_id, hop) AS (
    SELECT s.trace_id, s.op_id, 1 FROM start s
    WHERE s.op_id IS NOT NULL AND s.category IN ('kernel', 'gpu_memcpy', 'gpu_memset', 'cuda_runtime', 'cuda_driver')
    UNION ALL
    SELECT s.trace_id, s.parent_id, 1 FROM start s
    WHERE s.parent_id IS NOT NULL AND NOT (s.op_id IS NOT NULL AND s.category IN ('cuda_runtime', 'cuda_driver'))
    UNION ALL
    SELECT p.trace_id, p.parent_id, c.hop + 1 FROM chain c
    JOIN events p ON p.trace_id = c.trace_id AND p.event_id = c.event_id
    WHERE p.parent_id IS NOT NULL
)
SELECT e.event_id, e.cat, e.category, e.name, e.ts_ns, e.dur_ns, e.depth, c.hop
FROM chain c JOIN events e ON e.trace_id = c.trace_id AND e.event_id = c.event_id
ORDER BY (e.category = 'gpu_user_annotation'), c.hop;

-- For every GPU event of one trace: each enclosing CPU op / annotation of its launching op, and each GPU
-- annotation around it on its stream. One row per (GPU event, ancestor); `hop` 1 = the launching op itself.
CREATE OR REPLACE MACRO gpu_event_ancestors_of(tr) AS TABLE
WITH RECURSIVE chain(trace_id, gpu_event_id, ancestor_id, hop) AS (
    SELECT trace_id, event_id, op_id, 1 FROM events
    WHERE trace_id = tr AND category IN ('kernel', 'gpu_memcpy', 'gpu_memset') AND op_id IS NOT NULL
    UNION ALL
    SELECT trace_id, event_id, parent_id, 1 FROM events
    WHERE trace_id = tr AND category IN ('kernel', 'gpu_memcpy', 'gpu_memset') AND parent_id IS NOT NULL
    UNION ALL
    SELECT c.trace_id, c.gpu_event_id, p.parent_id, c.hop + 1 FROM chain c
    JOIN events p ON p.trace_id = c.trace_id AND p.event_id = c.ancestor_id
    WHERE p.parent_id IS NOT NULL
)
SELECT c.trace_id, c.gpu_event_id, c.ancestor_id, c.hop, a.cat AS ancestor_cat, a.category AS ancestor_category,
       a.name AS ancestor_name, a.depth AS ancestor_depth
FROM chain c JOIN events a ON a.trace_id = c.trace_id AND a.event_id = c.ancestor_id;

-- The same for every trace (a filter on this view cannot reach inside the recursion: for one trace of a
-- large database, query gpu_event_ancestors_of(trace_id) directly).
CREATE OR REPLACE VIEW gpu_event_ancestors AS
SELECT g.* FROM traces t, LATERAL gpu_event_ancestors_of(t.trace_id) g;

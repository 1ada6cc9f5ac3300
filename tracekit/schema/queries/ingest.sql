-- Loading one Kineto / Chrome JSON trace (tracekit/store/ingest.py runs these by name, in this order:
-- macros, then chrome.sql's sections, then tracekit/store/nesting.py (temp table nesting(event_id, depth,
-- parent_id, nested), a numpy walk), then cats, flow_corr, links, then the insert_* sections in one
-- transaction). Input: the temp table `raw`, one row per traceEvents element (event_id = its index, ph, cat,
-- name, pid, tid, id, s, args, id2, scope, a = typed_args(args), ts_ns, dur_ns). `$trace_id` is a parameter.
-- Every temp table here is private to ingest (dropped after each trace); the temp macros stay on the connection.
-- docs/schema.md documents the rules ("Nesting", "Links", "Categories").

-- name: macros
-- Temp macros (public to the other sections and to migrate.sql):
--   typed_args(args) -> VARCHAR[12]: every args field tracekit types, parsed once: a[1] device, a[2] stream,
--     a[3] correlation, a[4] "External id", a[5] Bytes, a[6] Addr, a[7] "Total Allocated", a[8] "Total Reserved",
--     a[9] "Device Type", a[10] "Device Id", a[11] "external id" (PyTorch 1.8-1.10 on runtime calls and GPU
--     events; JSON keys match case-sensitively), a[12] "sycl queue" (Kineto's XPU plugin: the queue, not "stream").
--   cat_key(cat, pid) -> VARCHAR: the alias-table key of an event: its raw cat; the pre-Kineto autograd export
--     writes none, and its pids "CUDA functions" / "CPU functions" say what the event is (004_categories.sql).
--   is_gpu_work(category), is_runtime(category), is_linked(category) -> BOOLEAN: classes of canonical categories
--     (events.category): GPU work (kernel, memcpy, memset), host runtime/driver calls, and the categories that
--     get launch/op links (GPU work, GPU annotations, runtime calls). NULL for a NULL category.
--   external_id_of(a) -> BIGINT: the External id (either spelling); correlation_of(a, flow_corr) -> BIGINT:
--     args.correlation, else the id of the launch flow bound to the event (flow_corr below).
CREATE OR REPLACE TEMP MACRO typed_args(args) AS json_extract_string(args, ['$.device', '$.stream',
    '$.correlation', '$."External id"', '$.Bytes', '$.Addr', '$."Total Allocated"', '$."Total Reserved"',
    '$."Device Type"', '$."Device Id"', '$."external id"', '$."sycl queue"']);
CREATE OR REPLACE TEMP MACRO cat_key(cat, pid) AS
    coalesce(cat, CASE pid WHEN 'CUDA functions' THEN '(cuda functions)' WHEN 'CPU functions' THEN '(cpu functions)' END);
CREATE OR REPLACE TEMP MACRO is_gpu_work(category) AS category IN ('kernel', 'gpu_memcpy', 'gpu_memset');
CREATE OR REPLACE TEMP MACRO is_runtime(category) AS category IN ('cuda_runtime', 'cuda_driver');
CREATE OR REPLACE TEMP MACRO is_linked(category) AS
    category IN ('kernel', 'gpu_memcpy', 'gpu_memset', 'gpu_user_annotation', 'cuda_runtime', 'cuda_driver');
CREATE OR REPLACE TEMP MACRO external_id_of(a) AS TRY_CAST(coalesce(a[4], a[11]) AS BIGINT);
CREATE OR REPLACE TEMP MACRO correlation_of(a, flow_corr) AS coalesce(TRY_CAST(a[3] AS BIGINT), flow_corr);
-- The link rules, shared with migrate.sql (relink): a GPU event's launch is the runtime call of its
-- correlation; a linked event's op is the CPU op of its External id, else (runtime call) the event enclosing it,
-- else (GPU work) the event enclosing its launch.
CREATE OR REPLACE TEMP MACRO link_launch_id(category, launch_id) AS CASE WHEN is_gpu_work(category) THEN launch_id END;
CREATE OR REPLACE TEMP MACRO link_op_id(category, op_by_ext, parent_id, launch_parent) AS
    CASE WHEN is_linked(category) THEN coalesce(op_by_ext, CASE WHEN is_runtime(category) THEN parent_id
                                                               WHEN is_gpu_work(category) THEN launch_parent END) END;

-- name: cats
-- Private temp table cats(cat VARCHAR, category VARCHAR): the canonical category of each distinct raw `cat` of
-- the trace: the alias table's, else lower(cat). The key is cat_key(cat, pid) (the raw cat, or for events with
-- no cat on the legacy autograd export's pids the keys of its alias rows).
CREATE OR REPLACE TEMP TABLE cats AS
SELECT c.cat, coalesce(a.category, lower(c.cat)) AS category
FROM (SELECT DISTINCT cat_key(cat, pid) AS cat FROM raw) c
LEFT JOIN category_aliases a ON a.alias = lower(c.cat)
WHERE c.cat IS NOT NULL;

-- name: flow_corr
-- Private temp table flow_corr(event_id, correlation BIGINT): a runtime call or GPU event without
-- args.correlation (older ROCm Kineto wrote it only as the flow's id) gets the id of the launch flow bound to it,
-- the start ('s') at a runtime call, the end ('f') at the GPU work it launched. fwdbwd flows are not launches.
CREATE OR REPLACE TEMP TABLE flow_corr AS
WITH need AS (
    SELECT r.event_id, r.pid, r.tid, r.ts_ns, CASE WHEN is_runtime(c.category) THEN 's' ELSE 'f' END AS fph
    FROM raw r JOIN cats c ON c.cat = cat_key(r.cat, r.pid)
    WHERE r.ph = 'X' AND r.a[3] IS NULL AND (is_gpu_work(c.category) OR is_runtime(c.category))
)
SELECT n.event_id, min(TRY_CAST(f.id AS BIGINT)) AS correlation
FROM need n JOIN raw f
  ON f.ph = n.fph AND f.pid IS NOT DISTINCT FROM n.pid AND f.tid IS NOT DISTINCT FROM n.tid AND f.ts_ns = n.ts_ns
WHERE f.id IS NOT NULL AND lower(coalesce(f.cat, '')) NOT IN ('fwdbwd', 'forward_backward')
GROUP BY 1;

-- name: links
-- Private temp tables launches(correlation, launch_id, launch_parent) and ops_by_ext(external_id, op_id).
-- A GPU event's correlation id names the runtime/driver call that launched it (the first such call: launch_id,
-- and the event enclosing it: launch_parent); its External id names the CPU op (or annotation) that made that
-- call (the deepest one with that id: op_id). Without an External id, the op is whatever CPU event enclosed the
-- launch (link_op_id).
CREATE OR REPLACE TEMP TABLE launches AS
SELECT correlation_of(r.a, fc.correlation) AS correlation, min(r.event_id) AS launch_id,
       arg_min(n.parent_id, r.event_id) AS launch_parent
FROM raw r JOIN nesting n USING (event_id) JOIN cats c ON c.cat = cat_key(r.cat, r.pid)
LEFT JOIN flow_corr fc USING (event_id)
WHERE r.ph = 'X' AND is_runtime(c.category) AND correlation_of(r.a, fc.correlation) IS NOT NULL
GROUP BY 1;

CREATE OR REPLACE TEMP TABLE ops_by_ext AS
SELECT external_id_of(r.a) AS external_id, arg_max(r.event_id, n.depth) AS op_id
FROM raw r JOIN nesting n USING (event_id) JOIN cats c ON c.cat = cat_key(r.cat, r.pid)
WHERE r.ph = 'X' AND c.category IN ('cpu_op', 'user_annotation') AND external_id_of(r.a) <> 0
GROUP BY 1;

-- name: count_kernels
-- The trace's kernels (complete events of category kernel): one row, one BIGINT.
SELECT count(*) FROM slices_src r JOIN cats c ON c.cat = cat_key(r.cat, r.pid) WHERE c.category = 'kernel';

-- name: insert_events
-- Writes `events` (docs/schema.md): X events and B/E pairs (chrome.sql's slices_src) with nesting and links.
INSERT INTO events (trace_id, event_id, cat, category, name, pid, tid, ts_ns, dur_ns, end_ns, device,
                    stream, correlation, external_id, parent_id, depth, nested, launch_id, op_id, ph, args)
WITH x AS (
    SELECT r.event_id, r.ph, r.cat, c.category, r.name, r.pid, r.tid, r.ts_ns, r.dur_ns,
           r.ts_ns + r.dur_ns AS end_ns, TRY_CAST(r.a[1] AS INTEGER) AS device,
           TRY_CAST(coalesce(r.a[2], r.a[12]) AS BIGINT) AS stream,
           correlation_of(r.a, fc.correlation) AS correlation, external_id_of(r.a) AS external_id,
           n.parent_id, n.depth, n.nested, r.args
    FROM slices_src r JOIN nesting n USING (event_id)
    LEFT JOIN cats c ON c.cat = cat_key(r.cat, r.pid) LEFT JOIN flow_corr fc USING (event_id)
)
SELECT $trace_id, x.event_id, x.cat, x.category, x.name, x.pid, x.tid, x.ts_ns, x.dur_ns, x.end_ns,
       x.device, x.stream, x.correlation, x.external_id, x.parent_id, x.depth, x.nested,
       link_launch_id(x.category, l.launch_id),
       link_op_id(x.category, o.op_id, x.parent_id, l.launch_parent),
       x.ph, x.args
FROM x
LEFT JOIN launches l ON l.correlation = x.correlation AND is_gpu_work(x.category)
LEFT JOIN ops_by_ext o ON o.external_id = x.external_id AND is_linked(x.category);

-- name: insert_memory
-- Writes `memory`: the [memory] instants that carry Bytes.
INSERT INTO memory
SELECT $trace_id, r.event_id, r.pid, r.tid, r.ts_ns, CAST(r.a[5] AS BIGINT), TRY_CAST(r.a[6] AS BIGINT),
       TRY_CAST(r.a[7] AS BIGINT), TRY_CAST(r.a[8] AS BIGINT), TRY_CAST(r.a[9] AS INTEGER),
       TRY_CAST(r.a[10] AS INTEGER), n.parent_id
FROM raw r LEFT JOIN nesting n USING (event_id)
WHERE r.ph IN ('i', 'I') AND r.name = '[memory]' AND r.a[5] IS NOT NULL;

-- name: insert_instants
-- Writes `instants`: every other i/I event.
INSERT INTO instants
SELECT $trace_id, r.event_id, r.cat, r.name, r.pid, r.tid, r.ts_ns, r.s, n.parent_id, r.args
FROM raw r LEFT JOIN nesting n USING (event_id)
WHERE r.ph IN ('i', 'I') AND NOT (r.name = '[memory]' AND r.a[5] IS NOT NULL);

-- name: insert_flows
-- Writes `flows`: one row per (id, cat) of s/t/f events: the start's and the end's track and time.
INSERT INTO flows
SELECT $trace_id, id, arg_min(cat, event_id), arg_min(name, event_id),
       arg_min(pid, event_id) FILTER (WHERE ph = 's'), arg_min(tid, event_id) FILTER (WHERE ph = 's'),
       min(ts_ns) FILTER (WHERE ph = 's'),
       arg_max(pid, event_id) FILTER (WHERE ph = 'f'), arg_max(tid, event_id) FILTER (WHERE ph = 'f'),
       max(ts_ns) FILTER (WHERE ph = 'f')
FROM raw WHERE ph IN ('s', 't', 'f') AND id IS NOT NULL
GROUP BY id, cat;

-- name: insert_tracks
-- Writes `tracks`: one row per (pid, tid) with timed events; kind 'gpu' when it holds GPU work or GPU
-- annotations, 'cpu' for a numeric pid, else 'other'; process and thread names from the M events.
INSERT INTO tracks
WITH t AS (
    SELECT r.pid, r.tid, count(*) AS n,
           coalesce(bool_or(is_gpu_work(c.category) OR c.category = 'gpu_user_annotation'), false) AS gpu,
           bool_or(TRY_CAST(r.pid AS BIGINT) IS NOT NULL) AS numeric_pid
    FROM raw r LEFT JOIN cats c ON c.cat = cat_key(r.cat, r.pid)
    WHERE r.ph IN ('X', 'i', 'I', 'B', 'E') GROUP BY r.pid, r.tid
),
pn AS (SELECT pid, arg_max(args->>'$.name', event_id) AS name FROM raw
       WHERE ph = 'M' AND name = 'process_name' GROUP BY pid),
tn AS (SELECT pid, tid, arg_max(args->>'$.name', event_id) AS name FROM raw
       WHERE ph = 'M' AND name = 'thread_name' GROUP BY pid, tid)
SELECT $trace_id, t.pid, t.tid,
       CASE WHEN t.gpu THEN 'gpu' WHEN t.numeric_pid THEN 'cpu' ELSE 'other' END,
       pn.name, tn.name, t.n
FROM t LEFT JOIN pn ON pn.pid = t.pid LEFT JOIN tn ON tn.pid = t.pid AND tn.tid = t.tid
ORDER BY t.pid, t.tid;

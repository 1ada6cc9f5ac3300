-- Upgrading an older database (tracekit/schema/migrate.py runs these by name, inside its transaction, after
-- ingest.sql's `macros` section: cat_key, the category classes and the link rules link_launch_id / link_op_id
-- are the ones ingest uses). docs/schema.md#migration.

-- name: relink_v1
-- What schema v1 computed from raw categories, recomputed from `events.category` over the stored events of every
-- trace: External ids written as "external id" (PyTorch 1.8-1.10), queues written as "sycl queue", correlations
-- written only as launch-flow ids (older ROCm), the launch/op links (the rules of ingest.sql's flow_corr, links
-- and insert_events, over `events` and `flows` instead of the raw trace), tracks.kind and
-- traces.device_properties. Private temp tables mig_flow_corr(trace_id, event_id, correlation),
-- mig_launches(trace_id, correlation, launch_id, launch_parent), mig_ops(trace_id, external_id, op_id) and
-- mig_links(trace_id, event_id, launch_id, op_id), dropped at the end.
UPDATE events SET external_id = TRY_CAST(args->>'$."external id"' AS BIGINT)
WHERE external_id IS NULL AND args->>'$."external id"' IS NOT NULL;

UPDATE events SET stream = TRY_CAST(args->>'$."sycl queue"' AS BIGINT)
WHERE stream IS NULL AND args->>'$."sycl queue"' IS NOT NULL;

CREATE OR REPLACE TEMP TABLE mig_flow_corr AS
WITH need AS (
    SELECT trace_id, event_id, pid, tid, ts_ns, is_runtime(category) AS is_launch FROM events
    WHERE correlation IS NULL AND (is_runtime(category) OR is_gpu_work(category))
),
fl AS (SELECT * FROM flows WHERE lower(coalesce(cat, '')) NOT IN ('fwdbwd', 'forward_backward')),
hit AS (
    SELECT n.trace_id, n.event_id, f.flow_id FROM need n JOIN fl f
      ON f.trace_id = n.trace_id AND f.start_pid IS NOT DISTINCT FROM n.pid
     AND f.start_tid IS NOT DISTINCT FROM n.tid AND f.start_ts_ns = n.ts_ns
    WHERE n.is_launch
    UNION ALL
    SELECT n.trace_id, n.event_id, f.flow_id FROM need n JOIN fl f
      ON f.trace_id = n.trace_id AND f.end_pid IS NOT DISTINCT FROM n.pid
     AND f.end_tid IS NOT DISTINCT FROM n.tid AND f.end_ts_ns = n.ts_ns
    WHERE NOT n.is_launch
)
SELECT trace_id, event_id, min(TRY_CAST(flow_id AS BIGINT)) AS correlation FROM hit GROUP BY 1, 2;

UPDATE events SET correlation = m.correlation
FROM mig_flow_corr m
WHERE m.trace_id = events.trace_id AND m.event_id = events.event_id AND m.correlation IS NOT NULL;

CREATE OR REPLACE TEMP TABLE mig_launches AS
SELECT trace_id, correlation, min(event_id) AS launch_id, arg_min(parent_id, event_id) AS launch_parent
FROM events WHERE is_runtime(category) AND correlation IS NOT NULL
GROUP BY 1, 2;

CREATE OR REPLACE TEMP TABLE mig_ops AS
SELECT trace_id, external_id, arg_max(event_id, depth) AS op_id
FROM events WHERE category IN ('cpu_op', 'user_annotation') AND external_id <> 0
GROUP BY 1, 2;

CREATE OR REPLACE TEMP TABLE mig_links AS
SELECT x.trace_id, x.event_id,
       link_launch_id(x.category, l.launch_id) AS launch_id,
       link_op_id(x.category, o.op_id, x.parent_id, l.launch_parent) AS op_id
FROM events x
LEFT JOIN mig_launches l ON l.trace_id = x.trace_id AND l.correlation = x.correlation AND is_gpu_work(x.category)
LEFT JOIN mig_ops o ON o.trace_id = x.trace_id AND o.external_id = x.external_id
WHERE is_linked(x.category);

UPDATE events SET launch_id = m.launch_id, op_id = m.op_id
FROM mig_links m
WHERE m.trace_id = events.trace_id AND m.event_id = events.event_id
  AND (events.launch_id IS DISTINCT FROM m.launch_id OR events.op_id IS DISTINCT FROM m.op_id);

UPDATE tracks SET kind = 'gpu'
WHERE kind <> 'gpu' AND EXISTS (
    SELECT 1 FROM events e
    WHERE e.trace_id = tracks.trace_id AND e.pid IS NOT DISTINCT FROM tracks.pid
      AND e.tid IS NOT DISTINCT FROM tracks.tid
      AND (is_gpu_work(e.category) OR e.category = 'gpu_user_annotation'));

UPDATE traces SET device_properties = json_extract(metadata, '$.computeProperties')
WHERE device_properties IS NULL AND json_extract(metadata, '$.computeProperties') IS NOT NULL;

DROP TABLE mig_flow_corr;
DROP TABLE mig_launches;
DROP TABLE mig_ops;
DROP TABLE mig_links;

-- Component attribution of one trace (analyzers/attribution.py runs these by name). Parameters: $tid (the
-- trace_id), $gemm_ops (VARCHAR[]: the aten GEMM op names, analyzers/gemm_shapes.GEMM_OPS), $gpu_only (BOOLEAN:
-- the trace has kernels, so only the rows kernels need are kept). Read-only: no tables are created.

-- name: walk
-- Top-down walk over the trace's event forest (events.parent_id), one row per event kept:
--   event_id    BIGINT
--   comp        VARCHAR  innermost enclosing `component.X` scope (X), the event itself included
--   layer       INTEGER  innermost enclosing `layer.N` scope (N)
--   gemm_id     BIGINT   innermost enclosing GEMM op (an event named in $gemm_ops), the event itself included
--   outer_gemm  BIGINT   the GEMM op enclosing the event's parent (for an op that is a GEMM: the GEMM above it)
--   chain       VARCHAR[] names of the enclosing events, root first, the event itself last, without names that
--               vary per layer/step (layer.N, decode.step.N, ProfilerStep#N, component.*)
-- With $gpu_only, only kernels, their launching ops, GEMM ops and the parents of [memory] events are kept.
WITH RECURSIVE walk(event_id, comp, layer, gemm_id, outer_gemm, chain) AS (
    SELECT e.event_id,
           CASE WHEN e.name LIKE 'component.%' THEN substr(e.name, 11) END,
           TRY_CAST(regexp_extract(e.name, '^layer\.(\d+)$', 1) AS INTEGER),
           CASE WHEN list_contains($gemm_ops, e.name) THEN e.event_id END,
           NULL::BIGINT,
           CASE WHEN regexp_matches(e.name, '^(layer\.\d+|decode\.step\.\d+|ProfilerStep#\d+|component\..*)$')
                THEN []::VARCHAR[] ELSE [e.name] END
    FROM events e WHERE e.trace_id = $tid AND e.parent_id IS NULL
    UNION ALL
    SELECT e.event_id,
           coalesce(CASE WHEN e.name LIKE 'component.%' THEN substr(e.name, 11) END, w.comp),
           coalesce(TRY_CAST(regexp_extract(e.name, '^layer\.(\d+)$', 1) AS INTEGER), w.layer),
           coalesce(CASE WHEN list_contains($gemm_ops, e.name) THEN e.event_id END, w.gemm_id),
           w.gemm_id,
           CASE WHEN regexp_matches(e.name, '^(layer\.\d+|decode\.step\.\d+|ProfilerStep#\d+|component\..*)$')
                THEN w.chain ELSE list_append(w.chain, e.name) END
    FROM walk w JOIN events e ON e.trace_id = $tid AND e.parent_id = w.event_id
)
SELECT * FROM walk
WHERE NOT $gpu_only
   OR event_id IN (SELECT event_id FROM kernels WHERE trace_id = $tid)
   OR event_id IN (SELECT op_id FROM kernels WHERE trace_id = $tid)
   OR event_id = gemm_id
   OR event_id IN (SELECT parent_id FROM memory WHERE trace_id = $tid);

-- name: ops
-- The CPU ops whose shapes matter: GEMM ops, and the ops that launched kernels ($gpu_only) or every op with
-- recorded shapes (CPU-only traces). Columns: event_id, parent_id, name, dims (input_dims as JSON text),
-- types (input_types as JSON text).
SELECT event_id, parent_id, name, CAST(input_dims AS VARCHAR) AS dims, CAST(input_types AS VARCHAR) AS types
FROM cpu_ops
WHERE trace_id = $tid
  AND (list_contains($gemm_ops, name)
       OR CASE WHEN $gpu_only THEN event_id IN (SELECT op_id FROM kernels WHERE trace_id = $tid)
               ELSE input_dims IS NOT NULL END);

-- name: kernel_units
-- One row per kernel of the trace: event_id, kernel (name), ts_ns, dur_ns, end_ns, stream, device, op_id (the
-- launching CPU op), op (its name), launch_id (the runtime call), launcher (its name), launch_ts (its start).
SELECT k.event_id, k.name AS kernel, k.ts_ns, k.dur_ns, k.end_ns, k.stream, k.device, k.op_id,
       o.name AS op, k.launch_id, r.name AS launcher, r.ts_ns AS launch_ts
FROM kernels k LEFT JOIN events o ON o.trace_id = k.trace_id AND o.event_id = k.op_id
LEFT JOIN events r ON r.trace_id = k.trace_id AND r.event_id = k.launch_id
WHERE k.trace_id = $tid;

-- name: cpu_units
-- CPU-only traces: one row per CPU event (categories cpu_op, user_annotation, python_function) with its self
-- time. Columns: event_id, parent_id, op (name), cat (category), ts_ns, dur_ns, end_ns, tid, and
--   self_ns  BIGINT  dur_ns minus the durations of its direct children among these CPU events (children
--                    are nested by ingest on the same thread track; a child overlapping its parent's end makes
--                    self time negative, and the self times of a tree still sum to its root's duration)
WITH ev AS (
    SELECT event_id, parent_id, name, category, ts_ns, dur_ns, end_ns, tid FROM events
    WHERE trace_id = $tid AND category IN ('cpu_op', 'user_annotation', 'python_function')
),
kids AS (SELECT parent_id, sum(dur_ns) AS child_ns FROM ev WHERE parent_id IS NOT NULL GROUP BY 1)
SELECT ev.event_id, ev.parent_id, ev.name AS op, ev.category AS cat, ev.ts_ns, ev.dur_ns, ev.end_ns, ev.tid,
       CAST(ev.dur_ns - coalesce(kids.child_ns, 0) AS BIGINT) AS self_ns
FROM ev LEFT JOIN kids ON kids.parent_id = ev.event_id;

-- name: template_windows
-- The CPU-side ranges of the `tracekit.template` annotation ($name): the eager step a CUDA-graph decode trace
-- records before its replays (collectors/measure.py). Columns: ts_ns, end_ns.
SELECT ts_ns, end_ns FROM events
WHERE trace_id = $tid AND name = $name AND category = 'user_annotation'
ORDER BY ts_ns;

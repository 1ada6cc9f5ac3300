-- Plain Chrome JSON phases (tracekit/store/chrome.py runs these by name; docs/schema.md, "Chrome JSON").
-- Input: the temp table `raw` (one row per traceEvents element) and the temp macro `typed_args`
-- (queries/ingest.sql, section macros); `$trace_id` is a parameter. Every temp table here is private to
-- ingest (dropped after each trace; chrome.TEMP_TABLES).

-- name: ids
-- Which begin/end stream an event belongs to, and its async id. Streams (kind, k):
--   'B': B/E on one thread track (pid, tid);  'b': nestable async b/e/n with the same (cat, id, scope);
--   'S': legacy async S/T/p/F with the same (cat, id, scope).
-- The async id is `id`, else `id2.global`, else `id2.local` made process-local (Perfetto's rule).
CREATE OR REPLACE TEMP TABLE chrome_ids AS
WITH t AS (
    SELECT event_id, ph, pid, tid, cat, scope, ts_ns,
           CASE WHEN ph IN ('B', 'E') THEN 'B' WHEN ph IN ('b', 'e', 'n') THEN 'b' ELSE 'S' END AS kind,
           CASE WHEN ph IN ('b', 'e', 'n') THEN coalesce(id, id2->>'$.global',
                    CASE WHEN id2->>'$.local' IS NOT NULL THEN 'local:' || coalesce(pid, '') || ':' || (id2->>'$.local') END)
                WHEN ph IN ('S', 'T', 'p', 'F') THEN id END AS async_id
    FROM raw WHERE ph IN ('B', 'E', 'b', 'e', 'n', 'S', 'T', 'p', 'F')
)
SELECT event_id, ph, kind, async_id, ts_ns,
       CASE WHEN ph IN ('B', 'b', 'S') THEN 1 WHEN ph IN ('E', 'e', 'F') THEN -1 ELSE 0 END AS delta,
       CASE WHEN kind = 'B' THEN to_json([pid, tid])::VARCHAR ELSE to_json([cat, async_id, scope])::VARCHAR END AS k
FROM t;

-- name: walk
-- Stack pairing without a loop. In each stream, ordered by (ts, position in the file), a begin is +1
-- and an end -1. p = running sum; an end that finds the stack empty is dropped ("lost"), so the real
-- stack depth is p minus the lowest running sum so far (clamped at 0): s = p - min(0, min p).
-- A begin sits at level s (after its push); a kept end closes the slice at level s + 1 (before its pop),
-- which is the latest earlier begin at that level (an ASOF join, next statement).
CREATE OR REPLACE TEMP TABLE pair_walk AS
WITH w AS (
    SELECT kind, k, event_id, ph, delta,
           sum(delta) OVER (PARTITION BY kind, k ORDER BY ts_ns, event_id ROWS UNBOUNDED PRECEDING) AS p,
           row_number() OVER (PARTITION BY kind, k ORDER BY ts_ns, event_id) AS seq
    FROM chrome_ids
    WHERE delta <> 0 AND (kind = 'B' OR async_id IS NOT NULL)
),
m AS (
    SELECT *, least(0, coalesce(min(p) OVER (PARTITION BY kind, k ORDER BY seq
                                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS low
    FROM w
)
SELECT kind, k, event_id, ph, delta, seq, delta = -1 AND p < low AS lost,
       CAST(CASE WHEN delta = 1 THEN p - low ELSE p - low + 1 END AS INTEGER) AS level
FROM m;

-- name: pairs
-- Private temp table pairs(kind, begin_id, end_id, depth): each kept end joined to the begin it closes.
CREATE OR REPLACE TEMP TABLE pairs AS
SELECT b.kind, b.event_id AS begin_id, e.event_id AS end_id, b.level - 1 AS depth
FROM (SELECT kind, k, level, seq, event_id FROM pair_walk WHERE delta = -1 AND NOT lost) e
ASOF JOIN (SELECT kind, k, level, seq, event_id FROM pair_walk WHERE delta = 1) b
  ON e.kind = b.kind AND e.k = b.k AND e.level = b.level AND e.seq > b.seq;

-- name: notes
-- Events kept in other_events although their phase has a table, and why.
CREATE OR REPLACE TEMP TABLE chrome_notes AS
SELECT event_id, 'unmatched ' || ph AS note FROM pair_walk WHERE lost
UNION ALL
SELECT w.event_id, 'unmatched ' || w.ph FROM pair_walk w ANTI JOIN pairs p ON p.begin_id = w.event_id
WHERE w.delta = 1
UNION ALL
SELECT event_id, 'async without id' FROM chrome_ids WHERE kind <> 'B' AND async_id IS NULL
UNION ALL
SELECT event_id, 'counter without values' FROM raw
WHERE ph = 'C' AND (json_type(args) IS DISTINCT FROM 'OBJECT' OR json_keys(args) = [])
UNION ALL
-- an X without 'dur' (missing or null): a task still running when recording stopped (Chrome writes only its
-- 'tdur'); like a B never closed it has no end, so it is no slice (docs/schema.md, "Unfinished slices")
SELECT event_id, 'unfinished X' FROM raw WHERE ph = 'X' AND dur_ns IS NULL;

-- name: slices
-- Complete events: the X events with a 'dur' and the B/E pairs (E's args merged into the B's; the E's win on equal keys).
-- The pairs are a table (usually empty: Kineto writes no B/E); slices_src is a view, so the X events are
-- not copied.
CREATE OR REPLACE TEMP TABLE b_pairs AS
SELECT b.event_id, 'B' AS ph, b.cat, b.name, b.pid, b.tid, b.ts_ns, e.ts_ns - b.ts_ns AS dur_ns,
       CASE WHEN e.args IS NULL THEN b.args WHEN b.args IS NULL THEN e.args
            ELSE json_merge_patch(b.args, e.args) END AS args
FROM pairs p JOIN raw b ON b.event_id = p.begin_id JOIN raw e ON e.event_id = p.end_id
WHERE p.kind = 'B';

CREATE OR REPLACE TEMP VIEW slices_src AS
SELECT event_id, 'X' AS ph, cat, name, pid, tid, ts_ns, dur_ns, args, a FROM raw WHERE ph = 'X' AND dur_ns IS NOT NULL
UNION ALL
SELECT *, typed_args(args) AS a FROM b_pairs;

-- name: nest_input
-- What nests on a thread track (a view, read once by tracekit/store/nesting.py): complete events, and
-- thread-scoped instants ('s' = 't' or absent). Process- and global-scoped instants belong to no thread
-- track (Perfetto puts them on process/global tracks), so they take no part in nesting and have no parent.
CREATE OR REPLACE TEMP VIEW nest_input AS
SELECT event_id, pid, tid, ts_ns, dur_ns, true AS is_x FROM slices_src
UNION ALL
SELECT event_id, pid, tid, ts_ns, 0, false FROM raw
WHERE ph IN ('i', 'I') AND coalesce(s, 't') NOT IN ('g', 'p');

-- name: insert_counters
-- Writes `counters`: one row per key of each C event's args object (series = key, value = its number).
INSERT INTO counters (trace_id, event_id, pid, tid, cat, name, id, ts_ns, series, value)
SELECT $trace_id, event_id, pid, tid, cat, name, id, ts_ns, kv.key, TRY_CAST(kv.value AS DOUBLE)
FROM (SELECT event_id, pid, tid, cat, name, id, ts_ns, unnest(map_entries(CAST(args AS MAP(VARCHAR, JSON)))) AS kv
      FROM raw WHERE ph = 'C' AND json_type(args) = 'OBJECT');

-- name: insert_async_slices
-- Writes `async_slices`: the b/e and S/F pairs, args merged, with a note when the end names another slice.
INSERT INTO async_slices (trace_id, event_id, ph, cat, name, id, scope, pid, tid, ts_ns, dur_ns, end_ns,
                          end_event_id, depth, args, note)
SELECT $trace_id, b.event_id, b.ph, b.cat, b.name, c.async_id, b.scope, b.pid, b.tid, b.ts_ns,
       e.ts_ns - b.ts_ns, e.ts_ns, e.event_id, p.depth,
       CASE WHEN e.args IS NULL THEN b.args WHEN b.args IS NULL THEN e.args ELSE json_merge_patch(b.args, e.args) END,
       CASE WHEN e.name IS NOT NULL AND e.name <> '' AND e.name IS DISTINCT FROM b.name THEN 'end name: ' || e.name END
FROM pairs p JOIN raw b ON b.event_id = p.begin_id JOIN raw e ON e.event_id = p.end_id
JOIN chrome_ids c ON c.event_id = p.begin_id
WHERE p.kind IN ('b', 'S');

-- name: insert_async_instants
-- Writes `async_instants`: n, T and p events with an id (T/p without an S of that id get a note).
INSERT INTO async_instants (trace_id, event_id, ph, cat, name, id, scope, pid, tid, ts_ns, args, note)
SELECT $trace_id, r.event_id, r.ph, r.cat, r.name, c.async_id, r.scope, r.pid, r.tid, r.ts_ns, r.args,
       CASE WHEN r.ph IN ('T', 'p') AND c.k NOT IN (SELECT k FROM chrome_ids WHERE ph = 'S') THEN 'no S with this id' END
FROM chrome_ids c JOIN raw r USING (event_id)
WHERE c.delta = 0 AND c.async_id IS NOT NULL;

-- name: insert_other
-- Writes `other_events`: phases tracekit has no table for, and events kept with a note (chrome_notes).
INSERT INTO other_events (trace_id, event_id, ph, cat, name, pid, tid, ts_ns, args, note)
SELECT $trace_id, r.event_id, r.ph, r.cat, r.name, r.pid, r.tid, r.ts_ns, r.args, n.note
FROM raw r LEFT JOIN chrome_notes n USING (event_id)
WHERE r.ph NOT IN ('X', 'i', 'I', 's', 't', 'f', 'B', 'E', 'b', 'e', 'n', 'S', 'T', 'p', 'F', 'C') OR n.note IS NOT NULL;

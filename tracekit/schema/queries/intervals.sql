-- Time intervals: busy time (interval union). analyzers/intervals.py runs these by name over a polars frame
-- registered as `intervals`; they run as written over any relation of that name (a temp view of `kernels`, ...).

-- name: union_by_group
-- Busy time: the length of the union of the half-open intervals [ts_ns, end_ns) of each group (kernels on
-- several streams overlap; their union counts each instant once).
-- Input: a relation `intervals(grp, ts_ns BIGINT, end_ns BIGINT)`. Output: one row per grp present:
--   grp      the group (any type; GROUP BY semantics, NULL is a group)
--   busy_ns  BIGINT, exact: the sum of the lengths of the maximal overlapping (or touching) runs
-- Sweep in start order: an interval adds the part of it beyond the latest end of the intervals sorted before it
-- (they all start no later, so they cover exactly [ts_ns, that end) of it); equal starts may come in any order.
SELECT grp, CAST(sum(greatest(0, end_ns - greatest(ts_ns, coalesce(prev_end, ts_ns)))) AS BIGINT) AS busy_ns
FROM (
    SELECT grp, ts_ns, end_ns,
           max(end_ns) OVER (PARTITION BY grp ORDER BY ts_ns ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS prev_end
    FROM intervals
)
GROUP BY grp;

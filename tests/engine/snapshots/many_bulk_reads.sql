CREATE TEMP TABLE mr AS
SELECT 'bulk_pii_read' AS rule, * FROM (SELECT e.*, coalesce(e.username, e.user_id) AS actor
FROM events e
WHERE (("source" = 'salesforce_elf' OR "source" = 'salesforce_rtem' OR "source" = 'salesforce_audit') AND ("action" = 'query' OR "action" = 'export') AND ("object" ILIKE 'Contact' OR "object" ILIKE 'Account' OR "object" ILIKE 'Lead' OR "object" ILIKE 'Case') AND "rows" >= 1000));
SELECT * EXCLUDE (corr) FROM (
WITH base AS (WITH g AS (SELECT c.corr, c.step, m.*, [CAST(m.actor AS VARCHAR)]::VARCHAR[] AS grp, to_json(list_prepend(c.corr, [CAST(m.actor AS VARCHAR)]::VARCHAR[]))::VARCHAR AS k FROM mr m JOIN (VALUES ('_', 'bulk_pii_read', 0)) c(corr, rule, step) ON m.rule = c.rule WHERE CAST(m.actor AS VARCHAR) IS NOT NULL) SELECT * FROM g WHERE k IN (SELECT k FROM g GROUP BY k HAVING count(DISTINCT event_id) >= 2)),
events AS (SELECT * FROM base),
firing AS (SELECT k, t, max(CAST(n AS DOUBLE)) AS n FROM (SELECT k, time AS t, n FROM (SELECT k, time, count(*) OVER (PARTITION BY k ORDER BY time RANGE BETWEEN INTERVAL 3600 SECOND PRECEDING AND CURRENT ROW) AS n FROM events) WHERE n >= 2) GROUP BY k, t),
marked AS (SELECT k, t, n, CASE WHEN lag(t) OVER (PARTITION BY k ORDER BY t) >= t - INTERVAL 3600 SECOND THEN 0 ELSE 1 END AS brk FROM firing),
episodes AS (SELECT k, t, n, sum(brk) OVER (PARTITION BY k ORDER BY t, brk DESC ROWS UNBOUNDED PRECEDING) AS ep FROM marked),
spans AS (SELECT k, ep, min(t) - INTERVAL 3600 SECOND AS lo, max(t) AS hi, arg_min(n, t) AS v FROM episodes GROUP BY k, ep)
SELECT any_value(e.corr) AS corr, any_value(e.grp) AS grp, min(e.time) AS first_seen, max(e.time) AS last_seen,
       count(*) AS event_count, list(e.event_id ORDER BY e.time, e.event_id) AS event_ids,
       any_value(s.lo) + INTERVAL 3600 SECOND AS fired_at, any_value(s.v) AS fired_value
FROM spans s JOIN events e ON e.k = s.k AND e.time BETWEEN s.lo AND s.hi
GROUP BY s.k, s.ep);

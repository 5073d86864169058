CREATE TEMP TABLE mr AS
SELECT 'bulk_pii_read' AS rule, * FROM (SELECT e.*, coalesce(e.username, e.user_id) AS actor
FROM events e
WHERE (("source" ILIKE 'salesforce\_elf' ESCAPE '\' OR "source" ILIKE 'salesforce\_rtem' ESCAPE '\' OR "source" ILIKE 'salesforce\_audit' ESCAPE '\') AND ("action" ILIKE 'query' ESCAPE '\' OR "action" ILIKE 'export' ESCAPE '\') AND ("object" ILIKE 'Contact' ESCAPE '\' OR "object" ILIKE 'Account' ESCAPE '\' OR "object" ILIKE 'Lead' ESCAPE '\' OR "object" ILIKE 'Case' ESCAPE '\') AND "rows" >= 1000));
WITH base AS (SELECT *, [CAST(actor AS VARCHAR)]::VARCHAR[] AS grp FROM mr WHERE rule IN ('bulk_pii_read') AND actor IS NOT NULL),
events AS (SELECT * FROM base QUALIFY row_number() OVER (PARTITION BY grp, event_id ORDER BY rule) = 1),
firing AS (SELECT grp, time AS t FROM (SELECT grp, time, count(*) OVER (PARTITION BY grp ORDER BY time RANGE BETWEEN INTERVAL 3600 SECOND PRECEDING AND CURRENT ROW) AS n FROM events) WHERE n >= 2),
marked AS (SELECT grp, t, CASE WHEN lag(t) OVER (PARTITION BY grp ORDER BY t) >= t - INTERVAL 3600 SECOND THEN 0 ELSE 1 END AS brk FROM firing),
episodes AS (SELECT grp, t, sum(brk) OVER (PARTITION BY grp ORDER BY t ROWS UNBOUNDED PRECEDING) AS ep FROM marked),
spans AS (SELECT grp, ep, min(t) - INTERVAL 3600 SECOND AS lo, max(t) AS hi FROM episodes GROUP BY grp, ep)
SELECT s.grp, min(e.time) AS first_seen, max(e.time) AS last_seen, count(*) AS event_count,
       list(e.event_id ORDER BY e.time, e.event_id) AS event_ids
FROM spans s JOIN events e ON e.grp = s.grp AND e.time BETWEEN s.lo AND s.hi
GROUP BY s.grp, s.ep;

SELECT e.*, coalesce(e.username, e.user_id) AS actor
FROM events e
WHERE (("source" = 'salesforce_elf' OR "source" = 'salesforce_rtem' OR "source" = 'salesforce_audit') AND ("action" = 'query' OR "action" = 'export') AND ("object" ILIKE 'Contact' OR "object" ILIKE 'Account' OR "object" ILIKE 'Lead' OR "object" ILIKE 'Case') AND "rows" >= 1000);

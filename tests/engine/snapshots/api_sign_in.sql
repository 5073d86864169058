SELECT e.*, coalesce(e.username, e.user_id) AS actor
FROM events e
WHERE (("source" = 'salesforce_elf' OR "source" = 'salesforce_rtem' OR "source" = 'salesforce_audit') AND "action" = 'login' AND "outcome" = 'success');

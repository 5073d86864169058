SELECT e.*, coalesce(e.username, e.user_id) AS actor
FROM events e
WHERE (("source" ILIKE 'salesforce\_elf' ESCAPE '\' OR "source" ILIKE 'salesforce\_rtem' ESCAPE '\' OR "source" ILIKE 'salesforce\_audit' ESCAPE '\') AND ("action" ILIKE 'query' ESCAPE '\' OR "action" ILIKE 'export' ESCAPE '\') AND ("object" ILIKE 'Contact' ESCAPE '\' OR "object" ILIKE 'Account' ESCAPE '\' OR "object" ILIKE 'Lead' ESCAPE '\' OR "object" ILIKE 'Case' ESCAPE '\') AND "rows" >= 1000);

"""Salesforce Event Log File column lists, per event type, as Salesforce documents them.

From the EventLogFile "Supported Event Types" reference (Object Reference, API v60+), in the
order the ``LogFile`` CSV serves them. The parser never relies on these (it reads columns by
header name, and releases add columns); they document what a complete file holds, let tests check
that simulated files look like real ones, and let the simulator write realistic headers. Where a
public sample exists in ``shared/data/salesforce/elf`` its header is the reference instead.
"""

from __future__ import annotations

_COMMON = ("EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "ORGANIZATION_ID", "USER_ID")
_TIMING = ("RUN_TIME", "CPU_TIME", "URI", "SESSION_KEY", "LOGIN_KEY", "USER_TYPE", "REQUEST_STATUS", "DB_TOTAL_TIME")
_DERIVED = ("TIMESTAMP_DERIVED", "USER_ID_DERIVED", "CLIENT_IP", "URI_ID_DERIVED")

ELF_FIELDS: dict[str, tuple[str, ...]] = {
    # Header of shared/data/salesforce/elf/Login-newrelic-exporter.csv (a real hourly file).
    "Login": (
        *_COMMON, *_TIMING, "LOGIN_TYPE", "BROWSER_TYPE", "API_TYPE", "API_VERSION", "USER_NAME",
        "TLS_PROTOCOL", "CIPHER_SUITE", "USE_API_TOKEN", "HTTP_REFERER", "LOGIN_URL", "COUNTRY_CODE",
        "AUTHENTICATION_METHOD_REFERENCE", "LOGIN_SUB_TYPE", "AUTHENTICATION_SERVICE_ID",
        "TIMESTAMP_DERIVED", "USER_ID_DERIVED", "CLIENT_IP", "URI_ID_DERIVED", "LOGIN_STATUS",
        "SOURCE_IP", "FORWARDED_FOR_IP",
    ),
    # Header of shared/data/salesforce/elf/Logout-elastic-integrations-mock.csv.
    "Logout": (
        *_COMMON, "USER_TYPE", "SESSION_TYPE", "SESSION_LEVEL", "BROWSER_TYPE", "PLATFORM_TYPE",
        "RESOLUTION_TYPE", "APP_TYPE", "CLIENT_VERSION", "API_TYPE", "API_VERSION",
        "USER_INITIATED_LOGOUT", "SESSION_KEY", "LOGIN_KEY", "TIMESTAMP_DERIVED", "USER_ID_DERIVED",
        "CLIENT_IP",
    ),
    "LoginAs": (
        *_COMMON, *_TIMING, "DELEGATED_USER_ID", "DELEGATED_USER_NAME", "DELEGATED_ORGANIZATION_ID",
        *_DERIVED, "DELEGATED_USER_ID_DERIVED",
    ),
    "API": (
        *_COMMON, *_TIMING, "API_TYPE", "API_VERSION", "CLIENT_NAME", "METHOD_NAME", "ENTITY_NAME",
        "ROWS_PROCESSED", "REQUEST_SIZE", "RESPONSE_SIZE", "EXCEPTION_MESSAGE", "DB_BLOCKS",
        "DB_CPU_TIME", *_DERIVED,
    ),
    "RestApi": (
        *_COMMON, *_TIMING, "ENTITY_NAME", "METHOD", "MEDIA_TYPE", "STATUS_CODE", "USER_AGENT",
        "ROWS_PROCESSED", "NUMBER_FIELDS", "DB_BLOCKS", "DB_CPU_TIME", "REQUEST_SIZE",
        "RESPONSE_SIZE", "CONNECTED_APP_ID", *_DERIVED,
    ),
    "ApiTotalUsage": (
        *_COMMON, "API_FAMILY", "API_VERSION", "API_RESOURCE", "CLIENT_NAME", "CLIENT_IP",
        "CONNECTED_APP_ID", "ENTITY_NAME", "HTTP_METHOD", "STATUS_CODE", "COUNTS_AGAINST_API_LIMIT",
        "URI", "TIMESTAMP_DERIVED", "USER_ID_DERIVED",
    ),
    "BulkApi": (
        *_COMMON, *_TIMING, "JOB_ID", "BATCH_ID", "ENTITY_TYPE", "OPERATION_TYPE", "ROWS_PROCESSED",
        "NUMBER_FAILURES", "MESSAGE", *_DERIVED,
    ),
    "BulkApi2": (
        *_COMMON, *_TIMING, "JOB_ID", "ENTITY_TYPE", "OPERATION_TYPE", "ROWS_PROCESSED",
        "NUMBER_FAILURES", "MESSAGE", "RESPONSE_SIZE", *_DERIVED,
    ),
    "Report": (
        *_COMMON, *_TIMING, "ENTITY_NAME", "DISPLAY_TYPE", "RENDERING_TYPE", "REPORT_ID", "ROW_COUNT",
        "NUMBER_EXCEPTION_FILTERS", "NUMBER_COLUMNS", "AVERAGE_ROW_SIZE", "SORT", "DB_BLOCKS",
        "DB_CPU_TIME", "NUMBER_BUCKETS", "ORIGIN", "IS_SCHEDULED", *_DERIVED, "REPORT_ID_DERIVED",
    ),
    "ReportExport": (
        *_COMMON, "CLIENT_IP", "URI", "CLIENT_INFO", "REPORT_DESCRIPTION", "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED", "URI_ID_DERIVED",
    ),
    "URI": (*_COMMON, *_TIMING, "REFERRER_URI", *_DERIVED),
    "LightningUri": (
        *_COMMON, "CLIENT_ID", "SESSION_KEY", "LOGIN_KEY", "USER_TYPE", "APP_NAME", "DEVICE_PLATFORM",
        "OS_NAME", "OS_VERSION", "USER_AGENT", "BROWSER_NAME", "BROWSER_VERSION", "DURATION",
        "EFFECTIVE_PAGE_TIME", "PAGE_START_TIME", "PAGE_ENTITY_ID", "PAGE_ENTITY_TYPE",
        "PAGE_CONTEXT", "PAGE_URL", "PAGE_APP_NAME", "PREVPAGE_ENTITY_ID", "PREVPAGE_ENTITY_TYPE",
        "PREVPAGE_URL", "TIMESTAMP_DERIVED", "USER_ID_DERIVED", "CLIENT_IP",
    ),
    "ContentTransfer": (
        *_COMMON, *_TIMING, "TRANSACTION_TYPE", "SIZE_BYTES", "FILE_TYPE", "FILE_PREVIEW_TYPE",
        "VERSION_ID", "DOCUMENT_ID", *_DERIVED,
    ),
}
"""Event type -> documented CSV columns, in the order Salesforce writes them."""

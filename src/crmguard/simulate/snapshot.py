"""The org snapshot (``org/snapshot.json``) for posture checks: users, profiles, permission sets
and their assignments, connected apps and OAuth tokens, and the Okta side (apps, users), as they
stand at the end of the simulated period — including what the campaigns left behind.

Field names follow the Salesforce objects they mirror (User, Profile, PermissionSet,
PermissionSetAssignment, ConnectedApplication, OauthToken).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from crmguard.simulate import ids
from crmguard.simulate.clock import iso_sf_one
from crmguard.simulate.org import ADMIN, ADVISOR, ANALYST, INTEGRATION, ROLE_TITLES, SERVICE, Org

if TYPE_CHECKING:
    from crmguard.simulate.campaigns.base import Campaign
    from crmguard.simulate.customers import Customers

TIME_ZONES = {
    "Paris": "Europe/Paris", "Cannes": "Europe/Paris", "Lyon": "Europe/Paris", "Milan": "Europe/Rome",
    "Rome": "Europe/Rome", "Florence": "Europe/Rome", "London": "Europe/London", "Manchester": "Europe/London",
    "Munich": "Europe/Berlin", "Berlin": "Europe/Berlin", "Madrid": "Europe/Madrid", "Barcelona": "Europe/Madrid",
    "New York": "America/New_York", "Miami": "America/New_York", "Los Angeles": "America/Los_Angeles",
    "Tokyo": "Asia/Tokyo", "Osaka": "Asia/Tokyo", "Shanghai": "Asia/Shanghai", "Beijing": "Asia/Shanghai",
    "Hong Kong": "Asia/Hong_Kong", "Seoul": "Asia/Seoul", "Dubai": "Asia/Dubai",
}

PROFILES = (
    ("Boutique Client Advisor", {"PermissionsApiEnabled": True, "PermissionsExportReport": False,
                                 "PermissionsViewAllData": False, "PermissionsModifyAllData": False}),
    ("Clienteling Analyst", {"PermissionsApiEnabled": True, "PermissionsExportReport": True,
                             "PermissionsViewAllData": True, "PermissionsModifyAllData": False}),
    ("Client Service Agent", {"PermissionsApiEnabled": False, "PermissionsExportReport": False,
                              "PermissionsViewAllData": False, "PermissionsModifyAllData": False}),
    ("System Administrator", {"PermissionsApiEnabled": True, "PermissionsExportReport": True,
                              "PermissionsViewAllData": True, "PermissionsModifyAllData": True}),
    ("Integration User", {"PermissionsApiEnabled": True, "PermissionsExportReport": False,
                          "PermissionsViewAllData": True, "PermissionsModifyAllData": False,
                          "PermissionsApiUserOnly": True}),
)
PERMISSION_SETS: tuple[tuple[str, str, dict[str, bool]], ...] = (
    ("Clienteling_Mobile", "Clienteling Mobile", {"PermissionsApiEnabled": True}),
    ("Report_Builder", "Report Builder", {"PermissionsCreateCustomizeReports": True}),
    ("Export_Reports", "Export Reports", {"PermissionsExportReport": True}),
    ("Service_Console_User", "Service Console User", {}),
    ("Bulk_API_Access", "Bulk API Access", {"PermissionsApiEnabled": True, "PermissionsBulkApiHardDelete": False}),
    ("Connected_App_Manager", "Connected App Manager", {"PermissionsCustomizeApplication": True}),
)
ROLE_PERMSETS = {
    ADVISOR: ("Clienteling_Mobile",), ANALYST: ("Report_Builder", "Export_Reports", "Bulk_API_Access"),
    SERVICE: ("Service_Console_User",), ADMIN: ("Report_Builder", "Export_Reports", "Connected_App_Manager"),
    INTEGRATION: ("Bulk_API_Access",),
}
_PROFILE_OF_ROLE = {ADVISOR: 0, ANALYST: 1, SERVICE: 2, ADMIN: 3, INTEGRATION: 4}


def write_snapshot(path: Path, org: Org, customers: Customers, campaigns: list[Campaign], period: tuple[int, int]) -> int:
    """Write the snapshot JSON document; returns the number of top-level records it lists."""
    users = org.users
    taken = 800_000
    profile_ids = [ids.new_id("00e", org.pod, taken + k)[1] for k in range(len(PROFILES))]
    permset_ids = [ids.new_id("0PS", org.pod, taken + k)[1] for k in range(len(PERMISSION_SETS))]
    permset_index = {name: k for k, (name, _label, _p) in enumerate(PERMISSION_SETS)}
    extra_assignments: list[tuple[int, str]] = []
    for c in campaigns:
        extra_assignments += c.snapshot_permission_sets()

    doc_users = []
    assignments = []
    for u in range(len(users)):
        role = int(users.role[u])
        site = org.sites[users.site[u]]
        doc_users.append({
            "Id": users.sf18[u], "Username": users.username[u], "Name": users.name(u), "Email": users.username[u],
            "FederationIdentifier": users.username[u], "IsActive": True, "UserType": "Standard",
            "ProfileId": profile_ids[_PROFILE_OF_ROLE[role]], "Title": ROLE_TITLES[role],
            "Department": site.name if role != INTEGRATION else "IT Integrations",
            "Country": site.city.country if role != INTEGRATION else "FR",
            "TimeZoneSidKey": TIME_ZONES.get(site.city.name, "Europe/Paris") if role != INTEGRATION else "GMT",
            "CreatedDate": users.created[u], "OktaUserId": users.okta_id[u],
        })
        names = list(ROLE_PERMSETS[role]) + [p for uu, p in extra_assignments if uu == u]
        for name in names:
            assignments.append({"AssigneeId": users.sf18[u], "PermissionSetId": permset_ids[permset_index[name]]})

    apps = [{
        "Id": a.id18, "Name": a.name, "CreatedDate": a.created, "CreatedBy": a.owner, "Description": a.description,
        "OptionsAllowAdminApprovedUsersOnly": key in ("etl", "marketing", "chat"), "OptionsRefreshTokenValidityMetric": False,
        "StartUrl": None,
    } for key, a in org.apps.items()]
    tokens = _tokens(org, period)
    for c in campaigns:
        apps += c.snapshot_apps()
        tokens = c.adjust_tokens(tokens)

    doc: dict[str, Any] = {
        "taken_at": iso_sf_one(period[1]),
        "organization": {"Id": org.org_id18, "Name": org.group, "InstanceName": "EU" + str(len(org.pod) * 23),
                         "MyDomain": org.my_domain, "CreatedDate": org.created.isoformat() + "T00:00:00.000+0000",
                         "SamlSsoConfigId": ids.to18(org.saml_config_id), "Brands": [b.name for b in org.brands]},
        "users": doc_users,
        "profiles": [{"Id": profile_ids[k], "Name": name, **perms} for k, (name, perms) in enumerate(PROFILES)],
        "permission_sets": [{"Id": permset_ids[k], "Name": name, "Label": label, **perms}
                            for k, (name, label, perms) in enumerate(PERMISSION_SETS)],
        "permission_set_assignments": assignments,
        "connected_apps": apps,
        "oauth_tokens": tokens,
        "okta": {
            "domain": org.okta_domain,
            "apps": [{"id": org.okta_sf_app_id, "label": "Salesforce", "signOnMode": "SAML_2_0", "status": "ACTIVE"}],
            "users": [{"id": users.okta_id[u], "login": users.username[u], "status": "ACTIVE"}
                      for u in range(len(users)) if users.role[u] != INTEGRATION],
        },
        "customers": {"count": len(customers), "export": "crm/customers.csv"},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return len(doc_users) + len(apps) + len(tokens) + len(assignments)


def _tokens(org: Org, period: tuple[int, int]) -> list[dict[str, Any]]:
    """OAuth tokens users and integrations hold at the end of the period."""
    users = org.users
    out = []
    counter = 900_000
    holders: list[tuple[int, str, int]] = []
    for u in range(len(users)):
        role = int(users.role[u])
        if users.mobile_agent[u] >= 0:
            holders.append((u, "mobile", 40))
        if role == ANALYST:
            holders.append((u, "dataloader", 25))
        if role == ADMIN:
            holders.append((u, "cli", 60))
    for integ in org.integrations.values():
        holders.append((integ.user, integ.key, 3000))
    for k, (u, key, uses) in enumerate(holders):
        app = org.apps[key]
        out.append({
            "Id": ids.new_id("0CQ", org.pod, counter + k)[1], "AppName": app.name, "AppMenuItemId": app.id18,
            "UserId": users.sf18[u], "Username": users.username[u], "CreatedDate": app.created,
            "LastUsedDate": iso_sf_one(period[1] - 3_600_000 * (1 + k % 20)), "UseCount": uses * (1 + k % 7),
        })
    return out

"""Seed data: the demo tenant (about 50 users, 15 named groups + overage groups, 3 SKUs) and large tenants.

Everything is deterministic for a given seed: GUIDs come from random.Random(seed).
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
GROUPS_ADMIN = "fdd7a751-b60b-444a-984c-02652fe8fa1c"
LICENSE_ADMIN = "4d6ac14f-3453-41d0-bef9-a3e0c569773a"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
PRIV_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"
APP_ADMIN = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
CLOUD_APP_ADMIN = "158c047a-c907-4556-b7ef-446551a6b5f7"
#: Roles allowed to grant tenant-wide (admin) consent for Graph permissions.
CONSENT_ADMIN_ROLES = frozenset({GLOBAL_ADMIN, PRIV_ROLE_ADMIN, APP_ADMIN, CLOUD_APP_ADMIN})

CREATED = "2024-01-15T09:00:00Z"

#: Graph delegated permissions registered on the demo gateway client (what `.default` means).
GATEWAY_DELEGATED = ["User.Read", "User.Read.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All",
                     "Organization.Read.All", "LicenseAssignment.ReadWrite.All", "Directory.Read.All"]
GATEWAY_APPLICATION = ["User.Read.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All",
                       "Organization.Read.All", "LicenseAssignment.ReadWrite.All"]

TENANT_NAMES = [("Contoso", "contoso.example"), ("Fabrikam", "fabrikam.example"),
                ("Northwind Traders", "northwind.example"), ("Tailspin Toys", "tailspin.example"),
                ("Woodgrove Bank", "woodgrove.example")]

# (given, surname, job, department, roles, flags) - flags: nomail, noloc, disabled
DEMO_PEOPLE = [
    ("MOD", "Administrator", "IT Administrator", "IT", [GLOBAL_ADMIN], ""),
    ("Adele", "Vance", "Retail Manager", "Retail", [], ""),
    ("Alex", "Wilber", "Marketing Assistant", "Marketing", [], ""),
    ("Allan", "Deyoung", "IT Admin", "IT", [USER_ADMIN], ""),
    ("Megan", "Bowen", "Marketing Manager", "Marketing", [USER_ADMIN, GROUPS_ADMIN], ""),
    ("Lee", "Gu", "Director", "Manufacturing", [LICENSE_ADMIN], ""),
    ("Patti", "Fernandez", "President", "Executive Management", [GROUPS_ADMIN], ""),
    ("Nestor", "Wilke", "Director", "Operations", [GLOBAL_READER], ""),
    ("Isaiah", "Langer", "Sales Rep", "Sales", [], "overage"),
    ("Christie", "Cline", "Buyer", "Retail", [], ""),
    ("Debra", "Berger", "Administrative Assistant", "Executive Management", [], ""),
    ("Diego", "Siciliani", "HR Manager", "HR", [], ""),
    ("Grady", "Archie", "Designer", "R&D", [], "noloc"),
    ("Henrietta", "Mueller", "Developer", "R&D", [], ""),
    ("Johanna", "Lorenz", "Senior Engineer", "Engineering", [], ""),
    ("Joni", "Sherman", "Paralegal", "Legal", [], "nomail"),
    ("Lidia", "Holloway", "Product Manager", "Engineering", [], ""),
    ("Lynne", "Robbins", "Planner", "Retail", [], "noloc"),
    ("Miriam", "Graham", "Director", "Sales & Marketing", [], ""),
    ("Pradeep", "Gupta", "Accountant", "Finance", [], "nomail"),
    ("Irvin", "Sayers", "Director", "Finance", [], ""),
    ("Emily", "Braun", "Budget Analyst", "Finance", [], ""),
    ("Enrico", "Cattaneo", "Attorney", "Legal", [], "disabled"),
    ("Brian", "Johnson", "Former employee", "Sales", [], "disabled"),
    ("Cameron", "White", "Contractor", "Engineering", [], "disabled,nomail,noloc"),
    ("Gerhart", "Moller", "Service Technician", "Operations", [], "noloc"),
    ("Ben", "Walters", "Sales Rep", "Sales", [], ""),
    ("Sara", "Davis", "Product Marketing Manager", "Marketing", [], ""),
    ("Anne", "Wallace", "Sales Manager", "Sales", [], ""),
    ("Zrinka", "Makovac", "Engineer", "Engineering", [], "nomail"),
    ("Ann", "O'Neil", "Receptionist", "Facilities", [], ""),
    ("Annette", "Hill", "Data Scientist", "R&D", [], ""),
    ("Joanne", "Ortiz", "Support Engineer", "Support", [], "noloc"),
    ("Ray", "Chen", "Support Engineer", "Support", [], ""),
    ("Kevin", "Cook", "Technician", "Operations", [], "nomail"),
    ("Mona", "Kane", "Trainer", "HR", [], ""),
    ("Nora", "Shea", "Recruiter", "HR", [], ""),
    ("Omar", "Bennett", "Analyst", "Finance", [], ""),
    ("Paula", "Bento", "Buyer", "Retail", [], ""),
    ("Quentin", "Dupont", "Developer", "R&D", [], ""),
    ("Rosa", "Alvarez", "Designer", "Marketing", [], ""),
    ("Samir", "Haddad", "Engineer", "Engineering", [], ""),
    ("Tomoko", "Sato", "Engineer", "Engineering", [], ""),
    ("Uma", "Patel", "Controller", "Finance", [], ""),
    ("Victor", "Ivanov", "Warehouse Lead", "Operations", [], "noloc"),
    ("Wendy", "Ng", "Paralegal", "Legal", [], ""),
    ("Xavier", "Moreau", "Sales Rep", "Sales", [], ""),
    ("Yara", "Costa", "Marketing Specialist", "Marketing", [], ""),
    ("Zoe", "Fischer", "Office Manager", "Facilities", [], ""),
    ("Adam", "Mazur", "Security Engineer", "IT", [], ""),
]

SKUS = [
    ("6fd2c87f-b296-42f0-b197-1e91e994b900", "ENTERPRISEPACK", 100, [
        ("efb87545-963c-4e0d-99df-69c6916d9eb0", "EXCHANGE_S_ENTERPRISE"),
        ("5dbe027f-2339-4123-9542-606e4d348a72", "SHAREPOINTENTERPRISE"),
        ("0feaeb32-d00e-4d66-bd5a-43b5b83db82c", "MCOSTANDARD"),
        ("43de0ff5-c92c-492b-9116-175376d08c38", "OFFICESUBSCRIPTION"),
        ("57ff2da0-773e-42df-b2af-ffb7a2317929", "TEAMS1"),
        ("7547a3fe-08ee-4ccb-b430-5077c5041653", "YAMMER_ENTERPRISE"),
        ("e95bec33-7c88-4a70-8e19-b10bd9d0c014", "SHAREPOINTWAC"),
    ]),
    ("06ebc4ee-1bb5-47dd-8120-11324bc54e06", "SPE_E5", 10, [
        ("efb87545-963c-4e0d-99df-69c6916d9eb0", "EXCHANGE_S_ENTERPRISE"),
        ("5dbe027f-2339-4123-9542-606e4d348a72", "SHAREPOINTENTERPRISE"),
        ("43de0ff5-c92c-492b-9116-175376d08c38", "OFFICESUBSCRIPTION"),
        ("57ff2da0-773e-42df-b2af-ffb7a2317929", "TEAMS1"),
        ("4828c8ec-dc2e-4779-b502-87ac9ce28ab7", "MCOEV"),
        ("f20fedf3-f3c3-43c3-8267-2bfdd51c0939", "ATP_ENTERPRISE"),
        ("70d33638-9c74-4d01-bfd3-562de28bd4ba", "BI_AZURE_P2"),
        ("eec0eb4f-6444-4f95-aba0-50c24d67f998", "AAD_PREMIUM_P2"),
    ]),
    ("f8a1db68-be16-40ed-86d5-cb42ce701560", "POWER_BI_PRO", 25, [
        ("70d33638-9c74-4d01-bfd3-562de28bd4ba", "BI_AZURE_P2"),
        ("113feb6c-3fe4-4440-bddc-54d774bf0318", "EXCHANGE_S_FOUNDATION"),
    ]),
]
E3, E5, PBI = SKUS[0][0], SKUS[1][0], SKUS[2][0]

# (name, nickname, kind, description) - kind: security | unified | mailsec
DEMO_GROUPS = [
    ("All Company", "allcompany", "unified", "This is the default group for everyone in the network"),
    ("Sales and Marketing", "SalesAndMarketing", "unified", "Marketing campaigns and sales pipeline"),
    ("Retail", "Retail", "unified", "Retail stores and buyers"),
    ("Mark 8 Project Team", "Mark8ProjectTeam", "unified", "Product launch team for the Mark 8"),
    ("Digital Initiative Public Relations", "DigitalInitiativePR", "unified", "PR for the digital initiative"),
    ("U.S. Sales", "USSales", "unified", "Sales team for the United States"),
    ("Legal", "Legal", "unified", "Legal department"),
    ("Finance", "Finance", "mailsec", "Finance department (mail-enabled security)"),
    ("IT Admins", "ITAdmins", "security", "Administrators of the IT estate"),
    ("Helpdesk", "Helpdesk", "mailsec", "First-line support"),
    ("Engineering", "Engineering", "security", "Engineering staff"),
    ("VPN Users", "VPNUsers", "security", "Allowed to use the VPN"),
    ("Gateway Users", "GatewayUsers", "security", "Allowed to sign in to the SSO gateway"),
    ("Gateway Admins", "GatewayAdmins", "security", "Administrators of the SSO gateway"),
    ("Executives", "Executives", "mailsec", "Executive management"),
]

FIRST = ["Ada", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jade", "Kai", "Lena", "Milo", "Nia",
         "Oren", "Pia", "Quin", "Rhea", "Sol", "Tara", "Udo", "Vera", "Wes", "Xena", "Yuri", "Zara", "Anna",
         "Bruno", "Chloe", "Dario", "Elena", "Felix", "Greta", "Hugo", "Iris", "Jonas", "Kira", "Luca", "Maya",
         "Nils", "Olga", "Pavel", "Rosa", "Sven", "Tina", "Ugo", "Vito", "Wilma", "Yann", "Zeno"]
LAST = ["Abbott", "Baker", "Carter", "Diaz", "Evans", "Fox", "Garcia", "Hughes", "Ito", "Jensen", "Khan", "Lopez",
        "Meyer", "Novak", "Olsen", "Park", "Quinn", "Reyes", "Singh", "Tanaka", "Urban", "Vogel", "Weber", "Xu",
        "Young", "Zimmer", "Almeida", "Brandt", "Costa", "Dubois", "Eriksen", "Farah", "Gomez", "Horvat",
        "Ibrahim", "Jovanovic", "Kowalski", "Larsen", "Moreno", "Nakamura"]
DEPARTMENTS = ["Sales", "Marketing", "Finance", "HR", "Engineering", "Operations", "Legal", "Support", "R&D", "IT"]
COUNTRIES = ["US", "GB", "DE", "FR", "NL", "ES", "IT", "SE", "JP", "CA"]


class Ids:
    """Deterministic GUID source."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def __call__(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


_EXTRA = json.dumps({"businessPhones": [], "mobilePhone": None, "officeLocation": None,
                     "preferredLanguage": "en-US"})


def _user_row(ids: Ids, tenant_id: str, domain: str, nick: str, given: str, surname: str, job: str | None,
              dept: str | None, roles: list[str], mail: bool, loc: str | None, enabled: bool,
              display: str | None = None) -> tuple:
    upn = f"{nick}@{domain}"
    return (ids(), tenant_id, upn, display or f"{given} {surname}", given, surname,
            upn if mail else None, job, dept, loc, 1 if enabled else 0, "demo", json.dumps(roles),
            _EXTRA, CREATED)


USER_SQL = ("INSERT INTO users (id, tenant_id, user_principal_name, display_name, given_name, surname, mail, "
            "job_title, department, usage_location, account_enabled, password, directory_roles, extra, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
GROUP_SQL = ("INSERT INTO groups (id, tenant_id, display_name, description, mail, mail_nickname, mail_enabled, "
             "security_enabled, group_types, visibility, created, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _group_row(ids: Ids, tenant_id: str, domain: str, name: str, nick: str, kind: str, desc: str) -> tuple:
    unified = kind == "unified"
    mail_enabled = kind in ("unified", "mailsec")
    return (ids(), tenant_id, name, desc, f"{nick}@{domain}" if mail_enabled else None, nick,
            1 if mail_enabled else 0, 0 if unified else 1, json.dumps(["Unified"] if unified else []),
            "Public" if unified else None, CREATED, "{}")


def _nick(given: str, surname: str) -> str:
    return "".join(c for c in f"{given}.{surname}".lower() if c.isalnum() or c == ".")


def seed_tenant(conn: sqlite3.Connection, ids: Ids, index: int, users: int | None) -> dict:
    """Create one tenant with its demo people, groups and SKUs (+ generated users up to `users`)."""
    display, domain = TENANT_NAMES[index] if index < len(TENANT_NAMES) else (
        f"Tenant {index}", f"tenant{index}.example")
    tenant_id = ids()
    conn.execute("INSERT INTO tenants (id, display_name, domain, created) VALUES (?, ?, ?, ?)",
                 (tenant_id, display, domain, CREATED))
    people = DEMO_PEOPLE if index == 0 else DEMO_PEOPLE[:12]
    rows = []
    for i, (given, surname, job, dept, roles, flags) in enumerate(people):
        nick = "admin" if i == 0 else _nick(given, surname)
        rows.append(_user_row(ids, tenant_id, domain, nick, given, surname, job, dept, roles,
                              "nomail" not in flags, None if "noloc" in flags else COUNTRIES[i % 3],
                              "disabled" not in flags))
    conn.executemany(USER_SQL, rows)
    user_ids = [r[0] for r in rows]
    overage_user = user_ids[8]
    generated: list[str] = []
    if users and users > len(rows):
        rng = random.Random(ids.rng.getrandbits(32))
        batch = []
        for n in range(users - len(rows)):
            given, surname = FIRST[n % len(FIRST)], LAST[(n // len(FIRST)) % len(LAST)]
            dept = DEPARTMENTS[n % len(DEPARTMENTS)]
            loc = None if n % 17 == 0 else COUNTRIES[n % len(COUNTRIES)]
            batch.append(_user_row(ids, tenant_id, domain, f"{_nick(given, surname)}{n:06d}", given, surname,
                                   "Employee", dept, [], n % 23 != 0, loc, rng.random() > 0.02))
        conn.executemany(USER_SQL, batch)
        generated = [r[0] for r in batch]

    groups = [_group_row(ids, tenant_id, domain, *g) for g in DEMO_GROUPS]
    conn.executemany(GROUP_SQL, groups)
    gid = {g[2]: g[0] for g in groups}
    members: list[tuple[str, str, str]] = []
    everyone = user_ids
    for uid in everyone:
        members.append((gid["All Company"], uid, "member"))
    people_idx = {f"{p[0]} {p[1]}": user_ids[i] for i, p in enumerate(people)}

    def add(group: str, names: list[str], relation: str = "member") -> None:
        for name in names:
            if name in people_idx:
                members.append((gid[group], people_idx[name], relation))

    add("All Company", ["MOD Administrator"], "owner")
    add("Sales and Marketing", ["Alex Wilber", "Megan Bowen", "Miriam Graham", "Ben Walters", "Sara Davis",
                                "Anne Wallace", "Xavier Moreau", "Yara Costa", "Isaiah Langer"])
    add("Sales and Marketing", ["Miriam Graham"], "owner")
    add("Retail", ["Adele Vance", "Christie Cline", "Lynne Robbins", "Paula Bento"])
    add("Retail", ["Adele Vance"], "owner")
    add("Mark 8 Project Team", ["Adele Vance", "Alex Wilber", "Henrietta Mueller", "Johanna Lorenz",
                                "Lidia Holloway", "Isaiah Langer"])
    add("Mark 8 Project Team", ["Lidia Holloway", "Megan Bowen"], "owner")
    add("Digital Initiative Public Relations", ["Megan Bowen", "Sara Davis", "Rosa Alvarez"])
    add("Digital Initiative Public Relations", ["Megan Bowen"], "owner")
    add("U.S. Sales", ["Ben Walters", "Anne Wallace", "Xavier Moreau", "Isaiah Langer"])
    add("U.S. Sales", ["Anne Wallace"], "owner")
    add("Legal", ["Joni Sherman", "Enrico Cattaneo", "Wendy Ng"])
    add("Legal", ["Wendy Ng"], "owner")
    add("Finance", ["Pradeep Gupta", "Irvin Sayers", "Emily Braun", "Omar Bennett", "Uma Patel"])
    add("Finance", ["Irvin Sayers"], "owner")
    add("IT Admins", ["MOD Administrator", "Allan Deyoung", "Adam Mazur", "Isaiah Langer"])
    add("IT Admins", ["MOD Administrator"], "owner")
    add("Helpdesk", ["Ray Chen", "Joanne Ortiz", "Allan Deyoung"])
    add("Engineering", ["Johanna Lorenz", "Lidia Holloway", "Samir Haddad", "Tomoko Sato", "Zrinka Makovac",
                        "Cameron White", "Henrietta Mueller", "Quentin Dupont"])
    add("VPN Users", ["Adele Vance", "Alex Wilber", "Johanna Lorenz", "Isaiah Langer"])
    add("Gateway Users", ["Adele Vance", "Alex Wilber", "Megan Bowen", "Isaiah Langer", "Lee Gu",
                          "Diego Siciliani", "Debra Berger"])
    add("Gateway Admins", ["MOD Administrator", "Megan Bowen"])
    add("Gateway Admins", ["MOD Administrator"], "owner")
    add("Executives", ["Patti Fernandez", "Miriam Graham", "Irvin Sayers", "Nestor Wilke", "Lee Gu"])
    add("Engineering", ["MOD Administrator"], "owner")

    # One user in more than 200 groups: the ID token must hit groups overage.
    if index == 0:
        extra_groups = [_group_row(ids, tenant_id, domain, f"Project Team {n:03d}", f"projectteam{n:03d}",
                                   "security", f"Generated project group {n}") for n in range(1, 201)]
        conn.executemany(GROUP_SQL, extra_groups)
        for n, g in enumerate(extra_groups):
            members.append((g[0], overage_user, "member"))
            members.append((g[0], user_ids[1 + n % 5], "member"))
            members.append((g[0], user_ids[0], "owner"))
    if generated:
        dept_groups = [_group_row(ids, tenant_id, domain, f"Department {d}", "dept" + _nick(d, "x")[:-2],
                                  "security", f"Everyone in {d}") for d in DEPARTMENTS]
        conn.executemany(GROUP_SQL, dept_groups)
        for n, uid in enumerate(generated):
            members.append((dept_groups[n % len(DEPARTMENTS)][0], uid, "member"))
    conn.executemany("INSERT OR IGNORE INTO memberships (group_id, member_id, relation) VALUES (?, ?, ?)",
                     members)

    conn.executemany(
        "INSERT INTO skus (tenant_id, sku_id, sku_part_number, prepaid_enabled, capability_status, service_plans) "
        "VALUES (?, ?, ?, ?, 'Enabled', ?)",
        [(tenant_id, sku, part, prepaid, json.dumps([
            {"servicePlanId": pid, "servicePlanName": pname, "provisioningStatus": "Success", "appliesTo": "User"}
            for pid, pname in plans])) for sku, part, prepaid, plans in SKUS])
    licences = []
    e5_left = SKUS[1][2] - 1  # E5 nearly out of seats: one left
    for i, uid in enumerate(user_ids):
        if "disabled" in people[i][5]:
            continue
        if i % 4 == 0 and e5_left > 0:
            licences.append((uid, E5))
            e5_left -= 1
        else:
            licences.append((uid, E3))
        if i % 7 == 0:
            licences.append((uid, PBI))
    conn.executemany("INSERT OR IGNORE INTO user_licenses (user_id, sku_id) VALUES (?, ?)", licences)
    return {"id": tenant_id, "domain": domain, "display_name": display}


def seed(conn: sqlite3.Connection, *, seed_value: int = 1, tenants: int = 1, users: int | None = None) -> list[dict]:
    """Fill an empty store. `users` sizes the first tenant (>= the 50 demo people)."""
    ids = Ids(seed_value)
    out = []
    for index in range(max(1, tenants)):
        out.append(seed_tenant(conn, ids, index, users if index == 0 else None))
    return out

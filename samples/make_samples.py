#!/usr/bin/env python3
"""Writes samples/customers.csv and samples/customers.jsonl: realistic, deterministic, with a
handful of deliberately broken rows so the reports have something to show."""
import csv, json, random, os

random.seed(42)
here = os.path.dirname(os.path.abspath(__file__))
first = ["Ana", "Björn", "Chloé", "Dmitri", "Eşref", "Fatima", "Grace", "Hiroshi", "Ines", "José",
         "Katarzyna", "Liam", "Mei", "Noah", "Olivia", "Priya", "Quentin", "Rosa", "Søren", "Zoë"]
last = ["O'Brien", "Smith, Jr.", "Müller", "García", "Nguyen", "Kowalski", "Dupont", "Rossi",
        "Tanaka", "Johnson", 'van "the Tank" Dam', "Ødegaard", "Silva", "Yilmaz", "Kim"]
plans = ["free", "starter", "pro", "enterprise"]
cities = ["Lisbon", "São Paulo", "Zürich", "Kraków", "New York", "Tokyo", "Berlin", "Montréal"]

def created(i):
    t = 1_600_000_000 + i * 7919
    k = i % 4
    if k == 0:
        return str(t)
    if k == 1:
        return str(t * 1000 + 123)
    if k == 2:
        import datetime
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    import datetime
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d")

rows = []
for i in range(1, 3001):
    f, l = random.choice(first), random.choice(last)
    local = f.lower().replace("ö", "o").replace("é", "e").replace("ş", "s").replace("ø", "o").replace("ë", "e")
    email = f"{local}.{i}+news@example.com" if i % 3 else f"{local}{i}@exämple.org"
    rows.append({
        "id": f"u{i:05d}" if i % 50 else f"team/{i}",  # a few ids with a slash
        "email": email,
        "first_name": f,
        "last_name": l,
        "plan": random.choice(plans),
        "city": random.choice(cities),
        "zip": f"{random.randint(0, 99999):05d}",
        "lifetime_value": f"{random.random() * 1000:.2f}",
        "created_at": created(i),
        "notes": "" if i % 7 else 'likes "quotes", commas\nand new lines',
    })

# Deliberately broken rows, each a different lesson.
rows[99]["id"] = ""                                  # missing identifier
rows[199]["created_at"] = "last tuesday"             # unreadable timestamp
rows[299]["notes"] = "x" * 1200                      # value over 1000 bytes
rows[399]["id"] = "u" * 151                          # identifier over 150 bytes
rows[499]["created_at"] = "07/03/2019"               # a US date: not an accepted format

header = list(rows[0].keys())
with open(os.path.join(here, "customers.csv"), "w", newline="", encoding="utf-8") as fh:
    w = csv.DictWriter(fh, fieldnames=header, lineterminator="\r\n")
    w.writeheader()
    for i, r in enumerate(rows):
        w.writerow(r)
        if i == 599:
            fh.write("u-ragged,only-two-fields\r\n")  # a ragged row

with open(os.path.join(here, "customers.jsonl"), "w", encoding="utf-8") as fh:
    for i, r in enumerate(rows[:1000]):
        o = dict(r)
        o["lifetime_value"] = float(o["lifetime_value"])
        o["vip"] = (i % 10 == 0)
        o["logins"] = i % 37
        if o["notes"] == "":
            del o["notes"]
        fh.write(json.dumps(o, ensure_ascii=False) + "\n")
        if i == 10:
            fh.write("\n")                          # a blank line: skipped
        if i == 20:
            fh.write("[1, 2, 3]\n")                 # not an object: a bad row
        if i == 30:
            fh.write('{"id": "u-broken", "email": \n')  # broken JSON

# Objects and relationships: companies (objects of one type) and memberships (people of
# customers.csv related to them, with a role). Their own random source, so the files above
# stay as they were. Two deliberately broken companies.
orng = random.Random(7)
companies = [
    ("acme", "Acme Corp", "acme.example", "enterprise", "Manufacturing"),
    ("globex", "Globex", "globex.example", "pro", "Energy"),
    ("initech", "Initech", "initech.example", "starter", "Software"),
    ("umbrella", "Umbrella Co", "umbrella.example", "enterprise", "Pharmaceuticals"),
    ("hooli", "Hooli", "hooli.example", "pro", "Software"),
    ("stark", "Stark Industries", "stark.example", "enterprise", "Defense"),
    ("wayne", "Wayne Enterprises", "wayne.example", "enterprise", "Conglomerate"),
    ("vandelay", "Vandelay Industries", "vandelay.example", "free", "Import/Export"),
]
with open(os.path.join(here, "companies.csv"), "w", newline="", encoding="utf-8") as fh:
    w = csv.writer(fh, lineterminator="\r\n")
    w.writerow(["object_id", "name", "domain", "plan", "industry", "seats", "created_at"])
    for i, (oid, name, domain, plan, industry) in enumerate(companies):
        w.writerow([oid, name, domain, plan, industry, orng.randint(3, 500),
                    created(i * 97)])
    w.writerow(["", "Nameless Ltd", "", "free", "", "1", ""])  # missing object id
    w.writerow(["x" * 151, "Too Long Id Inc", "", "", "", "", ""])  # object id over 150 bytes

roles = ["admin", "member", "member", "billing", "viewer"]
with open(os.path.join(here, "memberships.csv"), "w", newline="", encoding="utf-8") as fh:
    w = csv.writer(fh, lineterminator="\r\n")
    w.writerow(["id", "object_id", "role", "since"])
    for i in range(1, 41):
        oid = companies[orng.randrange(len(companies))][0]
        w.writerow([rows[i - 1]["id"], oid, orng.choice(roles), f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}"])

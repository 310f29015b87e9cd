"""Drives the cio-import sandbox with Customer.io's official Python client, unpatched.

Environment: SANDBOX_URL (https://127.0.0.1:PORT), CUSTOMERIO_SITE_ID,
CUSTOMERIO_TRACK_API_KEY, REQUESTS_CA_BUNDLE (the sandbox's certificate).
Any difference between what the client sends and what the sandbox accepts is a sandbox bug.
"""
import os
import sys
from urllib.parse import urlparse

import requests
from customerio import CustomerIO

url = os.environ["SANDBOX_URL"]
site, key = os.environ["CUSTOMERIO_SITE_ID"], os.environ["CUSTOMERIO_TRACK_API_KEY"]
u = urlparse(url)
cio = CustomerIO(site, key, host=u.hostname, port=u.port, retries=0)

passed, failed = 0, 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok: {name}")
    else:
        failed += 1
        print(f"FAILED: {name} {detail}")


AWKWARD = "a/b c+d&é?#"
cio.identify(id=AWKWARD, plan="pro", created_at=1700000000)
cio.identify(id="to-delete", x=1)
cio.delete(customer_id="to-delete")
resp = cio.batch([
    {"type": "person", "identifiers": {"id": "batch-1"}, "action": "identify", "attributes": {"n": 1}},
    {"type": "person", "identifiers": {"id": "batch-2"}, "action": "identify", "attributes": {"big": "x" * 1001}},
    {"type": "person", "identifiers": {"email": "b3@example.com"}, "action": "identify", "attributes": {"n": 3}},
])
check("batch answers 207", resp.status_code == 207, resp.status_code)
errors = resp.json().get("errors", [])
check("207 lists exactly index 1", [e.get("batch_index") for e in errors] == [1], errors)

people = requests.get(f"{url}/__sandbox/people").json()
by_id = {p["identifier"]: p for p in people}
check("awkward id arrived decoded", AWKWARD in by_id, list(by_id))
check("its attributes merged", by_id.get(AWKWARD, {}).get("attributes") == {"plan": "pro", "created_at": 1700000000}, by_id.get(AWKWARD))
check("deleted person is gone", "to-delete" not in by_id, list(by_id))
check("valid batch operations applied", "batch-1" in by_id and "b3@example.com" in by_id, list(by_id))
check("invalid batch operation not applied", "batch-2" not in by_id, list(by_id))

stats = requests.get(f"{url}/__sandbox/stats").json()
check("no protocol violations", stats["violation_count"] == 0, stats["violations"])
check("one 207 counted", stats["by_status"].get("207") == 1, stats["by_status"])
check("no 401", "401" not in stats["by_status"], stats["by_status"])

print(f"official client: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

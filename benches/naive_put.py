"""The common hand-written importer, as the usual tutorials write it: read the CSV, send one
`requests.put` per row, in sequence, no session, no pacing, no retries, no report.
Usage: naive_put.py FILE.csv BASE_URL   (credentials from CUSTOMERIO_SITE_ID / _TRACK_API_KEY;
REQUESTS_CA_BUNDLE for the sandbox's certificate). Prints rows sent and failed as JSON."""
import csv
import json
import os
import sys
import time

import requests

path, base = sys.argv[1], sys.argv[2].rstrip("/")
auth = (os.environ["CUSTOMERIO_SITE_ID"], os.environ["CUSTOMERIO_TRACK_API_KEY"])
sent = failed = 0
started = time.time()
with open(path, newline="", encoding="utf-8") as fh:
    for row in csv.DictReader(fh):
        customer_id = row.pop("id")
        r = requests.put(f"{base}/api/v1/customers/{customer_id}", json=row, auth=auth)
        if r.status_code == 200:
            sent += 1
        else:
            failed += 1
print(json.dumps({"sent": sent, "failed": failed, "elapsed_s": time.time() - started}))

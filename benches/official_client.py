"""Customer.io's official Python client (`customerio` on PyPI) calling `identify` once per row.
Usage: official_client.py FILE.csv BASE_URL (https only, as the client speaks; credentials from
the environment; REQUESTS_CA_BUNDLE for the sandbox's certificate). Prints JSON figures."""
import csv
import json
import os
import sys
import time
from urllib.parse import urlparse

from customerio import CustomerIO, CustomerIOException

path, base = sys.argv[1], urlparse(sys.argv[2])
cio = CustomerIO(os.environ["CUSTOMERIO_SITE_ID"], os.environ["CUSTOMERIO_TRACK_API_KEY"],
                 host=base.hostname, port=base.port)
sent = failed = 0
started = time.time()
with open(path, newline="", encoding="utf-8") as fh:
    for row in csv.DictReader(fh):
        customer_id = row.pop("id")
        try:
            cio.identify(id=customer_id, **row)
            sent += 1
        except CustomerIOException:
            failed += 1
print(json.dumps({"sent": sent, "failed": failed, "elapsed_s": time.time() - started}))

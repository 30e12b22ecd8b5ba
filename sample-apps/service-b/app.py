"""service-b: answers GET /work after a random delay, traced with the AWS X-Ray SDK.

The daemon address is never configured here: the SDK reads AWS_XRAY_DAEMON_ADDRESS, which the
operator injects into the Deployment. Without it the SDK falls back to 127.0.0.1:2000, exactly
what a real app would do.
"""

from __future__ import annotations

import logging
import os
import random
import time

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.ext.flask.middleware import XRayMiddleware
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

SERVICE_NAME = "service-b"

app = Flask(SERVICE_NAME)
# The segment name is what the X-Ray console shows as the node of this service.
xray_recorder.configure(service=SERVICE_NAME)
XRayMiddleware(app, xray_recorder)


def _delay_bounds_ms() -> tuple[int, int]:
    low = int(os.environ.get("DELAY_MIN_MS", "20"))
    high = int(os.environ.get("DELAY_MAX_MS", "200"))
    return low, max(low, high)


@app.get("/work")
def work() -> ResponseReturnValue:
    low, high = _delay_bounds_ms()
    delay_ms = random.randint(low, high)
    # Its own subsegment, so the delay shows up as a bar of its own in the trace timeline.
    with xray_recorder.in_subsegment("random-delay") as subsegment:
        subsegment.put_annotation("delay_ms", delay_ms)
        time.sleep(delay_ms / 1000)
    return jsonify(service=SERVICE_NAME, delay_ms=delay_ms)


@app.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    port = int(os.environ.get("PORT", "8080"))
    # Flask's threaded server is enough for a sample; the image sets HOST=0.0.0.0.
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=port, threaded=True)


if __name__ == "__main__":
    main()

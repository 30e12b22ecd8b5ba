"""service-a: answers GET / by calling service-b, traced with the AWS X-Ray SDK.

The outgoing call goes through `requests`, which the SDK patches: each call becomes a
subsegment of service-a's segment and carries the X-Amzn-Trace-Id header, so service-b's
segment joins the same trace as a child of that subsegment.

The daemon address is never configured here: the SDK reads AWS_XRAY_DAEMON_ADDRESS, which the
operator injects into the Deployment.
"""

from __future__ import annotations

import logging
import os

import requests
from aws_xray_sdk.core import patch, xray_recorder
from aws_xray_sdk.ext.flask.middleware import XRayMiddleware
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

SERVICE_NAME = "service-a"

app = Flask(SERVICE_NAME)
xray_recorder.configure(service=SERVICE_NAME)
XRayMiddleware(app, xray_recorder)
patch(["requests"])


def _service_b_url() -> str:
    return os.environ.get("SERVICE_B_URL", "http://service-b:8080").rstrip("/")


@app.get("/")
def index() -> ResponseReturnValue:
    response = requests.get(f"{_service_b_url()}/work", timeout=5)
    response.raise_for_status()
    return jsonify(service=SERVICE_NAME, downstream=response.json())


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

"""Operator settings, read once at start-up from the environment (prefix XRAY_OPERATOR_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XRAY_OPERATOR_", extra="ignore")

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty means all namespaces."
    )
    operator_namespace: str = Field(default="xray-system", description="Where the operator runs.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: str = Field(default="plain", description="plain, full or json.")
    peering: str = Field(default="", description="kopf peering name; empty disables peering.")
    liveness_port: int = Field(
        default=8080, description="Port of the /healthz endpoint; 0 disables."
    )
    webhook_port: int = Field(default=9443, description="Port of the admission webhook server.")
    webhook_host: str = Field(
        default="", description="Host name the API server uses to reach the webhook."
    )
    webhook_service: str = Field(
        default="xray-operator-webhook", description="Service in front of the webhook."
    )
    webhook_cert_dir: str = Field(
        default="",
        description="Writable directory for the webhook's CA and serving certificate "
        "(default: <tmp>/xray-operator-webhook; an emptyDir in the operator's pod).",
    )

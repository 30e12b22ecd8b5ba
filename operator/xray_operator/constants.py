"""Names shared by every layer: API coordinates, annotation and label keys."""

from typing import Final

GROUP: Final = "tracing.xray-operator.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "TracingConfig"
PLURAL: Final = "tracingconfigs"
SINGULAR: Final = "tracingconfig"
SHORT_NAME: Final = "tc"

FIELD_MANAGER: Final = "xray-operator"
INJECTION_FIELD_MANAGER: Final = "xray-operator-injection"

ANNOTATION_PREFIX: Final = "xray-operator.dev"
INJECT_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/inject"
CONTAINERS_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/containers"
INJECTED_BY_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/injected-by"
CONFIG_HASH_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/config-hash"

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "xray-operator"
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"

DAEMON_ADDRESS_ENV: Final = "AWS_XRAY_DAEMON_ADDRESS"
HOST_IP_ENV: Final = "HOST_IP"

OPERATOR_NAMESPACE: Final = "xray-system"

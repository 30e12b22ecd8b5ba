"""What a TracingConfig's status says about injection (injectedWorkloads, InjectionHealthy)."""

from __future__ import annotations

from typing import Any

from xray_operator.reconcile.injection import InjectionResult, status_change

CONFIG = "xray-system/default"


def result(name: str, **kw: Any) -> InjectionResult:
    values: dict[str, Any] = {"kind": "Deployment", "namespace": "shop", "name": name,
                              "config": CONFIG, "wrote": False, "injected": ("app",),
                              "hand_set": (), "problems": ()}
    values.update(kw)
    return InjectionResult(**values)


def tc(conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "default", "namespace": "xray-system", "generation": 1},
            "status": {"conditions": conditions or []}}


def test_counts_workloads_that_get_the_address_and_is_healthy() -> None:
    results = [result("a"), result("b"), result("hooked", injected=(), webhook=True),
               result("other", config="xray-system/other"),
               result("legacy", injected=(), hand_set=("app",),
                      problems=("container 'app' sets AWS_XRAY_DAEMON_ADDRESS=x:1 itself",))]
    change = status_change(CONFIG, results, tc())
    assert change.fields == {"injectedWorkloads": 3}
    (cond,) = change.conditions
    assert (cond.type, cond.status, cond.reason) == ("InjectionHealthy", "True", "Injected")
    assert "1 keep an address set by hand" in cond.message


def test_problems_and_conflicts_make_it_unhealthy_naming_the_workloads() -> None:
    results = [result("ok"),
               result("typo", injected=(), problems=("names container 'ghost'",)),
               result("fight", injected=(), error="not injected: another field manager ...")]
    (cond,) = status_change(CONFIG, results, tc()).conditions
    assert (cond.status, cond.reason) == ("False", "WorkloadsNeedAttention")
    assert "Deployment shop/typo: names container 'ghost'" in cond.message
    assert "Deployment shop/fight" in cond.message


def test_long_lists_are_cut_short() -> None:
    results = [result(f"w{i}", injected=(), problems=("bad",)) for i in range(10)]
    (cond,) = status_change(CONFIG, results, tc()).conditions
    assert cond.message.endswith("(and 7 more)")


def test_a_default_clash_explanation_is_left_in_place() -> None:
    clash = {"type": "InjectionHealthy", "status": "False", "reason": "ConflictingDefault",
             "message": "older default wins"}
    change = status_change(CONFIG, [result("a")], tc([clash]))
    assert change.conditions == []
    assert change.fields == {"injectedWorkloads": 1}

"""The promotion gate: a run becomes the team's current model only when its evaluation says it should.

The gate (schemas.evaluation.PromotionGate, each condition configurable) asks for a tuned eval loss
below the base's, the automatic judge's win-rate interval starting above 50%, a canary loss rise
under 5%, and no category whose tuned eval loss is above the base's by more than a margin.
`promote_run` records a promotion only when every condition holds and otherwise says which failed;
the newest promotion is the current model, which `goldsmith serve-model` serves when no run is named.
"""

from __future__ import annotations

import json
from typing import Any

from curation.errors import GoldsmithError, InvalidInput
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas.evaluation import GateCheck, GateResult, Promotion, PromotionGate
from schemas.training import EvaluationReport
from training.evaluation.blind import evaluation
from training.runs import get_run, log_event


class GateNotPassed(GoldsmithError):
    """A run's evaluation does not pass the promotion gate (the message lists the failed conditions)."""


def check_gate(report: EvaluationReport, gate: PromotionGate | None = None) -> GateResult:
    """Apply the gate to an evaluation report: every condition, passed or not, with its figures."""
    gate = gate or PromotionGate()
    checks: list[GateCheck] = []
    base, tuned = report.base.eval_loss, report.tuned.eval_loss
    if gate.require_lower_eval_loss:
        ok = base is not None and tuned is not None and tuned < base
        checks.append(GateCheck(name="eval_loss", passed=ok, detail=f"tuned eval loss {_f(tuned)} against the base's {_f(base)}"))
    if gate.min_judge_lower_bound is not None:
        judge = report.judge
        low = judge.interval[0] if judge is not None and judge.interval else None
        ok = low is not None and low > gate.min_judge_lower_bound
        rate = f"{judge.win_rate:.0%}" if judge is not None and judge.win_rate is not None else "n/a"
        checks.append(
            GateCheck(
                name="judge_win_rate",
                passed=ok,
                detail=f"judge win rate {rate}, interval from {_p(low)} (must be above {gate.min_judge_lower_bound:.0%})",
            )
        )
    if gate.max_canary_rise is not None:
        change = report.canary.change if report.canary is not None else None
        ok = change is not None and change < gate.max_canary_rise
        checks.append(
            GateCheck(
                name="canary",
                passed=ok,
                detail=f"canary loss change {_p(change, signed=True)} (must be under +{gate.max_canary_rise:.0%})",
            )
        )
    if gate.category_margin is not None:
        worse = [
            f"{c.category} {_p(c.loss_change, signed=True)}"
            for c in report.by_category
            if c.loss_change is None or c.loss_change > gate.category_margin
        ]
        detail = f"categories whose tuned eval loss is above the base's by more than {gate.category_margin:.0%}: " + (
            ", ".join(worse) if worse else "none"
        )
        checks.append(GateCheck(name="categories", passed=bool(report.by_category) and not worse, detail=detail))
    return GateResult(run_id=report.run_id, passed=all(c.passed for c in checks), checks=checks, gate=gate)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _p(value: float | None, *, signed: bool = False) -> str:
    return "n/a" if value is None else (f"{value:+.1%}" if signed else f"{value:.1%}")


def gate_for_run(store: Store, run_id: str, gate: PromotionGate | None = None) -> GateResult:
    """The gate applied to a run's latest evaluation.

    Raises:
        NotFound: no such run.
        InvalidInput: the run has not been evaluated.
    """
    run = get_run(store, run_id)
    report = evaluation(store, run.id)
    if report is None:
        raise InvalidInput(f"run {run.id} has not been evaluated; evaluate it first (`goldsmith eval {run.id}`)")
    return check_gate(report, gate)


def promote_run(store: Store, actor: str, run_id: str, gate: PromotionGate | None = None) -> Promotion:
    """Mark a run as the team's current model (leads), when its evaluation passes the gate.

    Raises:
        PermissionDenied: the actor is not a lead.
        InvalidInput: the run is not completed or not evaluated.
        GateNotPassed: a condition of the gate fails (the message says which, with its figures).
    """
    user = acting_user(store, actor)
    require(user, "launch_training")
    run = get_run(store, run_id)
    if run.status != "completed":
        raise InvalidInput(f"run {run.id} is {run.status}; only a completed, evaluated run can be promoted")
    result = gate_for_run(store, run.id, gate)
    if not result.passed:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in result.failed)
        raise GateNotPassed(f"run {run.id} does not pass the promotion gate: {failed}")
    with store.write():
        row = {"run_id": run.id, "promoted_by": user.username, "promoted_at": now(), "gate": result.model_dump_json()}
        promotion_id = store.db.table("promotions").insert(row).last_pk
        store.add_history("run", run.id, "promote_run", user.username, None, {"gate": [c.name for c in result.checks]})
    log_event(store, run.id, "promoted", f"the team's current model, by {user.username}")
    return _promotion({**row, "id": promotion_id})


def _promotion(row: dict[str, Any]) -> Promotion:
    return Promotion.model_validate({**row, "gate": json.loads(row["gate"])})


def current_promotion(store: Store) -> Promotion | None:
    """The newest promotion (the team's current model), or None."""
    rows = list(store.db.table("promotions").rows_where(order_by="id DESC", limit=1))
    return _promotion(rows[0]) if rows else None


def promoted_run_id(store: Store) -> str:
    """The current model's run id.

    Raises:
        InvalidInput: no run has been promoted.
    """
    promotion = current_promotion(store)
    if promotion is None:
        raise InvalidInput("no run is promoted yet; name a run, or promote one with `goldsmith runs promote RUN --as LEAD`")
    return promotion.run_id

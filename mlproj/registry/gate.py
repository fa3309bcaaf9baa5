"""The post-run registry gate: thresholds, a new model version, and the champion/challenger aliases.

Aliases replace MLflow's deprecated stages: `challenger` (was Staging) is the newest version that passed the
gate; `champion` (was Production) moves only when a new version beats it on the primary metric, in that
metric's direction. On a local sqlite registry the whole registration is serialised with a file lock; on a
server, alias moves are re-checked until they agree with what other processes registered meanwhile.
"""

from __future__ import annotations

import json
import logging
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlproj import metrics, tags
from mlproj.config.checks import check_registry_uri  # noqa: F401 (mlproj.register calls it from here)
from mlproj.config.schema import gate_on, plain
from mlproj.errors import RegistryError
from mlproj.tracking.runs import write_again_on_conflict

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
MISSED_CLASSES = "test_missed_classes"  # classes present on test that the model never predicts (tasks/supervised.py)


@dataclass
class Check:
    threshold: metrics.Threshold
    actual: float | None

    @property
    def passed(self) -> bool:
        return self.actual is not None and self.threshold.passes(self.actual)

    def describe(self) -> str:
        value = "missing" if self.actual is None else f"{self.actual:.6g}"
        return f"{self.threshold.metric}={value} (needs {self.threshold.op} {self.threshold.value:g})"


@dataclass
class Policy:
    """What the gate applies: built from `cfg.registry` or from the register command's flags."""

    model_name: str
    task: str
    thresholds: list[metrics.Threshold] = field(default_factory=list)
    primary_metric: str = ""
    promote: str = "auto"  # auto | never
    enabled: bool = True
    require_beats_baseline: bool = False  # the run's baseline_<primary metric> must not be better

    def __post_init__(self) -> None:
        self.primary_metric = self.primary_metric or metrics.main_metric(self.task, "val")  # select on val, not test


@dataclass
class Decision:
    decision: str  # registered | rejected | skipped
    checks: list[Check]
    version: str | None = None
    champion: bool = False
    reason: str = ""


def policy_from_config(registry_cfg: Any, task: str, default_name: str) -> Policy:
    thresholds = [metrics.parse_threshold(str(k), v, task) for k, v in registry_cfg.thresholds.items()]
    enabled = gate_on(registry_cfg)
    return Policy(
        model_name=registry_cfg.model_name or default_name,
        task=task,
        thresholds=thresholds,
        primary_metric=registry_cfg.primary_metric or "",
        promote=plain(registry_cfg.promote),
        enabled=bool(enabled),
        require_beats_baseline=bool(registry_cfg.get("require_beats_baseline", False)),
    )


def default_model_name(experiment: str, data_name: str, target: str = "target") -> str:
    """`<experiment>-<data>`, plus `-<target>` for a table with a named target: models of two targets of one file
    (price, segment) must not share a name. Workspace paths (/Shared/x) keep their last part. mlproj's own
    experiment names (`mlproj`, the default `mlproj-<data>`: mlproj.config.naming) give `mlproj-<data>`, the data
    being the loaded table's name: `mlproj-diabetes`, not `mlproj-diabetes-diabetes` nor, for data=digits_images
    (whose default experiment is named after its class), `mlproj-DigitsImages-digits_images`. A '/' or ':'
    from the experiment, data or target becomes '-'."""
    base = experiment.rstrip("/").split("/")[-1]
    name = f"mlproj-{data_name}" if base == "mlproj" or base.startswith("mlproj-") else f"{base}-{data_name}"
    name = name if target in ("", "target") else f"{name}-{target}"
    # MLflow refuses '/' and ':' in a registered model's name (checked for registry.model_name at startup); an
    # experiment named team:a or a target column sales/day must not fail registration after training.
    return name.replace("/", "-").replace(":", "-")


def after_run(
    client: MlflowClient, cfg: Any, result: Any, data_name: str, target: str, in_sweep: bool = False
) -> Decision:
    """The gate as the train path runs it, once the run has ended FINISHED; prints what it decided."""
    from mlproj.tracking.runs import sqlite_path, tracking_uri

    default_name = default_model_name(result.experiment, data_name, target)
    policy = policy_from_config(cfg.registry, result.task, default_name)
    if in_sweep and plain(cfg.registry.when) == "best" and policy.enabled:
        client.set_tag(result.run_id, tags.DECISION, "deferred")  # the sweep's end decides (SweepRegistrar)
        return Decision("deferred", [])
    run = client.get_run(result.run_id)
    values = {**run.data.metrics, **result.metrics}  # val_*: last epoch; test_*: the best checkpoint
    db = sqlite_path(cfg.tracking.registry_uri or tracking_uri(cfg.tracking))
    decision = gate(
        client,
        result.run_id,
        result.model_uri,
        values,
        policy,
        extra_tags=_provenance(run.data.tags),
        lock_path=f"{db}.registry.lock" if db else None,
    )
    if not ((cfg.quiet or in_sweep) and decision.decision == "skipped"):
        print(report(decision, policy), flush=True)
    return decision


def _provenance(run_tags: dict[str, str]) -> dict[str, str]:
    keep = {tags.CONFIG_DIGEST: tags.CONFIG_DIGEST, tags.GIT_COMMIT: tags.VERSION_GIT_COMMIT}
    return {new: run_tags[old] for old, new in keep.items() if old in run_tags}


def report(decision: Decision, policy: Policy) -> str:
    head = f"registry gate ({policy.model_name}): {decision.decision.upper()}"
    lines = [head]
    if decision.checks:
        lines.append(format_table(decision.checks))
    if decision.decision == "registered" and decision.reason == "already registered":
        lines.append(f"  the run is already models:/{policy.model_name}/{decision.version}; nothing added")
    elif decision.decision == "registered":
        role = "champion and challenger" if decision.champion else "challenger"
        lines.append(
            f"  models:/{policy.model_name}/{decision.version} is now {role} (champion by {policy.primary_metric})"
        )
    elif decision.reason:
        lines.append(f"  {decision.reason}")
    return "\n".join(lines)


def plan(client: MlflowClient, decision: Decision, policy: Policy, values: dict[str, float], run_id: str) -> str:
    """What `gate` would do, for --dry-run: reads the registry, writes nothing."""
    lines = [f"dry run, nothing written: the gate would say {decision.decision.upper()}", format_table(decision.checks)]
    if decision.decision != "registered":
        lines.append(f"  {decision.reason}")
        return "\n".join(lines)
    try:
        same = [v for v in client.search_model_versions(f"name = '{policy.model_name}'") if v.run_id == run_id]
    except MlflowException:
        same = []
    if same:
        lines.append(f"  the run is already models:/{policy.model_name}/{same[0].version}; nothing would be added")
        return "\n".join(lines)
    lines.append(f"  would add a version of {policy.model_name!r} and point {CHALLENGER!r} at it")
    metric, new = policy.primary_metric, values.get(policy.primary_metric)
    current = _alias_version(client, policy.model_name, CHAMPION)
    if policy.promote == "never":
        lines.append(f"  {CHAMPION!r} stays (promote=never)")
    elif current is None:
        lines.append(f"  {CHAMPION!r} would point at it (there is no champion yet)")
    else:
        old = _version_metric(client.get_model_version(policy.model_name, str(current)), metric)
        better = new is not None and (old is None or metrics.is_better(metric, policy.task, new, old))
        verdict = "would move to it" if better else "stays"
        lines.append(f"  {CHAMPION!r} (version {current}, {metric}={old}) {verdict}: new {metric}={new}")
    return "\n".join(lines)


def evaluate(policy: Policy, values: dict[str, float]) -> list[Check]:
    return [Check(t, values.get(t.metric)) for t in policy.thresholds]


def format_table(checks: list[Check]) -> str:
    if not checks:
        return "  (no thresholds)"
    rows = [f"  {'metric':<16} {'value':>12}  {'condition':<14} result"]
    for c in checks:
        value = "missing" if c.actual is None else f"{c.actual:.6g}"
        cond = f"{c.threshold.op} {c.threshold.value:g}"
        rows.append(f"  {c.threshold.metric:<16} {value:>12}  {cond:<14} {'pass' if c.passed else 'FAIL'}")
    return "\n".join(rows)


def gate(
    client: MlflowClient,
    run_id: str,
    model_uri: str | None,
    values: dict[str, float],
    policy: Policy,
    extra_tags: dict[str, str] | None = None,
    lock_path: str | None = None,
    dry_run: bool = False,
) -> Decision:
    """Apply the policy to a finished run; tag the run with the decision; register and move aliases."""
    checks = evaluate(policy, values)
    if not policy.enabled:
        decision = Decision(
            "skipped", checks, reason="gate off: set ++registry.thresholds.<metric>=<value> or registry.enabled=true"
        )
    elif model_uri is None:
        decision = Decision("rejected", checks, reason="the run logged no model")
    elif values.get(MISSED_CLASSES):  # whatever the thresholds: an auroc can pass while f1 is 0
        missed = int(values[MISSED_CLASSES])
        decision = Decision(
            "rejected",
            checks,
            reason=f"the model never predicts {missed} of the classes on the test split ({MISSED_CLASSES}={missed})",
        )
    elif not all(c.passed for c in checks):
        failed = "; ".join(c.describe() for c in checks if not c.passed)
        decision = Decision("rejected", checks, reason=f"below threshold: {failed}")
    elif policy.require_beats_baseline and (lost := loses_to_baseline(policy, values)):
        decision = Decision("rejected", checks, reason=lost)
    else:
        decision = Decision("registered", checks)
    if dry_run:
        return decision
    if decision.decision == "registered":
        assert model_uri is not None
        on_version = {**version_tags(run_id, values, policy), **(extra_tags or {})}
        try:
            _register(client, run_id, model_uri, values, policy, on_version, decision, lock_path)
        except MlflowException as exc:
            raise RegistryError(
                f"registering run {run_id} as {policy.model_name!r} failed: {exc.message.splitlines()[0]}. "
                f"The run and its model are intact; register it later with: "
                f"python -m mlproj.register --run-id {run_id} --model-name {policy.model_name}"
            ) from exc
    run_tags = {tags.DECISION: decision.decision, tags.REGISTERED_NAME: policy.model_name}
    if decision.reason:
        run_tags[tags.REASON] = decision.reason[:5000]
    if decision.version:
        run_tags[tags.REGISTERED_VERSION] = decision.version
    for key, value in run_tags.items():
        client.set_tag(run_id, key, value)
    return decision


def loses_to_baseline(policy: Policy, values: dict[str, float]) -> str:
    """Why the network loses to the run's baseline on the primary metric ("" when it does not)."""
    metric = policy.primary_metric
    mine, base = values.get(metric), values.get(f"baseline_{metric}")
    if base is None:
        return f"registry.require_beats_baseline: the run has no baseline_{metric} (baseline=none, or not a table)"
    if mine is None or metrics.is_better(metric, policy.task, base, mine):
        shown = "missing" if mine is None else f"{mine:.6g}"
        return f"loses to the baseline: {metric}={shown}, baseline_{metric}={base:.6g}"
    return ""


def version_tags(run_id: str, values: dict[str, float], policy: Policy) -> dict[str, str]:
    found = {
        tags.VERSION_RUN_ID: run_id,
        tags.TASK: policy.task,
        tags.PRIMARY_METRIC: policy.primary_metric,
        tags.PROMOTE: policy.promote,
        tags.THRESHOLDS: json.dumps([str(t) for t in policy.thresholds]),
    }
    found.update({f"metric.{k}": repr(float(v)) for k, v in sorted(values.items())})  # full precision
    return found


def _register(
    client: MlflowClient,
    run_id: str,
    model_uri: str,
    values: dict[str, float],
    policy: Policy,
    on_version: dict[str, str],
    decision: Decision,
    lock_path: str | None,
) -> None:
    lock: Any = nullcontext()
    if lock_path:
        from filelock import FileLock

        lock = FileLock(lock_path, timeout=300)
    with lock:
        try:
            client.create_registered_model(policy.model_name, description="Registered by the mlproj gate.")
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        existing = client.search_model_versions(f"name = '{policy.model_name}'")
        for version in existing:
            if version.run_id == run_id:  # registering the same run twice adds nothing
                decision.version, decision.reason = str(version.version), "already registered"
                # but settles the aliases a gate interrupted after creating the version left unset
                _settle_aliases(client, policy, decision, int(version.version) - 1, locked=lock_path is not None)
                return
        other = {v.tags.get(tags.TASK) for v in existing} - {None, policy.task}
        if other:
            decision.decision = "rejected"
            decision.reason = (
                f"registered model {policy.model_name!r} holds {other.pop()} models and this run is "
                f"{policy.task}; choose another registry.model_name"
            )
            return
        # Versions registered after this point compete with the champion seen now (see _settle_aliases).
        baseline = _alias_version(client, policy.model_name, CHAMPION) or 0
        tests = ", ".join(f"{k}={v:.4g}" for k, v in sorted(values.items()) if k.startswith("test_"))
        gate_text = ", ".join(map(str, policy.thresholds)) or "no thresholds"
        model_id = model_uri.split("/", 1)[1] if model_uri.startswith("models:/m-") else None
        version = client.create_model_version(
            policy.model_name,
            source=model_uri,
            run_id=run_id,
            tags=on_version,
            description=f"mlproj {policy.task} model from run {run_id}: {tests}. Gate: {gate_text}.",
            model_id=model_id,
        )
        decision.version = str(version.version)
        _settle_aliases(client, policy, decision, baseline, locked=lock_path is not None)


def _settle_aliases(client: MlflowClient, policy: Policy, decision: Decision, baseline: int, locked: bool) -> None:
    """challenger -> the newest passing version; champion -> the best of the champion and the versions
    registered since `baseline`, when one of them beats it.

    Several processes may register at once (parallel sweep jobs on one server). A compare-then-set can be
    overtaken by another process's write, so each process re-reads after writing and repeats until what it
    reads agrees with every version it knows of. A write computed from an older read can still land after
    that (a process paused between its read and its write), so without the lock a process leaves only when
    the aliases read right twice, a pause apart: a late write in between is undone by the process that knew
    better.
    """
    name, mine = policy.model_name, int(decision.version or 0)
    needed, confirmed = (1 if locked else 2), 0
    for attempt in range(16):
        challenger = _alias_version(client, name, CHALLENGER)
        if challenger is None or challenger < mine:
            _set_alias(client, name, CHALLENGER, mine)
        target = _champion_target(client, policy, baseline)
        if target is not None:
            _set_alias(client, name, CHAMPION, target)
        settled = (_alias_version(client, name, CHALLENGER) or 0) >= mine
        settled = settled and _champion_target(client, policy, baseline) is None
        confirmed = confirmed + 1 if settled else 0
        if confirmed >= needed:
            break
        time.sleep((0.5 if settled else 0.05) + random.random() * 0.1 * (attempt + 1))
    decision.champion = _alias_version(client, name, CHAMPION) == mine


def _set_alias(client: MlflowClient, name: str, alias: str, version: int) -> None:
    # MLflow's SQL store sets an alias with a read-then-insert (`session.merge`): when two server requests
    # create one new alias together, the slower insert fails; written again, it updates the other's row.
    write_again_on_conflict(client.set_registered_model_alias, name, alias, str(version))


def _champion_target(client: MlflowClient, policy: Policy, baseline: int) -> int | None:
    """The version champion should move to, or None when it should stay."""
    if policy.promote == "never":
        return None
    name, metric = policy.model_name, policy.primary_metric
    current = _alias_version(client, name, CHAMPION)
    best, best_value = current, None
    if current is not None:
        best_value = _version_metric(client.get_model_version(name, str(current)), metric)
    for version in client.search_model_versions(f"name = '{name}'"):
        number = int(version.version)
        if number <= baseline or number == current or version.tags.get(tags.PROMOTE) == "never":
            continue
        value = _version_metric(version, metric)
        if value is None:
            continue
        if best is None or best_value is None or metrics.is_better(metric, policy.task, value, best_value):
            best, best_value = number, value
    return best if best != current else None


def _alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _version_metric(version: Any, metric: str) -> float | None:
    tag = version.tags.get(f"metric.{metric}")
    return float(tag) if tag is not None else None

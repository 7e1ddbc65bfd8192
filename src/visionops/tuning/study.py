"""An Optuna study over train.* and model.* params: TPE proposes (`tuning.sampler`), a pruner
(Hyperband by default) stops trials whose validation accuracy trails, and each trial
(`tuning.objective`) trains through the train stage's own code, scored on the validation part
of train; the test split is never touched (it judges the model `dvc repro` then makes from the
winner, once, in the gate).

The study lives in Optuna's storage (`tuning.storage`), so processes anywhere that open the
same study share its trials; `tune.trials` is the study's total, counted over all of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from visionops.config import Section, TuneParams
from visionops.data.prepared import Prepared
from visionops.errors import VisionOpsError
from visionops.interrupts import deferred_interrupts
from visionops.tuning.mlflow_runs import end_parent_run, parent_run
from visionops.tuning.objective import Objective, StudyFull
from visionops.tuning.storage import open_storage, redacted


@dataclass(frozen=True)
class StudyPlan:
    """Where the study lives and what it searches."""

    storage: str  # SQLAlchemy URL
    name: str
    tune: TuneParams
    sections: dict[str, Section]  # train, model, tracking: the defaults each trial starts from


def open_study(plan: StudyPlan, root: Path):
    """The study and its MLflow parent run, created by exactly one process: whoever creates the
    study in the storage (its name is unique there) creates the parent run; the others load the
    study and wait for the parent's id. Returns (optuna.Study, parent run)."""
    import optuna

    if plan.sections["train"].val_fraction <= 0:
        raise VisionOpsError(
            "tune scores every trial on the validation part of train, and train.val_fraction is 0",
            "set train.val_fraction to 0.1 or so (the test split is never used to choose)",
        )
    if not plan.tune.space:
        raise VisionOpsError(
            "tune.space in params.yaml is empty: there is nothing to search",
            "add keys such as `train.lr: {log_uniform: [1.0e-4, 3.0e-2]}` under tune.space",
        )
    from visionops.tuning.sampler import TrialSeededTPE

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in logging.getLogger("optuna").handlers:  # its children's records reach these
        handler.addFilter(QUIET_INTERRUPTS)
    options = {
        "storage": open_storage(plan.storage),
        "study_name": plan.name,
        "sampler": TrialSeededTPE(plan.tune.sampler_seed),
        "pruner": _pruner(plan.tune),
    }
    try:
        study = optuna.create_study(direction="maximize", **options)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**options)
        created = False
    return study, parent_run(study, plan, root, created)


class _QuietInterrupts(logging.Filter):
    """Ctrl-C, or a trial not run because the study is full, is not a failure to explain: drops
    Optuna's traceback, and the "Trial n failed with value None" that follows it."""

    dropped = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and issubclass(record.exc_info[0], KeyboardInterrupt | StudyFull):
            self.dropped = True
            return False
        if self.dropped and "failed with value None" in record.getMessage():
            self.dropped = False
            return False
        return True


QUIET_INTERRUPTS = _QuietInterrupts()


def _pruner(tune: TuneParams):
    """median: below the median of earlier trials at the same epoch (after `startup_trials`
    trials and `warmup_epochs` epochs); hyperband: Optuna's Hyperband (successive halving in
    several brackets, from `warmup_epochs` epochs to the trial's last); none: never."""
    import optuna

    if tune.pruner == "none":
        return optuna.pruners.NopPruner()
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, tune.warmup_epochs))
    return optuna.pruners.MedianPruner(
        n_startup_trials=tune.startup_trials, n_warmup_steps=tune.warmup_epochs
    )


def run_study(plan: StudyPlan, data: Prepared, root: Path, progress: bool = True, end_parent: bool = True):
    """Run trials until the study holds `tune.trials` complete or pruned ones (or the timeout);
    returns the optuna.Study. Ctrl-C stops after the current epoch: that trial is failed, every
    MLflow run is ended (KILLED), and the same command resumes the study. `end_parent=False`:
    the parent run is left to whoever launched this process (`--workers`)."""
    study, parent = open_study(plan, root)
    done = counted_trials(study)
    print(f"tune: study '{plan.name}' in {redacted(plan.storage)}: {done}/{plan.tune.trials} trials done")
    status = "KILLED"
    try:
        if done < plan.tune.trials:
            # Ctrl-C waits for a safe point: the end of a training step or the next trial's start,
            # never the middle of a write to MLflow or the study (a run left RUNNING)
            with deferred_interrupts():
                _optimize(study, plan, data, parent, done, progress)
        status = "FINISHED"
    finally:
        if end_parent:
            end_parent_run(study, parent, status)
    return study


def _optimize(study, plan: StudyPlan, data: Prepared, parent: dict[str, str], done: int, progress: bool):
    """Trials until the study's count (over every process) or this process's timeout."""
    import optuna

    study.optimize(
        Objective(plan, data, parent),
        n_trials=plan.tune.trials - done,
        timeout=plan.tune.timeout_s,
        callbacks=[optuna.study.MaxTrialsCallback(plan.tune.trials, states=_counted_states())],
        catch=(StudyFull,),
        show_progress_bar=progress,
    )


COUNTED = ("COMPLETE", "PRUNED")  # the trial states `tune.trials` counts


def counted_trials(study) -> int:
    """Complete and pruned trials in the study, over every process that worked on it."""
    return len(study.get_trials(deepcopy=False, states=_counted_states()))


def _counted_states() -> tuple:
    from optuna.trial import TrialState

    return tuple(TrialState[name] for name in COUNTED)

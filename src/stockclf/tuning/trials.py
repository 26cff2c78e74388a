"""Trial states, the one count that says whether a study has enough trials, and how a
trial another process left running is failed and queued again."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.storages import BaseStorage

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
RUNNING = optuna.trial.TrialState.RUNNING


@dataclass(frozen=True)
class TrialCount:
    """Finished and running trials of a study, against its target ``n_trials``."""

    finished: int
    running: int
    target: int

    @property
    def reached(self) -> bool:
        """The study has its ``n_trials`` finished trials: nothing left to run."""
        return self.finished >= self.target

    @property
    def missing(self) -> int:
        return max(0, self.target - self.finished)

    @property
    def claimable(self) -> bool:
        """A new trial may start: the running ones, if all finish, would not reach the target."""
        return self.finished + self.running < self.target


def count_trials(study: optuna.Study, target: int) -> TrialCount:
    """The one place that decides whether ``study`` has enough finished trials."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return TrialCount(
        finished=sum(s in FINISHED for s in states), running=states.count(RUNNING), target=target
    )


def fail_trial(
    storage: BaseStorage, study: optuna.Study, number: int, reason: str, kind: str = "stale"
) -> bool:
    """Mark a RUNNING trial (possibly another process's) FAIL with ``fail_reason``.

    False when it had already finished (another worker got there first).
    """
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), number
    )
    try:
        storage.set_trial_user_attr(trial_id, "failure", kind)
        storage.set_trial_user_attr(trial_id, "fail_reason", reason[:1000])
        return storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


class RetryTrial:
    """Queue a failed trial's params again (a WAITING trial) up to ``max_retry`` times.

    Same record as Optuna's ``RetryHeartbeatStaleTrialCallback`` (``failed_trial`` and
    ``retry_history`` system attributes, so its ``retried_trial_number`` works), but without
    copying the user attributes: the retry must not inherit the dead trial's
    ``fail_reason``. Also used as the RDB storages' heartbeat-stale callback.
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > self.max_retry:
            return False
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                system_attrs={
                    "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                    "retry_history": history,
                },
            )
        )
        return True

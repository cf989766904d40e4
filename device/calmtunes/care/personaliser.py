"""The personaliser: what the daemon's loop calls at each session's start and end.

::

    care = Personaliser(config)                      # at daemon start and at each reload
    choice = care.start_session(now)                 # a session starts (power-on, play, "auto")
    session_config = choice.config                   # the conductor/composer play this
    ...                                              # the session runs; its trace is collected
    outcome = care.end_session(choice, points, now)  # the session ends: reward, learn, save
    care.status()                                    # for `calmtunes status`

Everything it learns stays in ``<state_dir>/care/`` (:mod:`calmtunes.care.store`). A problem with
that folder never stops the music: the session then plays the chosen (or the default) arm and
the problem is logged and shown in ``status``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calmtunes.care.arms import Arm, apply_arm, default_arm
from calmtunes.care.bandit import Bandit, Belief
from calmtunes.care.reward import Response, session_response
from calmtunes.care.store import CareStore, ListenerRecord, Night
from calmtunes.care.trace import TracePoint
from calmtunes.config import Config

log = logging.getLogger(__name__)


PERSON_CHOSE = "a person chose the preset (not rewarded: the personaliser did not choose it)"


@dataclass(frozen=True)
class Choice:
    """A session's arm: the listener, the arm, why, and the config to play it with."""

    listener: str
    arm: Arm
    why: str
    config: Config
    started_at: float
    #: who chose it, as the session record keeps it (``chosen_by``): "personaliser",
    #: "clinician pin", "person", or "config" (the default preset: the personaliser off, every
    #: arm forbidden, or its record unusable)
    by: str = "personaliser"


def chosen_by(choice: Choice | None, by_hand: bool) -> str:
    """Who chose what the session played: a person when one chose or took over its preset,
    else whoever made ``choice``, else (no personaliser) the config's default preset."""
    if by_hand:
        return "person"
    return "config" if choice is None else choice.by


def bandit_for(config: Config, record: ListenerRecord,
               rng: np.random.Generator | None = None) -> Bandit:
    """The bandit's belief after this listener's rewarded nights."""
    bandit = Bandit.from_config(config, rng=rng)
    for night in record.nights:
        if night.reward is not None:
            bandit.update(night.arm, night.reward)
    return bandit


class Personaliser:
    def __init__(self, config: Config, store: CareStore | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.config = config
        self.store = store if store is not None else CareStore(config.device.state_dir)
        seed = config.care.seed
        self.rng = rng if rng is not None else np.random.default_rng(seed or None)
        self.listener: str | None = None
        self.current: Choice | None = None
        self.last: Response | None = None
        self.problem: str | None = None
        self._beliefs: list[Belief] = []

    def reconfigure(self, config: Config) -> None:
        """A reloaded config: the next session uses it (the running one keeps its arm)."""
        self.config = config

    def _record(self, now: float) -> ListenerRecord:
        listener, problem = self.store.current(now)
        record = self.store.load(listener, now)
        self.listener = listener
        self.problem = problem or record.problem
        return record

    def start_session(self, now: float | None = None) -> Choice:
        """Choose this session's arm; never raises for a storage problem."""
        now = time.time() if now is None else now
        try:
            record = self._record(now)
            bandit = bandit_for(self.config, record, self.rng)
            arm, why = bandit.choose()
            by = bandit.chosen_by
            self._beliefs = bandit.beliefs()
        except (OSError, ValueError) as exc:
            self.problem = f"care record unusable ({exc}); playing the default preset"
            log.error("care: %s", self.problem)
            arm, why, by = default_arm(self.config), self.problem, "config"
        try:
            config = apply_arm(self.config, arm)
        except ValueError as exc:  # the arm's preset left the config since
            arm, by = default_arm(self.config), "config"
            why = f"{exc}; playing the default preset"
            config = apply_arm(self.config, arm)
        log.info("care: listener %s, arm %s: %s", self.listener, arm.id, why)
        self.current = Choice(self.listener or "", arm, why, config, now, by)
        return self.current

    def person_session(self, now: float, preset: str) -> Choice:
        """A session whose preset a person chose: no arm is chosen, but the session is this
        listener's (its figures are measured and its night recorded, without a reward)."""
        try:
            self._record(now)
        except (OSError, ValueError) as exc:
            self.problem = f"care record unusable ({exc})"
            log.error("care: %s", self.problem)
        self.current = Choice(self.listener or "", Arm(preset), PERSON_CHOSE, self.config, now,
                              "person")
        return self.current

    def end_session(self, choice: Choice, points: Sequence[TracePoint],
                    now: float | None = None, session_id: int | None = None,
                    unheard: Sequence[tuple[float, float]] = (),
                    unrewarded: str | None = None) -> Response:
        """Reward the session from its trace, learn from it and save the night; ``unheard``,
        the spans (session seconds) the music went unheard. With ``unrewarded`` (why: a person
        chose the preset) the figures are measured and the night saved, but nothing is learnt."""
        now = time.time() if now is None else now
        response = session_response(points, unheard)
        if unrewarded is not None:
            response = dataclasses.replace(response, reward=None, reason=unrewarded)
        self.last = response
        if response.reward is None:
            log.info("care: session on %s gives no reward: %s", choice.arm.id, response.reason)
        else:
            log.info("care: session on %s: reward %+.2f", choice.arm.id, response.reward)
            # the listener's figures only at debug (the journal reaches more people than they
            # may: device.status_health); `calmtunes sessions` shows them to those who may
            log.debug("care: heart rate %.1f → %.1f bpm", response.hr_base, response.hr_resp)
        if choice.listener:
            try:
                record = self.store.add_night(choice.listener, Night(
                    choice.started_at, choice.arm.id, response.reward, response.reason,
                    session_id))
                self._beliefs = bandit_for(self.config, record).beliefs()
            except (OSError, ValueError) as exc:
                self.problem = f"cannot save the night ({exc})"
                log.error("care: %s", self.problem)
        if self.current is choice:
            self.current = None
        return response

    def status(self) -> dict:
        """For ``calmtunes status``: the listener, the arm and why, the last reward, the best
        arms believed so far, and any problem with the record."""
        c = self.current
        last = self.last
        return {
            "enabled": self.config.care.enabled,
            "listener": self.listener,
            "arm": c.arm.id if c else None,
            "why": c.why if c else None,
            "last_reward": None if last is None else last.reward,
            "last_reward_reason": None if last is None else last.reason,
            "best": [{"arm": b.arm, "mean": round(b.mean, 2), "sd": round(b.sd, 2),
                      "nights": b.nights} for b in self._beliefs[:3]],
            "problem": self.problem,
        }

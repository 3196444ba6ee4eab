"""Calling a rate-limited, sometimes-failing service from many threads, at the rate it admits.

:class:`AdaptiveRateLimiter` is a shared pacing clock whose rate adapts to what the service
really admits (AIMD, the way TCP finds a link's capacity). It looks at the calls that completed
in each window (a second; a quarter of one when most calls are being refused, so a ceiling set
far too high costs few rejections; the first window opens with the first call):

- more than a few throttled: the service has a ceiling. Drop to 98% of the rate that actually
  got through (a measured, not guessed, capacity: the rate calls really went out at - the paced
  one, or less when the workers could not keep up - less the refused share), but never by more than half at once - a
  window in which every call was refused says "slower", not "zero". Refusals of calls sent
  before a cut say nothing about the new rate and are ignored (one cut per round trip);
- otherwise climb back: quickly (x1.5 a window) while far under the last ceiling seen, then by
  3% a window, up to the configured maximum. Isolated throttles (noise) do not move it.

:class:`RetryingCaller` wraps each call: paced by the limiter, retried with jittered exponential
backoff on transient faults, and it counts the attempts the service answered (the billable
calls: a throttled or 5xx answer is one, a connection that got no answer or credentials that
failed before sending are not). When it gives up it raises :class:`CallFailed`, which carries
that count in typed fields next to the original error.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from .errors import answered, is_throttling, is_transient

T = TypeVar("T")


class AdaptiveRateLimiter:
    """A token clock shared by all workers. ``acquire()`` blocks until the caller's slot."""

    #: A window needs this many throttles, and this share of its calls, to count as a ceiling.
    MIN_THROTTLES = 3
    THROTTLE_SHARE = 0.04
    #: A burst of refusals this large is acted on after a quarter window.
    BURST_THROTTLES = 5
    BURST_SHARE = 0.5
    BACKOFF_TO = 0.98  # of the rate the service admitted in that window
    MAX_CUT = 0.5  # never below this share of the current rate in one step
    GROWTH = 0.03  # per clean window near the last ceiling
    FAST_GROWTH = 0.5  # per clean window while under half of it

    def __init__(self, max_rate: float, *, min_rate: float = 0.5, window: float = 1.0, clock=time.monotonic, sleep=time.sleep):
        if max_rate <= 0:
            raise ValueError("max_rate must be positive")
        self.max_rate = float(max_rate)
        self.min_rate = min(float(min_rate), self.max_rate)
        self.rate = self.max_rate
        self.last_ceiling = self.max_rate
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = clock()
        self._window_start = clock()
        self._started = False  # the first window opens with the first call, not at construction
        self._ok = 0
        self._throttled = 0
        self._completed = 0  # every call that ended in this window, whatever its epoch
        #: Bumped at every cut; calls carry the epoch they were sent in.
        self.epoch = 0

    def acquire(self) -> int:
        """Wait for this caller's slot; returns the epoch to hand back to :meth:`record`."""
        with self._lock:
            now = self._clock()
            if not self._started:
                self._started, self._window_start = True, now
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate
            epoch = self.epoch
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return epoch

    def record(self, *, throttled: bool, epoch: int | None = None) -> None:
        """Tell the limiter how a call it paced (in ``epoch``) ended."""
        with self._lock:
            self._completed += 1
            if epoch is not None and epoch < self.epoch:
                return  # sent at a rate we have already left: no news about this one
            if throttled:
                self._throttled += 1
            else:
                self._ok += 1
            now = self._clock()
            elapsed = now - self._window_start
            calls = self._ok + self._throttled
            burst = self._throttled >= self.BURST_THROTTLES and self._throttled > self.BURST_SHARE * calls
            if elapsed >= self.window or (burst and elapsed >= self.window / 4):
                self._adapt(elapsed)
                self._window_start, self._ok, self._throttled, self._completed = now, 0, 0, 0

    def _adapt(self, elapsed: float) -> None:
        calls = self._ok + self._throttled
        if self._throttled >= self.MIN_THROTTLES and self._throttled > self.THROTTLE_SHARE * calls:
            # What got through: the rate calls were really sent at less the refused share. The
            # sending rate is the paced one unless the workers could not keep up with it (a
            # ceiling set far too high, or workers in retry backoff): then it is what completed.
            sent = min(self.rate, self._completed / elapsed) if elapsed > 0 else self.rate
            admitted = sent * self._ok / calls
            self.last_ceiling = sent
            self.rate = max(self.min_rate, sent * self.MAX_CUT, admitted * self.BACKOFF_TO)
            self.epoch += 1
        else:
            growth = self.FAST_GROWTH if self.rate < self.last_ceiling / 2 else self.GROWTH
            self.rate = min(self.max_rate, self.rate * (1 + growth) + 0.1)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient fault is retried."""

    max_attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 20.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff: uniform in [0, min(max, base * 2**attempt)]."""
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


class CallFailed(Exception):
    """A call that failed for good: the last error, and what the retry loop spent on it.

    ``attempts`` counts every try; ``answered`` the tries the service answered (billable, and
    proof that the endpoint and the credentials reached it).
    """

    def __init__(self, cause: BaseException, attempts: int, answered: int):
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts
        self.answered = answered


class RetryingCaller:
    """Runs one service call with pacing, adaptive rate, retries and a count of attempts."""

    def __init__(self, limiter: AdaptiveRateLimiter | None, policy: RetryPolicy, sleep=time.sleep, stopping: Callable[[], bool] = lambda: False):
        self.limiter = limiter
        self.policy = policy
        self._sleep = sleep
        self._stopping = stopping
        self._lock = threading.Lock()
        #: Attempts the service answered, over the caller's life (the billable figure).
        self.calls = 0
        self.retries = 0

    @property
    def reached_service(self) -> bool:
        """True once any call through this caller got an answer from the service."""
        return self.calls > 0

    def call(self, fn: Callable[[], T]) -> tuple[T, int]:
        """``fn()`` with retries; returns (result, answered attempts). Raises :class:`CallFailed`."""
        attempts = answered_attempts = 0
        while True:
            epoch = self.limiter.acquire() if self.limiter else 0
            attempts += 1
            try:
                result = fn()
            except Exception as exc:
                reached = answered(exc)
                answered_attempts += reached
                self._count(reached)
                throttled = is_throttling(exc)
                if self.limiter and reached:
                    self.limiter.record(throttled=throttled, epoch=epoch)
                if not is_transient(exc) or attempts >= self.policy.max_attempts or self._stopping():
                    raise CallFailed(exc, attempts, answered_attempts) from exc
                with self._lock:
                    self.retries += 1
                self._sleep(self.policy.delay(attempts))
                continue
            self._count(True)
            if self.limiter:
                self.limiter.record(throttled=False, epoch=epoch)
            return result, answered_attempts + 1

    def _count(self, reached: bool) -> None:
        with self._lock:
            self.calls += int(reached)

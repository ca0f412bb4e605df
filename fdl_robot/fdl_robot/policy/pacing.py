"""When policy_node commands: as soon as fresh tracks arrive, without leaving the 50 Hz stream.

Pure Python (no ROS, no clock of its own): every method is given the time, in seconds on
one clock (the node's), so tests and simulations drive it with synthetic times.

The problem
-----------
A JointTrajectoryController expects a command every control period dt. The tracks that
carry the target arrive whenever perception finishes a frame (15 Hz in the simulator,
some 20 ms after the image stamp, with jitter). On a fixed dt timer the tracks wait for
the next tick, dt / 2 on average and up to dt; publishing at every arrival instead breaks
the stream (two commands 2 ms apart, then a gap).

The rule
--------
Let t_last be the time of the last command, dt the control period and tau the tolerance
(0 < tau < dt / 2). The next command comes at

(a) a time in the window ``[t_last + dt - tau, t_last + dt + tau]``: every interval
    between consecutive commands lies within dt +- tau;
(b) if tracks arrived at a after the last command (fresh tracks)::

        t = max(a, t_last + dt - tau)

    at once when (a) allows it, else at the earliest time it does;
(c) otherwise at the grid time::

        g = clip(psi + dt round((t_last + dt - psi) / dt),  t_last + dt - tau,  t_last + dt + tau)

    the point of the grid psi + k dt (k integer) nearest t_last + dt, kept within (a).
    Grid commands are dt apart; a command off the grid (one from tracks, or a timer that
    fired late) is followed by one pulled back onto it by at most tau.

(b) never waits past the grid time: a <= now <= g and t_last + dt - tau <= g.

The grid's phase: psi = phi + tau
---------------------------------
The simulator renders frames at its 20 ms control steps (a synchronised camera does the
same), so image stamps lie on a dt grid and tracks arrive at a_i = s_i + L_i: modulo dt,
the arrivals share one phase, blurred by the jitter of the latency L_i. Its estimate phi
is a first-order phase-locked loop over the arrivals::

    r_i = wrap(a_i - phi)  in [-dt/2, dt/2),      phi <- a_i - (1 - gamma) r_i

(``phase_gain`` gamma = 1: the phase of the last arrival; smaller gamma averages the
latency jitter over about 1 / gamma frames, which matters because the next frame's
arrival is compared with the phase: against the last arrival alone, the difference of two
jitters, sqrt(2) times wider than one.)

The grid lies tau after that phase. An arrival expected at the slot phi + n dt then finds
the previous grid command at phi + (n - 1) dt + tau, so (a) allows a command from the slot
on, and the next grid command would go out only at the slot + tau:

* tracks on time or up to tau late are served at once;
* tracks e early wait e (the window opens at the slot);
* tracks more than tau late find the grid command gone and wait dt - tau after it.

Waiting is cheap on the early side and expensive on the late side, hence the whole
tolerance on the late side. The naive rule, re-phasing the grid on each arrival itself
(psi = a), puts every later slot on the edge of a grid command: the arrivals that come a
little late, about half, wait up to dt - tau (and each such wait adds a command, so the
stream runs fast). With the slots phi + n dt, the interval after a command from on-time
tracks is dt + tau, the only one longer than dt, and the one before it is dt - tau: on
average the stream keeps exactly 1 / dt commands per second.

In figures (``test/test_pacing.py``: 1800 frames at 15 Hz on the 20 ms step grid, latency
20 +- 2 ms, tau 3.5 ms): intervals 16.5..23.5 ms, 50.0 commands/s, tracks wait p50 0,
p99 2.4 ms; a fixed 50 Hz timer makes them wait p50 10, p99 19.8 ms; the naive rule
p50 7 ms, at 54 commands/s.

tau bounds the times of the decisions (the caller reports when each really happened). What
a controller receives adds the variation of the node's timer lateness, of its compute time
and of the transport; policy_node's default (``command_interval_tolerance_s`` 3.5 ms)
leaves 1.5 ms of a +-5 ms budget for those. A grid decision that comes lambda late (an
rclpy timer: about 0.5 ms here) opens the next window lambda later too, so tracks that
arrive on time then wait lambda.

Without any arrival yet the grid is start + k dt. A decision that published nothing (the
watchdog: waiting for joint states, or inputs stale) ends the stream: there is no
interval to keep, fresh tracks are acted on at once, and the grid continues from that
decision, so the watchdog still looks at the inputs every dt.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COMMAND_TIMINGS", "PacingConfig", "CommandPacer"]

COMMAND_TIMINGS = ("on_tracks", "fixed")


@dataclass(frozen=True)
class PacingConfig:
    """When commands go out; the defaults are policy_node's.

    ``timing``: 'on_tracks' (:class:`CommandPacer`) or 'fixed' (a free-running timer every
    dt, the tracks waiting for its tick); ``tolerance_s``: tau, commands dt +- tau apart;
    ``phase_gain``: gamma of the arrival-phase estimate, 0 < gamma <= 1.
    """

    timing: str = "on_tracks"
    tolerance_s: float = 0.0035
    phase_gain: float = 0.2

    def __post_init__(self):
        if self.timing not in COMMAND_TIMINGS:
            raise ValueError(f"command timing must be one of {list(COMMAND_TIMINGS)}, got '{self.timing}'")
        if not self.tolerance_s > 0:
            raise ValueError(f"tolerance_s must be positive, got {self.tolerance_s}")
        if not 0 < self.phase_gain <= 1:
            raise ValueError(f"phase_gain must be in (0, 1], got {self.phase_gain}")


class CommandPacer:
    """The rule of the module docstring, one decision at a time.

    The caller reports arrivals (:meth:`tracks_arrived`), decides at :attr:`due_s` (or at
    an arrival, when :attr:`due_s` is then not in the future) and reports each decision
    (:meth:`decided`), whether it published a command or not.
    """

    def __init__(self, dt_s: float, config: PacingConfig = PacingConfig(), start_s: float = 0.0):
        if not 0 < config.tolerance_s < dt_s / 2:
            raise ValueError(f"tolerance_s must lie in (0, dt/2) = (0, {dt_s / 2} s), got {config.tolerance_s}")
        self.dt_s = float(dt_s)
        self.tau_s = float(config.tolerance_s)
        self.gain = float(config.phase_gain)
        self.phase_s: float | None = None     # phi: arrivals expected at phi + n dt
        self.arrival_s: float | None = None   # arrival of fresh (not yet acted on) tracks
        self.start_s = float(start_s)         # the grid's phase until tracks arrive
        self.last_s = self.start_s            # time of the last decision
        self.streaming = False                # the last decision published a command
        self.grid_s = self.start_s + self.dt_s

    def tracks_arrived(self, t_s: float) -> None:
        """Fresh tracks at ``t_s``: update the arrival phase; act on them at :attr:`due_s`."""
        self.arrival_s = t_s
        if self.phase_s is None:
            self.phase_s = t_s
            return
        dt = self.dt_s
        r = (t_s - self.phase_s + dt / 2) % dt - dt / 2
        self.phase_s = t_s - (1.0 - self.gain) * r

    @property
    def due_s(self) -> float:
        """Time of the next decision: (b) with fresh tracks, else the grid time (c)."""
        if self.arrival_s is None:
            return self.grid_s
        if not self.streaming:
            return self.arrival_s
        return min(self.grid_s, max(self.arrival_s, self.last_s + self.dt_s - self.tau_s))

    @property
    def fresh(self) -> bool:
        """Tracks arrived since the last decision."""
        return self.arrival_s is not None

    def decided(self, t_s: float, published: bool) -> None:
        """A decision at ``t_s``; ``published``: it sent a command (else the stream ends)."""
        dt, tau = self.dt_s, self.tau_s
        x = t_s + dt
        psi = self.start_s if self.phase_s is None else self.phase_s + tau
        grid = min(max(psi + dt * round((x - psi) / dt), x - tau), x + tau)
        self.last_s, self.streaming, self.grid_s, self.arrival_s = t_s, published, grid, None

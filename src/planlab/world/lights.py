"""Traffic-light cycles: one fixed-time controller per signalised junction.

Each phase (a set of approaches that go together) gets green, then yellow, then an all-red clearance before
the next phase starts. Logs record ``is_red`` per lane connector (fact sheet §3.1: yellow and unknown are
logged as not red); an all-red clearance is red for every connector.
"""

from __future__ import annotations

import numpy as np

from planlab.world.network import SIGNAL, RoadNetwork

GREEN, YELLOW, RED = "green", "yellow", "red"


class SignalPlan:
    """Fixed-time plan of one junction: phase k is green for ``greens[k]`` s, then yellow, then all red."""

    def __init__(
        self,
        n_phases: int,
        greens: list[float],
        yellow: float = 4.0,
        all_red: float = 2.0,
        offset: float = 0.0,
    ):
        if n_phases != len(greens) or n_phases < 1:
            raise ValueError("one green time per phase")
        self.greens = [float(g) for g in greens]
        self.yellow = float(yellow)
        self.all_red = float(all_red)
        starts = [0.0]
        for g in self.greens[:-1]:
            starts.append(starts[-1] + g + self.yellow + self.all_red)
        self.starts = starts
        self.cycle = starts[-1] + self.greens[-1] + self.yellow + self.all_red
        self.offset = float(offset) % self.cycle

    def _local(self, phase: int, t: float) -> float:
        return (t + self.offset - self.starts[phase]) % self.cycle

    def state(self, phase: int, t: float) -> str:
        u = self._local(phase, t)
        g = self.greens[phase]
        if u < g:
            return GREEN
        if u < g + self.yellow:
            return YELLOW
        return RED

    def remaining(self, phase: int, t: float) -> float:
        """Seconds until the phase's current state changes."""
        u = self._local(phase, t)
        g = self.greens[phase]
        if u < g:
            return g - u
        if u < g + self.yellow:
            return g + self.yellow - u
        return self.cycle - u

    def time_until_green(self, phase: int, t: float) -> float:
        u = self._local(phase, t)
        return 0.0 if u < self.greens[phase] else self.cycle - u

    def set_red_at(self, phase: int, t_red: float, red_for: float | None = None) -> None:
        """Shift the cycle so that ``phase`` turns red (end of its yellow) at time ``t_red``; with ``red_for``
        the other phases' greens are shortened (≥ 5 s each) so that the red lasts about that long."""
        if red_for is not None and len(self.greens) > 1:
            others = len(self.greens) - 1
            g = max(5.0, (red_for - len(self.greens) * self.all_red - others * self.yellow) / others)
            self.greens = [g if k != phase else self.greens[k] for k in range(len(self.greens))]
            self.__init__(len(self.greens), self.greens, self.yellow, self.all_red, 0.0)
        # want _local(phase, t_red) == green + yellow
        target = self.greens[phase] + self.yellow
        self.offset = (target - t_red + self.starts[phase]) % self.cycle

    def set_green_at(self, phase: int, t_green: float) -> None:
        self.offset = (self.starts[phase] - t_green) % self.cycle


class Signals:
    """All signal plans of a network and the per-connector state queries the world needs."""

    def __init__(self, net: RoadNetwork, rng: np.random.Generator):
        self.net = net
        self.plans: dict[int, SignalPlan] = {}
        for jf, j in net.junctions.items():
            if j.control != SIGNAL or not j.phases:
                continue
            greens = [float(rng.uniform(9.0, 16.0)) for _ in j.phases]
            plan = SignalPlan(len(j.phases), greens)
            plan.offset = float(rng.uniform(0.0, plan.cycle))
            self.plans[jf] = plan

    def connector_state(self, connector: int, t: float) -> str:
        c = self.net.lanes[connector]
        if c.node not in self.plans or c.phase is None:
            return GREEN
        return self.plans[c.node].state(c.phase, t)

    def remaining(self, connector: int, t: float) -> float:
        c = self.net.lanes[connector]
        if c.node not in self.plans or c.phase is None:
            return float("inf")
        return self.plans[c.node].remaining(c.phase, t)

    def is_signalised(self, connector: int) -> bool:
        c = self.net.lanes[connector]
        return c.node in self.plans and c.phase is not None

    def logged(self, t: float, center: np.ndarray, radius: float = 150.0) -> list[tuple[int, bool]]:
        """``traffic_lights`` entries: (connector fid, is_red) for signalised junctions near ``center``.

        fact sheet §3.1: ``is_red`` is True only for RED; yellow (and unknown) are logged as False.
        """
        out: list[tuple[int, bool]] = []
        for jf in sorted(self.plans):
            j = self.net.junctions[jf]
            if np.hypot(*(j.center - center)) > radius:
                continue
            for cid in sorted(j.connectors):
                out.append((int(cid), self.connector_state(cid, t) == RED))
        return out

    def head_states(self, t: float) -> dict[int, str]:
        """State of every signal head (for the cameras)."""
        out = {}
        for hid, h in self.net.signal_heads.items():
            plan = self.plans.get(h.node)
            out[hid] = "off" if plan is None else plan.state(h.phase, t)
        return out

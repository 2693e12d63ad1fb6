"""A resumable, rank-aware sampler and the DataLoader that reports its position to Lightning.

Each epoch's order is a permutation drawn from ``(seed, epoch)`` alone, sharded across ranks, so a run
resumed mid-epoch can skip exactly the batches it already trained on and see the same remaining batches
as the uninterrupted run (the resume test compares final weights to 1e-6). Lightning's own
``DistributedSampler`` injection is turned off (``use_distributed_sampler=False``); this sampler shards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler[int]):
    """Indices of one rank for one epoch; ``resume_at(epoch, batches_done)`` skips a prefix once."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        self._skip_batches = 0
        self._skip_epoch: int | None = None

    @property
    def per_rank(self) -> int:
        """Samples per rank and epoch (the dataset is padded by wrapping so every rank gets as many)."""
        return -(-self.num_samples // self.world_size) if self.num_samples else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """The next iteration of ``epoch`` starts after ``batches_done`` batches of this rank."""
        self.epoch = int(epoch)
        self._skip_epoch = int(epoch)
        self._skip_batches = int(batches_done)

    def epoch_indices(self, epoch: int) -> list[int]:
        """All indices this rank visits in ``epoch`` (before any resume skip)."""
        if self.num_samples == 0:
            return []
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = list(range(self.num_samples))
        total = self.per_rank * self.world_size
        order = (order * (total // len(order) + 1))[:total]  # wrap-pad: every rank the same count
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices(self.epoch)
        if self._skip_epoch is not None:
            if self._skip_epoch == self.epoch:
                indices = indices[self._skip_batches * self.batch_size :]
            self._skip_epoch, self._skip_batches = None, 0
        return iter(indices)

    def __len__(self) -> int:
        return self.per_rank


class ResumableDataLoader(DataLoader):
    """A DataLoader whose ``state_dict`` is (epoch, batches done this epoch), so Lightning treats it as
    resumable; the position itself comes from ``progress`` (the trainer's batch counters)."""

    def __init__(
        self, *args: Any, progress: Callable[[], tuple[int, int]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._progress = progress

    def state_dict(self) -> dict[str, int]:
        epoch, done = self._progress() if self._progress is not None else (0, 0)
        sampler = self.sampler
        return {
            "epoch": int(epoch),
            "batches_done": int(done),
            "seed": int(getattr(sampler, "seed", 0)),
            "num_samples": int(getattr(sampler, "num_samples", 0)),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        # The position is applied when the loader is created (planlab.training.datamodule reads it from the
        # checkpoint's planlab metadata before Lightning starts iterating); here we only check it matches.
        sampler = self.sampler
        if isinstance(sampler, ResumableSampler) and state.get("num_samples") not in (
            None,
            sampler.num_samples,
        ):
            from planlab.errors import CheckpointError

            raise CheckpointError(
                f"the checkpoint was trained on {state['num_samples']} samples, this run has {sampler.num_samples}; "
                "the data (split, subset or filter) changed since the checkpoint"
            )

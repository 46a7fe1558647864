"""What a computation costs through an executor that runs it elsewhere: requests, rows forward and
backward, bytes back (checked before anything is sent: `Executor.check_cost`)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cost:
    """An estimate of what a view costs through the backend."""

    requests: int
    forward_rows: int  # sequences run forward, over all requests
    backward_rows: int = 0  # sequences differentiated (one backward pass each)
    tokens: int = 0  # tokens per sequence
    bytes_returned: int = 0
    parameters: int = 0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        gb = self.bytes_returned / 2 ** 30
        size = f"{gb:.2f} GiB" if gb >= 0.1 else f"{self.bytes_returned / 2 ** 20:.1f} MiB"
        back = f", {self.backward_rows} backward" if self.backward_rows else ""
        return (f"{self.requests} request(s), {self.forward_rows} sequence(s) of {self.tokens} tokens forward{back}, "
                f"~{size} returned, model of {self.parameters / 1e9:.3g}B parameters")

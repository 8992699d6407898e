"""Barrier alignment: the aligner on its own, then through the graph.

An input that delivered the barrier of the epoch being aligned is blocked:
its later batches are held until every input delivered that barrier, so the
operator finishes the epoch on a consistent cut and only then sees them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from kernel_engine._duck import Duck
from kernel_engine.errors import ExecutionError
from kernel_engine.stream.align import BarrierAligner
from kernel_engine.stream.graph import Graph
from kernel_engine.stream.message import Barrier
from kernel_engine.stream.operator import Operator
from kernel_engine.stream.operators import HashJoin, Materialize, TableSource

from .changes import batch, consolidated

A = batch("k:INTEGER\n+ 1")
B = batch("k:INTEGER\n+ 2")
C = batch("k:INTEGER\n- 1")


# ---- the aligner ----------------------------------------------------------------------------


def test_blocked_input_holds_batches_until_every_input_has_the_barrier() -> None:
    aligner = BarrierAligner(2)
    assert not aligner.blocked(0) and not aligner.blocked(1)
    assert aligner.arrive(0, 5) is False
    assert aligner.blocked(0) and not aligner.blocked(1)
    aligner.hold(0, A)
    aligner.hold(0, B)
    assert aligner.arrive(1, 5) is True
    assert aligner.release() == [(0, A), (0, B)]
    assert not aligner.blocked(0) and not aligner.blocked(1)
    assert aligner.release() == []


def test_release_keeps_arrival_order_across_inputs() -> None:
    aligner = BarrierAligner(3)
    aligner.arrive(2, 1)
    aligner.hold(2, A)
    aligner.arrive(0, 1)
    aligner.hold(0, B)
    aligner.hold(2, C)
    assert aligner.arrive(1, 1) is True
    assert aligner.release() == [(2, A), (0, B), (2, C)]


def test_next_epoch_aligns_after_release() -> None:
    aligner = BarrierAligner(2)
    aligner.arrive(1, 1)
    aligner.arrive(0, 1)
    aligner.release()
    assert aligner.arrive(0, 2) is False
    assert aligner.arrive(1, 2) is True


def test_single_input_never_blocks_for_long() -> None:
    aligner = BarrierAligner(1)
    assert aligner.arrive(0, 1) is True
    assert aligner.release() == []
    assert aligner.arrive(0, 2) is True


def test_barrier_of_another_epoch_mid_alignment_raises() -> None:
    aligner = BarrierAligner(2)
    aligner.arrive(0, 3)
    with pytest.raises(ExecutionError, match="epoch 4"):
        aligner.arrive(1, 4)


def test_second_barrier_on_one_input_raises() -> None:
    aligner = BarrierAligner(2)
    aligner.arrive(0, 3)
    with pytest.raises(ExecutionError, match="input 0"):
        aligner.arrive(0, 3)


# ---- through the graph ----------------------------------------------------------------------


class Recorder(Operator):
    """Passes batches through and records every hook call in order."""

    def __init__(self, duck: Duck, identity: str, inputs: int, log: list[tuple[object, ...]]
                 ) -> None:
        super().__init__(duck, identity, inputs)
        self.log = log

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        self.log.append((self.identity, "process", port, consolidated(chunk)))
        return chunk

    def on_barrier(self, epoch: int) -> pa.Table | None:
        self.log.append((self.identity, "barrier", epoch))
        return None


@pytest.fixture
def duck() -> Iterator[Duck]:
    d = Duck(streaming=True)
    d.begin()
    yield d
    d.rollback()
    d.close()


def test_graph_holds_a_batch_behind_the_barrier_until_alignment(duck: Duck) -> None:
    log: list[tuple[object, ...]] = []
    graph = Graph()
    two = graph.add(Recorder(duck, "two", 2, log))
    down = graph.add(Recorder(duck, "down", 1, log))
    two.outputs.append((down, 0))

    graph.barrier(two, 0, Barrier(1))
    graph.deliver(two, 0, A)
    graph.deliver(two, 1, B)
    assert log == [("two", "process", 1, [(2, 1)]), ("down", "process", 0, [(2, 1)])]
    log.clear()

    graph.barrier(two, 1, Barrier(1))
    assert log == [
        ("two", "barrier", 1),
        ("down", "barrier", 1),
        ("two", "process", 0, [(1, 1)]),
        ("down", "process", 0, [(1, 1)]),
    ]
    assert not two.aligner.blocked(0)
    log.clear()
    graph.deliver(two, 0, C)
    assert log == [("two", "process", 0, [(1, -1)]), ("down", "process", 0, [(1, -1)])]


def test_graph_rejects_a_misaligned_barrier(duck: Duck) -> None:
    graph = Graph()
    two = graph.add(Recorder(duck, "two", 2, []))
    graph.barrier(two, 0, Barrier(1))
    with pytest.raises(ExecutionError):
        graph.barrier(two, 1, Barrier(2))


def test_join_sees_a_batch_held_behind_the_barrier_only_after_alignment(duck: Duck) -> None:
    graph = Graph()
    cols = [("id", "INTEGER"), ("k", "INTEGER")]
    left = graph.add(TableSource(duck, "l", cols, ["id"], True))
    right = graph.add(TableSource(duck, "r", [("rid", "INTEGER"), ("rk", "INTEGER")], ["rid"],
                                  True))
    join = graph.add(HashJoin(duck, "j", "inner", (cols, ["id"], ["k"]),
                              ([("rid", "INTEGER"), ("rk", "INTEGER")], ["rid"], ["rk"]), None))
    mv = graph.add(Materialize(duck, "v", ["id", "k", "rid", "rk"],
                               [("id", "INTEGER"), ("k", "INTEGER"), ("rid", "INTEGER"),
                                ("rk", "INTEGER")], ["id", "rid"]))
    left.outputs.append((join, 0))
    right.outputs.append((join, 1))
    join.outputs.append((mv, 0))

    def view() -> list[tuple[object, ...]]:
        return consolidated(duck.arrow('SELECT *, CAST(1 AS BIGINT) AS _w FROM "__mv_v"'))

    graph.deliver(left, 0, batch("id:INTEGER k:INTEGER\n+ 1 10"))
    graph.deliver(right, 0, batch("rid:INTEGER rk:INTEGER\n+ 7 10"))
    assert view() == [(1, 10, 7, 10, 1)]

    graph.barrier(left, 0, Barrier(1))
    assert join.aligner.blocked(0)
    graph.deliver(left, 0, batch("id:INTEGER k:INTEGER\n- 1 10"))
    assert join.aligner.held and view() == [(1, 10, 7, 10, 1)]
    graph.deliver(right, 0, batch("rid:INTEGER rk:INTEGER\n+ 8 10"))
    assert view() == [(1, 10, 7, 10, 1), (1, 10, 8, 10, 1)]

    graph.barrier(right, 0, Barrier(1))
    assert not join.aligner.held and not join.aligner.blocked(0)
    assert view() == []

    graph.deliver(left, 0, batch("id:INTEGER k:INTEGER\n+ 2 10"))
    graph.inject([left, right], Barrier(2))
    assert view() == [(2, 10, 7, 10, 1), (2, 10, 8, 10, 1)]


class FailOnce(Recorder):
    """A Recorder whose first on_barrier fails."""

    failed = False

    def on_barrier(self, epoch: int) -> pa.Table | None:
        if not self.failed:
            self.failed = True
            raise ExecutionError("boom")
        return super().on_barrier(epoch)


def test_a_failed_epoch_does_not_wedge_later_barriers(duck: Duck) -> None:
    log: list[tuple[object, ...]] = []
    graph = Graph()
    s0 = graph.add(Recorder(duck, "s0", 1, log))
    s1 = graph.add(Recorder(duck, "s1", 1, log))
    bad = graph.add(FailOnce(duck, "bad", 1, log))
    two = graph.add(Recorder(duck, "two", 2, log))
    s0.outputs.append((bad, 0))
    bad.outputs.append((two, 0))
    s1.outputs.append((two, 1))

    with pytest.raises(ExecutionError, match="boom"):
        graph.inject([s1, s0], Barrier(1))
    assert ("two", "barrier", 1) not in log
    log.clear()

    graph.inject([s1, s0], Barrier(2))
    assert [e for e in log if e[1] == "barrier"] == [
        ("s1", "barrier", 2), ("s0", "barrier", 2), ("bad", "barrier", 2), ("two", "barrier", 2)]
    graph.deliver(s0, 0, A)
    assert ("two", "process", 0, [(1, 1)]) in log

"""Workflows as data (conveyor.canvas): a plan runs every job after all it waits for, feeds each
the results its place in the canvas gives it, and yields what the canvas means, checked against
a direct reading of the canvas (Celery's semantics) for random canvases."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.canvas import (
    Canvas,
    Chain,
    Chord,
    Group,
    ListOf,
    Ref,
    Signature,
    chain,
    chord,
    group,
    plan,
    run_plan,
)
from conveyor.errors import InvalidInput

_NO_INPUT: Any = object()


def _call(signature: Signature, args: tuple[Any, ...]) -> Any:
    """A job's result: what it was called with, so every feed shows in the output."""
    return [signature.task, list(args)]


def _meaning(canvas: Canvas, given: Any = _NO_INPUT) -> Any:
    """The canvas read directly: what running it must give."""
    if isinstance(canvas, Signature):
        fed = given is not _NO_INPUT and not canvas.immutable
        return _call(canvas, ((given,) if fed else ()) + canvas.args)
    if isinstance(canvas, Chain):
        value = given
        for step in canvas.steps:
            value = _meaning(step, value)
        return value
    if isinstance(canvas, Group):
        return [_meaning(member, given) for member in canvas.members]
    assert isinstance(canvas, Chord)
    return _meaning(canvas.callback, _meaning(canvas.header, given))


_names = st.sampled_from(["a", "b", "c", "d"])
_signatures = st.builds(Signature, _names, st.tuples(st.integers(0, 9)) | st.just(()),
                        immutable=st.booleans())
_canvases = st.recursive(
    _signatures,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda steps: chain(*steps)),
        st.lists(inner, min_size=1, max_size=3).map(group),
        st.tuples(st.lists(inner, min_size=1, max_size=3), inner).map(
            lambda parts: chord(*parts)),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_canvases)
def test_a_plan_means_what_its_canvas_says(canvas: Canvas) -> None:
    workflow = plan(canvas)
    assert run_plan(workflow, _call) == _meaning(canvas)


@settings(max_examples=300, deadline=None)
@given(_canvases)
def test_every_job_waits_for_all_it_needs_and_only_earlier_jobs(canvas: Canvas) -> None:
    workflow = plan(canvas)
    for index, node in enumerate(workflow.nodes):
        assert all(parent < index for parent in node.parents)
        fed = _refs(node.feed) if node.feed is not None else set()
        assert fed <= set(node.parents)  # it never reads a result it does not wait for


def _refs(value: Ref | ListOf) -> set[int]:
    if isinstance(value, Ref):
        return {value.index}
    return set().union(*(_refs(item) for item in value.items))


def test_the_celery_shapes() -> None:
    download, analyse, clean = (Signature("download", ("x",)), Signature("analyse"),
                                Signature("clean", immutable=True))
    workflow = plan(chain(download, analyse, clean))
    assert [n.parents for n in workflow.nodes] == [(), (0,), (1,)]
    assert [n.feed for n in workflow.nodes] == [None, Ref(0), None]  # clean is immutable
    members = [Signature("analyse", (i,)) for i in range(10)]
    combined = plan(chord(members, Signature("combine")))
    assert combined.nodes[-1].parents == tuple(range(10))
    assert combined.nodes[-1].feed == ListOf(tuple(Ref(i) for i in range(10)))
    # A group after a step: each member gets that step's result.
    fanned = plan(chain(download, group([analyse, analyse])))
    assert [n.parents for n in fanned.nodes] == [(), (0,), (0,)]
    assert fanned.output == ListOf((Ref(1), Ref(2)))


@pytest.mark.parametrize(("build", "message"), [
    (lambda: chain(), "a chain needs at least one step"),
    (lambda: group([]), "a group needs at least one member"),
    (lambda: chord([], Signature("c")), "a chord needs at least one member"),
    (lambda: chord([Signature("a")], "c"), "a chord's callback must be a signature"),  # type: ignore[arg-type]
    (lambda: chain(Signature("a"), print), "chain step 1 must be a signature"),  # type: ignore[arg-type]
    (lambda: group(Signature("a")), "group takes an iterable of signatures"),  # type: ignore[arg-type]
])
def test_malformed_canvases_are_refused(build: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        build()

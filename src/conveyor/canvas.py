"""Workflows as data: signatures, chains, groups and chords (the names a Celery user knows),
and their plan: the jobs to store, what each waits for, and how its parents' results become
its first argument. Pure rules, no I/O: the app will store a plan's jobs and edges in one
transaction (issue 12), and the reference semantics here are what its tests compare against.

- `chain(a, b, c)`: each step runs after the previous one ended and gets its result as its
  first argument (unless the step is immutable, `Signature(immutable=True)`, Celery's `.si`).
- `group([a, b])`: members run side by side; the group's result is the list of the members'
  results, in member order. A step after a group waits for every member and gets that list
  (so `chain(group(...), c)` is `chord(group(...), c)`, as in Celery).
- `chord(header, callback)`: the callback runs after every member of the header ended, with
  the list of their results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .errors import InvalidInput


class _Enqueues:
    """`.enqueue()` on any canvas: the app of its first signature that has one stores it."""

    __slots__ = ()

    def enqueue(self, *, on_parent_failure: str = "cancel", name: str | None = None) -> Any:
        """Store every job and edge of this workflow in one transaction; returns its
        `Workflow` handle. `on_parent_failure`: "cancel" (a job whose parent failed or was
        cancelled is cancelled) or "run" (it runs once all its parents ended; a failed
        parent's place in its input holds {"job", "state", "error"})."""
        canvas: Canvas = self  # type: ignore[assignment]
        app = next((s.app for s in signatures(canvas) if s.app is not None), None)
        if app is None:
            raise InvalidInput("this workflow's signatures were not made by a task "
                               "(task.s(...)); enqueue it with app.enqueue_workflow(...)")
        return app.enqueue_workflow(canvas, on_parent_failure=on_parent_failure, name=name)


@dataclass(frozen=True, slots=True)
class Signature(_Enqueues):
    """One job to be: a task's name with its arguments. `immutable`: it ignores the result
    of the step before it (it still waits for that step). `options`: the job options given
    for it (task.options(...).s(...)); `app`: the app whose task made it."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    immutable: bool = False
    options: Any = field(default=None, compare=False)
    app: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Chain(_Enqueues):
    steps: tuple[Canvas, ...]


@dataclass(frozen=True, slots=True)
class Group(_Enqueues):
    members: tuple[Canvas, ...]


@dataclass(frozen=True, slots=True)
class Chord(_Enqueues):
    header: Group
    callback: Canvas


Canvas: TypeAlias = Signature | Chain | Group | Chord
_CANVAS = (Signature, Chain, Group, Chord)


def _checked(what: str, value: Any) -> Canvas:
    if not isinstance(value, _CANVAS):
        raise InvalidInput(f"{what} must be a signature (task.s(...)) or a chain, group or "
                           f"chord of them, got {type(value).__name__} {value!r:.60}")
    return value


def chain(*steps: Canvas) -> Chain:
    """Steps that run one after the other, each fed the previous one's result."""
    if not steps:
        raise InvalidInput("a chain needs at least one step")
    return Chain(tuple(_checked(f"chain step {i}", step) for i, step in enumerate(steps)))


def group(members: Iterable[Canvas]) -> Group:
    """Members that run side by side; their results, in member order, are the group's."""
    if isinstance(members, _CANVAS):
        raise InvalidInput("group takes an iterable of signatures: group([a.s(1), b.s(2)])")
    checked = tuple(_checked(f"group member {i}", m) for i, m in enumerate(members))
    if not checked:
        raise InvalidInput("a group needs at least one member")
    return Group(checked)


def chord(header: Group | Iterable[Canvas], callback: Canvas) -> Chord:
    """`callback` runs once every member of `header` ended, with the list of their results."""
    if not isinstance(header, Group):
        header = list(header) if not isinstance(header, _CANVAS) else [header]
        if not header:
            raise InvalidInput("a chord needs at least one member")
        header = group(header)
    return Chord(header, _checked("a chord's callback", callback))


def signatures(canvas: Canvas) -> list[Signature]:
    """Every signature of a canvas, in the order its plan places them."""
    if isinstance(canvas, Signature):
        return [canvas]
    if isinstance(canvas, Chain):
        return [s for step in canvas.steps for s in signatures(step)]
    if isinstance(canvas, Group):
        return [s for member in canvas.members for s in signatures(member)]
    return signatures(canvas.header) + signatures(canvas.callback)


def describe(canvas: Canvas, limit: int = 200) -> str:
    """A one-line name for a workflow: its shape and task names."""
    def text(item: Canvas) -> str:
        if isinstance(item, Signature):
            return item.task
        if isinstance(item, Chain):
            return "chain(" + ", ".join(text(step) for step in item.steps) + ")"
        if isinstance(item, Group):
            return "group(" + ", ".join(text(member) for member in item.members) + ")"
        return f"chord({text(item.header)}, {text(item.callback)})"

    shown = text(canvas)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


# -- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ref:
    """The result of the plan's node `index`."""

    index: int


@dataclass(frozen=True, slots=True)
class ListOf:
    """A list of results, in order (a group's result)."""

    items: tuple[Input, ...]


Input: TypeAlias = Ref | ListOf


@dataclass(frozen=True, slots=True)
class Node:
    """One job of a plan: its signature, the nodes it waits for (all of them, each with a
    smaller index), and what becomes its first argument (None: nothing, its own arguments
    only)."""

    signature: Signature
    parents: tuple[int, ...]
    feed: Input | None


@dataclass(frozen=True, slots=True)
class Plan:
    """A workflow's jobs, parents before children, and where its result comes from."""

    nodes: tuple[Node, ...]
    output: Input


def plan(canvas: Canvas) -> Plan:
    """The jobs of `canvas`, each with the jobs it waits for and its feed."""
    nodes: list[Node] = []

    def place(item: Canvas, after: tuple[int, ...], feed: Input | None
              ) -> tuple[Input, tuple[int, ...]]:
        """Place `item` after the nodes `after`, fed `feed`; returns its output and the
        nodes whose end is its end."""
        if isinstance(item, Signature):
            nodes.append(Node(item, after, None if item.immutable else feed))
            return Ref(len(nodes) - 1), (len(nodes) - 1,)
        if isinstance(item, Chain):
            output: Input | None = feed
            ends = after
            for step in item.steps:
                output, ends = place(step, ends, output)
            assert output is not None  # a chain has a step
            return output, ends
        if isinstance(item, Group):
            outputs: list[Input] = []
            all_ends: list[int] = []
            for member in item.members:
                member_output, member_ends = place(member, after, feed)
                outputs.append(member_output)
                all_ends.extend(member_ends)
            return ListOf(tuple(outputs)), tuple(all_ends)
        header_output, header_ends = place(item.header, after, feed)
        return place(item.callback, header_ends, header_output)

    output, _ = place(_checked("a workflow", canvas), (), None)
    return Plan(tuple(nodes), output)


def resolve(value: Input, results: Mapping[int, Any]) -> Any:
    """The value an input stands for, from the nodes' results."""
    if isinstance(value, Ref):
        return results[value.index]
    return [resolve(item, results) for item in value.items]


def encode_input(value: Input | None) -> str | None:
    """An input as stored JSON: a node index, or a (nested) array of them."""
    if value is None:
        return None

    def plain(item: Input) -> Any:
        return item.index if isinstance(item, Ref) else [plain(i) for i in item.items]

    return json.dumps(plain(value))


def run_plan(workflow: Plan, call: Callable[[Signature, tuple[Any, ...]], Any]) -> Any:
    """Run a plan in this process, node by node in index order (parents first): what the
    workers will do, one job at a time. `call(signature, args)` runs one node."""
    results: dict[int, Any] = {}
    for index, node in enumerate(workflow.nodes):
        assert all(parent < index for parent in node.parents)
        args = node.signature.args
        if node.feed is not None:
            args = (resolve(node.feed, results), *args)
        results[index] = call(node.signature, args)
    return resolve(workflow.output, results)

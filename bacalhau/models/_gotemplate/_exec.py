"""Executing a parsed template as Go's ``text/template`` does with ``missingkey=error``.

The walk follows ``text/template/exec.go`` function for function: how a pipeline passes its
value on as the last argument, how arguments are converted to the parameter types of the
built-ins, which node is current when an error is raised (it is what the error shows as
``<context>``), and the scoping of variables.

Three bounds are ours, because Go has none that would stop a hostile template in time:
nested templates, control structures and parenthesised pipelines together stop at
:data:`MAX_DEPTH` (Go stops template calls only, at 100000, and has a larger stack), the
output at :data:`MAX_OUTPUT` characters, and the work at :data:`MAX_STEPS` evaluations and
:data:`MAX_PRODUCED` characters built by functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

from bacalhau.models._gotemplate._fmt import sprint
from bacalhau.models._gotemplate._funcs import (
    FUNCTIONS,
    SIGNATURES,
    ArgType,
    CallError,
)
from bacalhau.models._gotemplate._nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
)
from bacalhau.models._gotemplate._parse import Tree
from bacalhau.models._gotemplate._strconv import quote
from bacalhau.models._gotemplate._values import (
    NO_VALUE,
    Byte,
    GoValue,
    NoValue,
    go_bytes,
    is_true,
    type_name,
)

__all__ = ["MAX_DEPTH", "MAX_OUTPUT", "MAX_PRODUCED", "MAX_STEPS", "ExecError", "execute"]

#: Nested template calls, control structures and parenthesised pipelines, together.
MAX_DEPTH = 100
#: Largest output: four times the largest job a node accepts by default (max_job_size).
MAX_OUTPUT = 16 * 1024 * 1024
#: Node walks, commands and range iterations one execution may take, beyond one per
#: character of the template (so that no template is too long to walk once).
MAX_STEPS = 1_000_000
#: Characters built by print, printf, slice and the escapers, output or not.
MAX_PRODUCED = 64 * 1024 * 1024


class ExecError(Exception):
    """An execution error: Go's message, the template and node it happened at."""

    def __init__(
        self,
        message: str,
        *,
        template: str,
        node: Node | None,
        key: str = "",
        limit: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.template = template
        self.node = node
        self.key = key  # the data key that is missing, for "map has no entry for key"
        self.limit = limit  # one of our bounds, not a Go error


class _Missing:
    # Go's missingVal: "no value came down the pipeline", not the same as a nil value.
    pass


_MISSING = _Missing()
_Final: TypeAlias = GoValue | _Missing


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Run:
    # What one execution shares across nested template calls.
    def __init__(self, trees: Mapping[str, Tree], max_steps: int) -> None:
        self.trees = trees
        self.max_steps = max_steps
        self.out: list[str] = []
        self.out_size = 0
        self.steps = 0
        self.produced = 0
        self.depth = 0


class _State:
    """Go's exec ``state``: the template executing, the current node, the variables."""

    def __init__(self, run: _Run, template: str, dot: GoValue) -> None:
        self.run = run
        self.template = template
        self.node: Node | None = None
        self.vars: list[list[str | GoValue]] = [["$", dot]]

    # -- bookkeeping ----------------------------------------------------------------------

    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, message: str, *, key: str = "", limit: bool = False) -> ExecError:
        return ExecError(message, template=self.template, node=self.node, key=key, limit=limit)

    def step(self) -> None:
        self.run.steps += 1
        if self.run.steps > self.run.max_steps:
            raise self.errorf(f"execution takes more than {self.run.max_steps} steps", limit=True)

    def enter(self) -> None:
        self.run.depth += 1
        if self.run.depth > MAX_DEPTH:
            raise self.errorf(
                f"exceeded maximum template depth ({MAX_DEPTH} nested templates, "
                "control structures and parenthesized pipelines)",
                limit=True,
            )

    def leave(self) -> None:
        self.run.depth -= 1

    def write(self, text: str) -> None:
        self.run.out_size += len(text)
        if self.run.out_size > MAX_OUTPUT:
            raise self.errorf(f"output is larger than {MAX_OUTPUT} characters", limit=True)
        self.run.out.append(text)

    def produced(self, value: GoValue) -> None:
        if isinstance(value, str):
            self.run.produced += len(value)
            if self.run.produced > MAX_PRODUCED:
                raise self.errorf(
                    f"functions built more than {MAX_PRODUCED} characters", limit=True
                )

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: GoValue) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n: int, value: GoValue) -> None:
        self.vars[-n][1] = value

    def var_value(self, name: str) -> GoValue:
        for entry_name, value in reversed(self.vars):
            if entry_name == name:
                return value
        raise self.errorf(f"undefined variable: {name}")

    # -- walking ----------------------------------------------------------------------------

    def walk(self, dot: GoValue, node: Node) -> None:
        self.at(node)
        self.step()
        if isinstance(node, TextNode):
            self.write(node.text)
        elif isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.at(node)
                if isinstance(value, str):
                    self.write(value)  # what Fprint does with a string, without the printer
                else:
                    self.write("<no value>" if isinstance(value, NoValue) else sprint([value]))
        elif isinstance(node, BranchNode):
            self.enter()
            try:
                if node.kind == "range":
                    self.walk_range(dot, node)
                else:
                    self.walk_if_or_with(dot, node)
            finally:
                self.leave()
        elif isinstance(node, TemplateNode):
            self.enter()
            try:
                self.walk_template(dot, node)
            finally:
                self.leave()
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        else:
            raise self.errorf(f"unknown node: {node.string()}")

    def walk_if_or_with(self, dot: GoValue, node: BranchNode) -> None:
        mark = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if is_true(value):
                self.walk(value if node.kind == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: GoValue, r: BranchNode) -> None:
        self.at(r)
        outer = self.mark()
        decl = r.pipe.decl
        try:
            value = self.eval_pipeline(dot, r.pipe)
            mark = self.mark()

            def one_iteration(index: GoValue, elem: GoValue) -> None:
                self.step()
                if decl:
                    if r.pipe.is_assign:
                        self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
                    else:
                        self.set_top_var(1, elem)
                if len(decl) > 1:
                    if r.pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem)
                    else:
                        self.set_top_var(2, index)
                try:
                    self.walk(elem, r.list)
                except _Continue:
                    pass
                finally:
                    self.pop(mark)

            if isinstance(value, int) and not isinstance(value, bool):
                # Go 1.22+: range over an integer n yields 0..n-1 of its type.
                if len(decl) > 1:
                    raise self.errorf(
                        f"can't use {sprint([value])} to iterate over more than one variable"
                    )
                if value > 0:
                    for i in range(value):
                        one_iteration(NO_VALUE, Byte(i) if isinstance(value, Byte) else i)
                    return
            elif isinstance(value, Mapping):
                if value:
                    for key in sorted(value, key=go_bytes):  # Go ranges over a map sorted
                        one_iteration(key, value[key])
                    return
            elif not isinstance(value, NoValue):  # no value acts as an empty map
                raise self.errorf(f"range can't iterate over {sprint([value])}")
            if r.else_list is not None:
                self.walk(dot, r.else_list)
        except _Break:
            pass
        finally:
            self.pop(outer)

    def walk_template(self, dot: GoValue, t: TemplateNode) -> None:
        self.at(t)
        tree = self.run.trees.get(t.name)
        if tree is None:
            raise self.errorf(f"template {quote(t.name)} not defined")
        dot = self.eval_pipeline(dot, t.pipe)
        _State(self.run, t.name, dot).walk(dot, tree.root)

    # -- evaluation -----------------------------------------------------------------------

    def eval_pipeline(
        self, dot: GoValue, pipe: PipeNode | None, *, nested: bool = False
    ) -> GoValue:
        if pipe is None:
            return NO_VALUE
        self.at(pipe)
        value: _Final = _MISSING
        if nested:  # parenthesised: counts towards MAX_DEPTH
            self.enter()
        try:
            for cmd in pipe.cmds:
                value = self.eval_command(dot, cmd.args, cmd, value)
        finally:
            if nested:
                self.leave()
        assert not isinstance(value, _Missing)  # a pipeline has at least one command
        for variable in pipe.decl:
            if pipe.is_assign:
                self.set_var(variable.ident[0], value)
            else:
                self.vars.append([variable.ident[0], value])
        return value

    def not_a_function(self, args: Sequence[Node], final: _Final) -> None:
        if len(args) > 1 or not isinstance(final, _Missing):
            raise self.errorf(f"can't give argument to non-function {args[0].string()}")

    def eval_command(self, dot: GoValue, args: list[Node], cmd: Node, final: _Final) -> GoValue:
        self.step()
        first = args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(args, final)
            return self.eval_pipeline(dot, first, nested=True)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, args, final)
        self.at(first)
        self.not_a_function(args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            raise self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        raise self.errorf(f"can't evaluate command {quote(first.string())}")

    def ideal_constant(self, constant: NumberNode) -> GoValue:
        # An untyped constant takes the type Go's compiler would give it: int if it can
        # (hex and character constants included), else float64 or complex128.
        self.at(constant)
        n = constant.number
        text = n.text
        if n.is_complex:
            return n.complex128
        is_hex_int = (
            len(text) > 2
            and text[0] == "0"
            and text[1] in "xX"
            and not any(c in text for c in "pP")
        )
        if (
            n.is_float
            and not is_hex_int
            and not text.startswith("'")
            and any(c in text for c in ".eEpP")
        ):
            return n.float64
        if n.is_int:
            return n.int64
        if n.is_uint:
            raise self.errorf(f"{text} overflows int")
        return NO_VALUE

    def eval_field_node(
        self, dot: GoValue, field: FieldNode, args: Sequence[Node], final: _Final
    ) -> GoValue:
        self.at(field)
        return self.eval_field_chain(dot, field, field.ident, args, final)

    def eval_chain_node(
        self, dot: GoValue, chain: ChainNode, args: Sequence[Node], final: _Final
    ) -> GoValue:
        self.at(chain)
        if isinstance(chain.node, NilNode):
            raise self.errorf(f"indirection through explicit nil in {chain.string()}")
        receiver = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(receiver, chain, chain.fields, args, final)

    def eval_variable_node(
        self, dot: GoValue, variable: VariableNode, args: Sequence[Node], final: _Final
    ) -> GoValue:
        self.at(variable)
        value = self.var_value(variable.ident[0])
        if len(variable.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(value, variable, variable.ident[1:], args, final)

    def eval_field_chain(
        self,
        receiver: GoValue,
        node: Node,
        ident: Sequence[str],
        args: Sequence[Node],
        final: _Final,
    ) -> GoValue:
        for name in ident[:-1]:
            receiver = self.eval_field(name, (), _MISSING, receiver)
        return self.eval_field(ident[-1], args, final, receiver)

    def eval_field(
        self, name: str, args: Sequence[Node], final: _Final, receiver: GoValue
    ) -> GoValue:
        if isinstance(receiver, NoValue):
            raise self.errorf(f"nil data; no entry for key {quote(name)}")
        if isinstance(receiver, Mapping):
            if len(args) > 1 or not isinstance(final, _Missing):
                raise self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                value: str = receiver[name]
                return value
            raise self.errorf(f"map has no entry for key {quote(name)}", key=name)
        raise self.errorf(f"can't evaluate field {name} in type {type_name(receiver)}")

    def eval_function(
        self,
        dot: GoValue,
        node: IdentifierNode,
        cmd: Node,
        args: Sequence[Node] | None,
        final: _Final,
    ) -> GoValue:
        # Go's evalFunction and evalCall in one (a frame less per nested call).
        self.at(node)
        name = node.ident
        arg_nodes = list(args[1:]) if args else []
        sig = SIGNATURES[name]
        n_in = len(sig.params)
        num_in = len(arg_nodes) + (0 if isinstance(final, _Missing) else 1)
        num_fixed = len(arg_nodes)
        if sig.variadic:
            num_fixed = n_in - 1
            if num_in < num_fixed:
                raise self.errorf(
                    f"wrong number of args for {name}: want at least {n_in - 1} "
                    f"got {len(arg_nodes)}"
                )
        elif num_in != n_in:
            raise self.errorf(f"wrong number of args for {name}: want {n_in} got {num_in}")

        if name in ("and", "or"):
            # Short-circuit: evaluate in order, stop at the deciding value and return it.
            value: GoValue = NO_VALUE
            for arg in arg_nodes:
                value = self.eval_arg(dot, "value", arg)
                if is_true(value) == (name == "or"):
                    return value
            if not isinstance(final, _Missing):
                value = self.validate_type(final, "value")
            return value

        argv: list[GoValue] = []
        for i, arg in enumerate(arg_nodes):
            typ = sig.params[i] if i < num_fixed else sig.params[-1]
            argv.append(self.eval_arg(dot, typ, arg))
        if not isinstance(final, _Missing):
            typ = sig.params[-1]
            if sig.variadic and num_in - 1 < num_fixed:
                typ = sig.params[num_in - 1]
            argv.append(self.validate_type(final, typ))

        if name == "call":
            # No function values exist in a job file's data: call always fails, as Go's
            # does on a value that is not a function.
            callee = arg_nodes[0].string() if arg_nodes else _value_string(argv[0])
            message = (
                "call of nil"
                if isinstance(argv[0], NoValue)
                else f"non-function {callee} of type {type_name(argv[0])}"
            )
            self.at(cmd)
            raise self.errorf(f"error calling call: {message}")
        try:
            result = FUNCTIONS[name](argv)
        except CallError as e:
            self.at(cmd)
            raise self.errorf(f"error calling {name}: {e}") from None
        self.produced(result)
        return result

    def validate_type(self, value: GoValue, typ: ArgType | None) -> GoValue:
        if typ != "string":
            return value  # any value passes as a reflect.Value or an any (nil as nil)
        if isinstance(value, NoValue):
            raise self.errorf("invalid value; expected string")
        if not isinstance(value, str):
            raise self.errorf(f"wrong type for value; expected string; got {type_name(value)}")
        return value

    def eval_arg(self, dot: GoValue, typ: ArgType | None, n: Node) -> GoValue:
        self.at(n)
        if isinstance(n, DotNode):
            return self.validate_type(dot, typ)
        if isinstance(n, NilNode):
            if typ == "string":
                raise self.errorf("cannot assign nil to string")
            return NO_VALUE
        if isinstance(n, FieldNode):
            return self.validate_type(self.eval_field_node(dot, n, [n], _MISSING), typ)
        if isinstance(n, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, n, (), _MISSING), typ)
        if isinstance(n, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n, nested=True), typ)
        if isinstance(n, IdentifierNode):
            return self.validate_type(self.eval_function(dot, n, n, None, _MISSING), typ)
        if isinstance(n, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, n, (), _MISSING), typ)
        if typ == "string":
            if isinstance(n, StringNode):
                return n.text
            raise self.errorf(f"expected string; found {n.string()}")
        return self.eval_empty_interface(dot, n)

    def eval_empty_interface(self, dot: GoValue, n: Node) -> GoValue:
        self.at(n)
        if isinstance(n, BoolNode):
            return n.value
        if isinstance(n, NumberNode):
            return self.ideal_constant(n)
        if isinstance(n, StringNode):
            return n.text
        raise self.errorf(f"can't handle assignment of {n.string()} to empty interface argument")


def _value_string(v: GoValue) -> str:
    # reflect.Value.String: a string's own text, "<T Value>" for anything else.
    if isinstance(v, str):
        return v
    if isinstance(v, NoValue):
        return "<invalid Value>"
    return f"<{type_name(v)} Value>"


def execute(trees: Mapping[str, Tree], data: Mapping[str, str], *, size: int) -> str:
    """Run the main template (``""``) of a ``size``-character text over ``data``;
    :class:`ExecError` on failure."""
    run = _Run(trees, MAX_STEPS + size)
    _State(run, "", data).walk(data, trees[""].root)
    return "".join(run.out)

"""The parse tree of a template, as Go's ``text/template/parse`` builds it.

Each node keeps its position in the template text (for error locations) and prints itself
as Go's ``Node.String`` does, which is what an execution error shows between ``<`` and
``>`` (``<index . "x" 1>``, ``<.name>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from bacalhau.models._gotemplate._literals import Number
from bacalhau.models._gotemplate._strconv import quote

__all__ = [
    "ActionNode",
    "BoolNode",
    "BranchNode",
    "BreakNode",
    "ChainNode",
    "CommandNode",
    "ContinueNode",
    "DotNode",
    "ElseNode",
    "EndNode",
    "FieldNode",
    "IdentifierNode",
    "ListNode",
    "NilNode",
    "Node",
    "NumberNode",
    "PipeNode",
    "StringNode",
    "TemplateNode",
    "TextNode",
    "VariableNode",
]


@dataclass(slots=True, eq=False)
class TextNode:
    """Plain text between actions."""

    pos: int
    text: str

    def string(self) -> str:
        return self.text


@dataclass(slots=True, eq=False)
class ListNode:
    """A sequence of nodes: a template body, an ``if`` branch."""

    pos: int
    nodes: list[Node] = field(default_factory=list)

    def string(self) -> str:
        return "".join(n.string() for n in self.nodes)


@dataclass(slots=True, eq=False)
class IdentifierNode:
    """A function name: ``printf``, ``index``."""

    pos: int
    ident: str

    def string(self) -> str:
        return self.ident


@dataclass(slots=True, eq=False)
class VariableNode:
    """``$``, ``$x`` or ``$x.a.b`` (the variable name first, then the fields)."""

    pos: int
    ident: list[str]

    def string(self) -> str:
        return ".".join(self.ident)


@dataclass(slots=True, eq=False)
class DotNode:
    """The cursor, ``.``."""

    pos: int

    def string(self) -> str:
        return "."


@dataclass(slots=True, eq=False)
class NilNode:
    """The untyped ``nil``."""

    pos: int

    def string(self) -> str:
        return "nil"


@dataclass(slots=True, eq=False)
class FieldNode:
    """``.a`` or ``.a.b``: keys looked up from dot."""

    pos: int
    ident: list[str]

    def string(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclass(slots=True, eq=False)
class ChainNode:
    """Fields applied to a term: ``(index . "a").b``."""

    pos: int
    node: Node
    fields: list[str] = field(default_factory=list)

    def string(self) -> str:
        inner = self.node.string()
        if isinstance(self.node, PipeNode):
            inner = f"({inner})"
        return inner + "".join("." + f for f in self.fields)


@dataclass(slots=True, eq=False)
class BoolNode:
    """``true`` or ``false``."""

    pos: int
    value: bool

    def string(self) -> str:
        return "true" if self.value else "false"


@dataclass(slots=True, eq=False)
class NumberNode:
    """A number or character constant, with every reading Go accepts."""

    pos: int
    number: Number

    def string(self) -> str:
        return self.number.text


@dataclass(slots=True, eq=False)
class StringNode:
    """A string constant: its quoted source and its value."""

    pos: int
    quoted: str
    text: str

    def string(self) -> str:
        return self.quoted


@dataclass(slots=True, eq=False)
class CommandNode:
    """One stage of a pipeline: a function or value, then its arguments."""

    pos: int
    args: list[Node] = field(default_factory=list)

    def string(self) -> str:
        return " ".join(
            f"({a.string()})" if isinstance(a, PipeNode) else a.string() for a in self.args
        )


@dataclass(slots=True, eq=False)
class PipeNode:
    """``$x := a | b c``: declared or assigned variables, then the commands."""

    pos: int
    line: int
    is_assign: bool = False
    decl: list[VariableNode] = field(default_factory=list)
    cmds: list[CommandNode] = field(default_factory=list)

    def string(self) -> str:
        out = ""
        if self.decl:
            out = ", ".join(v.string() for v in self.decl)
            out += " = " if self.is_assign else " := "
        return out + " | ".join(c.string() for c in self.cmds)


@dataclass(slots=True, eq=False)
class ActionNode:
    """``{{pipeline}}``: evaluated and printed (unless it declares variables)."""

    pos: int
    line: int
    pipe: PipeNode

    def string(self) -> str:
        return "{{" + self.pipe.string() + "}}"


@dataclass(slots=True, eq=False)
class BranchNode:
    """``if``, ``range`` or ``with`` (``kind``), with its lists."""

    kind: str
    pos: int
    line: int
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None

    def string(self) -> str:
        out = "{{" + self.kind + " " + self.pipe.string() + "}}" + self.list.string()
        if self.else_list is not None:
            out += "{{else}}" + self.else_list.string()
        return out + "{{end}}"


@dataclass(slots=True, eq=False)
class BreakNode:
    """``{{break}}`` inside a ``range``."""

    pos: int
    line: int

    def string(self) -> str:
        return "{{break}}"


@dataclass(slots=True, eq=False)
class ContinueNode:
    """``{{continue}}`` inside a ``range``."""

    pos: int
    line: int

    def string(self) -> str:
        return "{{continue}}"


@dataclass(slots=True, eq=False)
class TemplateNode:
    """``{{template "name" pipeline}}`` (also what ``block`` leaves in place)."""

    pos: int
    line: int
    name: str
    pipe: PipeNode | None

    def string(self) -> str:
        out = "{{template " + quote(self.name)
        if self.pipe is not None:
            out += " " + self.pipe.string()
        return out + "}}"


@dataclass(slots=True, eq=False)
class EndNode:
    """``{{end}}``: ends a list while parsing, never kept in the tree."""

    pos: int

    def string(self) -> str:
        return "{{end}}"


@dataclass(slots=True, eq=False)
class ElseNode:
    """``{{else}}``: ends a list while parsing, never kept in the tree."""

    pos: int
    line: int

    def string(self) -> str:
        return "{{else}}"


Node: TypeAlias = (
    TextNode
    | ListNode
    | IdentifierNode
    | VariableNode
    | DotNode
    | NilNode
    | FieldNode
    | ChainNode
    | BoolNode
    | NumberNode
    | StringNode
    | CommandNode
    | PipeNode
    | ActionNode
    | BranchNode
    | BreakNode
    | ContinueNode
    | TemplateNode
    | EndNode
    | ElseNode
)

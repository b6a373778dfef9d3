"""The parser of Go's ``text/template/parse``: templates into trees, with Go's errors.

The structure follows Go's recursive descent one function for one function, the
three-token lookahead included, so the same text fails with the same message on the same
line. Only the built-in functions exist (Bacalhau adds none), so any other identifier is
``function "x" not defined`` at parse time, as in Go.

One bound is ours: nesting (control structures, ``define``/``block`` bodies and
parentheses together) stops at :data:`MAX_NESTING`, where Go allows ten thousand
parentheses and unbounded blocks; Python's stack is far smaller than Go's, and no job file
needs more.
"""

from __future__ import annotations

from dataclasses import dataclass

from bacalhau.models._gotemplate._funcs import SIGNATURES
from bacalhau.models._gotemplate._lex import Item, ItemType, Lexer
from bacalhau.models._gotemplate._literals import LiteralError, parse_number, unquote
from bacalhau.models._gotemplate._nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
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
from bacalhau.models._gotemplate._strconv import quote

__all__ = ["BUILTINS", "MAX_NESTING", "ParseError", "Tree", "parse"]

#: The functions every template has (``text/template``'s builtins; Bacalhau adds none).
BUILTINS = frozenset(SIGNATURES)
#: Deepest nesting of actions, bodies and parentheses a template may have (ours; see above).
MAX_NESTING = 100


class ParseError(Exception):
    """A template Go would not parse: Go's message, its line, and where to point."""

    def __init__(self, message: str, *, line: int, pos: int, open_pos: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.pos = pos  # the token at fault
        self.open_pos = open_pos  # the innermost unfinished control action, if any


@dataclass(slots=True)
class _Shared:
    # State one parse shares between the main tree and its define/block trees.
    lexer: Lexer
    trees: dict[str, Tree]
    nesting: int = 0
    open_actions: list[int] | None = None


_NO_ITEM = Item(ItemType.EOF, 0, "", 0)
_OPERAND_START = frozenset(
    {
        ItemType.BOOL,
        ItemType.CHAR_CONSTANT,
        ItemType.COMPLEX,
        ItemType.DOT,
        ItemType.FIELD,
        ItemType.IDENTIFIER,
        ItemType.NUMBER,
        ItemType.NIL,
        ItemType.RAW_STRING,
        ItemType.STRING,
        ItemType.VARIABLE,
        ItemType.LEFT_PAREN,
    }
)


class Tree:
    """One named template: the main one (named ``""``, as Bacalhau names it) or a
    ``define``/``block``."""

    def __init__(self, name: str, shared: _Shared) -> None:
        self.name = name
        self.root = ListNode(0)
        self._shared = shared
        self._token = [_NO_ITEM, _NO_ITEM, _NO_ITEM]
        self._peek_count = 0
        self._vars = ["$"]
        self._range_depth = 0
        self._action_line = 0

    # -- tokens ---------------------------------------------------------------------------

    def _next(self) -> Item:
        if self._peek_count > 0:
            self._peek_count -= 1
        else:
            self._token[0] = self._shared.lexer.next_item()
        return self._token[self._peek_count]

    def _backup(self) -> None:
        self._peek_count += 1

    def _backup2(self, t1: Item) -> None:
        self._token[1] = t1
        self._peek_count = 2

    def _backup3(self, t2: Item, t1: Item) -> None:
        self._token[1] = t1
        self._token[2] = t2
        self._peek_count = 3

    def _peek(self) -> Item:
        if self._peek_count > 0:
            return self._token[self._peek_count - 1]
        self._peek_count = 1
        self._token[0] = self._shared.lexer.next_item()
        return self._token[0]

    def _next_non_space(self) -> Item:
        while True:
            token = self._next()
            if token.typ != ItemType.SPACE:
                return token

    def _peek_non_space(self) -> Item:
        token = self._next_non_space()
        self._backup()
        return token

    # -- errors ---------------------------------------------------------------------------

    def _errorf(self, message: str, *, at: int | None = None) -> ParseError:
        # Go reports the line of the last token read; `at` points the message elsewhere.
        opened = self._shared.open_actions
        return ParseError(
            message,
            line=self._token[0].line,
            pos=self._token[0].pos if at is None else at,
            open_pos=opened[-1] if opened else None,
        )

    def _expect(self, expected: ItemType, context: str) -> Item:
        token = self._next_non_space()
        if token.typ != expected:
            raise self._unexpected(token, context)
        return token

    def _unexpected(self, token: Item, context: str) -> ParseError:
        if token.typ == ItemType.ERROR:
            extra = ""
            if self._action_line not in (0, token.line):
                extra = f" in action started at line {self._action_line}"
                if token.val.endswith(" action"):
                    extra = extra[len(" in action") :]  # not "action in action"
            return self._errorf(token.val + extra)
        return self._errorf(f"unexpected {token.describe()} in {context}")

    def _enter(self, what: str) -> None:
        self._shared.nesting += 1
        if self._shared.nesting > MAX_NESTING:
            raise self._errorf(f"{what} nested more than {MAX_NESTING} deep")

    def _leave(self) -> None:
        self._shared.nesting -= 1

    # -- structure ------------------------------------------------------------------------

    def parse_main(self) -> None:
        """Parse the whole text as the main template, collecting ``define``s on the way."""
        self.root = ListNode(self._peek().pos)
        while self._peek().typ != ItemType.EOF:
            if self._peek().typ == ItemType.LEFT_DELIM:
                delim = self._next()
                if self._next_non_space().typ == ItemType.DEFINE:
                    definition = Tree("definition", self._shared)
                    definition._parse_definition(delim.pos)
                    continue
                self._backup2(delim)
            n = self._text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                raise self._errorf(f"unexpected {n.string()}")
            self.root.nodes.append(n)
        self._add()

    def _parse_definition(self, delim_pos: int) -> None:
        context = "define clause"
        self._open(delim_pos)
        name = self._next_non_space()
        if name.typ not in (ItemType.STRING, ItemType.RAW_STRING):
            raise self._unexpected(name, context)
        self.name = self._unquote(name.val)
        self._expect(ItemType.RIGHT_DELIM, context)
        self._enter("define")
        self.root, end = self._item_list()
        self._leave()
        if not isinstance(end, EndNode):
            raise self._errorf(f"unexpected {end.string()} in {context}")
        self._add()
        self._close()

    def _open(self, pos: int) -> None:
        if self._shared.open_actions is None:
            self._shared.open_actions = []
        self._shared.open_actions.append(pos)

    def _close(self) -> None:
        assert self._shared.open_actions
        self._shared.open_actions.pop()

    def _add(self) -> None:
        # Go's Tree.add: a second non-empty definition of a name is an error; an empty one
        # never replaces a full one.
        trees = self._shared.trees
        existing = trees.get(self.name)
        if existing is None or is_empty_tree(existing.root):
            trees[self.name] = self
            return
        if not is_empty_tree(self.root):
            opened = self._shared.open_actions  # the define or block being added, if any
            raise self._errorf(
                f"template: multiple definition of template {quote(self.name)}",
                at=opened[-1] if opened else None,
            )

    def _item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self._peek_non_space().pos)
        while self._peek_non_space().typ != ItemType.EOF:
            n = self._text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                return lst, n
            lst.nodes.append(n)
        raise self._errorf("unexpected EOF")

    def _text_or_action(self) -> Node:
        # Go's textOrAction and action in one function: a frame less per nesting level.
        token = self._next_non_space()
        if token.typ == ItemType.TEXT:
            return TextNode(token.pos, token.val)
        if token.typ != ItemType.LEFT_DELIM:
            raise self._unexpected(token, "input")
        delim_pos = token.pos
        self._action_line = token.line
        try:
            token = self._next_non_space()
            typ = token.typ
            if typ == ItemType.BLOCK:
                return self._block_control(delim_pos)
            if typ in (ItemType.BREAK, ItemType.CONTINUE):
                word = "break" if typ == ItemType.BREAK else "continue"
                after = self._next_non_space()
                if after.typ != ItemType.RIGHT_DELIM:
                    raise self._unexpected(after, "{{" + word + "}}")
                if self._range_depth == 0:
                    raise self._errorf("{{" + word + "}} outside {{range}}")
                cls = BreakNode if typ == ItemType.BREAK else ContinueNode
                return cls(token.pos, token.line)
            if typ == ItemType.ELSE:
                return self._else_control()
            if typ == ItemType.END:
                return EndNode(self._expect(ItemType.RIGHT_DELIM, "end").pos)
            if typ in (ItemType.IF, ItemType.RANGE, ItemType.WITH):
                return self._parse_control(token.val, delim_pos)
            if typ == ItemType.TEMPLATE:
                return self._template_control()
            self._backup()
            first = self._peek()
            pipe = self._pipeline("command", ItemType.RIGHT_DELIM)
            return ActionNode(first.pos, first.line, pipe)
        finally:
            self._action_line = 0

    def _parse_control(self, context: str, delim_pos: int | None) -> BranchNode:
        # delim_pos is None for the "if" of "else if", which shares its opener's {{end}}.
        if delim_pos is not None:
            self._open(delim_pos)
        self._enter(context if delim_pos is not None else "else " + context)
        mark = len(self._vars)
        try:
            pipe = self._pipeline(context, ItemType.RIGHT_DELIM)
            if context == "range":
                self._range_depth += 1
            lst, nxt = self._item_list()
            if context == "range":
                self._range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(nxt, ElseNode):
                if context in ("if", "with") and self._peek().typ == (
                    ItemType.IF if context == "if" else ItemType.WITH
                ):
                    # "else if"/"else with": one nested control as the whole else list,
                    # ended by the same {{end}}.
                    kw = self._next()
                    else_list = ListNode(nxt.pos)
                    else_list.nodes.append(self._parse_control(kw.val, None))
                else:
                    else_list, nxt = self._item_list()
                    if not isinstance(nxt, EndNode):
                        raise self._errorf(f"expected end; found {nxt.string()}")
            return BranchNode(context, pipe.pos, pipe.line, pipe, lst, else_list)
        finally:
            del self._vars[mark:]
            self._leave()
            if delim_pos is not None:
                self._close()

    def _else_control(self) -> ElseNode:
        peek = self._peek_non_space()
        if peek.typ in (ItemType.IF, ItemType.WITH):
            return ElseNode(peek.pos, peek.line)
        token = self._expect(ItemType.RIGHT_DELIM, "else")
        return ElseNode(token.pos, token.line)

    def _block_control(self, delim_pos: int) -> TemplateNode:
        context = "block clause"
        token = self._next_non_space()
        name = self._template_name(token, context)
        pipe = self._pipeline(context, ItemType.RIGHT_DELIM)
        block = Tree(name, self._shared)
        self._open(delim_pos)
        self._enter("block")
        try:
            block.root, end = block._item_list()
        finally:
            self._leave()
        if not isinstance(end, EndNode):
            raise self._errorf(f"unexpected {end.string()} in {context}")
        block._add()
        self._close()
        return TemplateNode(token.pos, token.line, name, pipe)

    def _template_control(self) -> TemplateNode:
        context = "template clause"
        token = self._next_non_space()
        name = self._template_name(token, context)
        pipe: PipeNode | None = None
        if self._next_non_space().typ != ItemType.RIGHT_DELIM:
            self._backup()
            pipe = self._pipeline(context, ItemType.RIGHT_DELIM)
        return TemplateNode(token.pos, token.line, name, pipe)

    def _template_name(self, token: Item, context: str) -> str:
        if token.typ in (ItemType.STRING, ItemType.RAW_STRING):
            return self._unquote(token.val)
        raise self._unexpected(token, context)

    def _unquote(self, quoted: str) -> str:
        try:
            return unquote(quoted)
        except LiteralError as e:
            raise self._errorf(str(e)) from None

    # -- pipelines ------------------------------------------------------------------------

    def _pipeline(self, context: str, end: ItemType) -> PipeNode:
        token = self._peek_non_space()
        pipe = PipeNode(token.pos, token.line)
        self._declarations(pipe, context)
        while True:
            token = self._next_non_space()
            if token.typ == end:
                self._check_pipeline(pipe, context)
                return pipe
            if token.typ in _OPERAND_START:
                self._backup()
                pipe.cmds.append(self._command())
            else:
                raise self._unexpected(token, context)

    def _declarations(self, pipe: PipeNode, context: str) -> None:
        while True:
            v = self._peek_non_space()
            if v.typ != ItemType.VARIABLE:
                return
            self._next()
            after_variable = self._peek()
            nxt = self._peek_non_space()
            if nxt.typ in (ItemType.ASSIGN, ItemType.DECLARE):
                pipe.is_assign = nxt.typ == ItemType.ASSIGN
                self._next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val.split(".")))
                self._vars.append(v.val)
                return
            if nxt.typ == ItemType.CHAR and nxt.val == ",":
                self._next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val.split(".")))
                self._vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self._peek_non_space().typ in (
                        ItemType.VARIABLE,
                        ItemType.RIGHT_DELIM,
                        ItemType.RIGHT_PAREN,
                    ):
                        continue
                    raise self._errorf("range can only initialize variables")
                raise self._errorf(f"too many declarations in {context}")
            if after_variable.typ == ItemType.SPACE:
                self._backup3(v, after_variable)
            else:
                self._backup2(v)
            return

    def _check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self._errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                raise self._errorf(f"non executable command in pipeline stage {i + 2}")

    def _command(self) -> CommandNode:
        cmd = CommandNode(self._peek_non_space().pos)
        while True:
            self._peek_non_space()  # skip leading spaces
            operand = self._operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self._next()
            if token.typ == ItemType.SPACE:
                continue
            if token.typ in (ItemType.RIGHT_DELIM, ItemType.RIGHT_PAREN):
                self._backup()
            elif token.typ != ItemType.PIPE:
                raise self._unexpected(token, "operand")
            break
        if not cmd.args:
            raise self._errorf("empty command")
        return cmd

    def _operand(self) -> Node | None:
        node = self._term()
        if node is None:
            return None
        if self._peek().typ == ItemType.FIELD:
            chain = ChainNode(self._peek().pos, node)
            while self._peek().typ == ItemType.FIELD:
                chain.fields.append(self._next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                raise self._errorf(f"unexpected . after term {quote(node.string())}")
            return chain
        return node

    def _term(self) -> Node | None:
        token = self._next_non_space()
        typ = token.typ
        if typ == ItemType.IDENTIFIER:
            if token.val not in BUILTINS:
                raise self._errorf(f"function {quote(token.val)} not defined")
            return IdentifierNode(token.pos, token.val)
        if typ == ItemType.DOT:
            return DotNode(token.pos)
        if typ == ItemType.NIL:
            return NilNode(token.pos)
        if typ == ItemType.VARIABLE:
            return self._use_var(token.pos, token.val)
        if typ == ItemType.FIELD:
            return FieldNode(token.pos, token.val[1:].split("."))
        if typ == ItemType.BOOL:
            return BoolNode(token.pos, token.val == "true")
        if typ in (ItemType.CHAR_CONSTANT, ItemType.COMPLEX, ItemType.NUMBER):
            try:
                number = parse_number(
                    token.val,
                    char=typ == ItemType.CHAR_CONSTANT,
                    complex_=typ == ItemType.COMPLEX,
                )
            except LiteralError as e:
                raise self._errorf(str(e)) from None
            return NumberNode(token.pos, number)
        if typ == ItemType.LEFT_PAREN:
            self._enter("parenthesized pipeline")
            try:
                return self._pipeline("parenthesized pipeline", ItemType.RIGHT_PAREN)
            finally:
                self._leave()
        if typ in (ItemType.STRING, ItemType.RAW_STRING):
            return StringNode(token.pos, token.val, self._unquote(token.val))
        self._backup()
        return None

    def _use_var(self, pos: int, name: str) -> VariableNode:
        v = VariableNode(pos, name.split("."))
        if v.ident[0] in self._vars:
            return v
        raise self._errorf(f"undefined variable {quote(v.ident[0])}")


_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)


def is_empty_tree(node: Node) -> bool:
    """Go's ``parse.IsEmptyTree``: only white-space text (Go's ``unicode.IsSpace``)."""
    if isinstance(node, ListNode):
        return all(is_empty_tree(n) for n in node.nodes)
    if isinstance(node, TextNode):
        return all(c in _GO_SPACE for c in node.text)
    return False


def parse(text: str) -> dict[str, Tree]:
    """Every template ``text`` defines, by name; the main one is ``""``.

    Raises :class:`ParseError` for anything Go's parser refuses.
    """
    shared = _Shared(Lexer(text), {})
    Tree("", shared).parse_main()
    return shared.trees

"""Turn a docstring's plain-text update rule into LaTeX, or leave it alone.

gradchain's docstrings write each update rule once, as a literal block of assignments::

    m_t = b1 * m_{t-1} + (1 - b1) * g_t
    u_t = m_t / (sqrt(v_t + eps_root) + eps)       (Adam)

`to_latex` converts such a block into an ``aligned`` LaTeX environment (one row per line,
aligned on the ``=``). It is deliberately conservative: every line must be ``lhs = rhs``
built only from names, numbers, the operators ``+ - * / ** < > <= >= == !=``, calls,
indexing, parentheses and ``|x|``, optionally followed by a parenthesised comment set off
by two or more spaces. Anything else (prose, ``for``/``if``, ``@``, attribute access, two
names side by side, unbalanced brackets) returns ``None`` and the block stays as written,
so a conversion can never change what a formula says: it only changes how it is typeset.
"""

from __future__ import annotations

import re

GREEK = {
    "alpha": r"\alpha",
    "beta": r"\beta",
    "gamma": r"\gamma",
    "delta": r"\delta",
    "epsilon": r"\epsilon",
    "eps": r"\epsilon",
    "zeta": r"\zeta",
    "eta": r"\eta",
    "theta": r"\theta",
    "kappa": r"\kappa",
    "lambda": r"\lambda",
    "lam": r"\lambda",
    "mu": r"\mu",
    "nu": r"\nu",
    "xi": r"\xi",
    "rho": r"\rho",
    "sigma": r"\sigma",
    "tau": r"\tau",
    "phi": r"\phi",
    "psi": r"\psi",
    "omega": r"\omega",
    "pi": r"\pi",
    "Delta": r"\Delta",
    "Sigma": r"\Sigma",
    "Omega": r"\Omega",
}
# functions with a LaTeX operator of their own; every other call is \operatorname{name}
FUNCTIONS = {
    "max": r"\max",
    "min": r"\min",
    "exp": r"\exp",
    "log": r"\log",
    "tanh": r"\tanh",
    "sin": r"\sin",
    "cos": r"\cos",
}
KEYWORDS = {"if", "else", "for", "in", "and", "or", "not", "where", "is", "while", "return", "lambda"}
BINARY = {"+": "+", "-": "-", "*": r"\cdot", "/": "/", "<": "<", ">": ">", "<=": r"\le", ">=": r"\ge"}
BINARY.update({"==": "=", "!=": r"\ne", ",": ",\\,"})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?(?:e[-+]?\d+)?)
  | (?P<name>[A-Za-z][A-Za-z0-9]*~?'*(?:_[A-Za-z0-9]+)*(?:_\{[A-Za-z0-9+\-*, ]+\})?'*)
  | (?P<sub>_(?:\{[A-Za-z0-9+\-, ]+\}|[A-Za-z0-9]+))
  | (?P<op>\*\*|<=|>=|==|!=|\|\||[-+*/<>(),\[\]|])
    """,
    re.VERBOSE,
)
_COMMENT = re.compile(
    r"^(?P<expr>.*?\S)\s{2,}(?:\((?P<paren>.*)\)|#\s*(?P<hash>.*)|(?P<cond>(?:if|for|where)\s.*|otherwise))\s*$"
)
BIG_OPERATORS = {
    "sum": r"\sum",
    "prod": r"\prod",
    "max": r"\max",
    "min": r"\min",
    "mean": r"\operatorname{mean}",
}
BIG_OPERATORS.update({"argmin": r"\operatorname{argmin}", "argmax": r"\operatorname{argmax}"})


class _Reject(Exception):
    """The block is not a formula this converter is sure about."""


def _tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _Reject(f"unexpected character {text[pos]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def _word(word):
    """A bare name: Greek letters, ``b1`` -> ``b_1``, longer words upright."""
    if word in KEYWORDS:
        raise _Reject(f"keyword {word!r}")
    if word in GREEK:
        return GREEK[word]
    m = re.fullmatch(r"([A-Za-z])(\d+)", word)
    if m:
        return f"{m.group(1)}_{{{m.group(2)}}}"
    if len(word) == 1:
        return word
    return rf"\mathrm{{{word}}}"


def _subscript(part):
    if part.startswith("{"):
        inner = part[1:-1]
        return "".join(_word(w) if w.isalpha() and len(w) > 1 else w for w in re.split(r"([A-Za-z]+)", inner))
    return part if len(part) == 1 or part.isdigit() else rf"\text{{{part}}}"


ACCENTS = {"hat": r"\hat", "bar": r"\bar", "tilde": r"\tilde"}


def _is_index(part):
    """A subscript that indexes (``t``, ``1``, ``{t-1}``), not a word that names."""
    return part.startswith("{") or len(part) == 1 or part.isdigit()


def _name(token):
    """``m'_{t-1}``, ``eps_root``, ``b1``, ``d_hat``, ``weight_decay`` -> LaTeX."""
    primes = ""
    while token.endswith("'"):
        primes, token = primes + "'", token[:-1]
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)(~?)('*)((?:_[A-Za-z0-9]+)*)(_\{[^{}]*\})?", token)
    if m is None:
        raise _Reject(f"name {token!r}")
    base, tilde, inner_primes, subs, brace = m.groups()
    parts = [p for p in subs.split("_") if p]
    if brace:
        parts.append(brace[1:])
    index = []
    while parts and _is_index(parts[-1]):
        index.insert(0, parts.pop())
    accent = None
    if parts and parts[-1] in ACCENTS:
        accent = ACCENTS[parts.pop()]
    short = base in GREEK or len(base) == 1
    if parts and not (short and len(parts) == 1):
        # a multi-word name: one upright word, underscores kept
        out = r"\mathrm{" + r"\_".join([base, *parts]) + "}"
    else:
        digits = re.fullmatch(r"([A-Za-z])(\d+)", base)
        if digits and (index or parts):
            out = rf"\mathrm{{{base}}}"  # l1_t: no double subscript
        else:
            out = _word(base)
        if parts:
            index.insert(0, parts[0])
    if accent:
        out = rf"{accent}{{{out}}}"
    if tilde:
        out = rf"\tilde{{{out}}}"
    out += inner_primes + primes
    if index:
        out += "_{" + ",".join(_subscript(p) for p in index) + "}"
    return out


def _number(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)e([-+]?\d+)", text)
    if not m:
        return text
    mantissa, exponent = m.group(1), str(int(m.group(2)))
    return rf"10^{{{exponent}}}" if mantissa == "1" else rf"{mantissa} \times 10^{{{exponent}}}"


class _Parser:
    def __init__(self, tokens):
        self.toks = tokens
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else ("", "")

    def take(self, value=None):
        kind, text = self.peek()
        if not kind or (value is not None and text != value):
            raise _Reject(f"expected {value!r}, got {text!r}")
        self.i += 1
        return kind, text

    def expr(self, closers=()):
        """operand (binary operand)*, stopping before a closer."""
        out = [self.operand()]
        while True:
            kind, text = self.peek()
            if not kind or text in closers:
                return " ".join(out)
            if kind != "op" or text not in BINARY:
                raise _Reject(f"two operands side by side at {text!r}")
            self.take()
            out.append(BINARY[text])
            out.append(self.operand())

    def operand(self):
        text = self.peek()[1]
        if text in ("-", "+"):
            self.take()
            return text + self.operand()
        base = self.atom()
        if self.peek()[1] == "**":
            self.take()
            sign = ""
            if self.peek()[1] == "-":
                self.take()
                sign = "-"
            exponent = self.atom(strip_parens=True)
            if "'" in base:  # a primed name already carries a superscript
                base = f"{{{base}}}"
            base = f"{base}^{{{sign}{exponent}}}"
        return base

    def atom(self, strip_parens=False):
        kind, text = self.take()
        if kind == "num":
            if text == "1" and self.peek()[1] == "[":  # an indicator, 1[condition]
                self.take("[")
                cond = self.expr(closers=("]",))
                self.take("]")
                return rf"\mathbb{{1}}[{cond}]"
            return _number(text)
        if kind == "name":
            big = re.fullmatch(r"(sum|prod|max|min|mean|argmin|argmax)_(\{[^{}]*\}|[A-Za-z0-9]+)", text)
            if big:
                sub = big.group(2)
                sub = sub[1:-1] if sub.startswith("{") else sub
                return rf"{BIG_OPERATORS[big.group(1)]}_{{{_subscript('{' + sub + '}')}}} " + self.operand()
            if self.peek()[1] == "(":
                self.take("(")
                args = self.expr(closers=(")",)) if self.peek()[1] != ")" else ""
                self.take(")")
                if text == "sqrt":
                    return rf"\sqrt{{{args}}}"
                if text == "abs":
                    return rf"\lvert {args} \rvert"
                if text in FUNCTIONS:
                    return rf"{FUNCTIONS[text]}({args})"
                if text in KEYWORDS:
                    raise _Reject(text)
                if text.rstrip("'") in GREEK or re.fullmatch(r"[A-Za-z]\d*'*", text):  # v(t), b3(t), phi'(0)
                    return rf"{_name(text)}({args})"
                escaped = text.replace("_", r"\_")
                return rf"\operatorname{{{escaped}}}({args})"
            out = _name(text)
            while self.peek()[1] == "[":
                self.take("[")
                index = self.expr(closers=("]",))
                self.take("]")
                out += f"[{index}]"
            return out
        if text == "(":
            inner = self.expr(closers=(")",))
            self.take(")")
            return inner if strip_parens else rf"\left({inner}\right)"
        if text == "|":
            inner = self.expr(closers=("|",))
            self.take("|")
            return rf"\lvert {inner} \rvert"
        if text == "||":
            inner = self.expr(closers=("||",))
            self.take("||")
            out = rf"\lVert {inner} \rVert"
            if self.peek()[0] == "sub":
                sub = self.take()[1][1:]
                out += "_{" + _subscript(sub) + "}"
            return out
        if text == "<":  # an inner product <a, b>
            inner = self.expr(closers=(">",))
            self.take(">")
            return rf"\langle {inner} \rangle"
        raise _Reject(f"unexpected {text!r}")


def _text(raw: str) -> str:
    r"""Plain words inside \text{}, with TeX's special characters escaped."""
    table: dict[str, str] = {
        "\\": r"\textbackslash{}",
        "{": r"\{",
        "}": r"\}",
        "_": r"\_",
        "^": r"\textasciicircum{}",
    }
    table.update({"#": r"\#", "$": r"\$", "%": r"\%", "&": r"\&", "~": r"\textasciitilde{}"})
    return rf"\text{{{''.join(table.get(c, c) for c in raw)}}}"


def _expression(text):
    parser = _Parser(_tokens(text))
    out = parser.expr()
    if parser.i != len(parser.toks):
        raise _Reject("trailing tokens")
    return out


def _line(line):
    note = ""
    m = _COMMENT.match(line)
    if m:
        line = m.group("expr")
        if m.group("paren") is not None:
            note = rf" \qquad {_text('(' + m.group('paren').strip() + ')')}"
        elif m.group("hash") is not None:
            note = rf" \qquad {_text(m.group('hash').strip())}"
        else:
            cond = m.group("cond").strip()
            word, _, rest = cond.partition(" ")
            try:
                rendered = rf"{_text(word + ' ')} {_expression(rest)}" if rest else _text(word)
            except _Reject:
                rendered = _text(cond)
            note = rf" \qquad {rendered}"
    if line.count("=") - line.count("==") - line.count("<=") - line.count(">=") - line.count("!=") != 1:
        raise _Reject("not one assignment")
    lhs, rhs = re.split(r"(?<![<>=!])=(?!=)", line, maxsplit=1)
    return f"{_expression(lhs)} &= {_expression(rhs)}{note}"


def to_latex(block: str) -> str | None:
    """The LaTeX of a literal block of assignments, or ``None`` when unsure."""
    lines = [ln.rstrip() for ln in block.strip("\n").splitlines()]
    if not lines or any(not ln.strip() for ln in lines):
        return None
    indent = min(len(ln) - len(ln.lstrip()) for ln in lines)
    if any(len(ln) - len(ln.lstrip()) != indent for ln in lines):
        return None  # continuation lines: leave as written
    try:
        rows = [_line(ln.strip()) for ln in lines]
    except (_Reject, RecursionError):
        return None
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

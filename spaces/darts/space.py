"""The DARTS cell space (Liu et al., ICLR 2019), as used for CIFAR-10.

Two cell types, normal and reduction. A cell has inputs 0 and 1 (the outputs of
the two previous cells) and intermediate nodes 2..5; node n sums two ops, each
applied to a different earlier node (0..n-1). The cell outputs nodes 2..5
concatenated (concat = [2, 3, 4, 5], not searched).

Encoding (genes), per cell (normal, then reduce), per node 2..5:
    pair  -- which two distinct inputs, an index into combinations(range(n), 2);
             node 2 has only (0, 1), so that gene has one choice
    op_lo -- the op on the lower-numbered input
    op_hi -- the op on the higher-numbered input
Design choices, and why:
  * inputs are distinct: DARTS derives a genotype by keeping each node's two
    strongest edges of its DAG, and each (input -> node) edge exists once, so the
    same input twice is not in the DARTS space;
  * pairs are unordered: the node sums its two terms, so ('a', 0), ('b', 1) and
    ('b', 1), ('a', 0) are one network. Encoding the unordered pair makes every
    gene vector a valid, distinct network (sample / mutate / crossover need no
    repair) and makes the size exact: per cell (1 * 3 * 6 * 10) * 7^8, squared
    = 1,076,746,950,455,072,400 ~ 1.1e18, the "~10^18" of the DARTS paper.
`to_string` prints the canonical genotype (lower input first within a node);
`from_string` accepts either order, so published genotypes parse as written.

Ops: the DARTS primitives without 'none' (a derived genotype never keeps it).
"""
from __future__ import annotations

import ast
import itertools
import math
from typing import Any, NamedTuple

from ..base import Arch, ArchitectureError, SearchSpace

DARTS_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
             "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
CELL_TYPES = ("normal", "reduce")
NODES = (2, 3, 4, 5)                     # intermediate nodes; 0 and 1 are the cell inputs
CONCAT = list(NODES)
# Unordered distinct input pairs per node, in lexicographic order (the `pair` gene).
PAIRS: dict[int, tuple[tuple[int, int], ...]] = {
    n: tuple(itertools.combinations(range(n), 2)) for n in NODES}
GENES_PER_NODE = 3


class Genotype(NamedTuple):
    """DARTS's genotype: per cell type, (op, input) twice per node, nodes 2..5 in order."""

    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]

    def __str__(self) -> str:
        return (f"Genotype(normal={self.normal!r}, normal_concat={self.normal_concat!r}, "
                f"reduce={self.reduce!r}, reduce_concat={self.reduce_concat!r})")


def _literal(node: ast.expr, field: str) -> Any:
    """A Python literal, or range(a, b) as DARTS's own genotypes write concat; no eval."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords and 1 <= len(node.args) <= 2):
        try:  # kept a range: range(10**10) listed would fill the memory before the check
            return range(*(ast.literal_eval(a) for a in node.args))
        except (ValueError, TypeError):
            pass
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ArchitectureError(f"darts: {field} = {ast.unparse(node)!r} is not a literal "
                                "(lists of ('op', input) tuples and integer lists only)") from None


class DartsSpace(SearchSpace):
    """The DARTS space: a normal and a reduction cell, each of 4 nodes summing two ops
    on distinct earlier nodes (encoding in the module's docstring), in the DARTS
    CIFAR network."""

    name = "darts"
    task_kind = "classification"
    input_size = (32, 32)

    # ---- encoding ----------------------------------------------------------------
    def gene_choices(self) -> tuple[int, ...]:
        cell = tuple(c for n in NODES for c in (len(PAIRS[n]), len(DARTS_OPS), len(DARTS_OPS)))
        return cell * len(CELL_TYPES)

    def cells(self, arch: Arch) -> dict[str, list[tuple[str, int, str, int]]]:
        """{cell type: per node (op_lo, input_lo, op_hi, input_hi)}."""
        genes = self.check(arch).genes
        out: dict[str, list[tuple[str, int, str, int]]] = {}
        per_cell = GENES_PER_NODE * len(NODES)
        for c, kind in enumerate(CELL_TYPES):
            nodes = []
            for k, n in enumerate(NODES):
                pair, op_lo, op_hi = genes[c * per_cell + k * GENES_PER_NODE:][:GENES_PER_NODE]
                i, j = PAIRS[n][pair]
                nodes.append((DARTS_OPS[op_lo], i, DARTS_OPS[op_hi], j))
            out[kind] = nodes
        return out

    def genotype(self, arch: Arch) -> Genotype:
        c = self.cells(arch)
        edges = {kind: [e for lo_op, i, hi_op, j in c[kind] for e in ((lo_op, i), (hi_op, j))]
                 for kind in CELL_TYPES}
        return Genotype(edges["normal"], list(CONCAT), edges["reduce"], list(CONCAT))

    def from_genotype(self, normal: Any, reduce: Any) -> Arch:
        genes: list[int] = []
        for kind, edges in (("normal", normal), ("reduce", reduce)):
            if not isinstance(edges, (list, tuple)) or len(edges) != 2 * len(NODES):
                raise ArchitectureError(
                    f"darts: {kind} must list {2 * len(NODES)} (op, input) pairs, two per node "
                    f"{NODES[0]}..{NODES[-1]}; got {edges!r}")
            for k, n in enumerate(NODES):
                parsed = [self._edge(kind, n, e) for e in edges[2 * k:2 * k + 2]]
                (op_a, a), (op_b, b) = parsed
                if a == b:
                    raise ArchitectureError(
                        f"darts: {kind} node {n} takes input {a} twice ({edges[2 * k]!r}, "
                        f"{edges[2 * k + 1]!r}); each node takes two distinct inputs, as DARTS derives them")
                (op_lo, lo), (op_hi, hi) = sorted(parsed, key=lambda e: e[1])
                genes += [PAIRS[n].index((lo, hi)), DARTS_OPS.index(op_lo), DARTS_OPS.index(op_hi)]
        return self.make(genes)

    @staticmethod
    def _edge(kind: str, node: int, entry: Any) -> tuple[str, int]:
        if (not isinstance(entry, (list, tuple)) or len(entry) != 2
                or not isinstance(entry[0], str) or isinstance(entry[1], bool)
                or not isinstance(entry[1], int)):
            raise ArchitectureError(f"darts: {kind} node {node} entry {entry!r} is not ('op', input)")
        op, src = entry
        if op not in DARTS_OPS:
            hint = (" ('none' is never part of a derived DARTS genotype)" if op == "none" else "")
            raise ArchitectureError(f"darts: {kind} node {node} entry {entry!r}: unknown op {op!r}; "
                                    f"expected one of {', '.join(DARTS_OPS)}{hint}")
        if not 0 <= src < node:
            raise ArchitectureError(f"darts: {kind} node {node} entry {entry!r}: input {src} is "
                                    f"out of range; node {node} takes inputs 0..{node - 1}")
        return op, src

    # ---- string form: the DARTS Genotype(...) repr -----------------------------------
    def to_string(self, arch: Arch) -> str:
        return str(self.genotype(arch))

    def from_string(self, text: str) -> Arch:
        text = text.strip()
        try:
            tree = ast.parse(text, mode="eval").body
        except SyntaxError as err:
            raise ArchitectureError(f"darts: not a Genotype(...) expression: {text!r} ({err.msg})") from None
        if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
                and tree.func.id == "Genotype"):
            raise ArchitectureError(
                f"darts: expected 'Genotype(normal=[...], normal_concat=[2, 3, 4, 5], reduce=[...], "
                f"reduce_concat=[2, 3, 4, 5])', got {text[:60]!r}")
        if len(tree.args) > len(Genotype._fields):
            raise ArchitectureError(f"darts: Genotype takes at most {len(Genotype._fields)} fields")
        fields: dict[str, Any] = {}
        for name, node in zip(Genotype._fields, tree.args):
            fields[name] = _literal(node, name)
        for kw in tree.keywords:
            if kw.arg not in Genotype._fields:
                raise ArchitectureError(f"darts: unknown Genotype field {kw.arg!r}; "
                                        f"expected {', '.join(Genotype._fields)}")
            if kw.arg in fields:
                raise ArchitectureError(f"darts: Genotype field {kw.arg!r} given twice")
            fields[kw.arg] = _literal(kw.value, kw.arg)
        missing = [f for f in Genotype._fields if f not in fields]
        if missing:
            raise ArchitectureError(f"darts: Genotype lacks {', '.join(missing)}")
        _check_concat(fields)
        return self.from_genotype(fields["normal"], fields["reduce"])

    # ---- JSON form ---------------------------------------------------------------
    def to_json(self, arch: Arch) -> dict[str, Any]:
        g = self.genotype(arch)
        return {"space": self.name, "string": str(g),
                "normal": [list(e) for e in g.normal], "reduce": [list(e) for e in g.reduce]}

    def from_json(self, data: dict[str, Any]) -> Arch:
        self.check_json_space(data)
        if "normal" in data and "reduce" in data:
            _check_concat(data)  # where given: a JSON of another cell output must not pass
            return self.from_genotype(data["normal"], data["reduce"])
        if isinstance(data.get("string"), str):
            return self.from_string(data["string"])
        raise ArchitectureError("darts: architecture JSON needs 'normal' and 'reduce' lists or a 'string'")

    # ---- models ------------------------------------------------------------------
    def model_kwargs(self, cfg: Any) -> dict[str, Any]:
        """The ModelConfig fields this space's networks take (see depthnas.models)."""
        return {"channels": cfg.channels, "layers": cfg.darts_layers,
                "num_classes": cfg.num_classes}

    def build_supernet(self, **model_kw: Any):
        from .model import DartsNet
        return DartsNet(self, arch=None, **model_kw)

    def build_fixed(self, arch: Arch, **model_kw: Any):
        from .model import DartsNet
        return DartsNet(self, arch=self.check(arch), **model_kw)

    def describe(self) -> str:
        per_cell = math.prod(self.gene_choices()[:len(self.gene_choices()) // 2])
        return (f"{self.name:12s} {self.size():>20,d} architectures  (~{self.size():.2e}; "
                f"normal + reduction cell, {per_cell:,} each: nodes 2-5 take two distinct "
                f"inputs; ops {', '.join(DARTS_OPS)})")


def _is_concat(value: Any) -> bool:
    """CONCAT as a range (compared without listing it) or a list of integers: [2.0, 3,
    4, 5] equals CONCAT in Python, but names no node."""
    if isinstance(value, range):
        return value == range(CONCAT[0], CONCAT[-1] + 1)
    return (isinstance(value, (list, tuple)) and len(value) == len(CONCAT)
            and all(type(v) is int for v in value) and list(value) == CONCAT)


def _check_concat(fields: dict[str, Any]) -> None:
    for name in ("normal_concat", "reduce_concat"):
        if name in fields and not _is_concat(fields[name]):
            raise ArchitectureError(f"darts: {name} = {fields[name]!r}; this space always "
                                    f"concatenates nodes {CONCAT} (concat is not searched)")

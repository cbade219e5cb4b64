"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020).

A cell has 4 nodes; node i (1..3) sums one op applied to every earlier node j < i,
so there are 6 edges, each choosing one of 5 ops: 5^6 = 15,625 architectures.

Encoding (genes): the op index (into EDGE_OPS) of each edge in the benchmark's
string order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.

String form is the benchmark's own, so results tables and the NAS-Bench-201 /
NATS-Bench APIs key on exactly what `to_string` prints:
    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|
"""
from __future__ import annotations

from typing import Any

from ..base import EDGE_OPS, Arch, ArchitectureError, SearchSpace

NUM_NODES = 4
# (target, source) in the benchmark's string order.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(1, NUM_NODES) for j in range(i))
EDGE_NAMES = tuple(f"{i}<-{j}" for i, j in EDGES)
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space: 6 edges of a 4-node cell, 5 ops each (15,625
    cells), in the benchmark's CIFAR macro network; strings in the benchmark's form."""

    name = "nb201"
    task_kind = "classification"
    # The paper's NAS-Bench-201 setting, tau = 5: as a landmark must differ from the
    # root in more than tau edges, it differs in all 6.
    landmark_tau = 5
    # Inputs are fixed-size classification images (the data builders produce 32x32).
    input_size = (32, 32)

    # ---- encoding ----------------------------------------------------------------
    def gene_choices(self) -> tuple[int, ...]:
        return (len(EDGE_OPS),) * len(EDGES)

    def edge_ops(self, arch: Arch) -> dict[tuple[int, int], str]:
        """{(target, source): op name} for the 6 edges."""
        return {e: EDGE_OPS[g] for e, g in zip(EDGES, self.check(arch).genes)}

    def from_edge_ops(self, ops: dict[tuple[int, int], str]) -> Arch:
        missing = [f"{i}<-{j}" for i, j in EDGES if (i, j) not in ops]
        if missing:
            raise ArchitectureError(f"{self.name}: missing edge(s) {', '.join(missing)}")
        genes = []
        for e in EDGES:
            if ops[e] not in EDGE_OPS:
                raise ArchitectureError(f"{self.name}: unknown op {ops[e]!r} on edge "
                                        f"{e[0]}<-{e[1]}; expected one of {', '.join(EDGE_OPS)}")
            genes.append(EDGE_OPS.index(ops[e]))
        return self.make(genes)

    # ---- string form -------------------------------------------------------------
    def to_string(self, arch: Arch) -> str:
        ops = self.edge_ops(arch)
        nodes = ["|" + "|".join(f"{ops[(i, j)]}~{j}" for j in range(i)) + "|"
                 for i in range(1, NUM_NODES)]
        return "+".join(nodes)

    def from_string(self, text: str) -> Arch:
        text = text.strip()
        parts = text.split("+")
        if len(parts) != NUM_NODES - 1:
            raise ArchitectureError(
                f"{self.name}: {text!r} has {len(parts)} node group(s) separated by '+', "
                f"expected {NUM_NODES - 1}, e.g. {EXAMPLE!r}")
        ops: dict[tuple[int, int], str] = {}
        for i, part in enumerate(parts, start=1):
            part = part.strip()
            if not (part.startswith("|") and part.endswith("|")):
                raise ArchitectureError(f"{self.name}: node {i} group {part!r} must start and end with '|'")
            tokens = [t.strip() for t in part[1:-1].split("|")]
            if "" in tokens:  # a doubled or stray '|' is a typo, not a separator to skip
                raise ArchitectureError(f"{self.name}: node {i} group {part!r} has an empty edge "
                                        "between two '|'")
            if len(tokens) != i:
                raise ArchitectureError(
                    f"{self.name}: node {i} group {part!r} has {len(tokens)} edge(s), expected {i} "
                    f"(one from each of nodes {', '.join(map(str, range(i)))})")
            for token in tokens:
                op, tilde, src = (s.strip() for s in token.partition("~"))
                if not tilde or src not in {str(k) for k in range(NUM_NODES)}:
                    raise ArchitectureError(
                        f"{self.name}: token {token!r} of node {i} is not 'op~input'")
                j = int(src)
                if j >= i:
                    raise ArchitectureError(
                        f"{self.name}: token {token!r}: node {i} can only take inputs 0..{i - 1}")
                if (i, j) in ops:
                    raise ArchitectureError(
                        f"{self.name}: token {token!r}: node {i} lists input {j} twice")
                if op not in EDGE_OPS:
                    raise ArchitectureError(
                        f"{self.name}: token {token!r}: unknown op {op!r}; expected one of "
                        f"{', '.join(EDGE_OPS)}")
                ops[(i, j)] = op
        return self.from_edge_ops(ops)

    # ---- JSON form ---------------------------------------------------------------
    def to_json(self, arch: Arch) -> dict[str, Any]:
        ops = self.edge_ops(arch)
        return {"space": self.name, "string": self.to_string(arch),
                "edges": {f"{i}<-{j}": ops[(i, j)] for i, j in EDGES}}

    def from_json(self, data: dict[str, Any]) -> Arch:
        self.check_json_space(data)
        edges = data.get("edges")
        if isinstance(edges, dict):
            unknown = sorted(set(edges) - set(EDGE_NAMES))
            if unknown:
                raise ArchitectureError(f"{self.name}: unknown edge(s) {unknown}; expected {list(EDGE_NAMES)}")
            return self.from_edge_ops({e: str(edges[n]) for e, n in zip(EDGES, EDGE_NAMES) if n in edges})
        if isinstance(data.get("string"), str):
            return self.from_string(data["string"])
        raise ArchitectureError(f"{self.name}: architecture JSON needs an 'edges' mapping or a 'string'")

    # ---- models ------------------------------------------------------------------
    def model_kwargs(self, cfg: Any) -> dict[str, Any]:
        """The ModelConfig fields this space's networks take (see depthnas.models)."""
        return {"channels": cfg.channels, "cells_per_stage": cfg.cells_per_stage,
                "num_classes": cfg.num_classes}

    def build_supernet(self, **model_kw: Any):
        from .model import NB201Net
        return NB201Net(self, arch=None, **model_kw)

    def build_fixed(self, arch: Arch, **model_kw: Any):
        from .model import NB201Net
        return NB201Net(self, arch=self.check(arch), **model_kw)

    def ignores_input(self, arch: Arch, **model_kw: Any) -> bool:
        # Every cell has this architecture, and the network is a chain of cells (with
        # residual reduction blocks that take only the cell before): one dead cell
        # hands zeros on, and the output is the same for every image.
        ops = self.edge_ops(arch)
        reached = {0}
        for i in range(1, NUM_NODES):
            if any(j in reached and ops[(i, j)] != "none" for j in range(i)):
                reached.add(i)
        return NUM_NODES - 1 not in reached

    def describe(self) -> str:
        return (f"{self.name:12s} {self.size():>20,d} architectures  (NAS-Bench-201 cell: "
                f"edges {' '.join(EDGE_NAMES)}; ops {', '.join(EDGE_OPS)})")

"""The MiDaS fusion-block search space (paper section 5.3, Figure 4, Table 4).

Each of the four fusion blocks is a cell with nodes 0 (previous, coarser block),
1 (lateral backbone feature), 2 = e(2<-0) + e(2<-1) and 3 = e(3<-0) + e(3<-1) +
e(3<-2); the block's output is node 3 upsampled x2. V1 fixes the upsampling to
bilinear, V2 searches it. Sync spaces give all four blocks the same choices (the
blocks keep their own weights); non-sync spaces choose per block.

Encoding (genes): per block, the five edge ops in EDGES order, then in V2 the
upsampling op; sync spaces encode one block, non-sync spaces four, coarse to fine.

Dead cells: when no path joins node 3 to an input the block outputs nothing (zeros
where the head needs a tensor). They stay in the space so the counts match the paper
(3,125 ... 2.4e16). Strings that differ only in what a dead block would upsample
build one model (`function_key`); the search ranks a path cut off from the image
last (`ignores_input`); benchmarks that need every block to compute draw with
`sample_live` or test `has_dead_cell`. `running_blocks` says which ops a path runs:
none on nodes that are empty, none whose result nothing reads.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..base import EDGE_OPS, Arch, ArchitectureError, SearchSpace

EDGES = ("2<-0", "2<-1", "3<-0", "3<-1", "3<-2")
UPSAMPLE_OPS = ("bilinear", "bicubic", "transposed_conv", "pixel_shuffle")
NUM_BLOCKS = 4
FIRST_BLOCK_INPUTS = ("duplicate", "zeros")  # what the coarsest block fuses with (REFERENCE)
MIN_FEATURES = 2  # the decoder's least width: the head halves it
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")  # local backbone weight files

# Compact one-line form: short codes; full names are accepted when parsing.
EDGE_CODES = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "c1",
              "nor_conv_3x3": "c3", "avg_pool_3x3": "ap"}
UPSAMPLE_CODES = {"bilinear": "bil", "bicubic": "bic", "transposed_conv": "tconv",
                  "pixel_shuffle": "ps"}


def _lookup(token: str, codes: dict[str, str], what: str, where: str) -> str:
    for name, code in codes.items():
        if token in (name, code):
            return name
    valid = ", ".join(f"{c} ({n})" for n, c in codes.items())
    raise ArchitectureError(f"{where}: unknown {what} {token!r}; expected one of {valid}")


@dataclass(frozen=True)
class BlockChoice:
    """The decoded choices of one fusion block."""

    edges: tuple[str, ...]  # op per edge, in EDGES order
    upsample: str

    def op(self, edge: str) -> str:
        return self.edges[EDGES.index(edge)]


def is_dead_cell(block: BlockChoice) -> bool:
    """True when node 3 receives nothing from node 0 or node 1."""
    e = dict(zip(EDGES, block.edges))
    node2_alive = e["2<-0"] != "none" or e["2<-1"] != "none"
    return (e["3<-0"] == "none" and e["3<-1"] == "none"
            and (e["3<-2"] == "none" or not node2_alive))


def running_blocks(blocks: list[BlockChoice]) -> list[BlockChoice]:
    """The blocks as the network runs them: every edge whose op would see nothing,
    or whose result nothing reads, set to none.

    An edge out of a node no input reaches (node 2 when 2<-0 and 2<-1 are none;
    node 0 after a block that outputs nothing) would run its op on zeros, and a conv
    edge would add its BatchNorm's shift, a constant no input path explains. An edge
    into a node nothing reads (node 2 when 3<-2 is none; every edge of a block whose
    output the next block does not read) is work thrown away. A fixed model builds
    only the ops left, so its parameters are the ones that run."""
    # the coarsest block's node 0 holds the encoder feature (or zeros, by choice)
    edges = _fed_edges(blocks, first_node_0=True)
    read_3 = True  # the finest block's node 3 feeds the head
    for e in reversed(edges):  # fine to coarse: drop edges into nodes nothing reads
        for edge in EDGES:
            if not read_3 or (edge[0] == "2" and e["3<-2"] == "none"):
                e[edge] = "none"
        read_3 = e["3<-0"] != "none" or e["2<-0"] != "none"  # this block reads node 0
    return [BlockChoice(tuple(e[edge] for edge in EDGES), b.upsample) for e, b in zip(edges, blocks)]


def _fed_edges(blocks: list[BlockChoice], first_node_0: bool) -> list[dict[str, str]]:
    """Per block, coarse to fine, its edges with those out of an empty node set to
    none; `first_node_0`: whether the coarsest block's node 0 holds something."""
    edges = [dict(zip(EDGES, b.edges)) for b in blocks]
    has_0 = first_node_0
    for e in edges:
        has = {"0": has_0, "1": True}
        for target in "23":
            for edge in EDGES:
                if edge[0] == target and not has[edge[-1]]:
                    e[edge] = "none"
            has[target] = any(e[edge] != "none" for edge in EDGES if edge[0] == target)
        has_0 = has["3"]
    return edges


def has_output(block: BlockChoice) -> bool:
    """True when some edge into node 3 runs (for a block of `running_blocks`)."""
    return any(op != "none" for edge, op in zip(EDGES, block.edges) if edge[0] == "3")


class DepthSpace(SearchSpace):
    """The paper's MiDaS fusion-block spaces: V1 searches each block's five edge ops,
    V2 also its upsampling; sync blocks share one choice, non-sync choose their own.
    `get_space("v1-sync")` and so on; models are `DepthNet`s."""

    strings_name_space = True

    def __init__(self, version: int, sync: bool):
        if version not in (1, 2):
            raise ValueError(f"depth space version must be 1 or 2, got {version}")
        self.version = version
        self.sync = sync
        self.name = f"v{version}-{'sync' if sync else 'nonsync'}"
        self.upsample_ops = UPSAMPLE_OPS if version == 2 else ("bilinear",)
        self._block_genes = len(EDGES) + (1 if version == 2 else 0)

    # ---- encoding ----------------------------------------------------------------
    def gene_choices(self) -> tuple[int, ...]:
        block = (len(EDGE_OPS),) * len(EDGES) + ((len(UPSAMPLE_OPS),) if self.version == 2 else ())
        return block * (1 if self.sync else NUM_BLOCKS)

    def blocks(self, arch: Arch) -> list[BlockChoice]:
        """Per-block choices, coarse to fine (always four, also for sync spaces)."""
        genes = self.check(arch).genes
        n = self._block_genes
        per_block = [genes[i:i + n] for i in range(0, len(genes), n)]
        if self.sync:
            per_block = per_block * NUM_BLOCKS
        return [BlockChoice(tuple(EDGE_OPS[g] for g in b[:len(EDGES)]),
                            UPSAMPLE_OPS[b[len(EDGES)]] if self.version == 2 else "bilinear")
                for b in per_block]

    def _block_genes_of(self, block: BlockChoice) -> list[int]:
        genes = [EDGE_OPS.index(op) for op in block.edges]
        if self.version == 2:
            genes.append(UPSAMPLE_OPS.index(block.upsample))
        return genes

    def from_blocks(self, blocks: list[BlockChoice]) -> Arch:
        if len(blocks) != NUM_BLOCKS:
            raise ArchitectureError(f"{self.name}: expected {NUM_BLOCKS} blocks, got {len(blocks)}")
        if self.version == 1:
            for i, b in enumerate(blocks):
                if b.upsample != "bilinear":
                    raise ArchitectureError(
                        f"{self.name}: block {i} upsample {b.upsample!r}; V1 spaces fix "
                        "bilinear upsampling (use a v2 space to search it)")
        if self.sync:
            for i, b in enumerate(blocks[1:], start=1):
                if b != blocks[0]:
                    raise ArchitectureError(
                        f"{self.name}: block {i} differs from block 0, but a sync space "
                        "gives all blocks the same choices")
            blocks = blocks[:1]
        return self.make([g for b in blocks for g in self._block_genes_of(b)])

    # ---- string form: "v2-sync:c3,skip,none,c1,ap+bic" ------------------------------
    def to_string(self, arch: Arch) -> str:
        blocks = self.blocks(arch)[:1] if self.sync else self.blocks(arch)
        parts = []
        for b in blocks:
            s = ",".join(EDGE_CODES[op] for op in b.edges)
            if self.version == 2:
                s += "+" + UPSAMPLE_CODES[b.upsample]
            parts.append(s)
        return f"{self.name}:{'/'.join(parts)}"

    def from_string(self, text: str) -> Arch:
        space, sep, body = text.strip().partition(":")
        if not sep:
            raise ArchitectureError(
                f"architecture string {text!r} lacks the space prefix, e.g. "
                f"'{self.name}:c3,skip,none,c1,ap{'+bil' if self.version == 2 else ''}'")
        if space != self.name:
            raise ArchitectureError(
                f"architecture string is for space {space!r}, not {self.name!r}")
        parts = body.split("/")
        expected = 1 if self.sync else NUM_BLOCKS
        if len(parts) != expected:
            raise ArchitectureError(
                f"{self.name}: expected {expected} block(s) separated by '/', got {len(parts)}")
        blocks = []
        for i, part in enumerate(parts):
            where = f"{self.name} block {i}"
            edge_part, plus, up = part.partition("+")
            if self.version == 2 and not plus:
                raise ArchitectureError(f"{where}: missing '+<upsample>' (V2 searches upsampling)")
            if self.version == 1 and plus:
                raise ArchitectureError(f"{where}: V1 fixes bilinear upsampling; drop '+{up}'")
            tokens = [t.strip() for t in edge_part.split(",")]
            if len(tokens) != len(EDGES):
                raise ArchitectureError(
                    f"{where}: expected {len(EDGES)} edge ops ({', '.join(EDGES)}), got {len(tokens)}")
            edges = tuple(_lookup(t, EDGE_CODES, "edge op", f"{where} edge {e}")
                          for t, e in zip(tokens, EDGES))
            upsample = (_lookup(up.strip(), UPSAMPLE_CODES, "upsample op", where)
                        if self.version == 2 else "bilinear")
            blocks.append(BlockChoice(edges, upsample))
        return self.from_blocks(blocks * (NUM_BLOCKS if self.sync else 1))

    # ---- JSON form ---------------------------------------------------------------
    def to_json(self, arch: Arch) -> dict[str, Any]:
        blocks = []
        for b in self.blocks(arch):
            d: dict[str, str] = dict(zip(EDGES, b.edges))
            if self.version == 2:
                d["upsample"] = b.upsample
            blocks.append(d)
        return {"space": self.name, "string": self.to_string(arch), "blocks": blocks}

    def from_json(self, data: dict[str, Any]) -> Arch:
        self.check_json_space(data)
        raw = data.get("blocks")
        if raw is None and isinstance(data.get("string"), str):  # best_arch.json, blocks deleted
            return self.from_string(data["string"])
        if not isinstance(raw, list):
            raise ArchitectureError(f"{self.name}: architecture JSON needs a 'blocks' list "
                                    "or a 'string'")
        blocks = []
        allowed = set(EDGES) | ({"upsample"} if self.version == 2 else set())
        for i, d in enumerate(raw):
            where = f"{self.name} block {i}"
            if not isinstance(d, dict):
                raise ArchitectureError(f"{where}: expected an object of edge ops, got {d!r}")
            keys = set(d)
            if keys != allowed:
                missing, extra = sorted(allowed - keys), sorted(keys - allowed)
                raise ArchitectureError(
                    f"{where}: wrong edge set (missing {missing}, unexpected {extra})")
            edges = tuple(_lookup(str(d[e]), EDGE_CODES, "edge op", f"{where} edge {e}")
                          for e in EDGES)
            up = (_lookup(str(d["upsample"]), UPSAMPLE_CODES, "upsample op", where)
                  if self.version == 2 else "bilinear")
            blocks.append(BlockChoice(edges, up))
        if self.sync and len(blocks) == 1:  # one block says it all in a sync space
            blocks *= NUM_BLOCKS
        return self.from_blocks(blocks)

    # ---- models ------------------------------------------------------------------
    def model_kwargs(self, cfg: Any) -> dict[str, Any]:
        """The decoder's settings (see depthnas.models); the backbone is timm's."""
        return {"backbone": cfg.backbone, "features": cfg.features,
                "backbone_weights": cfg.backbone_weights,
                "first_block_input": cfg.first_block_input}

    def build_supernet(self, **model_kw: Any):
        from .model import DepthNet
        return DepthNet(self, arch=None, **model_kw)

    def build_fixed(self, arch: Arch, **model_kw: Any):
        from .model import DepthNet
        return DepthNet(self, arch=self.check(arch), **model_kw)

    def has_dead_cell(self, arch: Arch) -> bool:
        return any(is_dead_cell(b) for b in self.blocks(arch))

    def ignores_input(self, arch: Arch, first_block_input: str = "duplicate", **_: Any) -> bool:
        # Follow the image through the blocks, coarse to fine: node 1 is a lateral
        # feature (of the image), node 0 the block before (the coarsest block's: the
        # encoder feature again, or zeros, which carry nothing of the image), and an op
        # edge carries what its source has. A coarser dead block alone does not cut the
        # image off; one whose node 3 only hears from a node 0 that carries nothing
        # does, as does a dead finest block.
        finest = _fed_edges(self.blocks(arch), first_node_0=first_block_input == "duplicate")[-1]
        return all(finest[edge] == "none" for edge in EDGES if edge[0] == "3")

    def function_key(self, arch: Arch) -> tuple:
        # The ops a model builds and runs are those of `running_blocks`, and a block
        # that outputs nothing upsamples nothing, so strings that differ only there
        # build one model (3,125 V1-sync strings, 2,425 models). Equal keys are exact;
        # different keys may still compute alike (node 2 = skip(node 0) read by a
        # skip 3<-2 is what a skip 3<-0 computes): such strings stay apart.
        blocks = running_blocks(self.blocks(arch))
        return (self.name, tuple(b if has_output(b) else BlockChoice(b.edges, "bilinear")
                                 for b in blocks))

    def sample_live(self, rng: random.Random) -> Arch:
        """A uniform sample among architectures without a dead cell (benchmarks and
        tests that need every block to compute something)."""
        while True:
            a = self.sample(rng)
            if not self.has_dead_cell(a):
                return a

    def describe(self) -> str:
        up = ", ".join(self.upsample_ops)
        return (f"{self.name:12s} {self.size():>20,d} architectures  "
                f"({'blocks share choices' if self.sync else 'choices per block'}; "
                f"edges {' '.join(EDGES)}; ops {', '.join(EDGE_OPS)}; upsample {up})")

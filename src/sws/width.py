"""Changing a learngene's width: wider by replication, narrower by selection.

``change_width(gene, embed_dim)`` returns a learngene of the same kind (SWS or TLEG) whose
architecture differs from the original only in width and head count. The MLP ratio is kept, so the
MLP hidden width scales with the width. Everything a Des-Net is grown from changes the same way:
the learngene layers (for TLEG, ``base`` and ``slope`` alike), the patch and position embedding,
the final norm and the classifier.

Rules:

1. **Head count.** The head dimension is kept (DeiT-Tiny, -Small and -Base all use 64), so the new
   head count is ``embed_dim // head_dim``. When widening to a width that is not a multiple of the
   head dimension, pass ``num_heads``; when narrowing, such a width is refused. Also refused, each
   in one line that names the fix: a width that ``num_heads`` does not divide, a width that is not
   a positive whole number, narrowing with a ``num_heads`` that changes the head dimension, and
   the learngene's own width with another head count. At the learngene's own width (and head
   count) the result is a copy with cloned tensors and the same provenance.
2. **Wider by a whole multiple k, head dimension kept: the function is preserved.** Every
   residual channel, attention head and MLP hidden unit is replicated by *tiling*: new index ``j``
   copies old index ``j mod n``, where ``n`` is the old size. This applies to residual channels,
   to the heads' concatenated channels (so new head ``h`` copies old head ``h mod heads``, with the
   q, k and v blocks tiled separately) and to MLP units. Whatever *writes* a replicated index is
   tiled: patch-embedding output channels, position-embedding channels, LayerNorm weights and
   biases, and the output rows and biases of qkv, proj, fc1 and fc2. Whatever *reads* one (the
   input columns of qkv, proj, fc1, fc2 and the classifier) is split among the copies. Copy ``c``
   of column ``i`` gets ``f_c`` times the column, where ``f_c = u_c / sum(u)`` and ``u_c`` is
   drawn from uniform(0.5, 1.5). The fractions are positive and unequal and sum to 1, so the sum
   over copies is the original column. LayerNorm sees every value k times, so its mean and
   variance do not change, and neither do the logits of a Des-Net of any depth (up to float
   rounding). Because the split is unequal, the copies get different gradients and diverge in
   fine-tuning. The fractions come from a generator seeded by ``seed`` and are drawn afresh for
   every reading tensor of every learngene layer (each SWS stage, each TLEG tensor) and for the
   classifier. TLEG's ``base`` and ``slope`` of the same tensor share fractions, so that
   ``base + c * slope`` widens to the widened layer (the change is linear).
   ``split="equal"`` splits every column evenly (``1/k``, as in Net2Net). The function is still
   preserved, but the copies stay identical under training, so use it only for ablations.
3. **Wider by a non-multiple.** The same tiling is used, so some indices get one copy more than
   others, and each column is split among its own copies. The residual copies are uneven, so
   LayerNorm statistics move and the function changes slightly; ``change_width`` warns. An explicit
   ``num_heads`` that changes the head dimension is handled by tiling the heads' concatenated
   channels like residual channels. This regroups channels into new heads and also warns.
4. **Narrower, by selection** (Weight Selection, Xu et al., ICLR 2024). The same indices are kept
   everywhere. Residual channel ``i`` of ``D'`` is old channel ``floor(i * D / D')`` in every
   layer's reads and writes and in the patch/position embedding, final norm and classifier. MLP
   unit ``i`` of ``M'`` is ``floor(i * M / M')`` in every layer (``M`` the MLP hidden width).
   Attention keeps whole heads (``floor(i * heads / heads')``, full head dimension, q, k and v
   alike). Nothing is rescaled.

The returned learngene's ``source`` records the change (``... | width 32->64 (2->4 heads;
replicated x2, random split, seed 0; function-preserving)``), so it survives ``save``/``load``.

Example:
    >>> wide = change_width(Learngene.load("tiny.learngene.safetensors"), 384)   # 192 -> 384, 3 -> 6 heads
"""

from __future__ import annotations

import copy
import warnings
from typing import Literal, NamedTuple

import torch

from sws.architecture import ViTArchitecture, check_buildable
from sws.errors import IncompatibleModelError, caller_stacklevel
from sws.learngene import Learngene, SWSLearngene
from sws.tleg import TLEGLearngene

Split = Literal["random", "equal"]

# Index spaces that a width change maps: the residual stream, the heads' concatenated channels, the
# qkv projection's output (q, k and v blocks of attention channels) and the MLP hidden units.
RESIDUAL, ATTENTION, QKV, MLP = "residual", "attention", "qkv", "mlp"


class Axis(NamedTuple):
    """One dimension of a tensor that lives in an index space. An axis that ``reads`` is an input
    (split among copies when widening); any other is an output (tiled)."""

    dim: int
    space: str
    reads: bool = False


_WRITES_RESIDUAL = (Axis(0, RESIDUAL),)

# How every timm Block tensor changes (names as in sws.learngene.block_tensor_shapes).
BLOCK_AXES: dict[str, tuple[Axis, ...]] = {
    "norm1.weight": _WRITES_RESIDUAL,
    "norm1.bias": _WRITES_RESIDUAL,
    "attn.qkv.weight": (Axis(0, QKV), Axis(1, RESIDUAL, reads=True)),
    "attn.qkv.bias": (Axis(0, QKV),),
    "attn.proj.weight": (Axis(0, RESIDUAL), Axis(1, ATTENTION, reads=True)),
    "attn.proj.bias": _WRITES_RESIDUAL,
    "norm2.weight": _WRITES_RESIDUAL,
    "norm2.bias": _WRITES_RESIDUAL,
    "mlp.fc1.weight": (Axis(0, MLP), Axis(1, RESIDUAL, reads=True)),
    "mlp.fc1.bias": (Axis(0, MLP),),
    "mlp.fc2.weight": (Axis(0, RESIDUAL), Axis(1, MLP, reads=True)),
    "mlp.fc2.bias": _WRITES_RESIDUAL,
}

# How the embeddings, final norm and classifier change (the head's class rows stay as they are).
OUTER_AXES: dict[str, tuple[Axis, ...]] = {
    "patch_embed.proj.weight": _WRITES_RESIDUAL,
    "patch_embed.proj.bias": _WRITES_RESIDUAL,
    "pos_embed": (Axis(2, RESIDUAL),),
    "norm.weight": _WRITES_RESIDUAL,
    "norm.bias": _WRITES_RESIDUAL,
    "head.weight": (Axis(1, RESIDUAL, reads=True),),
    "head.bias": (),
}


def change_width(
    gene: Learngene, embed_dim: int, num_heads: int | None = None, *, seed: int = 0, split: Split = "random"
) -> Learngene:
    """A learngene of the same kind at width ``embed_dim`` (the rules are in the module docstring).

    ``num_heads`` defaults to keeping the head dimension; ``seed`` draws the unequal split of
    reading weights among copies when widening; ``split="equal"`` splits them evenly (ablations).

    Example:
        >>> change_width(gene, 64).architecture.num_heads   # a 32-wide, 2-head gene
        4
    """
    if split not in ("random", "equal"):
        raise IncompatibleModelError(f"split must be 'random' or 'equal', not {split!r}")
    old = gene.architecture
    new = new_architecture(old, embed_dim, num_heads)
    if new == old:
        return _rebuild(gene, old, {name: tensor.clone() for name, tensor in gene.tensors.items()}, gene.source)
    _warn_if_function_changes(old, new)
    check_buildable(new, gene.num_layers_stored, f"the learngene at width {new.embed_dim}")
    index = index_maps(old, new)
    generator = torch.Generator().manual_seed(seed)
    tensors = _changed_tensors(gene, index, generator, split)
    note = width_change_note(old, new, seed, split)
    return _rebuild(gene, new, tensors, f"{gene.source} | {note}" if gene.source else note)


def new_architecture(old: ViTArchitecture, embed_dim: int, num_heads: int | None = None) -> ViTArchitecture:
    """``old`` at width ``embed_dim``, or ``IncompatibleModelError`` (one line) when refused.

    Example:
        >>> new_architecture(ViTArchitecture(embed_dim=192, num_heads=3), 384).num_heads
        6
    """
    _check_whole_number("embed_dim", embed_dim, "pass the new width, e.g. 2 * the learngene's")
    if num_heads is not None:
        _check_whole_number("num_heads", num_heads, "pass a head count that divides the width, or leave it out")
        if embed_dim % num_heads:
            raise IncompatibleModelError(
                f"width {embed_dim} does not split into {num_heads} attention heads; "
                f"pass a num_heads that divides {embed_dim}, or leave it out to keep the head dimension"
            )
    head_dim = old.head_dim
    if num_heads is None:
        if embed_dim % head_dim:
            fix = (
                f"pass num_heads (a divisor of {embed_dim}) or choose a multiple of {head_dim}"
                if embed_dim > old.embed_dim
                else f"narrowing selects whole heads, so choose a multiple of {head_dim}"
            )
            raise IncompatibleModelError(
                f"width {embed_dim} cannot keep the learngene's head dimension {head_dim}; {fix}"
            )
        num_heads = embed_dim // head_dim
    if embed_dim == old.embed_dim and num_heads != old.num_heads:
        raise IncompatibleModelError(
            f"width {embed_dim} is already the learngene's; to use {num_heads} heads instead of "
            f"{old.num_heads}, pass num_heads to expand (it warns that the function changes)"
        )
    if embed_dim < old.embed_dim and embed_dim // num_heads != head_dim:
        raise IncompatibleModelError(
            f"narrowing selects whole heads and keeps the head dimension {head_dim}, but {num_heads} heads "
            f"of width {embed_dim} have dimension {embed_dim // num_heads}; leave num_heads out"
        )
    return old.replace(embed_dim=embed_dim, num_heads=num_heads)


def _check_whole_number(name: str, value: object, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise IncompatibleModelError(f"{name} must be a positive whole number, not {value!r}; {fix}")


def tiled(old_size: int, new_size: int) -> torch.Tensor:
    """New index ``j`` copies old index ``j % old_size``: ``tiled(3, 5)`` is ``[0, 1, 2, 0, 1]``."""
    return torch.arange(new_size) % old_size


def evenly_spaced(old_size: int, new_size: int) -> torch.Tensor:
    """Old indices ``floor(i * old_size / new_size)``: ``evenly_spaced(6, 3)`` is ``[0, 2, 4]``."""
    return torch.arange(new_size) * old_size // new_size


def index_maps(old: ViTArchitecture, new: ViTArchitecture) -> dict[str, torch.Tensor]:
    """For each index space, the old index that each new index takes (tiled when wider, evenly
    spaced when narrower; whole heads when narrowing attention).

    Example:
        >>> old = ViTArchitecture(embed_dim=32, num_heads=2)
        >>> index_maps(old, old.replace(embed_dim=64, num_heads=4))["residual"][33]
        tensor(1)
    """
    if new.embed_dim > old.embed_dim:
        # The heads' concatenated channels tile like residual channels; with the head dimension
        # kept, new head h is then exactly old head h % heads.
        residual = tiled(old.embed_dim, new.embed_dim)
        attention = tiled(old.embed_dim, new.embed_dim)
        mlp = tiled(old.mlp_hidden_dim, new.mlp_hidden_dim)
    else:
        residual = evenly_spaced(old.embed_dim, new.embed_dim)
        heads = evenly_spaced(old.num_heads, new.num_heads)
        attention = (heads[:, None] * old.head_dim + torch.arange(old.head_dim)).flatten()
        mlp = evenly_spaced(old.mlp_hidden_dim, new.mlp_hidden_dim)
    # timm's qkv output is (3, heads, head_dim): q, k and v each map their attention channels.
    qkv = torch.cat([part * old.embed_dim + attention for part in range(3)])
    return {RESIDUAL: residual, ATTENTION: attention, QKV: qkv, MLP: mlp}


def split_fractions(index: torch.Tensor, generator: torch.Generator, split: Split = "random") -> torch.Tensor | None:
    """The share of its old column that each new column gets: positive and summing to 1 over the
    copies of each old column (``None`` when no column has copies, as when narrowing).

    Example:
        >>> split_fractions(torch.tensor([0, 1, 0, 1]), torch.Generator(), "equal")
        tensor([0.5000, 0.5000, 0.5000, 0.5000], dtype=torch.float64)
    """
    counts = torch.bincount(index)
    if int(counts.max()) <= 1:
        return None
    if split == "equal":
        return 1.0 / counts[index].double()
    # Unequal shares break the symmetry between copies, so fine-tuning can tell them apart.
    draws = torch.rand(len(index), generator=generator, dtype=torch.float64) + 0.5
    totals = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, index, draws)
    return draws / totals[index]


def _transform(
    tensor: torch.Tensor,
    axes: tuple[Axis, ...],
    index: dict[str, torch.Tensor],
    fractions: dict[int, torch.Tensor | None],
) -> torch.Tensor:
    """Tile or select every mapped dimension, then scale reading dimensions by their shares."""
    result = tensor
    for axis in axes:
        result = result.index_select(axis.dim, index[axis.space].to(result.device))
    for dim, share in fractions.items():
        if share is not None:
            shape = [1] * result.ndim
            shape[dim] = -1
            # In float64, so that the copies of a column add up to it to the last bit we can.
            result = (result.double() * share.view(shape).to(result.device)).to(tensor.dtype)
    return result.contiguous()


def _draw_fractions(
    axes: tuple[Axis, ...], index: dict[str, torch.Tensor], generator: torch.Generator, split: Split
) -> dict[int, torch.Tensor | None]:
    return {axis.dim: split_fractions(index[axis.space], generator, split) for axis in axes if axis.reads}


def _layer_groups(gene: Learngene) -> list[tuple[str, ...]]:
    """Prefixes of the learngene-layer tensors, grouped so that one group shares split fractions:
    each SWS stage alone, TLEG's ``base`` and ``slope`` together (a layer is a linear mix of them)."""
    if isinstance(gene, SWSLearngene):
        return [(f"stages.{stage}.",) for stage in range(gene.layout.num_stages)]
    if isinstance(gene, TLEGLearngene):
        return [("base.", "slope.")]
    raise IncompatibleModelError(f"change_width knows SWS and TLEG learngenes, not the {gene.kind!r} kind")


def _changed_tensors(
    gene: Learngene, index: dict[str, torch.Tensor], generator: torch.Generator, split: Split
) -> dict[str, torch.Tensor]:
    """Every tensor of ``gene`` at the new width (a fixed draw order, so a seed gives one result)."""
    tensors: dict[str, torch.Tensor] = {}
    for group in _layer_groups(gene):
        for name, axes in BLOCK_AXES.items():
            if f"{group[0]}{name}" not in gene.tensors:  # no qkv bias
                continue
            fractions = _draw_fractions(axes, index, generator, split)
            for prefix in group:
                tensors[prefix + name] = _transform(gene.tensors[prefix + name], axes, index, fractions)
    for name, axes in OUTER_AXES.items():
        if name in gene.tensors:
            fractions = _draw_fractions(axes, index, generator, split)
            tensors[name] = _transform(gene.tensors[name], axes, index, fractions)
    unknown = sorted(set(gene.tensors) - set(tensors))
    if unknown:
        raise IncompatibleModelError(
            f"change_width does not know how to change the width of {', '.join(unknown[:4])}; "
            "this learngene has tensors beyond a plain timm ViT block"
        )
    return tensors


def _warn_if_function_changes(old: ViTArchitecture, new: ViTArchitecture) -> None:
    """Widening preserves the function only by a whole multiple with the head dimension kept."""
    if new.embed_dim < old.embed_dim:
        return
    reasons = []
    if new.embed_dim % old.embed_dim:
        reasons.append("is not by a whole multiple, so channels get unequal copy counts and LayerNorm statistics move")
    if new.head_dim != old.head_dim:
        reasons.append(f"regroups the attention channels into heads of dimension {old.head_dim} -> {new.head_dim}")
    if reasons:
        warnings.warn(
            f"widening the learngene from width {old.embed_dim} to {new.embed_dim} {' and '.join(reasons)}: "
            "its Des-Nets compute a slightly different function until fine-tuned",
            stacklevel=caller_stacklevel(),
        )


def width_change_note(old: ViTArchitecture, new: ViTArchitecture, seed: int, split: Split = "random") -> str:
    """What ``source`` records, e.g. ``width 32->64 (2->4 heads; replicated x2, random split, seed 0;
    function-preserving)``."""
    heads = f"{old.num_heads}->{new.num_heads} heads"
    if new.embed_dim < old.embed_dim:
        return f"width {old.embed_dim}->{new.embed_dim} ({heads}; evenly spaced selection)"
    whole = new.embed_dim % old.embed_dim == 0
    copies = f"x{new.embed_dim // old.embed_dim}" if whole else "unevenly"
    how = "random split, seed " + str(seed) if split == "random" else "equal split"
    preserved = "function-preserving" if whole and new.head_dim == old.head_dim else "function changed"
    return f"width {old.embed_dim}->{new.embed_dim} ({heads}; replicated {copies}, {how}; {preserved})"


def _rebuild(
    gene: Learngene, architecture: ViTArchitecture, tensors: dict[str, torch.Tensor], source: str
) -> Learngene:
    """A learngene of ``gene``'s kind (keeping its layout, depth and training record) with new tensors."""
    result = copy.copy(gene)
    result.architecture = architecture
    result.tensors = tensors
    result.training = dict(gene.training)
    result.source = source
    result.check()
    return result

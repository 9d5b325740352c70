"""Colourings of a sparsity pattern: fewer sweeps for a sparse Jacobian or Hessian.

Columns that share no row may be seeded together: one forward sweep along the sum of
their unit vectors gives each of their nonzeros, alone in its row (Curtis, Powell and
Reid). So a distance-2 colouring of the columns (no two columns of one colour share a
row) costs one forward sweep per colour, and one of the rows (no two rows of one colour
share a column) one reverse sweep per colour. Both are greedy, largest first (the
column or row with the most nonzeros takes the smallest colour it may), and the cheaper
is kept, as CasADi's `Sparsity::get_partition` does.

A Hessian is symmetric: a star colouring of its adjacency graph (a proper colouring in
which every path on four vertices has at least three colours; Gebremedhin, Manne and
Pothen, "What Color Is Your Jacobian?", SIAM Review 2005, Algorithm 4.1) lets every
nonzero be read directly, from its own compressed row or from its mirror's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .sparsity import Sparsity

#: Star colouring visits the neighbours' neighbours' neighbours: beyond about this many
#: steps (n times the largest degree cubed) it is not tried.
STAR_STEPS = 4_000_000


class Colouring(NamedTuple):
    """Which sweeps compute a Jacobian: `mode` "forward" (colour per column) or
    "reverse" (colour per row), `colours[k]` the colour of column or row k, `count`
    colours in all (the number of sweeps); `symmetric`: a star colouring of a Hessian's
    rows, whose entries may be read from their mirror."""
    mode: str
    colours: np.ndarray
    count: int
    symmetric: bool = False


def _csr(rows: np.ndarray, cols: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pointers and columns of the COO pairs, grouped by row."""
    order = np.argsort(rows, kind="stable")
    return np.searchsorted(rows[order], np.arange(size + 1)), cols[order]


def distance2(rows: np.ndarray, cols: np.ndarray, m: int, n: int) -> np.ndarray:
    """A colour for each of the n columns such that no two columns of one colour have a
    nonzero in the same row: greedy, columns with the most nonzeros first."""
    row_ptr, row_cols = _csr(rows, cols, m)
    col_ptr, col_rows = _csr(cols, rows, n)
    colours = np.full(n, -1, dtype=np.int64)
    order = np.argsort(-np.diff(col_ptr), kind="stable")
    for j in order.tolist():
        touched = col_rows[col_ptr[j]:col_ptr[j + 1]]
        if len(touched) == 0:
            colours[j] = 0
            continue
        neighbours = np.concatenate([row_cols[row_ptr[r]:row_ptr[r + 1]]
                                     for r in touched.tolist()])
        taken = colours[neighbours]
        taken = taken[taken >= 0]
        free = np.ones(len(taken) + 1, dtype=bool)
        free[taken[taken < len(free)]] = False
        colours[j] = int(np.argmax(free))
    return colours


def star(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray | None:
    """A star colouring of the symmetric n x n pattern's adjacency graph (Algorithm 4.1
    of Gebremedhin, Manne and Pothen), vertices of largest degree first; None when the
    pattern is too dense for it to be worth the steps (STAR_STEPS)."""
    off = rows != cols
    ptr, adjacent = _csr(rows[off], cols[off], n)
    degree = np.diff(ptr)
    if n and n * int(degree.max(initial=0)) ** 3 > STAR_STEPS:
        return None
    neighbours = [adjacent[ptr[v]:ptr[v + 1]].tolist() for v in range(n)]
    colour = [-1] * n
    forbidden = [-1] * (n + 1)   # forbidden[c] == v: colour c is forbidden for vertex v
    for v in np.argsort(-degree, kind="stable").tolist():
        for w in neighbours[v]:
            cw = colour[w]
            if cw >= 0:
                forbidden[cw] = v
            for x in neighbours[w]:
                cx = colour[x]
                if x == v or cx < 0:
                    continue
                if cw < 0:
                    forbidden[cx] = v
                else:   # w-x coloured: x's colour is barred if x has another neighbour
                    for y in neighbours[x]:   # of w's colour (a two-coloured path of four)
                        if y != w and colour[y] == cw:
                            forbidden[cx] = v
                            break
        c = 0
        while forbidden[c] == v:
            c += 1
        colour[v] = c
    return np.array(colour, dtype=np.int64)


def colourings(pattern: Sparsity) -> tuple[Colouring, Colouring]:
    """A distance-2 colouring of the columns (forward sweeps) and one of the rows
    (reverse sweeps). A direction whose colours cannot be fewer than the dense sweeps
    (a row with a nonzero in every column, or a column in every row) is left dense."""
    m, n = pattern.shape
    row_counts = np.bincount(pattern.rows, minlength=m)
    col_counts = np.bincount(pattern.cols, minlength=n)
    # a row of k nonzeros needs k column colours (a column of k, k row colours)
    if row_counts.max(initial=0) < n:
        colours = distance2(pattern.rows, pattern.cols, m, n)
        forward = Colouring("forward", colours, int(colours.max(initial=-1)) + 1)
    else:
        forward = Colouring("forward", np.arange(n), n)
    if col_counts.max(initial=0) < m:
        colours = distance2(pattern.cols, pattern.rows, n, m)
        reverse = Colouring("reverse", colours, int(colours.max(initial=-1)) + 1)
    else:
        reverse = Colouring("reverse", np.arange(m), m)
    return forward, reverse


def jacobian_colouring(pattern: Sparsity) -> Colouring:
    """The cheaper of the column and row colourings (ties go to forward)."""
    forward, reverse = colourings(pattern)
    return forward if forward.count <= reverse.count else reverse


def hessian_colouring(pattern: Sparsity) -> Colouring:
    """Rows of a symmetric n x n pattern coloured for reverse sweeps: the fewer of a
    distance-2 colouring (every entry read directly) and a star colouring (an entry
    read from its mirror where its own row shares its colour group's column)."""
    n = pattern.shape[0]
    colours = distance2(pattern.cols, pattern.rows, n, n)
    best = Colouring("reverse", colours, int(colours.max(initial=-1)) + 1)
    starred = star(pattern.rows, pattern.cols, n)
    if starred is not None and int(starred.max(initial=-1)) + 1 < best.count:
        best = Colouring("reverse", starred, int(starred.max(initial=-1)) + 1, True)
    return best


def sources(pattern: Sparsity, colouring: Colouring) -> tuple[np.ndarray, np.ndarray]:
    """Where each nonzero (in the pattern's order) is read in the compressed result:
    (colour, index), the compressed sweep's row of that colour at that component.

    Forward (columns coloured): entry (i, j) is component i of the sweep of j's colour.
    Reverse (rows coloured): entry (i, j) is component j of the sweep of i's colour, or,
    for a star colouring where another row of i's colour also has column j, component
    i of the sweep of j's colour (its mirror (j, i), alone there by the star property)."""
    rows, cols, colours = pattern.rows, pattern.cols, colouring.colours
    if colouring.mode == "forward":
        return colours[cols], rows
    colour, index = colours[rows].copy(), cols.copy()
    if colouring.symmetric and len(rows):
        keys = colours[rows] * pattern.shape[1] + cols
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        shared = counts[inverse] > 1
        colour[shared], index[shared] = colours[cols[shared]], rows[shared]
    return colour, index

"""numpy 1.x's default ``np.argsort`` (introsort, not stable), ported: the order it leaves equal keys in.

The 20 Newsgroups notebook of the Multi-HNTF paper sorts its documents with ``np.argsort``'s default kind, so the
order within each newsgroup, and hence its labeled/held-out split, is whatever numpy 1.x's sort left. numpy >= 1.25
sends that call to SIMD sorts on AVX-512 (numpy 2 also on AVX2) machines, which order ties differently.
"""

from __future__ import annotations

import numpy as np

__all__ = ["argsort_numpy1"]


def argsort_numpy1(values) -> np.ndarray:
    """``np.argsort(values)`` (default kind "quicksort") as numpy 1.17-1.24 computes it: introsort, i.e. median-of-3
    quicksort with insertion sort below 16 elements and a heapsort fallback past depth 2 floor(log2 n).

    The published split depends on it: the order it leaves equal labels in decides which documents are labeled.
    numpy >= 1.25 dispatches the same call to SIMD sorts on AVX-512 (and numpy 2 on AVX2) machines, which order ties
    differently. A port of numpy's ``aquicksort_`` (``npysort/quicksort.cpp``), checked against numpy 1.23.5.
    """
    v = np.asarray(values).ravel().tolist()
    num = len(v)
    a = list(range(num))
    if num < 2:
        return np.asarray(a, dtype=np.int64)

    def heapsort(lo: int, n: int) -> None:  # numpy's aheapsort_ on a[lo : lo + n] (1-based heap)
        def sift(i: int, n: int, tmp: int) -> None:
            j = 2 * i
            while j <= n:
                if j < n and v[a[lo + j - 1]] < v[a[lo + j]]:
                    j += 1
                if v[tmp] < v[a[lo + j - 1]]:
                    a[lo + i - 1] = a[lo + j - 1]
                    i, j = j, 2 * j
                else:
                    break
            a[lo + i - 1] = tmp

        for l in range(n >> 1, 0, -1):
            sift(l, n, a[lo + l - 1])
        while n > 1:
            tmp = a[lo + n - 1]
            a[lo + n - 1] = a[lo]
            n -= 1
            sift(1, n, tmp)

    pl, pr = 0, num - 1
    cdepth = 2 * (num.bit_length() - 1)
    stack = []
    while True:
        if cdepth < 0:
            heapsort(pl, pr - pl + 1)
        else:
            while pr - pl > 15:
                pm = pl + ((pr - pl) >> 1)
                if v[a[pm]] < v[a[pl]]:
                    a[pm], a[pl] = a[pl], a[pm]
                if v[a[pr]] < v[a[pm]]:
                    a[pr], a[pm] = a[pm], a[pr]
                if v[a[pm]] < v[a[pl]]:
                    a[pm], a[pl] = a[pl], a[pm]
                vp = v[a[pm]]
                pi, pj = pl, pr - 1
                a[pm], a[pj] = a[pj], a[pm]
                while True:
                    pi += 1
                    while v[a[pi]] < vp:
                        pi += 1
                    pj -= 1
                    while vp < v[a[pj]]:
                        pj -= 1
                    if pi >= pj:
                        break
                    a[pi], a[pj] = a[pj], a[pi]
                a[pi], a[pr - 1] = a[pr - 1], a[pi]
                cdepth -= 1
                if pi - pl < pr - pi:
                    stack.append((pi + 1, pr, cdepth))
                    pr = pi - 1
                else:
                    stack.append((pl, pi - 1, cdepth))
                    pl = pi + 1
            for pi in range(pl + 1, pr + 1):
                vi = a[pi]
                vp = v[vi]
                pj = pi
                while pj > pl and vp < v[a[pj - 1]]:
                    a[pj] = a[pj - 1]
                    pj -= 1
                a[pj] = vi
        if not stack:
            break
        pl, pr, cdepth = stack.pop()
    return np.asarray(a, dtype=np.int64)

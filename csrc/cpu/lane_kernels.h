// The exact subproblem of block principal pivoting (csrc/common/column_solver.h) for 8 columns at once, one
// column per SIMD lane: a fresh Cholesky factorization of each lane's support (packed, padded with identity
// rows to the group's largest), the triangular solves, the dual, the KKT test and, on the dual side, the step of
// iterative refinement. Included by lane_avx512.cpp inside its own namespace, after it switched the instruction
// set and turned off the contraction of a * b + c into one rounding.
//
// Exactness: every lane performs, value for value, the operations of ColumnSolver::subproblem and refine_dual
// in their order (the same products, each sum over the same terms in increasing index), so x is the scalar
// solver's to the bit. Where the scalar code gathers a packed row (H_iZ w), the lanes run over all n indices
// and keep the running sum unchanged (a select, not an added zero) at an index outside the set; identity rows
// padding a factor touch none of the real entries (their terms are 0 * 0 subtracted, exact).
// This file is included once per instruction set: no include, no definition outside the namespace.

namespace {

typedef double V __attribute__((vector_size(64)));
typedef long long VI __attribute__((vector_size(64)));

inline V splat(double a) { return V{a, a, a, a, a, a, a, a}; }
inline V sel(VI m, V a, V b) { return (V)(((VI)a & m) | ((VI)b & ~m)); }
// Lane l of entry i of an array of vectors, as a plain scalar access (an element of a vector in memory with a
// run-time lane index can otherwise compile to a load, an insertion and a store of the whole vector).
inline double& at(V* v, int i, int l) { return reinterpret_cast<double*>(v)[i * kLanes + l]; }
inline double at(const V* v, int i, int l) { return reinterpret_cast<const double*>(v)[i * kLanes + l]; }
inline long long& at(VI* v, int i, int l) { return reinterpret_cast<long long*>(v)[i * kLanes + l]; }
inline long long at(const VI* v, int i, int l) { return reinterpret_cast<const long long*>(v)[i * kLanes + l]; }
inline bool any(VI m) {
  long long r = 0;
  for (int l = 0; l < kLanes; ++l) r |= m[l];
  return r != 0;
}

// In-place Cholesky of the packed lower triangle M (row a at a * (a + 1) / 2), cholesky_inplace's operations
// per lane. Returns the lanes whose pivots all pass.
VI lanes_cholesky(V* M, int n, double rtol) {
  VI ok = ~(VI)splat(0.0);
  const V rt = splat(rtol), zero = splat(0.0), one = splat(1.0);
  for (int j = 0; j < n; ++j) {
    V* Mj = M + j * (j + 1) / 2;
    V d = Mj[j];
    const V diag = d;
    for (int p = 0; p < j; ++p) d -= Mj[p] * Mj[p];
    ok &= (d > rt * diag) & (diag > zero);
    alignas(64) double root[kLanes];
    *reinterpret_cast<V*>(root) = d;
    for (int l = 0; l < kLanes; ++l) root[l] = sqrt(root[l]);
    d = *reinterpret_cast<V*>(root);
    Mj[j] = d;
    const V inv = one / d;
    int i = j + 1;
    for (; i + 4 <= n; i += 4) {
      V* M0 = M + i * (i + 1) / 2;
      V* M1 = M0 + i + 1;
      V* M2 = M1 + i + 2;
      V* M3 = M2 + i + 3;
      V s0 = M0[j], s1 = M1[j], s2 = M2[j], s3 = M3[j];
      for (int p = 0; p < j; ++p) {
        const V l = Mj[p];
        s0 -= M0[p] * l;
        s1 -= M1[p] * l;
        s2 -= M2[p] * l;
        s3 -= M3[p] * l;
      }
      M0[j] = s0 * inv;
      M1[j] = s1 * inv;
      M2[j] = s2 * inv;
      M3[j] = s3 * inv;
    }
    for (; i < n; ++i) {
      V* Mi = M + i * (i + 1) / 2;
      V s = Mi[j];
      for (int p = 0; p < j; ++p) s -= Mi[p] * Mj[p];
      Mi[j] = s * inv;
    }
  }
  return ok;
}

// cholesky_solve_inplace per lane on the packed factor.
void lanes_cholesky_solve(const V* L, int n, V* x) {
  for (int p = 0; p < n; ++p) {
    const V v = x[p] / L[p * (p + 1) / 2 + p];
    x[p] = v;
    for (int i = p + 1; i < n; ++i) x[i] -= L[i * (i + 1) / 2 + p] * v;
  }
  for (int i = n - 1; i >= 0; --i) {
    V s = x[i];
    for (int p = i + 1; p < n; ++p) s -= L[p * (p + 1) / 2 + i] * x[p];
    x[i] = s / L[i * (i + 1) / 2 + i];
  }
}

// s[i] = s[i] + SIGN * R[i][c] * v[c] for c = 0..n-1 in increasing order, in each lane only where m[c] is set
// (R symmetric: R[i][c] = R[c][i]). cs: the c where some lane is set. Four rows at a time, each its own chain.
template <int SIGN>
void lanes_masked_dots(const double* R, int n, const int* cs, int nc, const VI* m, const V* v, V* s) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const double *R0 = R + i * n, *R1 = R0 + n, *R2 = R1 + n, *R3 = R2 + n;
    V s0 = s[i], s1 = s[i + 1], s2 = s[i + 2], s3 = s[i + 3];
    for (int q = 0; q < nc; ++q) {
      const int c = cs[q];
      const V vc = v[c];
      const VI mc = m[c];
      if (SIGN > 0) {
        s0 = sel(mc, s0 + splat(R0[c]) * vc, s0);
        s1 = sel(mc, s1 + splat(R1[c]) * vc, s1);
        s2 = sel(mc, s2 + splat(R2[c]) * vc, s2);
        s3 = sel(mc, s3 + splat(R3[c]) * vc, s3);
      } else {
        s0 = sel(mc, s0 - splat(R0[c]) * vc, s0);
        s1 = sel(mc, s1 - splat(R1[c]) * vc, s1);
        s2 = sel(mc, s2 - splat(R2[c]) * vc, s2);
        s3 = sel(mc, s3 - splat(R3[c]) * vc, s3);
      }
    }
    s[i] = s0;
    s[i + 1] = s1;
    s[i + 2] = s2;
    s[i + 3] = s3;
  }
  for (; i < n; ++i) {
    const double* Ri = R + i * n;
    V si = s[i];
    for (int q = 0; q < nc; ++q) {
      const int c = cs[q];
      si = sel(m[c], SIGN > 0 ? si + splat(Ri[c]) * v[c] : si - splat(Ri[c]) * v[c], si);
    }
    s[i] = si;
  }
}

// The indices c where some lane of m is set.
int lanes_union(const VI* m, int n, int* cs) {
  int nc = 0;
  for (int c = 0; c < n; ++c) {
    cs[nc] = c;
    nc += any(m[c]) ? 1 : 0;
  }
  return nc;
}

// Packs each lane's sub-matrix R[list][list] (lower triangle) into M, padded to size P with identity rows.
void lanes_pack(const double* R, int n, const int* lists, const int* sizes, int P, V* M) {
  for (int l = 0; l < kLanes; ++l) {
    const int* in = lists + l * n;
    const int p = sizes[l];
    for (int a = 0; a < P; ++a) {
      V* Ma = M + a * (a + 1) / 2;
      if (a < p) {
        const double* Ra = R + in[a] * n;
        for (int c = 0; c <= a; ++c) at(Ma, c, l) = Ra[in[c]];
      } else {
        for (int c = 0; c < a; ++c) at(Ma, c, l) = 0.0;
        at(Ma, a, l) = 1.0;
      }
    }
  }
}

void lanes_solve_group(LaneGroup& g) {
  const int n = g.n;
  V* const b = reinterpret_cast<V*>(g.scratch);
  V *u = b + n, *x = u + n, *y = x + n, *w = y + n, *wf = w + n, *r = wf + n;
  VI* fm = reinterpret_cast<VI*>(r + n);
  VI* zm = fm + n;
  VI* bad = zm + n;
  V* M = reinterpret_cast<V*>(bad + n);
  int* lists = reinterpret_cast<int*>(M + n * (n + 1) / 2);  // in: kLanes x n, then out: kLanes x n
  int* outs = lists + kLanes * n;
  int* cs = outs + kLanes * n;
  int* cz = cs + n;
  int* iota = cz + n;
  int p[kLanes], z[kLanes];
  const V zero = splat(0.0);
  const VI none = (VI)zero, all = ~none;
  for (int l = 0; l < kLanes; ++l) {
    const double* bl = g.B + static_cast<int64_t>(g.cols[l]) * n;
    const uint8_t* Fl = g.F + static_cast<int64_t>(g.cols[l]) * n;
    int* in = lists + l * n;
    int* out = outs + l * n;
    int pl = 0, zl = 0;
    for (int i = 0; i < n; ++i) {
      at(b, i, l) = bl[i];
      const int f = Fl[i] != 0;
      at(fm, i, l) = f ? -1 : 0;
      in[pl] = i;
      out[zl] = i;
      pl += f;
      zl += 1 - f;
    }
    p[l] = pl;
    z[l] = zl;
  }
  for (int i = 0; i < n; ++i) zm[i] = ~fm[i];
  const int nf = lanes_union(fm, n, cs);
  const int nz = lanes_union(zm, n, cz);
  VI ok;
  int P = 0;
  if (g.dual) {
    for (int l = 0; l < kLanes; ++l) P = z[l] > P ? z[l] : P;
    // u = H b (dual_rhs: u_i = 0 + H_0i b_0 + H_1i b_1 + ...); all lanes take every term
    VI* every = bad;  // bad is free until the KKT test
    for (int i = 0; i < n; ++i) {
      u[i] = zero;
      every[i] = all;
      iota[i] = i;
    }
    lanes_masked_dots<1>(g.H, n, iota, n, every, b, u);
    lanes_pack(g.H, n, outs, z, P, M);
    ok = lanes_cholesky(M, P, kPivotRtol);
    for (int l = 0; l < kLanes; ++l) {
      const int* out = outs + l * n;
      for (int a = 0; a < P; ++a) at(w, a, l) = a < z[l] ? at(u, out[a], l) : 0.0;
    }
    lanes_cholesky_solve(M, P, w);
    for (int l = 0; l < kLanes; ++l) {
      const int* out = outs + l * n;
      for (int a = 0; a < z[l]; ++a) at(wf, out[a], l) = at(w, a, l);
    }
    for (int i = 0; i < n; ++i) x[i] = u[i];
    lanes_masked_dots<-1>(g.H, n, cz, nz, zm, wf, x);  // x_F = u_F - H_FZ w
    for (int i = 0; i < n; ++i) {
      y[i] = sel(fm[i], zero, -wf[i]);
      x[i] = sel(fm[i], x[i], zero);
    }
  } else {
    for (int l = 0; l < kLanes; ++l) P = p[l] > P ? p[l] : P;
    lanes_pack(g.G, n, lists, p, P, M);
    ok = lanes_cholesky(M, P, kPivotRtol);
    for (int l = 0; l < kLanes; ++l) {
      const int* in = lists + l * n;
      for (int a = 0; a < P; ++a) at(w, a, l) = a < p[l] ? at(b, in[a], l) : 0.0;
    }
    lanes_cholesky_solve(M, P, w);
    for (int i = 0; i < n; ++i) x[i] = zero;
    for (int l = 0; l < kLanes; ++l) {
      const int* in = lists + l * n;
      for (int a = 0; a < p[l]; ++a) at(x, in[a], l) = at(w, a, l);
    }
    for (int i = 0; i < n; ++i) y[i] = -b[i];
    lanes_masked_dots<1>(g.G, n, cs, nf, fm, x, y);  // y = G_:F x_F - b
    for (int i = 0; i < n; ++i) y[i] = sel(fm[i], zero, y[i]);
  }
  // KKT (ColumnSolver::solve and dual_tolerance): bad where x_i < 0 or y_i < -tol
  V xmax = zero;
  const VI sign = (VI)splat(-0.0);
  for (int i = 0; i < n; ++i) {
    const V v = (V)((VI)x[i] & ~sign);
    xmax = sel(v > xmax, v, xmax);
  }
  const V tol = splat(4.0 * n * DBL_EPSILON) * (splat(static_cast<double>(n)) * xmax + splat(1.0));
  VI nbad = none;
  for (int i = 0; i < n; ++i) {
    bad[i] = (x[i] < zero) | (y[i] < -tol);
    nbad -= bad[i];
  }
  const VI pass = ok & (nbad == none);
  if (g.dual && any(pass)) {
    // refine_dual: r = b_F - G_FF x_F; w = H_ZF r; w <- H_ZZ^{-1} w; x_F += H_FF r - H_FZ w
    for (int i = 0; i < n; ++i) r[i] = b[i];
    lanes_masked_dots<-1>(g.G, n, cs, nf, fm, x, r);
    for (int i = 0; i < n; ++i) wf[i] = zero;
    lanes_masked_dots<1>(g.H, n, cs, nf, fm, r, wf);  // rows on Z are the ones read below
    for (int l = 0; l < kLanes; ++l) {
      const int* out = outs + l * n;
      for (int a = 0; a < P; ++a) at(w, a, l) = a < z[l] ? at(wf, out[a], l) : 0.0;
    }
    lanes_cholesky_solve(M, P, w);
    for (int l = 0; l < kLanes; ++l) {
      const int* out = outs + l * n;
      for (int a = 0; a < z[l]; ++a) at(wf, out[a], l) = at(w, a, l);
    }
    for (int i = 0; i < n; ++i) u[i] = zero;  // u is not read again: the correction s
    lanes_masked_dots<1>(g.H, n, cs, nf, fm, r, u);
    lanes_masked_dots<-1>(g.H, n, cz, nz, zm, wf, u);
    for (int i = 0; i < n; ++i) x[i] = sel(fm[i], x[i] + u[i], x[i]);
  }
  for (int l = 0; l < g.count; ++l) {
    const int64_t t = g.cols[l];
    if (!ok[l]) {
      g.status[l] = -1;
    } else if (pass[l]) {
      double* xl = g.X + t * n;
      for (int i = 0; i < n; ++i) xl[i] = at(x, i, l);
      g.status[l] = 1;
    } else {
      uint8_t* Fl = g.F + t * n;
      for (int i = 0; i < n; ++i) Fl[i] ^= static_cast<uint8_t>(at(bad, i, l) & 1);
      g.status[l] = 0;
    }
  }
}

}  // namespace

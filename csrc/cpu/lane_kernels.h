// The exact subproblem of block principal pivoting (csrc/common/column_solver.h) for 8 columns at once, one
// column per SIMD lane: a fresh Cholesky factorization of each lane's support (packed, padded with identity
// rows to the group's largest), the triangular solves, the dual, the KKT test and, on the dual side, the step of
// iterative refinement. Included by lane_avx512.cpp inside its own namespace, after it switched the instruction
// set and turned off the contraction of a * b + c into one rounding.
//
// Exactness: every lane performs, value for value, the operations of ColumnSolver::subproblem and refine_dual
// in their order (the same products, each sum over its terms in increasing index), so x is the scalar solver's
// to the bit. Where the scalar code sums over a lane's own index list (H_iZ w, G_iF x_F), the lanes sum over
// the union of the group's lists with the vector set to +0 outside the lane's list: an added term is then +0
// or -0, which leaves every nonzero sum as it is and can change only the sign of a sum that is exactly zero;
// such a sign never reaches S (a code at or below zero is written as +0) or the KKT test (x < 0, y < -tol).
// Identity rows padding a factor to the group's largest size leave the real entries as they are (their
// terms are 0 * 0 subtracted).
// This file is included once per instruction set: no include, no definition outside the namespace.

namespace {

typedef double V __attribute__((vector_size(64)));
typedef long long VI __attribute__((vector_size(64)));

typedef double Vu __attribute__((vector_size(64), aligned(8)));  // an unaligned V in memory
typedef unsigned char VB __attribute__((vector_size(8)));

#if defined(__clang__)
#define NEURALNMF_SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define NEURALNMF_SHUFFLE(a, b, ...) __builtin_shuffle(a, b, VI{__VA_ARGS__})
#endif

inline V splat(double a) { return V{a, a, a, a, a, a, a, a}; }

// r[0..8) <- its transpose: entry i of r[l] becomes entry l of r[i] (lane-major rows to lane-minor and back).
inline void transpose8(V* r) {
  V t[8], u[8];
  for (int k = 0; k < 8; k += 2) {
    t[k] = NEURALNMF_SHUFFLE(r[k], r[k + 1], 0, 8, 2, 10, 4, 12, 6, 14);
    t[k + 1] = NEURALNMF_SHUFFLE(r[k], r[k + 1], 1, 9, 3, 11, 5, 13, 7, 15);
  }
  for (int k = 0; k < 8; k += 4) {
    u[k] = NEURALNMF_SHUFFLE(t[k], t[k + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[k + 1] = NEURALNMF_SHUFFLE(t[k + 1], t[k + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[k + 2] = NEURALNMF_SHUFFLE(t[k], t[k + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[k + 3] = NEURALNMF_SHUFFLE(t[k + 1], t[k + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = NEURALNMF_SHUFFLE(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[k + 4] = NEURALNMF_SHUFFLE(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}
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
#ifdef NEURALNMF_LANES_SQRT
    d = NEURALNMF_LANES_SQRT(d);
#else
    alignas(64) double root[kLanes];
    *reinterpret_cast<V*>(root) = d;
    for (int l = 0; l < kLanes; ++l) root[l] = sqrt(root[l]);
    d = *reinterpret_cast<V*>(root);
#endif
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

// Each lane's entries of v at its index list (lists + l * n, sizes[l] of them; zero past that, up to P) into w,
// solved with the packed factor M, and written into out at the same indices.
void lanes_solve_listed(const V* M, int P, const int* lists, const int* sizes, int n, const V* v, V* w, V* out) {
  for (int l = 0; l < kLanes; ++l) {
    const int* in = lists + l * n;
    for (int a = 0; a < P; ++a) at(w, a, l) = a < sizes[l] ? at(v, in[a], l) : 0.0;
  }
  lanes_cholesky_solve(M, P, w);
  for (int l = 0; l < kLanes; ++l) {
    const int* in = lists + l * n;
    for (int a = 0; a < sizes[l]; ++a) at(out, in[a], l) = at(w, a, l);
  }
}

// s[i] = s[i] + SIGN * R[i][c] * v[c] for c in cs (increasing), every lane (R symmetric: R[i][c] = R[c][i]).
// Eight rows at a time, each its own chain of additions.
template <int SIGN>
void lanes_dots(const double* R, int n, const int* cs, int nc, const V* v, V* s) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const double* Ri = R + i * n;
    V s0 = s[i], s1 = s[i + 1], s2 = s[i + 2], s3 = s[i + 3], s4 = s[i + 4], s5 = s[i + 5], s6 = s[i + 6],
      s7 = s[i + 7];
    for (int q = 0; q < nc; ++q) {
      const int c = cs[q];
      const V vc = SIGN > 0 ? v[c] : -v[c];  // s - r * v == s + r * (-v), exactly
      const double* Rc = Ri + c;
      s0 += splat(Rc[0]) * vc;
      s1 += splat(Rc[n]) * vc;
      s2 += splat(Rc[2 * n]) * vc;
      s3 += splat(Rc[3 * n]) * vc;
      s4 += splat(Rc[4 * n]) * vc;
      s5 += splat(Rc[5 * n]) * vc;
      s6 += splat(Rc[6 * n]) * vc;
      s7 += splat(Rc[7 * n]) * vc;
    }
    s[i] = s0;
    s[i + 1] = s1;
    s[i + 2] = s2;
    s[i + 3] = s3;
    s[i + 4] = s4;
    s[i + 5] = s5;
    s[i + 6] = s6;
    s[i + 7] = s7;
  }
  for (; i < n; ++i) {
    const double* Ri = R + i * n;
    V si = s[i];
    for (int q = 0; q < nc; ++q) si += splat(Ri[cs[q]]) * (SIGN > 0 ? v[cs[q]] : -v[cs[q]]);
    s[i] = si;
  }
}

// Packs each lane's sub-matrix R[list][list] (lower triangle) into M, padded to size P with identity rows.
void lanes_pack(const double* R, int n, const int* lists, const int* sizes, int P, V* M, VI* col, VI* row) {
#ifdef NEURALNMF_LANES_GATHER
  // one gather per entry of the triangle: lane l reads R[list_l[a]][list_l[c]], or the identity past its size
  VI size;
  for (int l = 0; l < kLanes; ++l) size[l] = sizes[l];
  for (int a = 0; a < P; ++a) {
    for (int l = 0; l < kLanes; ++l) {
      const long long in = a < sizes[l] ? lists[l * n + a] : 0;
      at(col, a, l) = in;
      at(row, a, l) = in * n;
    }
  }
  const V zero = splat(0.0), one = splat(1.0);
  for (int a = 0; a < P; ++a) {
    V* Ma = M + a * (a + 1) / 2;
    const VI ra = row[a];
    const VI live = VI{a, a, a, a, a, a, a, a} < size;
    for (int c = 0; c < a; ++c) Ma[c] = NEURALNMF_LANES_GATHER(zero, live, ra + col[c], R);
    Ma[a] = NEURALNMF_LANES_GATHER(one, live, ra + col[a], R);
  }
#else
  (void)col;
  (void)row;
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
#endif
}

void lanes_solve_group(LaneGroup& g) {
  const int n = g.n;
  V* const b = reinterpret_cast<V*>(g.scratch);
  V *u = b + n, *x = u + n, *y = x + n, *w = y + n, *wf = w + n, *r = wf + n;
  VI* fm = reinterpret_cast<VI*>(r + n);  // -1 in the lanes where index i is passive
  VI* bad = fm + n;
  V* M = reinterpret_cast<V*>(bad + n);
  int* lists = reinterpret_cast<int*>(M + n * (n + 1) / 2);  // in: kLanes x n, then out: kLanes x n
  int* outs = lists + kLanes * n;
  int* cs = outs + kLanes * n;
  int* cz = cs + n;
  int* iota = cz + n;
  int* cnt = iota + n;
  int p[kLanes], z[kLanes];
  const V zero = splat(0.0);
  const VI none = (VI)zero;
  const double* bl[kLanes];
  const uint8_t* Fl[kLanes];
  for (int i = 0; i < n; ++i) cnt[i] = 0;
  for (int l = 0; l < kLanes; ++l) {
    bl[l] = g.B + static_cast<int64_t>(g.cols[l]) * n;
    Fl[l] = g.F + static_cast<int64_t>(g.cols[l]) * n;
  }
  int i0 = 0;
  for (; i0 + kLanes <= n; i0 += kLanes) {  // b and the passive flags, eight indices at a time
    V rb[kLanes], rf[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      rb[l] = *reinterpret_cast<const Vu*>(bl[l] + i0);
      VB f;
      __builtin_memcpy(&f, Fl[l] + i0, sizeof(f));
      rf[l] = (V)(__builtin_convertvector(f, VI) != none);
    }
    transpose8(rb);
    transpose8(rf);
    for (int k = 0; k < kLanes; ++k) {
      b[i0 + k] = rb[k];
      fm[i0 + k] = (VI)rf[k];
    }
  }
  for (int l = 0; l < kLanes; ++l) {
    for (int i = i0; i < n; ++i) {
      at(b, i, l) = bl[l][i];
      at(fm, i, l) = Fl[l][i] != 0 ? -1 : 0;
    }
    // the list of the side the group factors (passive: F, dual: Z); cnt[i]: lanes with i passive
    int* list = g.dual ? outs + l * n : lists + l * n;
    const uint8_t want = g.dual ? 0 : 1;
    int m = 0;
    for (int i = 0; i < n; ++i) {
      const int f = Fl[l][i] != 0;
      list[m] = i;
      m += f == want;
      cnt[i] += f;
    }
    p[l] = g.dual ? n - m : m;
    z[l] = n - p[l];
  }
  int nf = 0, nz = 0;  // the indices passive in some lane, and those outside F in some lane
  for (int i = 0; i < n; ++i) {
    cs[nf] = i;
    cz[nz] = i;
    nf += cnt[i] > 0;
    nz += cnt[i] < kLanes;
  }
  VI ok;
  int P = 0;
  if (g.dual) {
    for (int l = 0; l < kLanes; ++l) P = z[l] > P ? z[l] : P;
    // u = H b (dual_rhs: u_i = 0 + H_0i b_0 + H_1i b_1 + ...): every term, in every lane
    for (int i = 0; i < n; ++i) {
      u[i] = zero;
      wf[i] = zero;
      iota[i] = i;
    }
    lanes_dots<1>(g.H, n, iota, n, b, u);
    lanes_pack(g.H, n, outs, z, P, M, (VI*)r, (VI*)y);  // (r and y: free until later)
    ok = lanes_cholesky(M, P, kPivotRtol);
    lanes_solve_listed(M, P, outs, z, n, u, w, wf);
    for (int i = 0; i < n; ++i) x[i] = u[i];
    lanes_dots<-1>(g.H, n, cz, nz, wf, x);  // x_F = u_F - H_FZ w (wf: w on Z, 0 on F)
    for (int i = 0; i < n; ++i) {
      y[i] = sel(fm[i], zero, -wf[i]);
      x[i] = sel(fm[i], x[i], zero);
    }
  } else {
    for (int l = 0; l < kLanes; ++l) P = p[l] > P ? p[l] : P;
    lanes_pack(g.G, n, lists, p, P, M, (VI*)r, (VI*)y);
    ok = lanes_cholesky(M, P, kPivotRtol);
    for (int i = 0; i < n; ++i) x[i] = zero;
    lanes_solve_listed(M, P, lists, p, n, b, w, x);
    for (int i = 0; i < n; ++i) y[i] = -b[i];
    lanes_dots<1>(g.G, n, cs, nf, x, y);  // y = G_:F x_F - b (x: 0 off F)
    for (int i = 0; i < n; ++i) y[i] = sel(fm[i], zero, y[i]);
  }
  // KKT (ColumnSolver::solve and dual_tolerance): bad where x_i < 0 or y_i < -tol
  V xm0 = zero, xm1 = zero;  // two running maxima (the maximum is the same in any order)
  const VI sign = (VI)splat(-0.0);
  int q = 0;
  for (; q + 2 <= n; q += 2) {
    const V v0 = (V)((VI)x[q] & ~sign), v1 = (V)((VI)x[q + 1] & ~sign);
    xm0 = sel(v0 > xm0, v0, xm0);
    xm1 = sel(v1 > xm1, v1, xm1);
  }
  if (q < n) {
    const V v0 = (V)((VI)x[q] & ~sign);
    xm0 = sel(v0 > xm0, v0, xm0);
  }
  const V xmax = sel(xm1 > xm0, xm1, xm0);
  const V tol = splat(4.0 * n * DBL_EPSILON) * (splat(static_cast<double>(n)) * xmax + splat(1.0));
  VI nbad = none;
  for (int i = 0; i < n; ++i) {
    bad[i] = (x[i] < zero) | (y[i] < -tol);
    nbad -= bad[i];
  }
  const VI pass = ok & (nbad == none);
  if (g.dual && any(pass)) {
    // refine_dual: r = b_F - G_FF x_F; w = H_ZF r; w <- H_ZZ^{-1} w; x_F += (H_FF r - H_FZ w). The sums H_ZF r
    // and H_FF r are one pass, t = H r over c in F (both start at 0 and take the same terms).
    for (int i = 0; i < n; ++i) r[i] = b[i];
    lanes_dots<-1>(g.G, n, cs, nf, x, r);  // x is 0 off F
    for (int i = 0; i < n; ++i) {
      r[i] = sel(fm[i], r[i], zero);
      u[i] = zero;  // u is not read again: t
      wf[i] = zero;
    }
    lanes_dots<1>(g.H, n, cs, nf, r, u);
    lanes_solve_listed(M, P, outs, z, n, u, w, wf);
    lanes_dots<-1>(g.H, n, cz, nz, wf, u);
    for (int i = 0; i < n; ++i) x[i] = sel(fm[i], x[i] + u[i], x[i]);
  }
  for (int l = 0; l < g.count; ++l) g.status[l] = !ok[l] ? -1 : pass[l] ? 1 : 0;
  for (i0 = 0; i0 + kLanes <= n; i0 += kLanes) {  // x of the lanes that pass, eight indices at a time
    V rx[kLanes];
    for (int k = 0; k < kLanes; ++k) rx[k] = x[i0 + k];
    transpose8(rx);
    for (int l = 0; l < g.count; ++l) {
      if (g.status[l] == 1) *reinterpret_cast<Vu*>(g.X + static_cast<int64_t>(g.cols[l]) * n + i0) = rx[l];
    }
  }
  for (int l = 0; l < g.count; ++l) {
    const int64_t t = g.cols[l];
    if (g.status[l] == 1) {
      double* xl = g.X + t * n;
      for (int i = i0; i < n; ++i) xl[i] = at(x, i, l);
    } else if (g.status[l] == 0) {
      uint8_t* Fl = g.F + t * n;
      for (int i = 0; i < n; ++i) Fl[i] ^= static_cast<uint8_t>(at(bad, i, l) & 1);
    }
  }
}

}  // namespace

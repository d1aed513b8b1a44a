// What float32 lanes could save: the exact subproblem's factorization and triangular solves
// (csrc/cpu/lane_kernels.h: lanes_cholesky, lanes_cholesky_solve), timed as the lanes run them in float64
// (8 columns per AVX-512 register) and as a float32 kernel would (16 per register), on one support of size P
// of a Jacobi-scaled Gram of A = U[0, 1) (500 x P), the data of bench_nnls.py. Only the factor and the solves:
// packing the supports, the dual and the KKT test are not in it, nor the iterative refinement that a float32
// factor would need to give float64-accurate codes.
//
// Build and run from the repository root (the lanes' flags: AVX-512F, no contraction of a * b + c):
//   g++ -O3 -mavx512f -ffp-contract=off -std=c++17 benchmarks/lane_precision.cpp -o /tmp/lane_precision
//   /tmp/lane_precision            # microseconds per column, the best of 5 runs of 20 000 groups
#include <immintrin.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

template <typename T, int L>
struct Lanes {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
};

// lanes_cholesky's loops (packed lower triangle, row a at a (a + 1) / 2), without its pivot test
template <typename T, int L>
__attribute__((noinline)) void cholesky(typename Lanes<T, L>::V* M, int n) {
  typedef typename Lanes<T, L>::V V;
  V one;
  for (int l = 0; l < L; ++l) one[l] = 1;
  for (int j = 0; j < n; ++j) {
    V* Mj = M + j * (j + 1) / 2;
    V d = Mj[j];
    for (int p = 0; p < j; ++p) d -= Mj[p] * Mj[p];
    if constexpr (sizeof(T) == 8) {
      d = (V)_mm512_mask_sqrt_pd((__m512d)d, 0xFF, (__m512d)d);  // as NEURALNMF_LANES_SQRT
    } else {
      d = (V)_mm512_mask_sqrt_ps((__m512)d, 0xFFFF, (__m512)d);
    }
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
}

// lanes_cholesky_solve's loops
template <typename T, int L>
__attribute__((noinline)) void solve(const typename Lanes<T, L>::V* F, int n, typename Lanes<T, L>::V* x) {
  typedef typename Lanes<T, L>::V V;
  for (int p = 0; p < n; ++p) {
    const V v = x[p] / F[p * (p + 1) / 2 + p];
    x[p] = v;
    for (int i = p + 1; i < n; ++i) x[i] -= F[i * (i + 1) / 2 + p] * v;
  }
  for (int i = n - 1; i >= 0; --i) {
    V s = x[i];
    for (int p = i + 1; p < n; ++p) s -= F[p * (p + 1) / 2 + i] * x[p];
    x[i] = s / F[i * (i + 1) / 2 + i];
  }
}

// microseconds per column of one factorization and one solve, the best of 5 runs
template <typename T, int L>
double time_per_column(const std::vector<double>& G, int n, int groups) {
  typedef typename Lanes<T, L>::V V;
  const int tri = n * (n + 1) / 2;
  V* M0 = static_cast<V*>(std::aligned_alloc(64, sizeof(V) * tri));
  V* M = static_cast<V*>(std::aligned_alloc(64, sizeof(V) * tri));
  V* x = static_cast<V*>(std::aligned_alloc(64, sizeof(V) * n));
  for (int a = 0; a < n; ++a) {
    for (int c = 0; c <= a; ++c) {
      for (int l = 0; l < L; ++l) M0[a * (a + 1) / 2 + c][l] = static_cast<T>(G[a * n + c]);
    }
  }
  double best = 1e30;
  for (int run = 0; run < 5; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int g = 0; g < groups; ++g) {
      std::memcpy(M, M0, sizeof(V) * tri);
      cholesky<T, L>(M, n);
      for (int i = 0; i < n; ++i) {
        for (int l = 0; l < L; ++l) x[i][l] = 1;
      }
      solve<T, L>(M, n, x);
      asm volatile("" : : "r"(x) : "memory");
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s / groups / L * 1e6);
  }
  std::free(M0);
  std::free(M);
  std::free(x);
  return best;
}

int main() {
  const int rows = 500, groups = 20000;
  std::printf("support P | float64, 8 lanes | float32, 16 lanes | float64 / float32\n");
  for (int n : {16, 29, 32, 48}) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> uniform(0, 1);
    std::vector<double> A(rows * n), G(n * n);
    for (double& a : A) a = uniform(rng);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int r = 0; r < rows; ++r) s += A[r * n + i] * A[r * n + j];
        G[i * n + j] = s;
      }
    }
    std::vector<double> d(n);
    for (int i = 0; i < n; ++i) d[i] = 1 / std::sqrt(G[i * n + i]);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) G[i * n + j] *= d[i] * d[j];
    }
    const double t64 = time_per_column<double, 8>(G, n, groups), t32 = time_per_column<float, 16>(G, n, groups);
    std::printf("%9d | %13.3f us | %14.3f us | %.2f\n", n, t64, t32, t64 / t32);
  }
}

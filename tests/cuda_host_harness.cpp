// Runs the host+device code of csrc/cuda/*.cuh on the host, for tests/test_cuda_compile.py:
//   * the per-column solves of the lane-group kernels (group_columns.cuh), each column by a group of L lanes
//     emulated one after another (lane_group_host.h), for the (L, VPL) configurations of the device and others;
//   * the one-thread-per-column solves (column_device.cuh) of the columns the groups defer;
//   * the block routine prepare_gram_item with one thread or with a team of real threads.
// Compiled by the host C++ compiler into a shared library driven through ctypes.
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda/group_columns.cuh"
#include "cuda/lane_group_host.h"

using namespace neuralnmf::cuda;

// __syncthreads() for host threads.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const long gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_, count_ = 0;
  long gen_ = 0;
};

struct ThreadTeam {
  int r, n;
  Barrier* barrier;
  int rank() const { return r; }
  int size() const { return n; }
  void sync() const { barrier->wait(); }
};

struct Scratch {
  std::vector<double> d;
  std::vector<int> i;
  std::vector<uint8_t> b;
  ColumnScratch view;
  Scratch(int64_t slots, int64_t dps, int64_t k)
      : d(slots * dps, 12345.0), i(slots * ints_per_slot(k), -7), b(slots * bytes_per_slot(k), 0xAB) {
    view = ColumnScratch{d.data(), i.data(), b.data(), dps, ints_per_slot(k), bytes_per_slot(k), slots};
  }
};

struct Gram {
  int k;
  int64_t N;
  int shared;
  const double *Ad, *G, *H, *d, *a_scale;
  const int32_t* flags;
  GramView view() const { return GramView{k, N, shared != 0, Ad, G, H, d, a_scale, flags}; }
};

static void set_error(char* err, int errlen, const std::string& what) {
  if (err != nullptr && errlen > 0) {
    std::strncpy(err, what.c_str(), errlen - 1);
    err[errlen - 1] = 0;
  }
}

// The lane-group pass over every column (li, lj) of `a`, then the thread pass over the deferred ones, as
// csrc/cuda/group_kernels.cuh and column_kernels.cuh launch them. Returns the number of deferred columns, or
// -1 when the lanes broke the collective rule (err says how).
template <int L, int VPL, typename rhs_t, typename T>
static int64_t nnls_columns(const NnlsColumns<rhs_t, T>& a, bool groups, char* err, int errlen) {
  const int k = a.gram.k;
  const int64_t kk = static_cast<int64_t>(k) * k;
  int64_t deferred = 0;
  if (groups) {
    std::vector<double> work(group_work_bytes(k) / 8 + 1, -777.0);
    const GroupWork ws = group_work(work.data(), k);
    LaneScheduler lanes;
    for (int64_t e = 0; e < a.items * a.len; ++e) {
      const int64_t li = e / a.len, lj = e % a.len;
      const int64_t gi = a.gram.item(a.b0 + li);
      const double* G = a.gram.G + gi * kk;
      const double* H = a.gram.H + gi * kk;
      const bool usable = a.gram.flags[gi] & kGramHUsable;  // as group_nnls_kernel decides it
      const bool refine = !(usable && refine_skippable(sizeof(T) == 4, k, trace(H, k)));
      auto fn = [&](int lane, LaneScheduler* s) {
        const HostLanes<L> g{s, lane};
        const ColumnLoad<VPL> load = load_nnls_column<HostLanes<L>, VPL>(g, a, li, lj);
        group_nnls_column<HostLanes<L>, VPL>(g, a, G, H, refine, ws, li, lj, load);
      };
      if (!lanes.run(L, fn)) {
        set_error(err, errlen, lanes.error());
        return -1;
      }
    }
  }
  Scratch s(2, nnls_doubles_per_slot(k), k);
  for (int64_t e = 0; e < a.items * a.len; ++e) {
    const int64_t li = e / a.len, lj = e % a.len;
    if (groups && *a.info_of(li, lj) != kDeferred) continue;
    ++deferred;
    nnls_column(a, li, lj, s.view, e % 2);
  }
  return deferred;
}

template <int L, int VPL, typename T>
static int64_t support_columns(SupportColumns<T> a, bool groups, char* err, int errlen) {
  const int k = a.gram.k;
  const int64_t kk = static_cast<int64_t>(k) * k;
  std::vector<uint8_t> flags(a.items * a.M, 1);
  if (groups) {
    std::vector<double> work(group_work_bytes(k) / 8 + 1, -777.0);
    const GroupWork ws = group_work(work.data(), k);
    LaneScheduler lanes;
    for (int64_t e = 0; e < a.items * a.M; ++e) {
      const int64_t item = e / a.M, col = e % a.M;
      const int64_t gi = a.gram.item(item);
      const double* G = a.gram.G + gi * kk;
      const double* H = a.gram.H + gi * kk;
      auto fn = [&](int lane, LaneScheduler* s) {
        const HostLanes<L> g{s, lane};
        const ColumnLoad<VPL> load = load_support_column<HostLanes<L>, VPL>(g, a, item, col);
        group_support_column<HostLanes<L>, VPL>(g, a, G, H, ws, item, col, load, flags.data());
      };
      if (!lanes.run(L, fn)) {
        set_error(err, errlen, lanes.error());
        return -1;
      }
    }
  }
  a.deferred = flags.data();
  Scratch s(2, support_doubles_per_slot(k), k);
  int64_t deferred = 0;
  for (int64_t e = 0; e < a.items * a.M; ++e) {
    if (!flags[e]) continue;
    ++deferred;
    support_column(a, e / a.M, e % a.M, s.view, e % 2);
  }
  return deferred;
}

// (lanes, values per lane) configurations: the device's (8, 1) (16, 1) (32, 1) (32, 2) (32, 4) (32, 8) and
// others of the same capacity, which must give the same results. lanes = 0: the thread pass alone.
#define NNLS_CONFIGS(X) \
  X(1, 8) X(2, 4) X(4, 2) X(8, 1) X(4, 4) X(16, 1) X(32, 1) X(8, 4) X(16, 2) X(32, 2) X(32, 4) X(16, 8) X(32, 8)

template <typename rhs_t, typename T>
static int64_t dispatch_nnls(int lanes, int vpl, const NnlsColumns<rhs_t, T>& a, char* err, int errlen) {
#define NNLS_CASE(L, V) \
  if (lanes == L && vpl == V) return nnls_columns<L, V>(a, true, err, errlen);
  NNLS_CONFIGS(NNLS_CASE)
#undef NNLS_CASE
  if (lanes == 0) return nnls_columns<1, 1>(a, false, err, errlen);
  set_error(err, errlen, "no such configuration");
  return -1;
}

template <typename T>
static int64_t dispatch_support(int lanes, int vpl, const SupportColumns<T>& a, char* err, int errlen) {
#define NNLS_CASE(L, V) \
  if (lanes == L && vpl == V) return support_columns<L, V>(a, true, err, errlen);
  NNLS_CONFIGS(NNLS_CASE)
#undef NNLS_CASE
  if (lanes == 0) return support_columns<1, 1>(a, false, err, errlen);
  set_error(err, errlen, "no such configuration");
  return -1;
}

template <typename T>
static Strided3<T> strided(T* data, const int64_t* s) {
  return Strided3<T>{data, s[0], s[1], s[2]};
}

// A lane program for the collective-rule check: every lane sums `values` unless `diverge`, where lane 1 skips
// the sum (the device would hang or read garbage; the host emulation must report it).
template <int L>
static int lane_program(const double* values, int diverge, double* out, char* err, int errlen) {
  LaneScheduler lanes;
  auto fn = [&](int lane, LaneScheduler* s) {
    const HostLanes<L> g{s, lane};
    double v = values[lane];
    if (!(diverge && lane == 1)) v = g.sum(v);
    const double m = g.max(values[lane]);
    const unsigned b = g.ballot(values[lane] > 0);
    const double from = g.bcast(values[lane], L - 1);
    out[4 * lane + 0] = v;
    out[4 * lane + 1] = m;
    out[4 * lane + 2] = static_cast<double>(b);
    out[4 * lane + 3] = from;
  };
  if (!lanes.run(L, fn)) {
    set_error(err, errlen, lanes.error());
    return -1;
  }
  return 0;
}

extern "C" {
double emu_dictionary_scale(double amax) { return dictionary_scale(amax); }

void emu_prepare_gram(double* G, double* L, double* H, const double* d, int32_t* flags, int64_t ng, int k) {
  double shared = -1.0;
  const int64_t kk = static_cast<int64_t>(k) * k;
  for (int64_t g = 0; g < ng; ++g) {
    prepare_gram_item(Team{}, G + g * kk, L + g * kk, H + g * kk, d + g * k, flags + g, k, &shared);
  }
}

void emu_prepare_gram_threads(double* G, double* L, double* H, const double* d, int32_t* flags, int64_t ng, int k,
                              int threads) {
  const int64_t kk = static_cast<int64_t>(k) * k;
  for (int64_t g = 0; g < ng; ++g) {
    double shared = -1.0;
    Barrier barrier(threads);
    std::vector<std::thread> team;
    for (int r = 0; r < threads; ++r) {
      team.emplace_back([&, r] {
        prepare_gram_item(ThreadTeam{r, threads, &barrier}, G + g * kk, L + g * kk, H + g * kk, d + g * k, flags + g,
                          k, &shared);
      });
    }
    for (auto& t : team) t.join();
  }
}

// The forward columns of one launch. rhs_f64 / s_f64: B's and S's dtypes (X has S's). strides: 3 per array.
int64_t emu_nnls(int lanes, int vpl, int rhs_f64, int s_f64, int k, int64_t N, int shared, const double* Ad,
                 const double* G, const double* H, const double* d, const double* a_scale, const int32_t* flags,
                 const void* B, const int64_t* bst, const double* row_scale, const void* X, const int64_t* xst,
                 const bool* init, const int64_t* ist, void* S, const int64_t* sst, int32_t* info, int64_t M,
                 int64_t b0, int64_t c0, int64_t len, int64_t items, int64_t max_iter, char* err, int errlen) {
  const GramView gram = Gram{k, N, shared, Ad, G, H, d, a_scale, flags}.view();
  const Strided3<const bool> in = strided(init, ist);
  auto run = [&](auto rhs_tag, auto s_tag) -> int64_t {
    using R = decltype(rhs_tag);
    using T = decltype(s_tag);
    const NnlsColumns<R, T> a{gram, strided(static_cast<const R*>(B), bst), row_scale,
                              strided(static_cast<const T*>(X), xst), in, strided(static_cast<T*>(S), sst), info,
                              M, b0, c0, len, items, max_iter};
    return dispatch_nnls(lanes, vpl, a, err, errlen);
  };
  if (rhs_f64 && s_f64) return run(double{}, double{});
  if (rhs_f64) return run(double{}, float{});
  if (!s_f64) return run(float{}, float{});
  set_error(err, errlen, "float32 products with float64 S do not occur");
  return -1;
}

int64_t emu_support(int lanes, int vpl, int f64, int k, int shared, const double* G, const double* H, const double* d,
                    const double* a_scale, const int32_t* flags, const void* grad, const int64_t* gst, const void* S,
                    const int64_t* sst, void* V, const int64_t* vst, int64_t M, int64_t items, char* err, int errlen) {
  const GramView gram = Gram{k, 0, shared, nullptr, G, H, d, a_scale, flags}.view();
  auto run = [&](auto tag) -> int64_t {
    using T = decltype(tag);
    const SupportColumns<T> a{gram, strided(static_cast<const T*>(grad), gst), strided(static_cast<const T*>(S), sst),
                              strided(static_cast<T*>(V), vst), nullptr, M, items};
    return dispatch_support(lanes, vpl, a, err, errlen);
  };
  return f64 ? run(double{}) : run(float{});
}

int emu_lanes(int L, const double* values, int diverge, double* out, char* err, int errlen) {
  switch (L) {
    case 1: return lane_program<1>(values, diverge, out, err, errlen);
    case 2: return lane_program<2>(values, diverge, out, err, errlen);
    case 8: return lane_program<8>(values, diverge, out, err, errlen);
    case 32: return lane_program<32>(values, diverge, out, err, errlen);
    default: return -2;
  }
}

void emu_pinv(const double* G, int n, const uint8_t* passive, const double* r, double* v) {
  std::vector<double> A(n * n), Q(n * n), t(n);
  std::vector<int> in(n);
  pinv_solve_on_support(G, n, passive, r, v, A.data(), Q.data(), in.data(), t.data());
}
}

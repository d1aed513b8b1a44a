// The host version of a lane group (lane_group.cuh), for tests: L lanes run one after another on one host
// thread. Each lane is a coroutine (ucontext) that runs until its next collective operation, leaves its
// contribution there and hands over to the next lane; once every lane has arrived, each one resumes and
// reads the combined result, computed the way the warp shuffles compute it. Shared memory needs nothing
// special: a write made before a sync() is seen by every lane that reads after it, as on the device.
//
// It also checks the rule the device code relies on: every lane calls the same collectives in the same order
// and returns together. A violation (a collective inside lane-divergent control flow) sets error() instead
// of hanging or crashing; the results are then meaningless.
//
// Host only (POSIX ucontext), not compiled into the extension.
#pragma once

#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#include <string>
#include <vector>

#include "lane_group.cuh"

namespace neuralnmf {
namespace cuda {

class LaneScheduler {
 public:
  explicit LaneScheduler(size_t stack_bytes = 1 << 18) : stack_bytes_(stack_bytes) {}

  // Runs fn(lanes) for every lane of a group of L lanes; returns false (and sets error()) when the lanes did
  // not call the same collectives.
  template <class Fn>
  bool run(int L, Fn& fn);

  const std::string& error() const { return error_; }
  int64_t collectives() const { return collectives_; }

  // --- used by HostLanes --------------------------------------------------------------------------------
  enum Kind : int { kSync = 1, kSum, kMaxD, kMaxI, kMaxU, kBallot, kBcastD, kBcastI };
  // Leaves `bits` as lane `lane`'s contribution to its next collective, runs the other lanes, and returns
  // the buffer of that collective (bits of every lane).
  const uint64_t* arrive(int lane, int kind, uint64_t bits, int src = 0);
  int size() const { return L_; }

 private:
  struct Lane {
    ucontext_t ctx;
    std::vector<char> stack;
    int64_t gen = 0;  // collectives this lane has passed
    bool done = false;
  };
  template <class Fn>
  static void entry();
  void fail(const std::string& what) {
    if (error_.empty()) error_ = what;
  }

  size_t stack_bytes_;
  int L_ = 0;
  std::vector<Lane> lanes_;
  ucontext_t main_;
  uint64_t bits_[2][32];
  int kind_[2][32];
  int src_[2][32];
  int64_t arrived_[2][32];  // the collective (count) each lane's entry belongs to
  std::string error_;
  int64_t collectives_ = 0;
  void* fn_ = nullptr;
  int starting_ = 0;
};

// One lane of a host group: the interface of WarpLanes<L>.
template <int L>
struct HostLanes {
  static_assert(L >= 1 && L <= 32 && (L & (L - 1)) == 0, "a lane group is a power of two of at most 32 lanes");
  static constexpr int kSize = L;
  LaneScheduler* s;
  int lane_;

  int lane() const { return lane_; }
  void sync() const { s->arrive(lane_, LaneScheduler::kSync, 0); }
  double sum(double v) const {
    const uint64_t* b = s->arrive(lane_, LaneScheduler::kSum, bits(v));
    double values[32];
    for (int l = 0; l < L; ++l) values[l] = real(b[l]);
    return butterfly_sum(values, L);
  }
  double max(double v) const {
    const uint64_t* b = s->arrive(lane_, LaneScheduler::kMaxD, bits(v));
    double m = real(b[0]);
    for (int l = 1; l < L; ++l) m = fmax(m, real(b[l]));  // fmax as on the device (NaN is dropped)
    return m;
  }
  int max(int v) const {
    const uint64_t* b = s->arrive(lane_, LaneScheduler::kMaxI, static_cast<uint64_t>(static_cast<int64_t>(v)));
    int m = static_cast<int>(static_cast<int64_t>(b[0]));
    for (int l = 1; l < L; ++l) {
      const int w = static_cast<int>(static_cast<int64_t>(b[l]));
      m = w > m ? w : m;
    }
    return m;
  }
  unsigned umax(unsigned v) const {
    const uint64_t* b = s->arrive(lane_, LaneScheduler::kMaxU, v);
    unsigned m = 0;
    for (int l = 0; l < L; ++l) m = static_cast<unsigned>(b[l]) > m ? static_cast<unsigned>(b[l]) : m;
    return m;
  }
  unsigned ballot(bool p) const {
    const uint64_t* b = s->arrive(lane_, LaneScheduler::kBallot, p ? 1 : 0);
    unsigned out = 0;
    for (int l = 0; l < L; ++l) out |= static_cast<unsigned>(b[l] & 1u) << l;
    return out;
  }
  int count(bool p) const { return popcount(ballot(p)); }
  unsigned below() const { return (1u << lane_) - 1u; }
  double bcast(double v, int src) const { return real(s->arrive(lane_, LaneScheduler::kBcastD, bits(v), src)[src]); }
  int bcast(int v, int src) const {
    return static_cast<int>(static_cast<int64_t>(
        s->arrive(lane_, LaneScheduler::kBcastI, static_cast<uint64_t>(static_cast<int64_t>(v)), src)[src]));
  }

  static uint64_t bits(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
  }
  static double real(uint64_t u) {
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
  }
};

// --- implementation -------------------------------------------------------------------------------------

namespace lane_group_detail {
inline LaneScheduler*& current() {
  static thread_local LaneScheduler* s = nullptr;
  return s;
}
}  // namespace lane_group_detail

template <class Fn>
void LaneScheduler::entry() {
  LaneScheduler* self = lane_group_detail::current();
  const int lane = self->starting_;
  Fn& fn = *static_cast<Fn*>(self->fn_);
  fn(lane, self);
  self->lanes_[lane].done = true;
  // returning resumes main_ through uc_link
}

template <class Fn>
bool LaneScheduler::run(int L, Fn& fn) {
  L_ = L;
  lanes_.resize(L);
  error_.clear();
  fn_ = &fn;
  LaneScheduler*& cur = lane_group_detail::current();
  LaneScheduler* previous = cur;
  cur = this;
  for (int l = 0; l < L; ++l) {
    Lane& lane = lanes_[l];
    arrived_[0][l] = arrived_[1][l] = -1;
    lane.gen = 0;
    lane.done = false;
    if (lane.stack.size() != stack_bytes_) lane.stack.assign(stack_bytes_, 0);
    getcontext(&lane.ctx);
    lane.ctx.uc_stack.ss_sp = lane.stack.data();
    lane.ctx.uc_stack.ss_size = lane.stack.size();
    lane.ctx.uc_link = &main_;
    makecontext(&lane.ctx, reinterpret_cast<void (*)()>(&LaneScheduler::entry<Fn>), 0);
  }
  // Rounds: every lane runs until its next collective (or its end). A lane that finishes while another is
  // still at a collective, or collectives of different kinds in one round, are errors.
  for (int64_t round = 0;; ++round) {
    int finished = 0;
    for (int l = 0; l < L; ++l) {
      starting_ = l;
      if (!lanes_[l].done) swapcontext(&main_, &lanes_[l].ctx);
      finished += lanes_[l].done;
    }
    if (finished == L) break;
    if (finished > 0) {
      fail("lanes returned at different collectives (a collective inside lane-divergent control flow)");
      // let the others run to their end so that their stacks are left cleanly; bound the rounds
      if (round > (int64_t{1} << 24)) break;
    }
  }
  cur = previous;
  return error_.empty();
}

inline const uint64_t* LaneScheduler::arrive(int lane, int kind, uint64_t bits, int src) {
  Lane& me = lanes_[lane];
  const int slot = static_cast<int>(me.gen & 1);
  bits_[slot][lane] = bits;
  kind_[slot][lane] = kind;
  src_[slot][lane] = src;
  arrived_[slot][lane] = me.gen;
  if (lane == 0) ++collectives_;
  swapcontext(&me.ctx, &main_);  // the other lanes arrive
  for (int l = 0; l < L_; ++l) {
    if (arrived_[slot][l] != me.gen || kind_[slot][l] != kind || src_[slot][l] != src) {
      fail("lanes called different collectives (kind " + std::to_string(kind) + " on lane " + std::to_string(lane) +
           ", kind " + std::to_string(kind_[slot][l]) + " on lane " + std::to_string(l) + ")");
      break;
    }
  }
  ++me.gen;
  return bits_[slot];
}

}  // namespace cuda
}  // namespace neuralnmf

#include "cpu/thread_pool.h"

#include <chrono>

namespace rotor {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// How long an idle worker (or the waiting caller) spins before it sleeps. Long enough to bridge the
// gap between two linear layers of a decode step, short enough not to burn a core when idle.
constexpr auto kSpin = std::chrono::microseconds(200);

// Spins until pred() or the spin budget is spent; true if pred() became true.
template <class P>
bool spin_until(P pred) {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (pred()) return true;
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() >= until) return pred();
    }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
    if (n_threads <= 0) n_threads = (int)std::thread::hardware_concurrency();
    n_threads_ = n_threads < 1 ? 1 : n_threads;
    threads_.reserve((size_t)n_threads_ - 1);
    for (int i = 1; i < n_threads_; i++) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true);
    generation_.fetch_add(1);
    {
        std::lock_guard<std::mutex> lk(mutex_);
        wake_cv_.notify_all();
    }
    for (auto& t : threads_) t.join();
}

void ThreadPool::run_impl(Job job, void* ctx) {
    if (n_threads_ == 1) {
        job(ctx, 0, 1);
        return;
    }
    std::lock_guard<std::mutex> section(run_mutex_);
    job_ = job;
    ctx_ = ctx;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1);  // seq_cst: ordered before the load of sleepers_
    if (sleepers_.load() > 0) {
        // A worker going to sleep counts itself in sleepers_ and then re-checks generation_ under
        // mutex_: it either sees the new generation or is already waiting when we notify.
        std::lock_guard<std::mutex> lk(mutex_);
        wake_cv_.notify_all();
    }

    job(ctx, 0, n_threads_);

    auto done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(done)) {
        std::unique_lock<std::mutex> lk(mutex_);
        caller_waiting_.store(true);
        done_cv_.wait(lk, done);
        caller_waiting_.store(false);
    }
}

void ThreadPool::worker(int index) {
    uint64_t seen = 0;
    for (;;) {
        auto fresh = [&] { return generation_.load(std::memory_order_acquire) != seen; };
        if (!spin_until(fresh)) {
            std::unique_lock<std::mutex> lk(mutex_);
            sleepers_.fetch_add(1);
            wake_cv_.wait(lk, fresh);
            sleepers_.fetch_sub(1);
        }
        seen = generation_.load(std::memory_order_acquire);
        if (stop_.load()) return;
        job_(ctx_, index, n_threads_);
        if (pending_.fetch_sub(1) == 1 && caller_waiting_.load()) {
            std::lock_guard<std::mutex> lk(mutex_);
            done_cv_.notify_one();
        }
    }
}

}  // namespace rotor

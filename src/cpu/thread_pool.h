// A small persistent thread pool for the decode hot path. A decode step runs a few hundred short
// parallel sections (one per linear layer), so waking threads must cost microseconds, not a
// scheduler round trip: idle workers spin briefly on an atomic generation counter, then sleep on a
// condition variable. The calling thread takes part as thread 0.
//
// One section at a time: run() from several threads at once is serialized. Work functions must
// not throw, and must not call run() on the same pool.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace rotor {

class ThreadPool {
public:
    // n_threads in total, the caller included; <= 0 means std::thread::hardware_concurrency().
    explicit ThreadPool(int n_threads = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Calls fn(thread, n_threads) once on each of the pool's threads and returns when all are done.
    template <class F>
    void run(F&& fn) {
        auto call = [](void* ctx, int t, int n) { (*static_cast<std::remove_reference_t<F>*>(ctx))(t, n); };
        run_impl(call, &fn);
    }

    // Calls fn(begin, end, thread) over [0, n) in chunks of `grain` items handed out on demand, so a
    // thread the OS preempts delays only the chunk it holds. Small n runs on the caller alone.
    template <class F>
    void parallel_for(int64_t n, int64_t grain, F&& fn) {
        if (n <= 0) return;
        if (grain < 1) grain = 1;
        if (n_threads_ == 1 || n <= grain) {
            fn((int64_t)0, n, 0);
            return;
        }
        std::atomic<int64_t> next{0};
        run([&](int t, int) {
            for (;;) {
                const int64_t b = next.fetch_add(grain, std::memory_order_relaxed);
                if (b >= n) break;
                fn(b, b + grain < n ? b + grain : n, t);
            }
        });
    }

private:
    using Job = void (*)(void* ctx, int thread, int n_threads);
    void run_impl(Job job, void* ctx);
    void worker(int index);

    int n_threads_;
    std::vector<std::thread> threads_;
    std::mutex run_mutex_;  // one section at a time

    // Published by run_impl before bumping generation_ (release), read by workers after (acquire).
    Job job_ = nullptr;
    void* ctx_ = nullptr;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};  // workers still running the current section
    std::atomic<bool> stop_{false};

    // The sleeping side of both hand-offs. The flags are seq_cst atomics so the fast path takes no
    // lock: a sleeper announces itself before its last check of the condition, under mutex_.
    std::mutex mutex_;
    std::condition_variable wake_cv_, done_cv_;
    std::atomic<int> sleepers_{0};              // workers blocked (or about to block) on wake_cv_
    std::atomic<bool> caller_waiting_{false};  // run_impl blocked (or about to block) on done_cv_
};

}  // namespace rotor

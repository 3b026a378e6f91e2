// The thread pool: every index visited exactly once, every thread index used, and many short
// sections back to back (the decode pattern), including after the workers fell asleep.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "cpu/thread_pool.h"

using rotor::ThreadPool;

TEST(ThreadPool, ParallelForVisitsEachIndexOnce) {
    for (int threads : {1, 2, 3, 4}) {
        ThreadPool pool(threads);
        EXPECT_EQ(pool.size(), threads);
        for (int64_t n : {0, 1, 5, 1000, 100003}) {
            for (int64_t grain : {1, 7, 64}) {
                std::vector<std::atomic<int>> seen((size_t)n);
                for (auto& s : seen) s = 0;
                pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int t) {
                    ASSERT_GE(t, 0);
                    ASSERT_LT(t, threads);
                    if (threads > 1 && n > grain) {  // one thread, or one chunk: a single call
                        EXPECT_LE(e - b, grain);
                    }
                    for (int64_t i = b; i < e; i++) seen[(size_t)i]++;
                });
                for (int64_t i = 0; i < n; i++) ASSERT_EQ(seen[(size_t)i].load(), 1) << "n " << n << " grain " << grain;
            }
        }
    }
}

TEST(ThreadPool, RunUsesEveryThreadOnce) {
    ThreadPool pool(3);
    std::vector<std::atomic<int>> hits(3);
    for (auto& h : hits) h = 0;
    pool.run([&](int t, int n) {
        EXPECT_EQ(n, 3);
        hits[(size_t)t]++;
    });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPool, ManyShortSectionsAndSleepingWorkers) {
    ThreadPool pool(2);
    std::atomic<int64_t> total{0};
    int64_t expect = 0;
    for (int i = 0; i < 20000; i++) {
        const int64_t n = 1 + i % 97;
        pool.parallel_for(n, 4, [&](int64_t b, int64_t e, int) { total += e - b; });
        expect += n;
        // Now and then pause long enough for the workers to stop spinning and sleep.
        if (i % 2500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_EQ(total.load(), expect);
}

TEST(ThreadPool, DefaultSizeAndIdleDestruction) {
    ThreadPool pool;  // hardware_concurrency
    EXPECT_GE(pool.size(), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // destroy with sleeping workers
}

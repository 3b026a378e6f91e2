// Shared helpers for the server tests: the small model (loaded once), and running a request to its end.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/model.h"
#include "server/engine.h"
#include "testdata.h"
#include "tokenizer/vocab.h"

namespace rotor::test {

inline std::string small_model_path() { return source_dir() + "/models/rotor-kjv-11m/rotor-kjv-11m-q8_0.gguf"; }

struct SmallModel {
    std::unique_ptr<Model> model;
    std::unique_ptr<Vocab> vocab;
};

// Loaded once per test program; nullptr when the file is absent (tests skip).
inline const SmallModel* small_model() {
    static std::unique_ptr<SmallModel> m = [] {
        std::unique_ptr<SmallModel> s;
        if (!std::filesystem::exists(small_model_path())) return s;
        s = std::make_unique<SmallModel>();
        s->model = Model::load(small_model_path());
        s->vocab = std::make_unique<Vocab>(Vocab::from_gguf(s->model->file));
        return s;
    }();
    return m.get();
}

#define ROTOR_REQUIRE_SMALL_MODEL()                                                               \
    const ::rotor::test::SmallModel* SM = ::rotor::test::small_model();                          \
    if (!SM) GTEST_SKIP() << "model not found: " << ::rotor::test::small_model_path()

struct Collected {
    std::string text;
    std::vector<int32_t> tokens;
    std::vector<server::GenToken> token_info;
    server::GenEvent last;
    int n_events = 0;
};

// Reads a task's events to the end (fails the test after timeout_ms without an event).
inline Collected collect(server::GenTask& t, int timeout_ms = 120000) {
    Collected c;
    server::GenEvent ev;
    for (;;) {
        if (!t.next(ev, timeout_ms)) {
            ADD_FAILURE() << "no event within " << timeout_ms << " ms";
            return c;
        }
        c.n_events++;
        c.text += ev.text;
        for (auto& tok : ev.tokens) {
            c.tokens.push_back(tok.id);
            c.token_info.push_back(tok);
        }
        if (ev.done) {
            c.last = std::move(ev);
            return c;
        }
    }
}

inline server::GenRequest greedy_request(std::vector<int32_t> prompt, int max_tokens) {
    server::GenRequest r;
    r.prompt = std::move(prompt);
    r.sampling = SamplerParams::greedy();
    r.max_tokens = max_tokens;
    return r;
}

inline server::EngineConfig small_engine(int slots, int ctx = 512) {
    server::EngineConfig c;
    c.n_slots = slots;
    c.n_ctx_per_slot = ctx;
    c.n_threads = 2;
    c.n_queue = 64;
    return c;
}

}  // namespace rotor::test

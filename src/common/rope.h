// Rotary position embedding: one implementation for the CPU forward passes (model/) and for the KV
// caches that rebuild keys from stored values (kv/, gemma4's K = V layers).
#pragma once
#include <cmath>
#include <cstddef>

namespace rotor {

enum class RopeStyle {
    Norm,  // rotate adjacent pairs (2i, 2i+1); llama (the converter permutes Q/K rows to match HF)
    Neox,  // rotate pairs (i, i + n_rot/2) on HF's layout; qwen2, qwen3, gemma4; qwen35's IMROPE for text
};

// Rotates the first n_rot dims of each head in place by pos * inv_freq[i] (a float product, as HF and
// llama.cpp form the angle). Norm style pairs (2i, 2i+1); Neox pairs (i, i+n_rot/2).
inline void rope(float* x, int n_head, int head_dim, int n_rot, RopeStyle style, int pos, const float* inv_freq) {
    const int half = n_rot / 2;
    for (int h = 0; h < n_head; h++) {
        float* v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            const float theta = (float)pos * inv_freq[i];
            const float c = std::cos(theta), s = std::sin(theta);
            const int a = style == RopeStyle::Norm ? 2 * i : i;
            const int b = style == RopeStyle::Norm ? 2 * i + 1 : i + half;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

}  // namespace rotor

#include "cpu/matmul.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace rotor {

namespace {

// Below this much work (weight bytes streamed), waking other threads costs more than it saves.
constexpr size_t kParallelMinBytes = 32 * 1024;
// Activation bytes of one token tile: the tile stays in L2 while a chunk of weight rows passes.
constexpr size_t kTokenTileBytes = 128 * 1024;

size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

void check_cols(GgmlType t, int64_t cols, const char* what) {
    const FormatInfo* f = format_info(static_cast<uint32_t>(t));
    if (!f || cols <= 0 || cols % f->block_elems != 0)
        throw Error(std::string(what) + ": " + std::to_string(cols) + " columns is not a whole number of " +
                    std::string(f ? f->name : "?") + " blocks");
}

}  // namespace

void quantize_acts(GgmlType type, const float* x, size_t ldx, int64_t n_tok, int64_t cols, QuantizedActs& out,
                   ThreadPool* pool, CpuIsa isa) {
    const QuantizeActFn q = quantize_act_fn(type, isa);
    if (!q) throw Error("quantize_acts: " + std::string(format_info(type).name) + " is not an activation type");
    check_cols(type, cols, "quantize_acts");
    out.type = type;
    out.cols = cols;
    out.n_tok = n_tok;
    out.stride = round_up((size_t)row_bytes(type, (uint64_t)cols), 64);  // each row on its own cache lines
    out.data.resize(out.stride * (size_t)n_tok / 4);
    auto body = [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; t++) q(x + (size_t)t * ldx, (char*)out.data.data() + (size_t)t * out.stride, cols);
    };
    if (pool && pool->size() > 1 && n_tok >= 2 * pool->size())
        pool->parallel_for(n_tok, std::max<int64_t>(1, n_tok / (4 * pool->size())), body);
    else
        body(0, n_tok, 0);
}

void matmul_quantized(const WeightMatrix& w, const VecDotKernel& k, const QuantizedActs& a, float* y, size_t ldy,
                      ThreadPool* pool) {
    if (a.type != k.act || a.cols != w.cols || k.weight != w.type)
        throw Error("matmul_quantized: activations do not match the weight's kernel");
    const int64_t n_tok = a.n_tok, rows = w.rows, cols = w.cols;
    if (n_tok <= 0 || rows <= 0) return;
    const size_t wrow = (size_t)row_bytes(w.type, (uint64_t)cols);
    const auto* wdata = static_cast<const char*>(w.data);
    const int reuse = std::max(1, k.reuse);

    // Token tile: a multiple of the kernel's reuse width whose activations fit kTokenTileBytes.
    int64_t tile = std::max<int64_t>(reuse, (int64_t)(kTokenTileBytes / std::max<size_t>(a.stride, 1)) / reuse * reuse);
    tile = std::min(tile, n_tok);

    auto rows_body = [&](int64_t r0, int64_t r1, int) {
        for (int64_t t0 = 0; t0 < n_tok; t0 += tile) {
            const int64_t t1 = std::min(n_tok, t0 + tile);
            for (int64_t r = r0; r < r1; r++) {
                const char* wr = wdata + (size_t)r * wrow;
                for (int64_t t = t0; t < t1; t += reuse) {
                    const int n = (int)std::min<int64_t>(reuse, t1 - t);
                    k.dot(cols, wr, a.row(t), a.stride, y + (size_t)t * ldy + r, ldy, n);
                }
            }
        }
    };

    const int threads = pool ? pool->size() : 1;
    const size_t work = (size_t)rows * wrow * (size_t)std::max<int64_t>(1, n_tok / reuse);
    if (threads == 1 || work < kParallelMinBytes || rows < 2) {
        rows_body(0, rows, 0);
        return;
    }
    // About 8 chunks per thread balances a preempted thread against per-chunk overhead.
    const int64_t chunk = std::clamp<int64_t>(rows / (8 * threads), 1, 64);
    pool->parallel_for(rows, chunk, rows_body);
}

void matmul(const WeightMatrix& w, const float* x, size_t ldx, int64_t n_tok, float* y, size_t ldy, ThreadPool* pool,
            CpuIsa isa, QuantizedActs* scratch) {
    const VecDotKernel* k = vec_dot_kernel(w.type, isa);
    if (!k) throw Error("matmul: no CPU kernel for weight type " + std::string(format_info(w.type).name));
    check_cols(w.type, w.cols, "matmul");
    check_cols(k->act, w.cols, "matmul");
    if (n_tok <= 0 || w.rows <= 0) return;
    QuantizedActs local;
    QuantizedActs& a = scratch ? *scratch : local;
    quantize_acts(k->act, x, ldx, n_tok, w.cols, a, pool, k->quantize_isa);
    matmul_quantized(w, *k, a, y, ldy, pool);
}

}  // namespace rotor

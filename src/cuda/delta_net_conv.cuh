// The conv state's update, shared by the Gated DeltaNet delta-rule kernels (delta_net.cu, delta_net_fast.cu,
// delta_net_chunked.cu): each advances the channels it owns once the sequence's tokens of the step are done.
#pragma once
#include "cuda/delta_net.h"

namespace rotor::cuda {

// Sequence sq's conv state advanced past its cnt inputs of the step (positions p0 .. p0 + cnt - 1, batch rows
// plan.order[s0 ..]): the K-1 inputs up to its last position (before position 0: zeros), in place, oldest
// first (entry i comes from old entry i + cnt > i, not yet overwritten). The calling block's channels: the v
// columns v0 .. v0 + nv - 1 of value head h, and, when qk, the q and k channels of key head h. Its threads
// share them out; gdn_conv, the only reader of the old state, has finished.
__device__ inline void gdn_advance_conv(const GdnShape& g, const float* __restrict__ mix, const GdnState& st,
                                        const SeqPlan& plan, int sq, int s0, int p0, int cnt, int h, int v0, int nv,
                                        bool qk) {
    const int Hk = g.n_k_heads, dk = g.d_k, K = g.conv_kernel, C = g.channels();
    const int pl = p0 + cnt - 1;
    float* cs = st.conv + (size_t)sq * st.seq_stride;
    const int nch = nv + (qk ? 2 * dk : 0);
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        const int ch = c < nv ? 2 * Hk * dk + h * g.d_v + v0 + c
                              : (c - nv < dk ? h * dk + (c - nv) : Hk * dk + h * dk + (c - nv - dk));
        for (int i = 0; i < K - 1; i++) {
            const int q = pl - (K - 2) + i;
            float v = 0.0f;
            if (q >= p0) v = mix[(size_t)plan.order[s0 + q - p0] * C + ch];
            else if (q >= 0) v = cs[(size_t)(q - p0 + K - 1) * C + ch];
            cs[(size_t)i * C + ch] = v;
        }
    }
}

}  // namespace rotor::cuda

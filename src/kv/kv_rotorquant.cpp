// RotorQuant's cache types as the llama.cpp fork behind rq-models ships them (planar3_0, iso3_0,
// planar4_0, iso4_0), bit-exact in layout, constants and quantization rule, plus corrected variants
// (planar3_c, iso3_c, planar4_c, iso4_c) with exactly orthonormal rotations and true Lloyd-Max tables.
//
// A block is 128 elements of one head vector (a head of 256 is two independent blocks):
//   n = ||x||, u = x / n; rotate u in place: "planar" = a 2-D Givens rotation of each pair
//   (2p, 2p+1), "iso" = each group of 4 read as a quaternion v and replaced by q_g (x) v (Hamilton
//   product); every coordinate is replaced by the index of its nearest centroid (tables designed for
//   N(0, 1/128)); d = n / ||c|| with c the chosen centroids ("norm correction": the decoded block
//   keeps the input's L2 norm); decode = inverse rotation of centroid[idx] * d.
// Layouts: 3-bit {fp16 d; u8 qs[32] (low 2 bits, 4 per byte); u8 hi[16] (third bit, 8 per byte)}
// = 50 bytes; 4-bit {fp16 d; u8 qs[64] (low nibble = even element)} = 66 bytes.
//
// The constants are the fork's CUDA ones (ggml-cuda/planar-iso-constants.cuh, rq-models patch
// llama-b9196-rotorquant), which the GPU set_rows and flash-attention paths use. Its CPU files carry
// different rotation tables (so CPU and GPU encodings differ), and its 32 quaternions are not unit
// (norms 0.887 to 1.001): the inverse (conjugate) rotation then scales group g by |q_g|^2 instead of
// undoing it, so elements 4..7 of every block decode 21% too small. Kept here as shipped; the _c
// variants normalize them. The shipped 3-bit rule compares against the fork's typed midpoints, the
// 4-bit rule searches the nearest centroid (first of equals); the arithmetic is the fork's, in IEEE
// float without FMA contraction (nvcc contracts by default, which can move a value lying within an
// ulp of a threshold to the other code and change d in its last bit).
#include "kv/kv_rotorquant.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "kv/kv_codebook.h"
#include "kv/kv_format_impl.h"

namespace rotor::kvq {

namespace {

constexpr int kBlock = 128;

// ---- the fork's GPU constants (seed 42), verbatim
constexpr float kCos[64] = {
    -0.9095053397f, 0.1535578452f, -0.8537489227f, -0.6827218011f, -0.4249387949f, 0.9864510046f,
    0.9906673944f, 0.5752363372f, -0.9866459035f, 0.9878848090f, -0.6215683804f, -0.9835597698f,
    0.8777263755f, -0.4624640047f, 0.2843135922f, -0.7739960698f, 0.2385234222f, 0.9121914932f,
    -0.8815003943f, -0.2639699512f, -0.5517087300f, -0.9035294557f, -0.8520543188f, -0.5600635985f,
    -0.7667286376f, -0.9877949369f, -0.9781949787f, -0.9953372831f, -0.8622053901f, -0.7382118186f,
    0.9136037642f, -0.2558504503f, -0.8541000475f, -0.6159335408f, 0.9861256679f, -0.6758560284f,
    0.4249571682f, -0.6219544719f, 0.9130573430f, -0.5948161096f, 0.5759782996f, 0.9729901203f,
    0.6535998325f, 0.9222195491f, -0.7668084044f, 0.5116178563f, -0.7848786574f, 0.9902111051f,
    0.1997167840f, 0.7173003220f, -0.9999998006f, -0.9557868691f, 0.5594852693f, -0.9980111824f,
    0.9782398557f, -0.9150004329f, -0.4084754305f, 0.0071549185f, 0.9558482753f, -0.0971921648f,
    -0.9469334002f, 0.9999492419f, 0.6100589016f, 0.0350818915f,
};
constexpr float kSin[64] = {
    -0.4156922383f, 0.9881396603f, 0.5206849114f, -0.7306784124f, -0.9052220836f, 0.1640561354f,
    0.1363015542f, 0.8179872593f, 0.1628798979f, 0.1551889303f, 0.7833599099f, -0.1805828875f,
    -0.4791621957f, 0.8866380571f, -0.9587313395f, 0.6331904010f, -0.9711367448f, 0.4097641756f,
    0.4721832852f, -0.9645309040f, 0.8340368561f, 0.4285259884f, 0.5234533769f, 0.8284496156f,
    0.6419713361f, -0.1557599517f, -0.2076886701f, 0.0964556523f, 0.5065588468f, -0.6745689815f,
    -0.4066056591f, -0.9667163736f, 0.5201087471f, -0.7877981171f, 0.1660005034f, -0.7370336688f,
    0.9052134584f, 0.7830534049f, -0.4078312009f, -0.8038618014f, 0.8174649829f, -0.2308467584f,
    -0.7568403127f, -0.3866666566f, 0.6418760557f, -0.8592131104f, 0.6196494922f, 0.1395778183f,
    0.9798536657f, 0.6967641265f, -0.0006314605f, 0.2940603015f, 0.8288402943f, -0.0630371303f,
    0.2074771907f, 0.4034528570f, 0.9127693152f, -0.9999744032f, 0.2938606379f, 0.9952656344f,
    0.3214298299f, 0.0100754012f, -0.7923560668f, -0.9993844410f,
};
constexpr float kQw[32] = {
    0.8350809813f, -0.1648498178f, 0.1283752173f, 0.2897698581f, -0.1820549369f, 0.9549587369f,
    -0.8741137385f, 0.8988990188f, -0.1312584430f, -0.3990598321f, -0.2694816887f, -0.1181898862f,
    0.1363395452f, 0.2665117681f, -0.8263269663f, -0.1834189594f, 0.3098247349f, 0.2804697454f,
    -0.5655074716f, -0.1627507508f, 0.8684155941f, 0.2233296037f, -0.1291671842f, 0.6606932878f,
    -0.5694432259f, -0.2782760859f, 0.5113853812f, -0.5139024258f, 0.7489815354f, -0.3037399948f,
    -0.4143463373f, -0.3524050117f,
};
constexpr float kQx[32] = {
    0.3547102809f, -0.5782636404f, -0.8299785256f, 0.5694668293f, -0.8199930191f, 0.1259543896f,
    -0.3090814352f, -0.2613596618f, -0.1660282463f, -0.5143862963f, 0.5898610353f, -0.8277072310f,
    -0.6826571226f, -0.1740629375f, 0.1416199356f, 0.4648889899f, 0.3485621810f, 0.8982698917f,
    -0.3015249372f, 0.4990116358f, 0.2398942262f, -0.7447698116f, 0.4783197045f, 0.0735855624f,
    -0.2975912094f, -0.0700704753f, 0.2975627482f, -0.2652103305f, -0.1539765000f, 0.0849994123f,
    -0.1069803685f, -0.5753474832f,
};
constexpr float kQy[32] = {
    0.2416850179f, -0.4488199651f, 0.3478420675f, 0.5024775267f, 0.1696543097f, 0.1760476083f,
    0.0254505407f, 0.2389279008f, -0.9429193735f, 0.3925755024f, -0.2757458389f, -0.1485267133f,
    0.5530825853f, -0.8936085105f, 0.2953715622f, -0.5285226703f, 0.7939327955f, 0.0139789311f,
    -0.2555710375f, 0.4543992281f, -0.2698826790f, -0.4736968279f, 0.4361720681f, -0.3461222053f,
    0.0792116225f, 0.8827795386f, 0.7416539788f, -0.3826399446f, -0.3534849286f, -0.8696597815f,
    -0.6908422709f, 0.2082736641f,
};
constexpr float kQz[32] = {
    0.3038694561f, 0.4734756052f, -0.3878843784f, 0.5831694603f, -0.5054479241f, -0.1731694490f,
    -0.3737666607f, 0.2328704894f, 0.2621760964f, 0.6239953637f, -0.7082104683f, 0.5308507681f,
    -0.4413037896f, -0.2802782655f, -0.4522367120f, -0.6698107123f, -0.3752456903f, -0.3359423280f,
    0.7181019187f, 0.7106907368f, 0.3100073636f, 0.4016827941f, 0.7350437641f, -0.6607965231f,
    0.7619289756f, 0.3648703992f, -0.3040413559f, 0.7213236690f, 0.5280022621f, -0.3742936850f,
    -0.5760775208f, 0.7015634775f,
};
constexpr float kCentroids3[8] = {-0.190685f, -0.117832f, -0.065717f, -0.021460f,
                                 0.021460f,  0.065717f,  0.117832f,  0.190685f};
constexpr float kMid3[7] = {-0.154259f, -0.091775f, -0.043589f, 0.0f, 0.043589f, 0.091775f, 0.154259f};
constexpr float kCentroids4[16] = {-0.173926f, -0.117195f, -0.089527f, -0.068756f, -0.051262f, -0.035597f,
                                  -0.020989f, -0.006938f, 0.006938f,  0.020989f,  0.035597f,  0.051262f,
                                  0.068756f,  0.089527f,  0.117195f,  0.173926f};

struct Tables {
    float cos[64], sin[64];
    float qw[32], qx[32], qy[32], qz[32];
    std::vector<float> centroid;  // 8 or 16
    ScalarCodebook corrected;     // Lloyd-Max for N(0, 1/128) (the _c variants)
};

Tables make_tables(int bits, bool corrected) {
    Tables t;
    for (int p = 0; p < 64; p++) {
        double c = kCos[p], s = kSin[p], r = corrected ? std::sqrt(c * c + s * s) : 1.0;
        t.cos[p] = (float)(c / r);
        t.sin[p] = (float)(s / r);
    }
    for (int g = 0; g < 32; g++) {
        double w = kQw[g], x = kQx[g], y = kQy[g], z = kQz[g];
        const double r = corrected ? std::sqrt(w * w + x * x + y * y + z * z) : 1.0;
        t.qw[g] = (float)(w / r);
        t.qx[g] = (float)(x / r);
        t.qy[g] = (float)(y / r);
        t.qz[g] = (float)(z / r);
    }
    if (corrected) {
        t.corrected = scaled_codebook(lloyd_max_normal(bits), 1.0 / std::sqrt((double)kBlock));
        t.centroid = t.corrected.centroid;
    } else if (bits == 3) {
        t.centroid.assign(kCentroids3, kCentroids3 + 8);
    } else {
        t.centroid.assign(kCentroids4, kCentroids4 + 16);
    }
    return t;
}

class RotorQuantFormat final : public NamedKvFormat {
public:
    RotorQuantFormat(bool iso, int bits, bool corrected)
        : NamedKvFormat(std::string(iso ? "iso" : "planar") + std::to_string(bits) + (corrected ? "_c" : "_0")),
          iso_(iso),
          bits_(bits),
          corrected_(corrected),
          t_(make_tables(bits, corrected)) {}

    bool supports(int n, std::string* why) const override {
        if (!check_head_dim_positive(n, why)) return false;
        if (n % kBlock == 0) return true;
        if (why) *why = "RotorQuant blocks are 128 elements of one head vector (head sizes 128, 256, 512, ...)";
        return false;
    }
    uint64_t row_bytes(int n) const override { return (uint64_t)(n / kBlock) * block_bytes(); }
    bool rotated() const override { return true; }
    void rotate(float* x, int n) const override {
        for (int b = 0; b < n; b += kBlock) forward(x + b, x + b);
    }
    void unrotate(float* x, int n) const override {
        for (int b = 0; b < n; b += kBlock) inverse(x + b);
    }

    void quantize(const float* x, void* dst, int n) const override {
        auto* out = static_cast<uint8_t*>(dst);
        for (int b = 0; b < n; b += kBlock, out += block_bytes()) {
            const float* src = x + b;
            float norm_sq = 0.0f;
            for (int j = 0; j < kBlock; j++) norm_sq += src[j] * src[j];
            const float grp_norm = std::sqrt(norm_sq);
            const float inv_norm = grp_norm > 1e-10f ? 1.0f / grp_norm : 0.0f;
            float u[kBlock], r[kBlock];
            for (int j = 0; j < kBlock; j++) u[j] = src[j] * inv_norm;
            forward(u, r);
            uint8_t idx[kBlock];
            float recon_sq = 0.0f;
            for (int j = 0; j < kBlock; j++) {
                idx[j] = code(r[j]);
                recon_sq += t_.centroid[idx[j]] * t_.centroid[idx[j]];
            }
            const float recon_norm = std::sqrt(recon_sq);
            store_fp16(out, recon_norm > 1e-10f ? grp_norm / recon_norm : grp_norm);
            pack_codes(bits_, idx, kBlock, out + 2);
        }
    }
    void dequantize_rotated(const void* src, float* y, int n) const override {
        const auto* in = static_cast<const uint8_t*>(src);
        for (int b = 0; b < n; b += kBlock, in += block_bytes()) {
            const float d = load_fp16(in);
            uint8_t idx[kBlock];
            unpack_codes(bits_, in + 2, kBlock, idx);
            for (int j = 0; j < kBlock; j++) y[b + j] = t_.centroid[idx[j]] * d;
        }
    }
    float dot(const void* row, const float* q, int n) const override {
        const auto* in = static_cast<const uint8_t*>(row);
        float sum = 0;
        for (int b = 0; b < n; b += kBlock, in += block_bytes()) {
            uint8_t idx[kBlock];
            unpack_codes(bits_, in + 2, kBlock, idx);
            float part = 0;
            for (int j = 0; j < kBlock; j++) part += t_.centroid[idx[j]] * q[b + j];
            sum += part * load_fp16(in);
        }
        return sum;
    }
    void axpy(const void* row, float w, float* acc, int n) const override {
        const auto* in = static_cast<const uint8_t*>(row);
        for (int b = 0; b < n; b += kBlock, in += block_bytes()) {
            uint8_t idx[kBlock];
            unpack_codes(bits_, in + 2, kBlock, idx);
            const float wd = w * load_fp16(in);
            for (int j = 0; j < kBlock; j++) acc[b + j] += wd * t_.centroid[idx[j]];
        }
    }

private:
    uint64_t block_bytes() const { return 2 + packed_code_bytes(bits_, kBlock); }

    uint8_t code(float v) const {
        if (corrected_) return (uint8_t)t_.corrected.index(v);
        if (bits_ == 3) {
            uint8_t i = 0;
            while (i < 7 && !(v < kMid3[i])) i++;  // the fork's "if (val < mid[i])" ladder
            return i;
        }
        uint8_t best = 0;
        float best_d = std::fabs(v - t_.centroid[0]);
        for (int i = 1; i < 16; i++) {
            const float d = std::fabs(v - t_.centroid[i]);
            if (d < best_d) {
                best_d = d;
                best = (uint8_t)i;
            }
        }
        return best;
    }

    // One 128-element block, the fork's expressions term by term (no FMA: -ffp-contract=off).
    void forward(const float* u, float* r) const {
        if (!iso_) {
            for (int p = 0; p < 64; p++) {
                const float c = t_.cos[p], s = t_.sin[p], a = u[2 * p], b = u[2 * p + 1];
                r[2 * p] = c * a - s * b;
                r[2 * p + 1] = s * a + c * b;
            }
            return;
        }
        for (int g = 0; g < 32; g++) {
            const float w = t_.qw[g], x = t_.qx[g], y = t_.qy[g], z = t_.qz[g];
            const float v0 = u[4 * g], v1 = u[4 * g + 1], v2 = u[4 * g + 2], v3 = u[4 * g + 3];
            r[4 * g] = w * v0 - x * v1 - y * v2 - z * v3;
            r[4 * g + 1] = w * v1 + x * v0 + y * v3 - z * v2;
            r[4 * g + 2] = w * v2 - x * v3 + y * v0 + z * v1;
            r[4 * g + 3] = w * v3 + x * v2 - y * v1 + z * v0;
        }
    }
    // The fork's decode rotation: transposed Givens, conjugate quaternion (in place).
    void inverse(float* v) const {
        if (!iso_) {
            for (int p = 0; p < 64; p++) {
                const float c = t_.cos[p], s = t_.sin[p], a = v[2 * p], b = v[2 * p + 1];
                v[2 * p] = c * a + s * b;
                v[2 * p + 1] = -s * a + c * b;
            }
            return;
        }
        for (int g = 0; g < 32; g++) {
            const float w = t_.qw[g], x = -t_.qx[g], y = -t_.qy[g], z = -t_.qz[g];
            const float v0 = v[4 * g], v1 = v[4 * g + 1], v2 = v[4 * g + 2], v3 = v[4 * g + 3];
            v[4 * g] = w * v0 - x * v1 - y * v2 - z * v3;
            v[4 * g + 1] = w * v1 + x * v0 + y * v3 - z * v2;
            v[4 * g + 2] = w * v2 - x * v3 + y * v0 + z * v1;
            v[4 * g + 3] = w * v3 + x * v2 - y * v1 + z * v0;
        }
    }

    bool iso_;
    int bits_;
    bool corrected_;
    Tables t_;
};

}  // namespace

RotorQuantTables rotorquant_tables(bool iso, int bits, bool corrected) {
    (void)iso;  // both rotations' constants are in every table
    const Tables t = make_tables(bits, corrected);
    RotorQuantTables r{};
    std::copy(t.cos, t.cos + 64, r.cos);
    std::copy(t.sin, t.sin + 64, r.sin);
    std::copy(t.qw, t.qw + 32, r.qw);
    std::copy(t.qx, t.qx + 32, r.qx);
    std::copy(t.qy, t.qy + 32, r.qy);
    std::copy(t.qz, t.qz + 32, r.qz);
    std::copy(t.centroid.begin(), t.centroid.end(), r.centroid);
    if (corrected) {
        r.rule = RotorQuantRule::BoundCount;
        std::copy(t.corrected.bound.begin(), t.corrected.bound.end(), r.threshold);
    } else if (bits == 3) {
        r.rule = RotorQuantRule::MidLadder;
        std::copy(kMid3, kMid3 + 7, r.threshold);
    } else {
        r.rule = RotorQuantRule::Nearest;
    }
    return r;
}

std::vector<std::unique_ptr<KvFormat>> make_rotorquant_kv_formats() {
    std::vector<std::unique_ptr<KvFormat>> v;
    for (bool corrected : {false, true})
        for (int bits : {3, 4})
            for (bool iso : {false, true}) v.push_back(std::make_unique<RotorQuantFormat>(iso, bits, corrected));
    return v;
}

}  // namespace rotor::kvq

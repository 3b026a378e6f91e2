// KV cache formats: how one head's key or value vector (head_dim floats) is stored, and the three
// operations attention needs, all reading the stored bytes in place (no dequantized copy of the cache).
//
// Rotation is part of a format but is never applied per element inside attention. A format stores
// rotate(x) quantized; attention rotates the query once (q' = R q, so <q', Rk> = <q, k>) and rotates the
// accumulated output back once (out = R^T sum_t p_t (R v_t)). For the K side `rotate` is applied to
// the query; for the V side `unrotate` is applied to the attention output. Formats without rotation
// make both the identity.
//
// One definition per format, used by the CPU cache, the CUDA kernels (later), kv-eval, the memory
// planner (row_bytes) and the tests.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rotor {

class KvFormat {
public:
    virtual ~KvFormat() = default;
    virtual const std::string& name() const = 0;
    // Whether head_dim can be stored; the reason when not (a load-time error message).
    virtual bool supports(int head_dim, std::string* why) const = 0;
    // Bytes of one stored head vector, everything included (scales, norms, codes).
    virtual uint64_t row_bytes(int head_dim) const = 0;
    double bits_per_element(int head_dim) const { return 8.0 * (double)row_bytes(head_dim) / head_dim; }

    // Store x (head_dim floats, the model's own basis) into dst (row_bytes bytes).
    virtual void quantize(const float* x, void* dst, int head_dim) const = 0;
    // Decode a stored row, in the stored (rotated) basis. For tests, kv-eval and reference paths.
    virtual void dequantize_rotated(const void* src, float* y, int head_dim) const = 0;
    // Decode and rotate back to the model's basis (= unrotate(dequantize_rotated(src))).
    void dequantize(const void* src, float* y, int head_dim) const;

    // Rotations, in place on head_dim floats; identity for unrotated formats.
    virtual bool rotated() const { return false; }
    virtual void rotate(float* x, int head_dim) const {}
    virtual void unrotate(float* x, int head_dim) const {}

    // Attention kernels over stored rows; q_rot / acc are in the stored basis.
    // dot: sum_i dequant(row)_i * q_rot[i].
    virtual float dot(const void* row, const float* q_rot, int head_dim) const = 0;
    // axpy: acc[i] += w * dequant(row)_i.
    virtual void axpy(const void* row, float w, float* acc, int head_dim) const = 0;
};

// Every format rotor supports, by name (e.g. "f16", "q4_0", "q4_0h", "planar3_0", "tbq3", ...).
std::vector<std::string> kv_format_names();
// nullptr if the name is unknown; formats are immutable singletons.
const KvFormat* find_kv_format(const std::string& name);
// As find_kv_format, but throws rotor::Error listing the known names, or saying why head_dim is
// not supported ("KV type X does not support head size D: ...").
const KvFormat& require_kv_format(const std::string& name, int head_dim);

}  // namespace rotor

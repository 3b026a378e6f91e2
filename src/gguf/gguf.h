// GGUF container: a validating, read-only view of a file (mmap) and a writer.
// Nothing else in rotor parses files. Every problem is reported as rotor::Error naming the file,
// the problem and the byte offset; no input can make the reader read outside the mapping.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "formats/formats.h"

namespace rotor::gguf {

enum class ValueType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
constexpr uint32_t kValueTypeCount = 13;
std::string_view value_type_name(ValueType t);
size_t value_type_size(ValueType t);  // bytes of one scalar; 0 for STRING / ARRAY

constexpr uint32_t kDefaultAlignment = 32;
constexpr size_t kMaxTensorName = 63;  // ggml's GGML_MAX_NAME - 1
constexpr int kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;  // nested arrays deeper than this are rejected

// A metadata value. Strings and numeric array elements point into the file's memory, which the
// owning File keeps alive.
struct Value {
    ValueType type = ValueType::U8;
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num{};                 // integer, bool and float scalars (widened)
    std::string_view str;    // STRING
    // ARRAY
    ValueType elem_type = ValueType::U8;
    uint64_t count = 0;
    const uint8_t* raw = nullptr;          // numeric/bool arrays: count * value_type_size(elem_type) bytes
    std::vector<std::string_view> strs;    // string arrays
    std::vector<Value> arrs;               // arrays of arrays

    bool is_integer() const;
    bool is_float() const { return type == ValueType::F32 || type == ValueType::F64; }
    // Numeric element k of a numeric/bool array, widened.
    int64_t array_int(uint64_t k) const;
    double array_float(uint64_t k) const;
};

struct KV {
    std::string_view key;
    Value value;
};

struct TensorInfo {
    std::string_view name;
    uint32_t n_dims = 0;
    int64_t ne[kMaxDims] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
    GgmlType type = GgmlType::F32;
    uint64_t offset = 0;   // relative to the data section
    uint64_t n_elements = 0;
    uint64_t n_bytes = 0;
    const uint8_t* data = nullptr;  // nullptr only when opened with allow_missing_data
    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
};

struct OpenOptions {
    // Accept files whose data section is shorter than the tensor table says (metadata-only or
    // sparse files for the planner). Tensors whose bytes are not in the file get data == nullptr.
    bool allow_missing_data = false;
};

class File {
public:
    static File open(const std::string& path, OpenOptions opt = {});
    // Parse a file held in memory (fuzzing, tests). The bytes are copied.
    static File parse(const uint8_t* bytes, size_t size, const std::string& name, OpenOptions opt = {});

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
    uint64_t file_size() const { return size_; }
    bool has_all_data() const { return has_all_data_; }

    const std::vector<KV>& kvs() const { return kvs_; }
    const Value* find(std::string_view key) const;
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* tensor(std::string_view name) const;

    // Typed lookups. Missing key: nullopt. Present with an incompatible type: rotor::Error.
    std::optional<uint64_t> get_uint(std::string_view key) const;
    std::optional<int64_t> get_int(std::string_view key) const;
    std::optional<double> get_float(std::string_view key) const;  // float or integer
    std::optional<bool> get_bool(std::string_view key) const;
    std::optional<std::string_view> get_string(std::string_view key) const;
    const Value* get_array(std::string_view key) const;  // nullptr if missing; Error if not an array
    std::string architecture() const;  // general.architecture, or "" if missing

    // Error prefixed with this file's name: "GGUF file 'x': msg".
    [[noreturn]] void fail(const std::string& msg) const;

    File(File&&) noexcept = default;
    File& operator=(File&&) noexcept = default;
    ~File();

private:
    File() = default;
    struct Mapping;
    void parse_all(const OpenOptions& opt);

    std::string path_;
    std::shared_ptr<Mapping> map_;
    const uint8_t* base_ = nullptr;
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = kDefaultAlignment;
    uint64_t data_offset_ = 0;
    bool has_all_data_ = true;
    std::vector<KV> kvs_;
    std::vector<TensorInfo> tensors_;
};

// Writes GGUF v3. Metadata keys keep insertion order (setting an existing key replaces its value in
// place). Tensor data is produced at write time by a callback, so huge random-weight models can be
// written without holding them in memory.
class Writer {
public:
    explicit Writer(uint32_t alignment = kDefaultAlignment);

    void set_u8(std::string_view key, uint8_t v);
    void set_i8(std::string_view key, int8_t v);
    void set_u16(std::string_view key, uint16_t v);
    void set_i16(std::string_view key, int16_t v);
    void set_u32(std::string_view key, uint32_t v);
    void set_i32(std::string_view key, int32_t v);
    void set_u64(std::string_view key, uint64_t v);
    void set_i64(std::string_view key, int64_t v);
    void set_f32(std::string_view key, float v);
    void set_f64(std::string_view key, double v);
    void set_bool(std::string_view key, bool v);
    void set_string(std::string_view key, std::string_view v);
    void set_array_i32(std::string_view key, const std::vector<int32_t>& v);
    void set_array_u32(std::string_view key, const std::vector<uint32_t>& v);
    void set_array_f32(std::string_view key, const std::vector<float>& v);
    void set_array_bool(std::string_view key, const std::vector<bool>& v);
    void set_array_string(std::string_view key, const std::vector<std::string>& v);
    // Copy a value read from another file, keeping its exact type.
    void set_value(std::string_view key, const Value& v);
    bool has_key(std::string_view key) const;
    void remove_key(std::string_view key);

    using Fill = std::function<void(uint8_t* dst, uint64_t n_bytes)>;
    // dims: ne[0..n_dims-1] as written (n_dims = dims.size()).
    void add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& dims, Fill fill);
    void add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& dims, const void* data);

    // with_data = false writes only the header and tensor table: a metadata-only file that
    // File::open(path, {.allow_missing_data = true}) reads (the planner needs nothing more).
    void write(const std::string& path, bool with_data = true) const;  // throws rotor::Error on I/O failure
    std::vector<uint8_t> to_bytes(bool with_data = true) const;

    uint64_t tensor_data_bytes() const;  // padded data section size

private:
    struct PendingTensor {
        std::string name;
        GgmlType type;
        std::vector<int64_t> dims;
        uint64_t n_bytes;
        Fill fill;
    };
    void set_raw(std::string_view key, std::vector<uint8_t> encoded);
    template <typename Sink>
    void emit(Sink& sink, bool with_data) const;

    uint32_t alignment_;
    std::vector<std::pair<std::string, std::vector<uint8_t>>> kvs_;  // key -> encoded (type + value)
    std::vector<PendingTensor> tensors_;
};

}  // namespace rotor::gguf

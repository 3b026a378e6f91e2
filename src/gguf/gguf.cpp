#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "common/utf8.h"

namespace rotor::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian

uint64_t pad_to(uint64_t x, uint64_t align) { return (x + align - 1) / align * align; }

// Bounds-checked little-endian cursor over the file bytes.
class Cursor {
public:
    Cursor(const File& f, const uint8_t* base, uint64_t size) : f_(f), base_(base), size_(size) {}
    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    const uint8_t* take(uint64_t n, const char* what) {
        if (n > remaining())
            f_.fail(std::string("file ends inside ") + what + " (at byte " + std::to_string(pos_) + ", needs " +
                    std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left)");
        const uint8_t* p = base_ + pos_;
        pos_ += n;
        return p;
    }
    template <typename T>
    T read(const char* what) {
        T v;
        memcpy(&v, take(sizeof(T), what), sizeof(T));
        return v;
    }
    std::string_view read_string(const char* what) {
        const uint64_t at = pos_;
        const uint64_t len = read<uint64_t>(what);
        if (len > remaining())
            f_.fail(std::string(what) + " at byte " + std::to_string(at) + " claims length " + std::to_string(len) +
                    " but only " + std::to_string(remaining()) + " bytes remain");
        std::string_view s(reinterpret_cast<const char*>(take(len, what)), len);
        if (!utf8_valid(s)) f_.fail(std::string(what) + " at byte " + std::to_string(at) + " is not valid UTF-8");
        return s;
    }

private:
    const File& f_;
    const uint8_t* base_;
    uint64_t size_;
    uint64_t pos_ = 0;
};

// Smallest encoding of one element of type t (used to reject counts that cannot fit).
uint64_t min_encoded_size(ValueType t) {
    if (t == ValueType::STRING) return 8;
    if (t == ValueType::ARRAY) return 12;
    return value_type_size(t);
}

void read_value(Cursor& c, const File& f, ValueType type, Value& out, int depth) {
    out.type = type;
    switch (type) {
        case ValueType::U8: out.num.u = c.read<uint8_t>("metadata value"); break;
        case ValueType::I8: out.num.i = c.read<int8_t>("metadata value"); break;
        case ValueType::U16: out.num.u = c.read<uint16_t>("metadata value"); break;
        case ValueType::I16: out.num.i = c.read<int16_t>("metadata value"); break;
        case ValueType::U32: out.num.u = c.read<uint32_t>("metadata value"); break;
        case ValueType::I32: out.num.i = c.read<int32_t>("metadata value"); break;
        case ValueType::U64: out.num.u = c.read<uint64_t>("metadata value"); break;
        case ValueType::I64: out.num.i = c.read<int64_t>("metadata value"); break;
        case ValueType::F32: out.num.f = c.read<float>("metadata value"); break;
        case ValueType::F64: out.num.f = c.read<double>("metadata value"); break;
        case ValueType::BOOL: {
            const uint64_t at = c.pos();
            const uint8_t b = c.read<uint8_t>("metadata value");
            if (b > 1) f.fail("bool at byte " + std::to_string(at) + " has value " + std::to_string(b));
            out.num.u = b;
            break;
        }
        case ValueType::STRING: out.str = c.read_string("metadata string"); break;
        case ValueType::ARRAY: {
            if (depth >= kMaxArrayDepth)
                f.fail("arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " at byte " +
                       std::to_string(c.pos()));
            const uint64_t at = c.pos();
            const uint32_t et = c.read<uint32_t>("array element type");
            if (et >= kValueTypeCount)
                f.fail("unknown array element type " + std::to_string(et) + " at byte " + std::to_string(at));
            out.elem_type = static_cast<ValueType>(et);
            out.count = c.read<uint64_t>("array length");
            if (out.count > c.remaining() / min_encoded_size(out.elem_type))
                f.fail("array at byte " + std::to_string(at) + " claims " + std::to_string(out.count) +
                       " elements, more than the " + std::to_string(c.remaining()) + " remaining bytes can hold");
            if (out.elem_type == ValueType::STRING) {
                out.strs.reserve(out.count);
                for (uint64_t k = 0; k < out.count; k++) out.strs.push_back(c.read_string("array string"));
            } else if (out.elem_type == ValueType::ARRAY) {
                out.arrs.resize(out.count);
                for (uint64_t k = 0; k < out.count; k++) read_value(c, f, ValueType::ARRAY, out.arrs[k], depth + 1);
            } else {
                const uint64_t esz = value_type_size(out.elem_type);
                out.raw = c.take(out.count * esz, "array data");
                if (out.elem_type == ValueType::BOOL)
                    for (uint64_t k = 0; k < out.count; k++)
                        if (out.raw[k] > 1)
                            f.fail("bool array at byte " + std::to_string(at) + " has element value " +
                                   std::to_string(out.raw[k]));
            }
            break;
        }
    }
}

}  // namespace

std::string_view value_type_name(ValueType t) {
    static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
                                  "u64", "i64", "f64"};
    const auto i = static_cast<uint32_t>(t);
    return i < kValueTypeCount ? names[i] : "?";
}

size_t value_type_size(ValueType t) {
    switch (t) {
        case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
        case ValueType::U16: case ValueType::I16: return 2;
        case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
        case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
        default: return 0;
    }
}

bool Value::is_integer() const {
    switch (type) {
        case ValueType::U8: case ValueType::I8: case ValueType::U16: case ValueType::I16:
        case ValueType::U32: case ValueType::I32: case ValueType::U64: case ValueType::I64: return true;
        default: return false;
    }
}

int64_t Value::array_int(uint64_t k) const {
    if (type != ValueType::ARRAY || k >= count || raw == nullptr) throw Error("array_int: not a numeric array element");
    const uint8_t* p = raw + k * value_type_size(elem_type);
    switch (elem_type) {
        case ValueType::U8: case ValueType::BOOL: return p[0];
        case ValueType::I8: return (int8_t)p[0];
        case ValueType::U16: { uint16_t v; memcpy(&v, p, 2); return v; }
        case ValueType::I16: { int16_t v; memcpy(&v, p, 2); return v; }
        case ValueType::U32: { uint32_t v; memcpy(&v, p, 4); return v; }
        case ValueType::I32: { int32_t v; memcpy(&v, p, 4); return v; }
        case ValueType::U64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
        case ValueType::I64: { int64_t v; memcpy(&v, p, 8); return v; }
        case ValueType::F32: { float v; memcpy(&v, p, 4); return (int64_t)v; }
        case ValueType::F64: { double v; memcpy(&v, p, 8); return (int64_t)v; }
        default: throw Error("array_int: not a numeric array");
    }
}

double Value::array_float(uint64_t k) const {
    if (type != ValueType::ARRAY || k >= count || raw == nullptr) throw Error("array_float: not a numeric array element");
    const uint8_t* p = raw + k * value_type_size(elem_type);
    if (elem_type == ValueType::F32) { float v; memcpy(&v, p, 4); return v; }
    if (elem_type == ValueType::F64) { double v; memcpy(&v, p, 8); return v; }
    return (double)array_int(k);
}

struct File::Mapping {
    const uint8_t* ptr = nullptr;
    size_t size = 0;
    bool mmapped = false;
    std::vector<uint8_t> owned;
    ~Mapping() {
        if (mmapped && ptr) munmap(const_cast<uint8_t*>(ptr), size);
    }
};

File::~File() = default;

void File::fail(const std::string& msg) const { throw Error("GGUF file '" + path_ + "': " + msg); }

File File::open(const std::string& path, OpenOptions opt) {
    File f;
    f.path_ = path;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) f.fail(std::string("cannot open: ") + strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        f.fail("not a regular file");
    }
    auto m = std::make_shared<Mapping>();
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void* p = mmap(nullptr, m->size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            ::close(fd);
            f.fail(std::string("mmap failed: ") + strerror(errno));
        }
        m->ptr = static_cast<const uint8_t*>(p);
        m->mmapped = true;
    }
    ::close(fd);
    f.map_ = m;
    f.base_ = m->ptr;
    f.size_ = m->size;
    f.parse_all(opt);
    return f;
}

File File::parse(const uint8_t* bytes, size_t size, const std::string& name, OpenOptions opt) {
    File f;
    f.path_ = name;
    auto m = std::make_shared<Mapping>();
    m->owned.assign(bytes, bytes + size);
    m->ptr = m->owned.data();
    m->size = size;
    f.map_ = m;
    f.base_ = m->ptr;
    f.size_ = size;
    f.parse_all(opt);
    return f;
}

void File::parse_all(const OpenOptions& opt) {
    Cursor c(*this, base_, size_);
    if (size_ < 4) fail("too short to be GGUF (" + std::to_string(size_) + " bytes)");
    const uint32_t magic = c.read<uint32_t>("magic");
    if (magic != kMagic) fail("bad magic (not a GGUF file)");
    version_ = c.read<uint32_t>("version");
    if (version_ == 1) fail("GGUF version 1 is not supported (re-convert the model)");
    if (version_ != 2 && version_ != 3) {
        if ((version_ & 0xffff) == 0 && (version_ >> 24) <= 3)
            fail("big-endian GGUF files are not supported");
        fail("unsupported GGUF version " + std::to_string(version_));
    }
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    // Each KV needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8 + 4 + 4 + 8.
    if (n_kv > c.remaining() / 13) fail("metadata count " + std::to_string(n_kv) + " cannot fit in the file");
    if (n_tensors > c.remaining() / 24) fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the file");

    kvs_.reserve(n_kv);
    std::unordered_set<std::string_view> keys;
    for (uint64_t i = 0; i < n_kv; i++) {
        KV kv;
        const uint64_t at = c.pos();
        kv.key = c.read_string("metadata key");
        if (kv.key.empty()) fail("empty metadata key at byte " + std::to_string(at));
        if (!keys.insert(kv.key).second) fail("duplicate metadata key '" + std::string(kv.key) + "'");
        const uint64_t tat = c.pos();
        const uint32_t t = c.read<uint32_t>("metadata value type");
        if (t >= kValueTypeCount)
            fail("key '" + std::string(kv.key) + "' has unknown value type " + std::to_string(t) + " at byte " +
                 std::to_string(tat));
        read_value(c, *this, static_cast<ValueType>(t), kv.value, 0);
        kvs_.push_back(std::move(kv));
    }

    if (const Value* a = find("general.alignment")) {
        if (a->type != ValueType::U32) fail("general.alignment must be u32, found " + std::string(value_type_name(a->type)));
        const uint64_t v = a->num.u;
        if (v == 0 || (v & (v - 1)) != 0) fail("general.alignment " + std::to_string(v) + " is not a power of two");
        alignment_ = (uint32_t)v;
    }

    tensors_.reserve(n_tensors);
    std::unordered_set<std::string_view> names;
    uint64_t expected_offset = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        TensorInfo t;
        const uint64_t at = c.pos();
        t.name = c.read_string("tensor name");
        const std::string nm(t.name);
        if (t.name.size() > kMaxTensorName)
            fail("tensor name '" + nm + "' is longer than " + std::to_string(kMaxTensorName) + " bytes");
        if (!names.insert(t.name).second) fail("duplicate tensor name '" + nm + "'");
        t.n_dims = c.read<uint32_t>("tensor dimension count");
        if (t.n_dims > (uint32_t)kMaxDims)
            fail("tensor '" + nm + "' has " + std::to_string(t.n_dims) + " dimensions (max 4)");
        uint64_t n_el = 1;
        for (uint32_t d = 0; d < t.n_dims; d++) {
            t.ne[d] = c.read<int64_t>("tensor shape");
            if (t.ne[d] < 0) fail("tensor '" + nm + "' has negative dimension " + std::to_string(t.ne[d]));
            if (t.ne[d] != 0 && n_el > (uint64_t)std::numeric_limits<int64_t>::max() / (uint64_t)t.ne[d])
                fail("tensor '" + nm + "' element count overflows");
            n_el *= (uint64_t)t.ne[d];
        }
        t.n_elements = n_el;
        const uint32_t type_id = c.read<uint32_t>("tensor type");
        const FormatInfo* fi = format_info(type_id);
        if (!fi) fail("tensor '" + nm + "' has unknown type id " + std::to_string(type_id));
        t.type = fi->type;
        if (t.ne[0] % fi->block_elems != 0)
            fail("tensor '" + nm + "' row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                 std::string(fi->name) + " block size " + std::to_string(fi->block_elems));
        // n_bytes = rows * blocks_per_row * block_bytes; n_el fits in int64 and block_bytes <= 292.
        const uint64_t blocks = n_el / fi->block_elems;
        if (blocks > std::numeric_limits<uint64_t>::max() / 512) fail("tensor '" + nm + "' byte size overflows");
        t.n_bytes = blocks * fi->block_bytes;
        t.offset = c.read<uint64_t>("tensor offset");
        if (t.offset != expected_offset)
            fail("tensor '" + nm + "' (info at byte " + std::to_string(at) + ") has data offset " +
                 std::to_string(t.offset) + ", expected " + std::to_string(expected_offset) +
                 " (tensors must be contiguous and aligned)");
        if (t.n_bytes > std::numeric_limits<uint64_t>::max() - expected_offset - alignment_)
            fail("tensor '" + nm + "' data range overflows");
        expected_offset = pad_to(expected_offset + t.n_bytes, alignment_);
        tensors_.push_back(t);
    }

    data_offset_ = pad_to(c.pos(), alignment_);
    // A file without tensors (vocab-only) need not carry the padding before an empty data section.
    if (data_offset_ > size_ && !tensors_.empty() && !opt.allow_missing_data)
        fail("file ends before the tensor data section");
    has_all_data_ = true;
    for (auto& t : tensors_) {
        const bool in_file = data_offset_ <= size_ && t.offset <= size_ - data_offset_ &&
                             t.n_bytes <= size_ - data_offset_ - t.offset;
        if (in_file) {
            t.data = base_ + data_offset_ + t.offset;
        } else {
            has_all_data_ = false;
            if (!opt.allow_missing_data)
                fail("file is truncated: tensor '" + std::string(t.name) + "' needs bytes up to " +
                     std::to_string(data_offset_ + t.offset + t.n_bytes) + " but the file has " +
                     std::to_string(size_));
        }
    }
}

const Value* File::find(std::string_view key) const {
    for (const auto& kv : kvs_)
        if (kv.key == key) return &kv.value;
    return nullptr;
}

const TensorInfo* File::tensor(std::string_view name) const {
    for (const auto& t : tensors_)
        if (t.name == name) return &t;
    return nullptr;
}

std::optional<uint64_t> File::get_uint(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_integer()) fail("key '" + std::string(key) + "' should be an integer, found " + std::string(value_type_name(v->type)));
    const bool is_signed = v->type == ValueType::I8 || v->type == ValueType::I16 || v->type == ValueType::I32 ||
                           v->type == ValueType::I64;
    if (is_signed && v->num.i < 0) fail("key '" + std::string(key) + "' is negative (" + std::to_string(v->num.i) + ")");
    return v->num.u;
}

std::optional<int64_t> File::get_int(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_integer()) fail("key '" + std::string(key) + "' should be an integer, found " + std::string(value_type_name(v->type)));
    if (v->type == ValueType::U64 && v->num.u > (uint64_t)std::numeric_limits<int64_t>::max())
        fail("key '" + std::string(key) + "' is out of range");
    return v->num.i;
}

std::optional<double> File::get_float(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->is_float()) return v->num.f;
    if (v->is_integer()) return (double)*get_int(key);
    fail("key '" + std::string(key) + "' should be a number, found " + std::string(value_type_name(v->type)));
}

std::optional<bool> File::get_bool(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != ValueType::BOOL) fail("key '" + std::string(key) + "' should be a bool, found " + std::string(value_type_name(v->type)));
    return v->num.u != 0;
}

std::optional<std::string_view> File::get_string(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != ValueType::STRING) fail("key '" + std::string(key) + "' should be a string, found " + std::string(value_type_name(v->type)));
    return v->str;
}

const Value* File::get_array(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return nullptr;
    if (v->type != ValueType::ARRAY) fail("key '" + std::string(key) + "' should be an array, found " + std::string(value_type_name(v->type)));
    return v;
}

std::string File::architecture() const {
    auto a = get_string("general.architecture");
    return a ? std::string(*a) : std::string();
}

// ---------------------------------------------------------------- writer

namespace {

template <typename T>
void put(std::vector<uint8_t>& b, T v) {
    const size_t n = b.size();
    b.resize(n + sizeof(T));
    memcpy(b.data() + n, &v, sizeof(T));
}
void put_string(std::vector<uint8_t>& b, std::string_view s) {
    put<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
}

void encode_value_body(std::vector<uint8_t>& b, const Value& v) {
    switch (v.type) {
        case ValueType::U8: put<uint8_t>(b, (uint8_t)v.num.u); break;
        case ValueType::I8: put<int8_t>(b, (int8_t)v.num.i); break;
        case ValueType::U16: put<uint16_t>(b, (uint16_t)v.num.u); break;
        case ValueType::I16: put<int16_t>(b, (int16_t)v.num.i); break;
        case ValueType::U32: put<uint32_t>(b, (uint32_t)v.num.u); break;
        case ValueType::I32: put<int32_t>(b, (int32_t)v.num.i); break;
        case ValueType::U64: put<uint64_t>(b, v.num.u); break;
        case ValueType::I64: put<int64_t>(b, v.num.i); break;
        case ValueType::F32: put<float>(b, (float)v.num.f); break;
        case ValueType::F64: put<double>(b, v.num.f); break;
        case ValueType::BOOL: put<uint8_t>(b, v.num.u ? 1 : 0); break;
        case ValueType::STRING: put_string(b, v.str); break;
        case ValueType::ARRAY:
            put<uint32_t>(b, (uint32_t)v.elem_type);
            put<uint64_t>(b, v.count);
            if (v.elem_type == ValueType::STRING) {
                for (auto s : v.strs) put_string(b, s);
            } else if (v.elem_type == ValueType::ARRAY) {
                for (const auto& a : v.arrs) encode_value_body(b, a);
            } else {
                b.insert(b.end(), v.raw, v.raw + v.count * value_type_size(v.elem_type));
            }
            break;
    }
}

template <typename T>
std::vector<uint8_t> scalar(ValueType t, T v) {
    std::vector<uint8_t> b;
    put<uint32_t>(b, (uint32_t)t);
    put<T>(b, v);
    return b;
}

template <typename T>
std::vector<uint8_t> numeric_array(ValueType et, const std::vector<T>& v) {
    std::vector<uint8_t> b;
    put<uint32_t>(b, (uint32_t)ValueType::ARRAY);
    put<uint32_t>(b, (uint32_t)et);
    put<uint64_t>(b, v.size());
    for (const T& x : v) put<T>(b, x);
    return b;
}

}  // namespace

Writer::Writer(uint32_t alignment) : alignment_(alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) throw Error("GGUF writer: alignment must be a power of two");
    if (alignment != kDefaultAlignment) set_u32("general.alignment", alignment);
}

void Writer::set_raw(std::string_view key, std::vector<uint8_t> encoded) {
    if (key.empty() || !utf8_valid(key)) throw Error("GGUF writer: invalid metadata key");
    for (auto& kv : kvs_)
        if (kv.first == key) {
            kv.second = std::move(encoded);
            return;
        }
    kvs_.emplace_back(std::string(key), std::move(encoded));
}

void Writer::set_u8(std::string_view k, uint8_t v) { set_raw(k, scalar(ValueType::U8, v)); }
void Writer::set_i8(std::string_view k, int8_t v) { set_raw(k, scalar(ValueType::I8, v)); }
void Writer::set_u16(std::string_view k, uint16_t v) { set_raw(k, scalar(ValueType::U16, v)); }
void Writer::set_i16(std::string_view k, int16_t v) { set_raw(k, scalar(ValueType::I16, v)); }
void Writer::set_u32(std::string_view k, uint32_t v) { set_raw(k, scalar(ValueType::U32, v)); }
void Writer::set_i32(std::string_view k, int32_t v) { set_raw(k, scalar(ValueType::I32, v)); }
void Writer::set_u64(std::string_view k, uint64_t v) { set_raw(k, scalar(ValueType::U64, v)); }
void Writer::set_i64(std::string_view k, int64_t v) { set_raw(k, scalar(ValueType::I64, v)); }
void Writer::set_f32(std::string_view k, float v) { set_raw(k, scalar(ValueType::F32, v)); }
void Writer::set_f64(std::string_view k, double v) { set_raw(k, scalar(ValueType::F64, v)); }
void Writer::set_bool(std::string_view k, bool v) { set_raw(k, scalar(ValueType::BOOL, (uint8_t)(v ? 1 : 0))); }
void Writer::set_string(std::string_view k, std::string_view v) {
    if (!utf8_valid(v)) throw Error("GGUF writer: value of '" + std::string(k) + "' is not valid UTF-8");
    std::vector<uint8_t> b;
    put<uint32_t>(b, (uint32_t)ValueType::STRING);
    put_string(b, v);
    set_raw(k, std::move(b));
}
void Writer::set_array_i32(std::string_view k, const std::vector<int32_t>& v) { set_raw(k, numeric_array(ValueType::I32, v)); }
void Writer::set_array_u32(std::string_view k, const std::vector<uint32_t>& v) { set_raw(k, numeric_array(ValueType::U32, v)); }
void Writer::set_array_f32(std::string_view k, const std::vector<float>& v) { set_raw(k, numeric_array(ValueType::F32, v)); }
void Writer::set_array_bool(std::string_view k, const std::vector<bool>& v) {
    std::vector<uint8_t> bytes(v.begin(), v.end());
    set_raw(k, numeric_array(ValueType::BOOL, bytes));
}
void Writer::set_array_string(std::string_view k, const std::vector<std::string>& v) {
    std::vector<uint8_t> b;
    put<uint32_t>(b, (uint32_t)ValueType::ARRAY);
    put<uint32_t>(b, (uint32_t)ValueType::STRING);
    put<uint64_t>(b, v.size());
    for (const auto& s : v) {
        if (!utf8_valid(s)) throw Error("GGUF writer: an element of '" + std::string(k) + "' is not valid UTF-8");
        put_string(b, s);
    }
    set_raw(k, std::move(b));
}
void Writer::set_value(std::string_view k, const Value& v) {
    std::vector<uint8_t> b;
    put<uint32_t>(b, (uint32_t)v.type);
    encode_value_body(b, v);
    set_raw(k, std::move(b));
}
bool Writer::has_key(std::string_view key) const {
    for (auto& kv : kvs_)
        if (kv.first == key) return true;
    return false;
}
void Writer::remove_key(std::string_view key) {
    for (auto it = kvs_.begin(); it != kvs_.end(); ++it)
        if (it->first == key) {
            kvs_.erase(it);
            return;
        }
}

void Writer::add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& dims, Fill fill) {
    if (name.empty() || name.size() > kMaxTensorName || !utf8_valid(name))
        throw Error("GGUF writer: invalid tensor name '" + std::string(name) + "'");
    for (const auto& t : tensors_)
        if (t.name == name) throw Error("GGUF writer: duplicate tensor '" + std::string(name) + "'");
    if (dims.empty() || dims.size() > (size_t)kMaxDims) throw Error("GGUF writer: tensor '" + std::string(name) + "' needs 1-4 dims");
    const FormatInfo* fi = format_info(static_cast<uint32_t>(type));
    if (!fi) throw Error("GGUF writer: unknown tensor type");
    uint64_t n = 1;
    for (int64_t d : dims) {
        if (d < 0) throw Error("GGUF writer: negative dimension in '" + std::string(name) + "'");
        n *= (uint64_t)d;
    }
    if (dims[0] % fi->block_elems != 0)
        throw Error("GGUF writer: tensor '" + std::string(name) + "' row length " + std::to_string(dims[0]) +
                    " is not a multiple of the block size of " + std::string(fi->name));
    tensors_.push_back({std::string(name), type, dims, n / fi->block_elems * fi->block_bytes, std::move(fill)});
}

void Writer::add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& dims, const void* data) {
    const auto* src = static_cast<const uint8_t*>(data);
    add_tensor(name, type, dims, [src](uint8_t* dst, uint64_t n) { memcpy(dst, src, n); });
}

uint64_t Writer::tensor_data_bytes() const {
    uint64_t off = 0;
    for (const auto& t : tensors_) off = pad_to(off + t.n_bytes, alignment_);
    return off;
}

template <typename Sink>
void Writer::emit(Sink& sink, bool with_data) const {
    std::vector<uint8_t> h;
    put<uint32_t>(h, kMagic);
    put<uint32_t>(h, 3);
    put<uint64_t>(h, tensors_.size());
    put<uint64_t>(h, kvs_.size());
    for (const auto& kv : kvs_) {
        put_string(h, kv.first);
        h.insert(h.end(), kv.second.begin(), kv.second.end());
    }
    uint64_t off = 0;
    for (const auto& t : tensors_) {
        put_string(h, t.name);
        put<uint32_t>(h, (uint32_t)t.dims.size());
        for (int64_t d : t.dims) put<int64_t>(h, d);
        put<uint32_t>(h, (uint32_t)t.type);
        put<uint64_t>(h, off);
        off = pad_to(off + t.n_bytes, alignment_);
    }
    h.resize(pad_to(h.size(), alignment_), 0);
    sink(h.data(), h.size());
    if (!with_data) return;
    std::vector<uint8_t> buf;
    for (const auto& t : tensors_) {
        buf.assign(pad_to(t.n_bytes, alignment_), 0);
        if (t.fill) t.fill(buf.data(), t.n_bytes);
        sink(buf.data(), buf.size());
    }
}

void Writer::write(const std::string& path, bool with_data) const {
    FILE* fp = fopen(path.c_str(), "wb");
    if (!fp) throw Error("cannot write '" + path + "': " + strerror(errno));
    bool ok = true;
    auto sink = [&](const uint8_t* p, size_t n) {
        if (ok && n && fwrite(p, 1, n, fp) != n) ok = false;
    };
    try {
        emit(sink, with_data);
    } catch (...) {
        fclose(fp);
        throw;
    }
    if (fclose(fp) != 0) ok = false;
    if (!ok) throw Error("write to '" + path + "' failed: " + strerror(errno));
}

std::vector<uint8_t> Writer::to_bytes(bool with_data) const {
    std::vector<uint8_t> out;
    auto sink = [&](const uint8_t* p, size_t n) { out.insert(out.end(), p, p + n); };
    emit(sink, with_data);
    return out;
}

}  // namespace rotor::gguf

// Internal: the per-format reference row converters, looked up by type. Implemented in
// dequantize.cpp and quantize.cpp; used by formats.cpp (the public entry points) and tests.
#pragma once
#include <cstdint>

#include "formats/formats.h"

namespace rotor {

using DequantizeFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeFn = void (*)(const float* src, void* dst, int64_t n);

DequantizeFn find_dequantizer(GgmlType t);  // nullptr if none
QuantizeFn find_quantizer(GgmlType t);      // nullptr if none

}  // namespace rotor

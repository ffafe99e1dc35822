// Element types understood by the kernels, identified by the integer code the Python layer passes
// (inv_kernels/_ext.py DTYPE_CODES), and the CPU conversions between storage and accumulation types.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "common/checks.h"

namespace inv {

enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

inline DType dtype_from_code(const std::string& op, int code) {
  if (code < 0 || code > 3) fail_argument(op, "unknown dtype code " + std::to_string(code));
  return static_cast<DType>(code);
}

// bfloat16 storage on the CPU: the upper 16 bits of an IEEE float32.
struct BFloat16 {
  std::uint16_t bits;
};

using Half = _Float16;  // IEEE binary16; GCC and Clang support it on x86-64 and aarch64

// Storage type -> accumulation type: half types accumulate in float, float64 in double.
template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

template <typename A, typename T> inline A load(T v) { return static_cast<A>(v); }
template <> inline float load<float, BFloat16>(BFloat16 v) {
  std::uint32_t u = static_cast<std::uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <typename T, typename A> inline T store(A v) { return static_cast<T>(v); }
template <> inline BFloat16 store<BFloat16, float>(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16{0x7fc0};  // NaN stays a quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                // round to nearest, ties to even
  return BFloat16{static_cast<std::uint16_t>(u >> 16)};
}

// Calls f(T{}) with a value of the storage type named by the dtype code; f is a generic lambda
// that reads the type as decltype(tag).
template <typename F> inline void dispatch_dtype(const std::string& op, int code, F&& f) {
  switch (dtype_from_code(op, code)) {
    case DType::Float32: f(float{}); break;
    case DType::Float64: f(double{}); break;
    case DType::Float16: f(Half{}); break;
    case DType::BFloat16: f(BFloat16{}); break;
  }
}

}  // namespace inv

// The instruction sets the CPU kernels are compiled for, and the run-time choice between them. A kernel's body is
// plain C++ written for GCC's vectoriser, made of INV_INLINE functions; IsaCopies compiles it three times (AVX-512,
// AVX2 + FMA, baseline x86-64) and the copy for this machine is picked with __builtin_cpu_supports, so no -march flag
// is needed.
#pragma once
#include <type_traits>

// Inlined into its caller, so it is compiled for the caller's instruction set.
#define INV_INLINE inline __attribute__((always_inline))
#define INV_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")))
#define INV_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace inv {

enum class Isa { Generic, Avx2, Avx512 };

// The best instruction set this machine runs, detected once.
inline Isa cpu_isa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
      return Isa::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
    return Isa::Generic;
  }();
  return isa;
}

// "avx512", "avx2" or "generic".
inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

// Columns of a register tile of element type A: two vector registers (zmm, ymm or xmm) per row.
template <typename A, Isa I>
constexpr int kTileColumns = static_cast<int>((I == Isa::Avx512 ? 128 : I == Isa::Avx2 ? 64 : 32) / sizeof(A));

// Calls f(std::integral_constant<Isa, I>{}) with I this machine's instruction set.
template <typename F>
void with_cpu_isa(F&& f) {
  switch (cpu_isa()) {
    case Isa::Avx512: f(std::integral_constant<Isa, Isa::Avx512>{}); break;
    case Isa::Avx2: f(std::integral_constant<Isa, Isa::Avx2>{}); break;
    default: f(std::integral_constant<Isa, Isa::Generic>{}); break;
  }
}

// Fn compiled for each instruction set: Fn (and every INV_INLINE function it calls) is inlined into each copy.
template <auto Fn>
struct IsaCopies;
template <typename R, typename... Args, R (*Fn)(Args...)>
struct IsaCopies<Fn> {
  INV_TARGET_AVX512 static R avx512(Args... args) { return Fn(args...); }
  INV_TARGET_AVX2 static R avx2(Args... args) { return Fn(args...); }
  static R generic(Args... args) { return Fn(args...); }
};

// The copy of Fn compiled for `isa`.
template <auto Fn>
constexpr decltype(Fn) isa_copy(Isa isa) {
  using C = IsaCopies<Fn>;
  return isa == Isa::Avx512 ? &C::avx512 : isa == Isa::Avx2 ? &C::avx2 : &C::generic;
}

}  // namespace inv

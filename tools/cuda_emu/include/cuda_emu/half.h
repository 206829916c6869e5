// __half and __nv_bfloat16 for the CUDA emulation: bit-exact round-to-nearest-even
// conversions (as cuda_fp16.h / cuda_bf16.h and PyTorch's casts), arithmetic through float.
#pragma once

#include <cstdint>
#include <cstring>

namespace cuda_emu {

inline uint32_t f32_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
inline float f32_from(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t mag = x & 0x7fffffffu;
  if (mag > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (mag < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    // The value in units of 2^-24, rounded to nearest even.
    const float scaled = f32_from(mag) * 16777216.0f;  // exact: a power of two
    const float r = __builtin_nearbyintf(scaled);       // default rounding mode: even
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(r));
  }
  // Normal: rebias the exponent and round the 13 dropped mantissa bits to even.
  uint32_t h = ((mag >> 13) - (112u << 10));
  const uint32_t rest = mag & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24
    const float v = static_cast<float>(man) * (1.0f / 16777216.0f);
    return f32_from(f32_bits(v) | sign);
  }
  if (exp == 31) return f32_from(sign | 0x7f800000u | (man << 13));
  return f32_from(sign | ((exp + 112u) << 23) | (man << 13));
}

inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
inline float bf16_to_f32(uint16_t b) { return f32_from(static_cast<uint32_t>(b) << 16); }

}  // namespace cuda_emu

struct __half {
  uint16_t __x;
  __half() = default;
  __half(float f) : __x(cuda_emu::f32_to_f16(f)) {}  // NOLINT: implicit as in cuda_fp16.h
  operator float() const { return cuda_emu::f16_to_f32(__x); }
};
struct __nv_bfloat16 {
  uint16_t __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(cuda_emu::f32_to_bf16(f)) {}  // NOLINT: implicit as in cuda_bf16.h
  operator float() const { return cuda_emu::bf16_to_f32(__x); }
};
static_assert(sizeof(__half) == 2 && sizeof(__nv_bfloat16) == 2, "16-bit storage types");

inline float __half2float(__half h) { return cuda_emu::f16_to_f32(h.__x); }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short x) {
  __half h;
  h.__x = x;
  return h;
}
inline float __bfloat162float(__nv_bfloat16 b) { return cuda_emu::bf16_to_f32(b.__x); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) {
  __nv_bfloat16 b;
  b.__x = x;
  return b;
}

#define CUDA_EMU_HALF_OPS(T)                                                          \
  inline T operator+(T a, T b) { return T(float(a) + float(b)); }                     \
  inline T operator-(T a, T b) { return T(float(a) - float(b)); }                     \
  inline T operator*(T a, T b) { return T(float(a) * float(b)); }                     \
  inline T operator/(T a, T b) { return T(float(a) / float(b)); }                     \
  inline T operator-(T a) { return T(-float(a)); }                                    \
  inline bool operator==(T a, T b) { return float(a) == float(b); }                   \
  inline bool operator!=(T a, T b) { return float(a) != float(b); }                   \
  inline bool operator<(T a, T b) { return float(a) < float(b); }                     \
  inline bool operator>(T a, T b) { return float(a) > float(b); }                     \
  inline bool operator<=(T a, T b) { return float(a) <= float(b); }                   \
  inline bool operator>=(T a, T b) { return float(a) >= float(b); }
CUDA_EMU_HALF_OPS(__half)
CUDA_EMU_HALF_OPS(__nv_bfloat16)
#undef CUDA_EMU_HALF_OPS

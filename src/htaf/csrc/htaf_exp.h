/* The exp of htaf's compiled kernels, shared by htaf_kernels.c (C) and lif_kernels.cpp (C++).

   libm's exp is a scalar call that stops a loop from vectorising; this one is plain arithmetic
   the compiler vectorises: Cody-Waite reduction x = n ln 2 + r, |r| <= ln 2 / 2, a polynomial
   for e^r - 1 (about one ulp), and 2^n written into the exponent bits. Every file including it
   is compiled without -ffast-math, so NaN in gives NaN out. Valid C11 and C++17. */
#ifndef HTAF_EXP_H
#define HTAF_EXP_H

#include <stdint.h>
#include <string.h>

static inline float f32_from_bits(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static inline uint32_t f32_bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }
static inline double f64_from_bits(uint64_t b) { double f; memcpy(&f, &b, 8); return f; }
static inline uint64_t f64_bits(double f) { uint64_t b; memcpy(&b, &f, 8); return b; }

/* 2^k for an integer-valued k in [-126, 0]: write k + 127 into the low mantissa bits of
   2^23 (exactly representable), then shift it into the exponent field. */
static inline float f32_pow2(float k) {
    return f32_from_bits(f32_bits(k + (8388608.0f + 127.0f)) << 23);
}
static inline double f64_pow2(double k) {
    return f64_from_bits(f64_bits(k + (4503599627370496.0 + 1023.0)) << 52);
}

/* e^x = 2^n (1 + q): returns q = e^r - 1 and sets *n_out = n (integer-valued), for finite x
   whose n stays in range (the callers clamp x). Adding and subtracting 1.5 * 2^23 rounds to
   the nearest integer without a call. */
static inline float exp_poly_f32(float x, float *n_out) {
    float n = x * 1.44269504088896341f + 12582912.0f;
    n = n - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    *n_out = n;
    return p * (r * r) + r;
}

static inline double exp_poly_f64(double x, double *n_out) {
    double n = x * 1.4426950408889634074 + 6755399441055744.0;
    n = n - 6755399441055744.0;
    double r = x - n * 6.93147180369123816490e-01;
    r = r - n * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;          /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    *n_out = n;
    return p * (r * r) + r;
}

/* e^x = s (1 + q) for x <= 0, with s = 2^n exact (subnormal powers included) and q the
   polynomial part. Callers form e^x = s + s q (one rounding, gradual underflow) and
   1 - e^x = (1 - s) - s q, which has no cancellation near x = 0 (n = 0, s = 1, q ~ x), so
   tanh(z) = (1 - e)/(1 + e) with e = e^-2z is accurate to a few ulp at every z. */
static inline float exp_parts_f32(float x, float *s) {
    float n;
    x = x > -104.0f ? x : -104.0f;
    float q = exp_poly_f32(x, &n);
    float n1 = n > -126.0f ? n : -126.0f;
    *s = f32_pow2(n1) * f32_pow2(n - n1);
    return q;
}

static inline double exp_parts_f64(double x, double *s) {
    double n;
    x = x > -746.0 ? x : -746.0;
    double q = exp_poly_f64(x, &n);
    double n1 = n > -1022.0 ? n : -1022.0;
    *s = f64_pow2(n1) * f64_pow2(n - n1);
    return q;
}

/* e^x for x <= 0 (not NaN; -inf allowed), rounded once, underflowing gradually. */
static inline float exp_nonpos_f32(float x) {
    float s, q = exp_parts_f32(x, &s);
    return s + s * q;
}

static inline double exp_nonpos_f64(double x) {
    double s, q = exp_parts_f64(x, &s);
    return s + s * q;
}

#endif /* HTAF_EXP_H */

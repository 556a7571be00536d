/* Part of htaf_kernels.c (included after HTAF_BLOCKS): the float32 pair for AVX2 + FMA.

   The formulas of the AVX-512 pair, 8 lanes at a time. AVX2 has no vscalefps, vrcp14ps or
   mask registers, so: 2^n is written into the exponent bits (as the portable loops do, in two
   factors where it may be subnormal), 1/d is a division, and the tail is a masked load and
   store. Compared with the compiler's vectorisation of the portable loops it has no NaN
   selects (NaN propagates through every operation here) and one polynomial term fewer. */
#if defined(__AVX2__) && defined(__FMA__)
#define W1(v) _mm256_set1_ps(v)

/* 2^n for integer-valued n in [-126, 0] (NaN in: garbage out, which the callers multiply
   into a NaN): n + 127 into the low mantissa bits of 2^23, shifted into the exponent field. */
static inline __m256 w_pow2(__m256 n) {
    __m256i b = _mm256_castps_si256(_mm256_add_ps(n, W1(8388608.0f + 127.0f)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(b, 23));
}

/* x = n ln 2 + r, |r| <= ln 2 / 2 (see v_reduce); returns n and sets *r. Adding and
   subtracting 1.5 2^23 rounds x log2(e) to the nearest integer (one rounding, in the fused
   multiply-add), without vroundps. */
static inline __m256 w_reduce(__m256 x, __m256 *r) {
    __m256 t = _mm256_fmadd_ps(x, W1(1.44269504088896341f), W1(12582912.0f));
    __m256 n = _mm256_sub_ps(t, W1(12582912.0f));
    *r = _mm256_fnmadd_ps(n, W1(0.693147182f), x);
    return n;
}

/* h(r) with e^r = 1 + r (1 + r h(r)): v_exp_tail's polynomial. */
static inline __m256 w_exp_tail(__m256 r) {
    __m256 p = W1(1.3843653724e-3f);
    p = _mm256_fmadd_ps(p, r, W1(8.3741554990e-3f));
    p = _mm256_fmadd_ps(p, r, W1(4.1668001562e-2f));
    p = _mm256_fmadd_ps(p, r, W1(1.6666431725e-1f));
    return _mm256_fmadd_ps(p, r, W1(4.9999994040e-1f));
}

/* e^x = s (1 + q) for any x <= 0, as v_exp_parts: s = 2^n exact (as a product of two powers
   when it is subnormal), q = e^r - 1. x clamps to -104 (e^x = 0 in float32); vmaxps returns
   its second operand, x, when that is NaN. */
static inline __m256 w_exp_parts(__m256 x, __m256 *s) {
    __m256 r, n = w_reduce(_mm256_max_ps(W1(-104.0f), x), &r);
    __m256 n1 = _mm256_max_ps(n, W1(-126.0f));
    *s = _mm256_mul_ps(w_pow2(n1), w_pow2(_mm256_sub_ps(n, n1)));
    return _mm256_mul_ps(_mm256_fmadd_ps(w_exp_tail(r), r, W1(1.0f)), r);
}

/* e^x = s + s q for x <= 0 (NaN stays NaN), underflowing gradually: the second exponent,
   -a1 tanh(a0 |x|), reaches -a1, and a clamp at the smallest normal 2^n would leave
   gradients of about 1e-38 times c where they are 0. */
static inline __m256 w_exp(__m256 x) {
    __m256 s, q = w_exp_parts(x, &s);
    return _mm256_fmadd_ps(s, q, s);
}

/* 1/d for d in [1, 2], correctly rounded. vrcpps and one Newton step leave about two ulp,
   which the SNN recurrences amplify over time (tests/test_snn_fused.py caught it), and
   vdivps costs no time here: the loop is bound by its other operations. */
static inline __m256 w_recip(__m256 d) {
    return _mm256_div_ps(W1(1.0f), d);
}

/* e, re = 1/(1 + e) and f as v_ef. */
static inline __m256 w_ef(__m256 x, float m2a0, float ma1, __m256 *e, __m256 *re) {
    __m256 s, ax = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
    __m256 q = w_exp_parts(_mm256_mul_ps(ax, W1(m2a0)), &s);
    *e = _mm256_fmadd_ps(s, q, s);
    *re = w_recip(_mm256_add_ps(W1(1.0f), *e));
    __m256 one_minus_e = _mm256_fnmadd_ps(s, q, _mm256_sub_ps(W1(1.0f), s));
    return w_exp(_mm256_mul_ps(_mm256_mul_ps(W1(ma1), one_minus_e), *re));
}

/* y = 1/(1 + f) for x >= 0, f/(1 + f) for x < 0, as v_fwd. */
static inline __m256 w_fwd(__m256 x, __m256 unused, float m2a0, float ma1, float c) {
    (void)unused; (void)c;
    __m256 e, re;
    __m256 f = w_ef(x, m2a0, ma1, &e, &re);
    __m256 inv = w_recip(_mm256_add_ps(W1(1.0f), f));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(inv, _mm256_mul_ps(f, inv), neg);
}

/* HTAF' = c e f (re rf)^2, as v_bwd. */
static inline __m256 w_bwd(__m256 x, __m256 g, float m2a0, float ma1, float c) {
    __m256 e, re;
    __m256 f = w_ef(x, m2a0, ma1, &e, &re);
    __m256 r = _mm256_mul_ps(re, w_recip(_mm256_add_ps(W1(1.0f), f)));
    __m256 num = _mm256_mul_ps(_mm256_mul_ps(W1(c), e), f);
    return _mm256_mul_ps(g, _mm256_mul_ps(num, _mm256_mul_ps(r, r)));
}

/* out = OP(x, g) over n elements, 8 at a time; the tail is a masked vector (lanes below
   hi - i on). Whether g is given is decided once, outside the loop. */
#define HTAF_AVX2_STEP(OP, GV)                                                              \
    for (i64 i = lo; i < hi; i += 8) {                                                      \
        if (hi - i >= 8) {                                                                  \
            __m256 xv = _mm256_loadu_ps(x + i);                                             \
            _mm256_storeu_ps(out + i, OP(xv, GV(_mm256_loadu_ps(g + i)), m2a0, ma1, c));   \
        } else {                                                                            \
            __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(hi - i)),                \
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));      \
            __m256 xv = _mm256_maskload_ps(x + i, m);                                       \
            _mm256_maskstore_ps(out + i, m,                                                 \
                                OP(xv, GV(_mm256_maskload_ps(g + i, m)), m2a0, ma1, c));    \
        }                                                                                   \
    }
#define HTAF_AVX2_LOADED(v) (v)
#define HTAF_AVX2_SCALAR(v) W1(gs)
#define HTAF_AVX2_LOOP(OP)                                                                  \
    HTAF_BLOCKS(float, if (g) { HTAF_AVX2_STEP(OP, HTAF_AVX2_LOADED) }                      \
                       else { HTAF_AVX2_STEP(OP, HTAF_AVX2_SCALAR) })

void htaf_fwd_f32_avx2(const float *restrict x, float *restrict out, i64 n, float a0,
                       float a1, int nt) {
    const float *g = NULL;
    float gs = 0.0f, m2a0 = -2.0f * a0, ma1 = -a1, c = 0.0f;
    HTAF_BLOCKS(float, HTAF_AVX2_STEP(w_fwd, HTAF_AVX2_SCALAR))
    (void)g;
}

/* Same arguments as htaf_bwd_f32 (m2a0 = -2 a0, ma1 = -a1, c = 4 a0 a1). */
void htaf_bwd_f32_avx2(const float *restrict x, const float *restrict g, float gs,
                       float *restrict out, i64 n, float m2a0, float ma1, float c, int nt) {
    HTAF_AVX2_LOOP(w_bwd)
}
#endif

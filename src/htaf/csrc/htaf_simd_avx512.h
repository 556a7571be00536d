/* Part of htaf_kernels.c (included after HTAF_BLOCKS): the float32 pair for AVX-512. */
#ifdef __AVX512F__
/* Hand-vectorised float32 kernels for AVX-512, with the formulas of the portable loops.
   vscalefps applies 2^n (gradual underflow, one rounding) and vrndscaleps rounds, where
   portable C needs several integer tricks. The tail is a masked vector. */
#define V1(v) _mm512_set1_ps(v)

/* x = n ln 2 + r, |r| <= ln 2 / 2, for x <= 0; returns n and sets *r. The float ln 2 is 1.9e-9
   off the truth and |n| <= 150 where the result is not 0, so r is off by at most 3e-7 (e^x by
   3e-7 relative); a two-constant Cody-Waite split would cost one more op. */
static inline __m512 v_reduce(__m512 x, __m512 *r) {
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, V1(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    *r = _mm512_fnmadd_ps(n, V1(0.693147182f), x);
    return n;
}

/* h(r) with e^r = 1 + r (1 + r h(r)) for |r| <= ln 2 / 2: degree 6 in all, fitted for
   relative error (about an ulp in float32, one fewer term than exp_parts_f32's). */
static inline __m512 v_exp_tail(__m512 r) {
    __m512 p = V1(1.3843653724e-3f);
    p = _mm512_fmadd_ps(p, r, V1(8.3741554990e-3f));
    p = _mm512_fmadd_ps(p, r, V1(4.1668001562e-2f));
    p = _mm512_fmadd_ps(p, r, V1(1.6666431725e-1f));
    return _mm512_fmadd_ps(p, r, V1(4.9999994040e-1f));
}

/* e^x for x <= 0 (NaN stays NaN), as one polynomial scaled by 2^n: for the second exponent,
   which lies in [-a1, 0] and needs no clamp (below -150 ln 2, vscalefps gives 0). */
static inline __m512 v_exp(__m512 x) {
    __m512 r, n = v_reduce(x, &r);
    __m512 p = _mm512_fmadd_ps(v_exp_tail(r), r, V1(1.0f));
    return _mm512_scalef_ps(_mm512_fmadd_ps(p, r, V1(1.0f)), n);
}

/* e^x = s (1 + q) for any x <= 0, as exp_parts_f32: s = 2^n exact, q = e^r - 1, so that
   1 - e^x = (1 - s) - s q has no cancellation near x = 0. -inf and very negative x clamp to
   -104 (e^x = 0 in float32); NaN propagates, since vmaxps returns its second operand when
   either is NaN. */
static inline __m512 v_exp_parts(__m512 x, __m512 *s) {
    __m512 r, n = v_reduce(_mm512_max_ps(V1(-104.0f), x), &r);
    *s = _mm512_scalef_ps(V1(1.0f), n);
    return _mm512_mul_ps(_mm512_fmadd_ps(v_exp_tail(r), r, V1(1.0f)), r);
}

/* 1/d for d in [1, 2]: vrcp14ps (relative error < 2^-14) and one Newton step, which leaves
   about an ulp; vdivps costs several times as much and each direction divides twice. */
static inline __m512 v_recip(__m512 d) {
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, V1(2.0f)));
}

/* e = e^(-2 a0 |x|), re = 1/(1 + e) and f = e^(-a1 tanh(a0 |x|)), tanh = (1 - e) re, as in
   the portable loops. The second exponent lies in [-a1, 0], so it needs no clamp. */
static inline __m512 v_ef(__m512 x, float m2a0, float ma1, __m512 *e, __m512 *re) {
    __m512 s;
    __m512 q = v_exp_parts(_mm512_mul_ps(_mm512_abs_ps(x), V1(m2a0)), &s);
    *e = _mm512_fmadd_ps(s, q, s);
    *re = v_recip(_mm512_add_ps(V1(1.0f), *e));
    __m512 one_minus_e = _mm512_fnmadd_ps(s, q, _mm512_sub_ps(V1(1.0f), s));
    return v_exp(_mm512_mul_ps(_mm512_mul_ps(V1(ma1), one_minus_e), *re));
}

/* y = 1/(1 + f) for x >= 0, f/(1 + f) for x < 0; NaN stays NaN through every step. */
static inline __m512 v_fwd(__m512 x, __m512 unused, float m2a0, float ma1, float c) {
    (void)unused; (void)c;
    __m512 e, re;
    __m512 f = v_ef(x, m2a0, ma1, &e, &re);
    __m512 inv = v_recip(_mm512_add_ps(V1(1.0f), f));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(inv, neg, f, inv);
}

/* HTAF' = c e f (re rf)^2, rf = 1/(1 + f): the portable c e f / ((1+e)(1+f))^2. */
static inline __m512 v_bwd(__m512 x, __m512 g, float m2a0, float ma1, float c) {
    __m512 e, re;
    __m512 f = v_ef(x, m2a0, ma1, &e, &re);
    __m512 r = _mm512_mul_ps(re, v_recip(_mm512_add_ps(V1(1.0f), f)));
    __m512 num = _mm512_mul_ps(_mm512_mul_ps(V1(c), e), f);
    return _mm512_mul_ps(g, _mm512_mul_ps(num, _mm512_mul_ps(r, r)));
}

/* out = OP(x, g) over n elements, 16 at a time; the tail is a masked vector. */
#define HTAF_AVX512_LOOP(OP, g, gs)                                                         \
    HTAF_BLOCKS(float, for (i64 i = lo; i < hi; i += 16) {                                  \
        __mmask16 m = hi - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hi - i)) - 1); \
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);                                        \
        __m512 gv = g ? _mm512_maskz_loadu_ps(m, g + i) : V1(gs);                          \
        _mm512_mask_storeu_ps(out + i, m, OP(xv, gv, m2a0, ma1, c));                       \
    })

void htaf_fwd_f32_avx512(const float *restrict x, float *restrict out, i64 n, float a0,
                         float a1, int nt) {
    const float *g = NULL;
    float m2a0 = -2.0f * a0, ma1 = -a1, c = 0.0f;
    HTAF_AVX512_LOOP(v_fwd, g, 0.0f)
}

/* Same arguments as htaf_bwd_f32 (m2a0 = -2 a0, ma1 = -a1, c = 4 a0 a1). */
void htaf_bwd_f32_avx512(const float *restrict x, const float *restrict g, float gs,
                         float *restrict out, i64 n, float m2a0, float ma1, float c, int nt) {
    HTAF_AVX512_LOOP(v_bwd, g, gs)
}
#endif


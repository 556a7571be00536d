/* htaf's convex-solver kernels (loaded by htaf.families.convex._kernels with ctypes). */
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

typedef int64_t i64;

/* out[j] = sum_k table[k][bytes[j][k]], j < p: H^T r from the byte tables of r. */
void cvx_tmatvec(const uint8_t *bytes, i64 p, i64 nb, const double *table, double *out) {
    for (i64 j = 0; j < p; ++j) {
        const uint8_t *col = bytes + j * nb;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        i64 k = 0;
        for (; k + 4 <= nb; k += 4) {
            s0 += table[(k + 0) * 256 + col[k + 0]];
            s1 += table[(k + 1) * 256 + col[k + 1]];
            s2 += table[(k + 2) * 256 + col[k + 2]];
            s3 += table[(k + 3) * 256 + col[k + 3]];
        }
        for (; k < nb; ++k) s0 += table[k * 256 + col[k]];
        out[j] = (s0 + s1) + (s2 + s3);
    }
}

/* G[a][b] = popcount(words[idx[a]] & words[idx[b]]) over w words, a, b < k. */
void cvx_gram(const uint64_t *words, i64 w, const i64 *idx, i64 k, double *G) {
    for (i64 a = 0; a < k; ++a) {
        const uint64_t *ca = words + idx[a] * w;
        for (i64 b = a; b < k; ++b) {
            const uint64_t *cb = words + idx[b] * w;
            i64 c = 0;
            for (i64 t = 0; t < w; ++t) c += __builtin_popcountll(ca[t] & cb[t]);
            G[a * k + b] = (double)c;
            G[b * k + a] = (double)c;
        }
    }
}

/* -- coordinate descent on bit-packed columns ------------------------------------------------
 * A column h is w words; r holds 64 w doubles (rows past n are zero, and so are their bits).
 * h'r adds the r[i] of the set bits; r += a h adds a to them. With AVX-512 each byte of a
 * word is the mask of one 8-double add: n / 8 vector operations per column. */
static double dot_bits(const uint64_t *col, i64 w, const double *r) {
#ifdef __AVX512F__
    __m512d a[8];
    for (int q = 0; q < 8; ++q) a[q] = _mm512_setzero_pd();
    for (i64 t = 0; t < w; ++t) {
        uint64_t m = col[t];
        if (!m) continue;
        const double *p = r + 64 * t;
        for (int q = 0; q < 8; ++q)
            a[q] = _mm512_mask_add_pd(a[q], (__mmask8)(m >> (8 * q)), a[q], _mm512_loadu_pd(p + 8 * q));
    }
    for (int q = 1; q < 8; ++q) a[0] = _mm512_add_pd(a[0], a[q]);
    return _mm512_reduce_add_pd(a[0]);
#else
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (i64 t = 0; t < w; ++t) {
        uint64_t m = col[t];
        if (!m) continue;
        const double *p = r + 64 * t;
        for (int b = 0; b < 64; ++b) s[b & 7] += (double)((m >> b) & 1u) * p[b];
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
#endif
}

static void axpy_bits(const uint64_t *col, i64 w, double alpha, double *r) {
#ifdef __AVX512F__
    __m512d av = _mm512_set1_pd(alpha);
    for (i64 t = 0; t < w; ++t) {
        uint64_t m = col[t];
        if (!m) continue;
        double *p = r + 64 * t;
        for (int q = 0; q < 8; ++q) {
            __mmask8 k = (__mmask8)(m >> (8 * q));
            __m512d v = _mm512_loadu_pd(p + 8 * q);
            _mm512_storeu_pd(p + 8 * q, _mm512_mask_add_pd(v, k, v, av));
        }
    }
#else
    for (i64 t = 0; t < w; ++t) {
        uint64_t m = col[t];
        if (!m) continue;
        double *p = r + 64 * t;
        for (int b = 0; b < 64; ++b) p[b] += (double)((m >> b) & 1u) * alpha;
    }
#endif
}

/* epochs of cyclic coordinate descent on 1/2 ||r||^2 + beta |z|_1 over the columns idx[0..k):
 * z[a] is the weight of column idx[a], r = y - H z is kept up to date, inv[a] = 1/||h||^2. */
void cvx_cd(const uint64_t *words, i64 w, const i64 *idx, i64 k, double *z, double *r,
            const double *inv, double beta, i64 epochs) {
    for (i64 e = 0; e < epochs; ++e) {
        for (i64 a = 0; a < k; ++a) {
            const uint64_t *col = words + idx[a] * w;
            double old = z[a];
            double u = old + dot_bits(col, w, r) * inv[a];
            double t = beta * inv[a];
            double nz = u > t ? u - t : (u < -t ? u + t : 0.0);
            if (nz != old) {
                axpy_bits(col, w, old - nz, r);
                z[a] = nz;
            }
        }
    }
}

/* r += sum_a alpha[a] h_idx[a] (over the nonzero alpha). */
void cvx_axpy_cols(const uint64_t *words, i64 w, const i64 *idx, i64 k, const double *alpha,
                   double *r) {
    for (i64 a = 0; a < k; ++a)
        if (alpha[a] != 0.0) axpy_bits(words + idx[a] * w, w, alpha[a], r);
}

/* out[a] = h_idx[a]' r. */
void cvx_dot_cols(const uint64_t *words, i64 w, const i64 *idx, i64 k, const double *r,
                  double *out) {
    for (i64 a = 0; a < k; ++a) out[a] = dot_bits(words + idx[a] * w, w, r);
}

int cvx_kernels_abi(void) { return 2; }

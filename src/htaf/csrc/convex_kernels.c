/* htaf's convex-solver kernels (loaded by htaf.families.convex._kernels with ctypes). */
#include <stdint.h>

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

int cvx_kernels_abi(void) { return 1; }

/* htaf's fused HTAF kernels (htaf._kernels loads them with ctypes; htaf._native and the SNN
   kernels call them through their addresses). Compiled without -ffast-math. */
#include <stdint.h>
#include <string.h>

#include "htaf_exp.h"

#ifdef __linux__
#include <sys/mman.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels answer EINVAL */
#endif
#endif

typedef int64_t i64;

/* Every loop here runs over blocks of at most 1 MiB of output, split over nt threads. When the
   output is fresh (its first page not yet mapped: a newly allocated large tensor), each block
   faults its pages in before computing them. Such an output faults on its first write, once
   per 4 KiB page, and on a large output those faults can cost more than the arithmetic. One
   madvise(MADV_POPULATE_WRITE) per block takes them in one system call; where that is refused
   (before Linux 5.14, other page sizes), a loop of one-byte stores takes them, which still
   keeps them out of the exp-heavy vector loop (whose work in flight a fault most likely
   discards). An output that is already mapped (smaller tensors, which the allocator reuses)
   is left alone: populating mapped pages only costs there. The figures are in
   benchmarks/README.md ("What closed the gap to ReLU", benchmarks/page_faults.py). The stores
   and the populated pages are only out's, which the block's results then overwrite; out never
   aliases the inputs (restrict). */
#define HTAF_BLOCK_BYTES (1 << 20)
#define HTAF_PAGE_BYTES 4096
#define HTAF_PREFAULT_MIN_BYTES (4 << 20)

/* Elements per block: at most HTAF_BLOCK_BYTES, and small enough that every thread gets a
   block; a multiple of 16 (one AVX-512 vector of float32). */
static inline i64 htaf_block_len(i64 n, int nt, i64 elem) {
    i64 len = HTAF_BLOCK_BYTES / elem, share = (n + nt - 1) / nt;
    if (share < len) len = share;
    len = (len + 15) / 16 * 16;
    return len > 0 ? len : 16;
}

static inline uintptr_t htaf_page_up(uintptr_t a) {
    return (a + HTAF_PAGE_BYTES - 1) & ~(uintptr_t)(HTAF_PAGE_BYTES - 1);
}

/* Whether out[0, bytes) is large and its first whole page not yet mapped (one mincore call). */
static inline int htaf_fresh(void *p, i64 bytes) {
    unsigned char mapped = 1;
    if (bytes < HTAF_PREFAULT_MIN_BYTES) return 0;
#ifdef __linux__
    if (mincore((void *)htaf_page_up((uintptr_t)p), HTAF_PAGE_BYTES, &mapped)) return 0;
#endif
    return !(mapped & 1);
}

/* 0 once madvise(MADV_POPULATE_WRITE) has been refused: then only the stores are tried. */
static int htaf_populate_ok = 1;

/* Fault in the pages of p[0, bytes): the whole pages in one madvise call, else by stores. */
static inline void htaf_prefault(void *p, i64 bytes) {
#ifdef __linux__
    uintptr_t lo = htaf_page_up((uintptr_t)p);
    uintptr_t hi = ((uintptr_t)p + (uintptr_t)bytes) & ~(uintptr_t)(HTAF_PAGE_BYTES - 1);
    int ok = __atomic_load_n(&htaf_populate_ok, __ATOMIC_RELAXED);
    if (ok && hi > lo) {
        if (madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) == 0) return;
        __atomic_store_n(&htaf_populate_ok, 0, __ATOMIC_RELAXED);
    }
#endif
    volatile char *c = (volatile char *)p;
    for (i64 i = 0; i < bytes; i += HTAF_PAGE_BYTES) c[i] = 0;
}

/* For each block [lo, hi) of out (a T *), in parallel: fault its pages in if the output is
   fresh, then run the body. */
#define HTAF_BLOCKS(T, ...)                                                                 \
    i64 blen = htaf_block_len(n, nt, (i64)sizeof(T)), nblocks = (n + blen - 1) / blen;      \
    int fresh = htaf_fresh(out, n * (i64)sizeof(T));                                        \
    _Pragma("omp parallel for num_threads(nt) if(nt > 1) schedule(static)")                 \
    for (i64 blk = 0; blk < nblocks; ++blk) {                                               \
        i64 lo = blk * blen, hi = lo + blen < n ? lo + blen : n;                            \
        if (fresh) htaf_prefault(out + lo, (hi - lo) * (i64)sizeof(T));                     \
        __VA_ARGS__                                                                         \
    }

/* The two exps both directions need, for ax = |x|: returns f = e^(-a1 tanh(a0 ax)) and sets
   e = e^(-2 a0 ax), with tanh(a0 ax) = (1 - e)/(1 + e) taken from the same exp (exp_parts).
   m2a0 = -2 a0, ma1 = -a1. */
#define HTAF_EF(T, SUF, ONE)                                                                \
static inline T htaf_ef_##SUF(T ax, T m2a0, T ma1, T *e) {                                  \
    T s;                                                                                    \
    T q = exp_parts_##SUF(m2a0 * ax, &s);                                                   \
    *e = s + s * q;                                                                         \
    return exp_nonpos_##SUF(ma1 * ((ONE - s) - s * q) / (ONE + *e));                        \
}

/* Forward: y = sigmoid(u), u = a1 tanh(a0 x), evaluated from f = e^-|u| as 1 / (1 + f) or
   f / (1 + f) so that it neither overflows nor loses the small side. NaN in, NaN out. */
#define HTAF_FWD(T, SUF, ONE)                                                               \
void htaf_fwd_##SUF(const T *restrict x, T *restrict out, i64 n, T a0, T a1, int nt) {      \
    T m2a0 = -2 * a0, ma1 = -a1;                                                            \
    HTAF_BLOCKS(T, _Pragma("omp simd") for (i64 i = lo; i < hi; ++i) {                      \
        T xi = x[i];                                                                        \
        int isnan_ = xi != xi;                                                              \
        T e, f = htaf_ef_##SUF(isnan_ ? (T)0 : (xi < 0 ? -xi : xi), m2a0, ma1, &e);         \
        T inv = ONE / (ONE + f);                                                            \
        T yi = xi < 0 ? f * inv : inv;                                                      \
        out[i] = isnan_ ? xi : yi;                                                          \
    })                                                                                      \
}

/* Backward: out = grad * HTAF'(x) with e and f as above:
   HTAF' = c e f / ((1+e)(1+f))^2, c = 4 a0 a1; no intermediate can overflow or underflow
   before the result does. grad == NULL means the scalar gs. */
#define HTAF_BWD_LOOP(T, SUF, ONE, GI)                                                      \
    _Pragma("omp simd") for (i64 i = lo; i < hi; ++i) {                                     \
        T xi = x[i];                                                                        \
        int isnan_ = xi != xi;                                                              \
        T e, f = htaf_ef_##SUF(isnan_ ? (T)0 : (xi < 0 ? -xi : xi), m2a0, ma1, &e);         \
        T den = (ONE + e) * (ONE + f);                                                      \
        T d = c * e * f / (den * den);                                                      \
        out[i] = isnan_ ? xi : (GI) * d;                                                    \
    }

/* The test of g is outside the loops: a load under `g ? g[i] : gs` inside one kept GCC from
   vectorising it, and the scalar gradient of .sum() took twice the time of a tensor one. */
#define HTAF_BWD(T, SUF, ONE)                                                               \
void htaf_bwd_##SUF(const T *restrict x, const T *restrict g, T gs, T *restrict out,      \
                    i64 n, T m2a0, T ma1, T c, int nt) {                                    \
    HTAF_BLOCKS(T, if (g) { HTAF_BWD_LOOP(T, SUF, ONE, g[i]) }                              \
                   else { HTAF_BWD_LOOP(T, SUF, ONE, gs) })                                 \
}

HTAF_EF(float, f32, 1.0f)
HTAF_EF(double, f64, 1.0)
HTAF_FWD(float, f32, 1.0f)
HTAF_FWD(double, f64, 1.0)
HTAF_BWD(float, f32, 1.0f)
HTAF_BWD(double, f64, 1.0)

/* The exact step of every hard estimator: y = 1 where x >= 0, lo (0 or -1) where x < 0, NaN
   stays NaN, in one pass, where PyTorch's compare + cast + isnan + where make four. */
#define HTAF_STEP(T, SUF)                                                                   \
void htaf_step_##SUF(const T *restrict x, T *restrict out, i64 n, T low, int nt) {         \
    HTAF_BLOCKS(T, _Pragma("omp simd") for (i64 i = lo; i < hi; ++i) {                      \
        T xi = x[i];                                                                        \
        out[i] = xi >= 0 ? (T)1 : (xi != xi ? xi : low);                                    \
    })                                                                                      \
}

HTAF_STEP(float, f32)
HTAF_STEP(double, f64)

/* The hand-vectorised float32 pairs: AVX-512 where the compiler targets it, AVX2 + FMA where
   it targets those (both on an AVX-512 CPU, so that the tests can check the AVX2 pair there). */
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif
#include "htaf_simd_avx512.h"
#include "htaf_simd_avx2.h"

int htaf_kernels_abi(void) { return 1; }

// Products of a 0/1 matrix with float matrices, as sums of the rows its ones select
// (htaf.families.snn.binary_matmul; loaded with ctypes).
//
// X is rows x cols, 0/1, held as bits (bit r*cols + i of the buffer, least significant first:
// htaf.families.snn.fused.pack_bits). A synapse fed by spikes needs
//   forward:          Y = X W^T + b,    Y[r, :] = b + sum_{i : X[r,i] = 1} W[:, i]
//   weight gradient:  dW^T = X^T G,     dW^T[i, :] = sum_{r : X[r,i] = 1} G[r, :]
// Both are one gather, bm_gather: out[a, :] = init + sum_{b in list(a)} M[b, :], over lists of
// the ones of X by row (forward: a = r, b = i) or by column (gradient: a = i, b = r). At a spike
// density d this reads d of the operand that a dense product multiplies in full.
//
// Why the layouts: the gather is bound by loads, so the lists are cut into chunks of CHUNK values
// of b: one chunk of one tile of M (CHUNK x TILE floats) stays in the level-1 cache while every
// a adds from it. Row b of tile t of M starts at m + t * tile_stride + b * ld: tile-major
// ([tiles][n_b][TILE], zero padded: ld = TILE, tile_stride = n_b * TILE) keeps those rows apart
// from each other's cache sets; row-major (ld = width, tile_stride = TILE, width a multiple of
// TILE) saves the copy. Lists are chunk-major: the entries of (chunk c, a) are
// idx[ptr[c * n_a + a] .. ptr[c * n_a + a + 1]).
// Sums run in list order; built without -ffast-math, so NaN and Inf in M propagate.
//
// bm_transpose makes the operands and the result that are transposes of the caller's tensors:
// the tile-major W^T of the forward and dW from dW^T. A copy of a transposed view reads or
// writes with a stride of a whole row; here 8 x 8 blocks pass through registers.

#include <stdint.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

typedef int64_t i64;
typedef int32_t i32;

#define TILE 64
#define CHUNK 64
#define A_BLOCK 256

typedef float v16 __attribute__((vector_size(64), aligned(4)));

int bm_abi(void) { return 4; }

i64 bm_tile(void) { return TILE; }

i64 bm_chunk(void) { return CHUNK; }

// Bits [start, start + len) of the buffer (nbytes long), len <= 64, as the low bits of a word.
static inline uint64_t bits_at(const uint8_t* bits, i64 nbytes, i64 start, i64 len) {
  i64 byte = start >> 3, shift = start & 7, take = (len + shift + 7) >> 3;
  uint64_t w = 0;
  if (take > 8) take = 8;
  if (byte + take > nbytes) take = nbytes - byte;
  memcpy(&w, bits + byte, (size_t)take);  // little-endian hosts only (x86, ARM)
  w >>= shift;
  if (shift && len + shift > 64) w |= (uint64_t)bits[byte + 8] << (64 - shift);
  return len == 64 ? w : w & ((UINT64_C(1) << len) - 1);
}

// The ones of row r in [i0, i1), handed to emit (a statement using the column i).
#define FOR_ONES(bits, nbytes, r, cols, i0, i1, emit)                        \
  for (i64 i_ = (i0); i_ < (i1); i_ += 64) {                                 \
    i64 len_ = (i1) - i_ < 64 ? (i1) - i_ : 64;                              \
    uint64_t w_ = bits_at(bits, nbytes, (r) * (cols) + i_, len_);            \
    while (w_) {                                                             \
      i64 i = i_ + __builtin_ctzll(w_);                                      \
      w_ &= w_ - 1;                                                          \
      emit;                                                                  \
    }                                                                        \
  }

// Row lists: counts[c * rows + r] = ones of row r in column chunk c (first pass), then
// idx filled at ptr (second pass; ptr = exclusive prefix sums of counts, rows*chunks + 1).
void bm_rows_count(const uint8_t* bits, i64 nbytes, i64 rows, i64 cols, i64* counts, int nt) {
  i64 chunks = (cols + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (i64 r = 0; r < rows; ++r)
    for (i64 c = 0; c < chunks; ++c) {
      i64 i0 = c * CHUNK, i1 = i0 + CHUNK < cols ? i0 + CHUNK : cols, n = 0;
      for (i64 i = i0; i < i1; i += 64) {
        i64 len = i1 - i < 64 ? i1 - i : 64;
        n += __builtin_popcountll(bits_at(bits, nbytes, r * cols + i, len));
      }
      counts[c * rows + r] = n;
    }
}

void bm_rows_fill(const uint8_t* bits, i64 nbytes, i64 rows, i64 cols, const i64* ptr,
                  i32* idx, int nt) {
  i64 chunks = (cols + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (i64 r = 0; r < rows; ++r)
    for (i64 c = 0; c < chunks; ++c) {
      i64 i0 = c * CHUNK, i1 = i0 + CHUNK < cols ? i0 + CHUNK : cols;
      i32* out = idx + ptr[c * rows + r];
      FOR_ONES(bits, nbytes, r, cols, i0, i1, *out++ = (i32)i);
    }
}

// Column lists: counts[q * cols + i] = ones of column i in row chunk q, then the fill.
void bm_cols_count(const uint8_t* bits, i64 nbytes, i64 rows, i64 cols, i64* counts, int nt) {
  i64 chunks = (rows + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (i64 q = 0; q < chunks; ++q) {
    i64* n = counts + q * cols;
    memset(n, 0, (size_t)cols * sizeof(i64));
    i64 r1 = (q + 1) * CHUNK < rows ? (q + 1) * CHUNK : rows;
    for (i64 r = q * CHUNK; r < r1; ++r) FOR_ONES(bits, nbytes, r, cols, 0, cols, ++n[i]);
  }
}

// at: a writable copy of ptr's first chunks * cols entries, advanced as the fill goes.
void bm_cols_fill(const uint8_t* bits, i64 nbytes, i64 rows, i64 cols, i64* at, i32* idx,
                  int nt) {
  i64 chunks = (rows + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (i64 q = 0; q < chunks; ++q) {
    i64* next = at + q * cols;
    i64 r1 = (q + 1) * CHUNK < rows ? (q + 1) * CHUNK : rows;
    for (i64 r = q * CHUNK; r < r1; ++r) FOR_ONES(bits, nbytes, r, cols, 0, cols, idx[next[i]++] = (i32)r);
  }
}

// One tile of out[a0:a1, :] from chunk-major lists over tile-major m (module comment).
static void gather_tile(const i64* ptr, const i32* idx, i64 n_a, i64 chunks, const float* m,
                        i64 tile_stride, i64 ld, i64 width, i64 t, const float* init,
                        float* out, i64 a0, i64 a1) {
  i64 o0 = t * TILE, w = width - o0 < TILE ? width - o0 : TILE;
  float first[TILE] __attribute__((aligned(64))) = {0};
  if (init) memcpy(first, init + o0, (size_t)w * sizeof(float));
  const float* slab = m + t * tile_stride;
  for (i64 c = 0; c < chunks; ++c)
    for (i64 a = a0; a < a1; ++a) {
      float acc[TILE] __attribute__((aligned(64)));
      float* dst = out + a * width + o0;
      if (c == 0) memcpy(acc, first, sizeof acc);
      else memcpy(acc, dst, (size_t)w * sizeof(float));
      v16 s0 = ((v16*)acc)[0], s1 = ((v16*)acc)[1], s2 = ((v16*)acc)[2], s3 = ((v16*)acc)[3];
      const i64 e0 = ptr[c * n_a + a], e1 = ptr[c * n_a + a + 1];
      v16 u0 = {0}, u1 = {0}, u2 = {0}, u3 = {0};
      i64 e = e0;
      for (; e + 1 < e1; e += 2) {
        const v16* row = (const v16*)(slab + (i64)idx[e] * ld);
        const v16* ro2 = (const v16*)(slab + (i64)idx[e + 1] * ld);
        s0 += row[0], s1 += row[1], s2 += row[2], s3 += row[3];
        u0 += ro2[0], u1 += ro2[1], u2 += ro2[2], u3 += ro2[3];
      }
      if (e < e1) {
        const v16* row = (const v16*)(slab + (i64)idx[e] * ld);
        s0 += row[0], s1 += row[1], s2 += row[2], s3 += row[3];
      }
      s0 += u0, s1 += u1, s2 += u2, s3 += u3;
      ((v16*)acc)[0] = s0, ((v16*)acc)[1] = s1, ((v16*)acc)[2] = s2, ((v16*)acc)[3] = s3;
      memcpy(dst, acc, (size_t)w * sizeof(float));
    }
}

// out (n_a x width, row-major) = init (width, or NULL for 0) + the gathered rows of m.
void bm_gather(const i64* ptr, const i32* idx, i64 n_a, i64 chunks, const float* m,
               i64 tile_stride, i64 ld, i64 width, const float* init, float* out, int nt) {
  i64 tiles = (width + TILE - 1) / TILE, blocks = (n_a + A_BLOCK - 1) / A_BLOCK;
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static)
  for (i64 t = 0; t < tiles; ++t)
    for (i64 k = 0; k < blocks; ++k) {
      i64 a1 = (k + 1) * A_BLOCK < n_a ? (k + 1) * A_BLOCK : n_a;
      gather_tile(ptr, idx, n_a, chunks, m, tile_stride, ld, width, t, init, out, k * A_BLOCK,
                  a1);
    }
}

#if defined(__AVX__)
// d[j * ld + i] = s[i * ls + j] for an 8 x 8 block.
static inline void transpose8(const float* s, i64 ls, float* d, i64 ld) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * ls);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // rows i, i+1: columns 0 1 | 4 5
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // columns 2 3 | 6 7
  }
  for (int i = 0; i < 8; i += 4) {  // rows i..i+3 of columns k and k+4
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_ps(d + k * ld, _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
    _mm256_storeu_ps(d + (k + 4) * ld, _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
  }
}
#endif

// The h x w block at s (row stride ls) into d as w x h (row stride ld).
static void transpose_block(const float* s, i64 ls, float* d, i64 ld, i64 h, i64 w) {
  i64 i = 0;
#if defined(__AVX__)
  for (; i + 8 <= h; i += 8) {
    i64 j = 0;
    for (; j + 8 <= w; j += 8) transpose8(s + i * ls + j, ls, d + j * ld + i, ld);
    for (; j < w; ++j)
      for (i64 k = i; k < i + 8; ++k) d[j * ld + k] = s[k * ls + j];
  }
#endif
  for (; i < h; ++i)
    for (i64 j = 0; j < w; ++j) d[j * ld + i] = s[i * ls + j];
}

#define T_BLOCK 32

// src is rows x cols (row stride ld), its rows in groups of `group`: group g lands transposed
// at dst + g * cols * ldd, dst[j * ldd + i] = src[(g * group + i) * ld + j]. One group of all
// the rows (ldd = rows) is the plain transpose; groups of TILE rows (ldd = TILE) the tile-major
// layout of src^T.
void bm_transpose(const float* src, i64 rows, i64 cols, i64 ld, i64 group, float* dst, i64 ldd,
                  int nt) {
  i64 groups = (rows + group - 1) / group, ib = (group + T_BLOCK - 1) / T_BLOCK;
  i64 jb = (cols + T_BLOCK - 1) / T_BLOCK;
#pragma omp parallel for collapse(3) num_threads(nt) schedule(static)
  for (i64 g = 0; g < groups; ++g)
    for (i64 bi = 0; bi < ib; ++bi)
      for (i64 bj = 0; bj < jb; ++bj) {
        i64 i0 = bi * T_BLOCK, j0 = bj * T_BLOCK, end = rows - g * group;
        i64 h = (end < group ? end : group) - i0, w = cols - j0 < T_BLOCK ? cols - j0 : T_BLOCK;
        if (h <= 0) continue;
        h = h < T_BLOCK ? h : T_BLOCK;
        transpose_block(src + (g * group + i0) * ld + j0, ld, dst + g * cols * ldd + j0 * ldd + i0,
                        ldd, h, w);
      }
}

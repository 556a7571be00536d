// Fused multi-step LIF/IF kernels for htaf.families.snn.fused (CPU; loaded with ctypes).
//
// Layout: every sequence is (steps, M) contiguous, M = batch x neurons. Elements are independent,
// so each OpenMP thread takes blocks of BLOCK neurons and runs the whole time loop over them with
// the state in small local arrays; every inner loop is contiguous and branch-free per kind, so it
// vectorises. HTAF itself comes from htaf._kernels' vectorised functions, whose addresses the
// caller hands in.
//
// Neuron (see functional.py):  h = beta v + x;  s = f(h - theta);
//   soft reset: v = h - theta s;   hard reset: v = (1 - s) h + s v_reset.
// Backward (BPTT), with g = f'(h - theta) the estimator's rule and dv the gradient of v_t:
//   dh_t = gs_t g_t + gh_t + dv_t a_t,   dx_t = dh_t,   dv_{t-1} = beta dh_t,
//   a_t = dv_t/dh_t: soft 1 - theta g (detached: 1); hard (1 - s) + (v_reset - h) g (detached:
//   1 - s);  dbeta = sum_t dh_t v_{t-1}.
// Only h is read back: spikes and the rule are recomputed from it.
// Built without -ffast-math: NaN in gives NaN out.

#include <cmath>
#include <cstdint>
#include <cstring>

#include "htaf_exp.h"

namespace {

typedef int64_t i64;
const i64 BLOCK = 256;

enum Fire { FIRE_STEP = 0, FIRE_HTAF = 1, FIRE_SIGMOID = 2 };
// RULE_TABLE: the caller evaluated the rule (vectorised in PyTorch: sigmoids, any estimator).
enum Rule { RULE_TABLE = 0, RULE_HTAF = 1, RULE_SIGMOID = 2, RULE_ATAN = 3, RULE_FAST_SIGMOID = 4,
            RULE_TRIANGLE = 5 };

template <typename T> inline T absv(T x) { return x < 0 ? -x : x; }

// e^x for x <= 0 with htaf_exp.h's polynomial. Below x = -87 it returns e^-87 (1.6e-38)
// instead of underflowing (2^n then stays a normal number); NaN stays NaN.
inline float exp_nonpos(float x) {
  x = x > -87.0f ? x : (x != x ? x : -87.0f);
  float n, q = exp_poly_f32(x, &n);
  return (q + 1.0f) * f32_pow2(n);
}
inline double exp_nonpos(double x) { return std::exp(x); }  // float64: exact, for references

// htaf._kernels: forward y = HTAF(x); backward out = g HTAF'(x), g == NULL meaning the scalar gs.
template <typename T> using HtafFwd = void (*)(const T*, T*, i64, T, T, int);
template <typename T> using HtafBwd = void (*)(const T*, const T*, T, T*, i64, T, T, T, int);

template <typename T> struct Neuron {
  T beta, theta, v_reset;
  int hard, detach, fire_kind, rule_kind;
  T f0, f1, r0, r1;  // fire and rule parameters
  HtafFwd<T> htaf_fwd;
  HtafBwd<T> htaf_bwd;

  inline T reset(T h, T s) const { return hard ? h * (T(1) - s) + v_reset * s : h - theta * s; }

  // out = f(u) over a block: the exact step (1 at u >= 0, NaN kept), HTAF, or sigmoid(f0 u).
  void fire_block(const T* u, T* out, i64 len) const {
    if (fire_kind == FIRE_HTAF) {
      htaf_fwd(u, out, len, f0, f1, 1);
    } else if (fire_kind == FIRE_SIGMOID) {
#pragma omp simd
      for (i64 i = 0; i < len; ++i) {  // e = e^(-|z|) <= 1: no overflow
        T z = f0 * u[i], e = exp_nonpos(-absv(z));
        out[i] = z >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);  // NaN: e is NaN
      }
    } else {
#pragma omp simd
      for (i64 i = 0; i < len; ++i) out[i] = u[i] >= 0 ? T(1) : (u[i] != u[i] ? u[i] : T(0));
    }
  }

  // out = g(u) over a block: the rules of the estimators named in fused.py, by formula.
  void rule_block(const T* u, T* out, i64 len) const {
    switch (rule_kind) {
      case RULE_HTAF:
        htaf_bwd(u, nullptr, T(1), out, len, T(-2) * r0, -r1, T(4) * r0 * r1, 1);
        break;
      case RULE_SIGMOID:  // alpha sigma(alpha u) sigma(-alpha u) = alpha f / (1 + f)^2
#pragma omp simd
        for (i64 i = 0; i < len; ++i) {
          T f = exp_nonpos(-r0 * absv(u[i]));
          out[i] = r0 * f / ((T(1) + f) * (T(1) + f));
        }
        break;
      case RULE_ATAN:  // alpha / (2 (1 + (pi alpha u / 2)^2)), |u| clamped as the estimator does
#pragma omp simd
        for (i64 i = 0; i < len; ++i) {
          T a = absv(u[i]);
          T z = T(1.5707963267948966) * r0 * (a < T(1e15) ? a : T(1e15));
          out[i] = r0 / (T(2) * (T(1) + z * z));
        }
        break;
      case RULE_FAST_SIGMOID:  // 1 / (1 + k|u|)^2
#pragma omp simd
        for (i64 i = 0; i < len; ++i) {
          T a = absv(u[i]);
          T d = T(1) + r0 * (a < T(1e15) ? a : T(1e15));
          out[i] = T(1) / (d * d);
        }
        break;
      default:  // RULE_TRIANGLE: alpha relu(1 - |u|); a select, not a branch (NaN kept)
#pragma omp simd
        for (i64 i = 0; i < len; ++i) {
          T r = T(1) - absv(u[i]);
          out[i] = r0 * (r < 0 ? T(0) : r);
        }
    }
  }
};

template <typename T>
void forward(const T* x, i64 x_stride, const T* v0, T* s, T* h, T* v_last, i64 steps, i64 m,
             const Neuron<T>& n, int nt) {
  i64 blocks = (m + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (i64 b = 0; b < blocks; ++b) {
    i64 i0 = b * BLOCK, len = (m - i0 < BLOCK) ? m - i0 : BLOCK;
    T v[BLOCK], u[BLOCK];
    for (i64 i = 0; i < len; ++i) v[i] = v0 ? v0[i0 + i] : T(0);
    for (i64 t = 0; t < steps; ++t) {
      const T* xt = x + t * x_stride + i0;
      T* st = s + t * m + i0;
      T* ht = h + t * m + i0;
#pragma omp simd
      for (i64 i = 0; i < len; ++i) {
        ht[i] = n.beta * v[i] + xt[i];
        u[i] = ht[i] - n.theta;
      }
      n.fire_block(u, st, len);
      if (n.hard) {
#pragma omp simd
        for (i64 i = 0; i < len; ++i) v[i] = ht[i] * (T(1) - st[i]) + n.v_reset * st[i];
      } else {
#pragma omp simd
        for (i64 i = 0; i < len; ++i) v[i] = ht[i] - n.theta * st[i];
      }
    }
    if (v_last)
      for (i64 i = 0; i < len; ++i) v_last[i0 + i] = v[i];
  }
}

// gs, gh, gv_last, table, v0 may be null (zero gradient / rule by formula / resting start).
// gx_stride == 0: the input was constant over time, gx receives the sum over t.
// dbeta (one double per block) may be null.
template <typename T>
void backward(const T* h, const T* gs, const T* gh, const T* gv_last, const T* table,
              const T* v0, T* gx, i64 gx_stride, T* gv0, double* dbeta, i64 steps, i64 m,
              const Neuron<T>& n, int nt) {
  i64 blocks = (m + BLOCK - 1) / BLOCK;
  bool need_s = n.hard || dbeta;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (i64 b = 0; b < blocks; ++b) {
    i64 i0 = b * BLOCK, len = (m - i0 < BLOCK) ? m - i0 : BLOCK;
    T dv[BLOCK], u[BLOCK], g[BLOCK], sp[BLOCK], a[BLOCK], dh[BLOCK];
    double db = 0.0;
    for (i64 i = 0; i < len; ++i) dv[i] = gv_last ? gv_last[i0 + i] : T(0);
    if (gx_stride == 0)
      for (i64 i = 0; i < len; ++i) gx[i0 + i] = T(0);
    for (i64 t = steps - 1; t >= 0; --t) {
      i64 off = t * m + i0;
      const T* ht = h + off;
#pragma omp simd
      for (i64 i = 0; i < len; ++i) u[i] = ht[i] - n.theta;
      if (table) {
        for (i64 i = 0; i < len; ++i) g[i] = table[off + i];
      } else {
        n.rule_block(u, g, len);
      }
      if (need_s) n.fire_block(u, sp, len);
      if (n.hard && n.detach) {
#pragma omp simd
        for (i64 i = 0; i < len; ++i) a[i] = T(1) - sp[i];
      } else if (n.hard) {
#pragma omp simd
        for (i64 i = 0; i < len; ++i) a[i] = (T(1) - sp[i]) + (n.v_reset - ht[i]) * g[i];
      } else if (n.detach) {
        for (i64 i = 0; i < len; ++i) a[i] = T(1);
      } else {
#pragma omp simd
        for (i64 i = 0; i < len; ++i) a[i] = T(1) - n.theta * g[i];
      }
#pragma omp simd
      for (i64 i = 0; i < len; ++i) dh[i] = dv[i] * a[i];
      if (gs) {
        const T* gst = gs + off;
#pragma omp simd
        for (i64 i = 0; i < len; ++i) dh[i] += gst[i] * g[i];
      }
      if (gh) {
        const T* ght = gh + off;
#pragma omp simd
        for (i64 i = 0; i < len; ++i) dh[i] += ght[i];
      }
      if (gx_stride == 0) {
        for (i64 i = 0; i < len; ++i) gx[i0 + i] += dh[i];
      } else {
        T* gxt = gx + off;
        for (i64 i = 0; i < len; ++i) gxt[i] = dh[i];
      }
      if (dbeta) {  // v_{t-1}, the previous state, recomputed from h_{t-1}
        if (t > 0) {
          const T* hp = h + off - m;
          for (i64 i = 0; i < len; ++i) u[i] = hp[i] - n.theta;
          n.fire_block(u, sp, len);
          for (i64 i = 0; i < len; ++i) db += double(dh[i]) * double(n.reset(hp[i], sp[i]));
        } else if (v0) {
          for (i64 i = 0; i < len; ++i) db += double(dh[i]) * double(v0[i0 + i]);
        }
      }
#pragma omp simd
      for (i64 i = 0; i < len; ++i) dv[i] = n.beta * dh[i];
    }
    if (gv0)
      for (i64 i = 0; i < len; ++i) gv0[i0 + i] = dv[i];
    if (dbeta) dbeta[b] = db;
  }
}

template <typename T>
void fire_values(const T* h, T* out, i64 count, const Neuron<T>& n, int nt) {
  i64 blocks = (count + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (i64 b = 0; b < blocks; ++b) {
    i64 i0 = b * BLOCK, len = (count - i0 < BLOCK) ? count - i0 : BLOCK;
    T u[BLOCK];
    for (i64 i = 0; i < len; ++i) u[i] = h[i0 + i] - n.theta;
    n.fire_block(u, out + i0, len);
  }
}

// Binary values as bits, 8 per byte, least significant first; nonzero counts as 1.
template <typename T> void pack_bits(const T* x, uint8_t* out, i64 count, int nt) {
  i64 bytes = (count + 7) / 8;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (i64 j = 0; j < bytes; ++j) {
    uint8_t b = 0;
    i64 i0 = 8 * j, len = count - i0 < 8 ? count - i0 : 8;
    for (i64 k = 0; k < len; ++k) b |= (uint8_t)(x[i0 + k] != 0) << k;
    out[j] = b;
  }
}

template <typename T> void unpack_bits(const uint8_t* in, T* out, i64 count, int nt) {
  i64 bytes = (count + 7) / 8;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (i64 j = 0; j < bytes; ++j) {
    uint8_t b = in[j];
    i64 i0 = 8 * j, len = count - i0 < 8 ? count - i0 : 8;
    for (i64 k = 0; k < len; ++k) out[i0 + k] = (T)((b >> k) & 1);
  }
}

template <typename T>
Neuron<T> neuron(T beta, T theta, T v_reset, int hard, int detach, int fire_kind, T f0, T f1,
                 int rule_kind, T r0, T r1, void* htaf_fwd, void* htaf_bwd) {
  return Neuron<T>{beta, theta, v_reset, hard, detach, fire_kind, rule_kind, f0, f1, r0, r1,
                   reinterpret_cast<HtafFwd<T>>(htaf_fwd), reinterpret_cast<HtafBwd<T>>(htaf_bwd)};
}

}  // namespace

#define HTAF_SNN_EXPORT(T, SUF)                                                                 \
  extern "C" void snn_forward_##SUF(const T* x, i64 x_stride, const T* v0, T* s, T* h,         \
                                    T* v_last, i64 steps, i64 m, T beta, T theta, T v_reset,   \
                                    int hard, int fire_kind, T f0, T f1, void* hf, int nt) {   \
    forward<T>(x, x_stride, v0, s, h, v_last, steps, m,                                        \
               neuron<T>(beta, theta, v_reset, hard, 0, fire_kind, f0, f1, 0, 0, 0, hf,        \
                         nullptr),                                                              \
               nt);                                                                             \
  }                                                                                             \
  extern "C" void snn_backward_##SUF(const T* h, const T* gs, const T* gh, const T* gv_last,   \
                                     const T* table, const T* v0, T* gx, i64 gx_stride,        \
                                     T* gv0, double* dbeta, i64 steps, i64 m, T beta, T theta, \
                                     T v_reset, int hard, int detach, int fire_kind, T f0,     \
                                     T f1, int rule_kind, T r0, T r1, void* hf, void* hb,      \
                                     int nt) {                                                  \
    backward<T>(h, gs, gh, gv_last, table, v0, gx, gx_stride, gv0, dbeta, steps, m,            \
                neuron<T>(beta, theta, v_reset, hard, detach, fire_kind, f0, f1, rule_kind,    \
                          r0, r1, hf, hb),                                                      \
                nt);                                                                            \
  }                                                                                             \
  extern "C" void snn_fire_##SUF(const T* h, T* out, i64 count, T theta, int kind, T p0, T p1, \
                                 void* hf, int nt) {                                            \
    fire_values<T>(h, out, count,                                                              \
                   neuron<T>(0, theta, 0, 0, 0, kind, p0, p1, 0, 0, 0, hf, nullptr), nt);      \
  }                                                                                             \
  extern "C" void snn_pack_##SUF(const T* x, uint8_t* out, i64 count, int nt) {                 \
    pack_bits<T>(x, out, count, nt);                                                            \
  }                                                                                             \
  extern "C" void snn_unpack_##SUF(const uint8_t* in, T* out, i64 count, int nt) {              \
    unpack_bits<T>(in, out, count, nt);                                                         \
  }

HTAF_SNN_EXPORT(float, f32)
HTAF_SNN_EXPORT(double, f64)

extern "C" int snn_kernels_abi(void) { return 2; }
extern "C" long long snn_block(void) { return BLOCK; }

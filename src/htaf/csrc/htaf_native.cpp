// htaf's native operators (loaded by htaf._native): autograd and dispatch only, no math.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cstring>
#include <vector>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename T> using Fwd = void (*)(const T*, T*, int64_t, T, T, int);
template <typename T> using Bwd = void (*)(const T*, const T*, T, T*, int64_t, T, T, T, int);
template <typename T> using Step = void (*)(const T*, T*, int64_t, T, int);

struct Kernels {
  Fwd<float> fwd32 = nullptr;
  Bwd<float> bwd32 = nullptr;
  Fwd<double> fwd64 = nullptr;
  Bwd<double> bwd64 = nullptr;
  Step<float> step32 = nullptr;
  Step<double> step64 = nullptr;
  int64_t parallel_numel = INT64_MAX;
};
Kernels kernels;

int threads(int64_t n) { return n >= kernels.parallel_numel ? at::get_num_threads() : 1; }

void check_input(const at::Tensor& x) {
  TORCH_CHECK(kernels.fwd32 != nullptr, "htaf_native: kernels not set");
  TORCH_CHECK(x.device().is_cpu() && x.layout() == at::kStrided && x.is_contiguous(),
              "htaf_native: x must be a contiguous CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "htaf_native: x must be float32 or float64, got ", x.scalar_type());
}

template <typename T>
void run_forward(const at::Tensor& x, at::Tensor& y, double a0, double a1) {
  Fwd<T> fn = sizeof(T) == 4 ? (Fwd<T>)kernels.fwd32 : (Fwd<T>)kernels.fwd64;
  fn(x.data_ptr<T>(), y.data_ptr<T>(), x.numel(), (T)a0, (T)a1, threads(x.numel()));
}

at::Tensor forward_values(const at::Tensor& x, double a0, double a1) {
  at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
  if (x.scalar_type() == at::kFloat) run_forward<float>(x, y, a0, a1);
  else run_forward<double>(x, y, a0, a1);
  return y;
}

bool is_broadcast_scalar(const at::Tensor& g) {
  for (int64_t s : g.strides()) if (s != 0) return false;
  return true;
}

template <typename T>
void run_backward(const at::Tensor& x, const at::Tensor& g, at::Tensor& out, double a0,
                  double a1) {
  Bwd<T> fn = sizeof(T) == 4 ? (Bwd<T>)kernels.bwd32 : (Bwd<T>)kernels.bwd64;
  // The gradient of .sum() arrives as one value expanded to x's shape: read it, don't copy it.
  bool scalar = g.numel() > 0 && is_broadcast_scalar(g);
  const T* gp = scalar ? nullptr : g.data_ptr<T>();
  T gs = scalar ? *g.data_ptr<T>() : T(0);
  int64_t n = x.numel();
  fn(x.data_ptr<T>(), gp, gs, out.data_ptr<T>(), n, (T)(-2 * a0), (T)(-a1), (T)(4 * a0 * a1),
     threads(n));
}

// g's layout as rows x cols with element strides (sr, sc), after dropping size-1 dimensions
// and merging those that walk memory evenly; false if that leaves more than two dimensions.
bool strides_2d(const at::Tensor& g, int64_t sizes[2], int64_t strides[2]) {
  int dims = 0;
  sizes[0] = sizes[1] = 1;
  strides[0] = strides[1] = 0;
  for (int64_t d = g.dim() - 1; d >= 0; --d) {
    int64_t size = g.size(d), stride = g.stride(d);
    if (size == 1) continue;
    if (dims > 0 && stride == strides[2 - dims] * sizes[2 - dims]) {
      sizes[2 - dims] *= size;  // continues the dimension inside it
    } else if (dims == 2) {
      return false;
    } else {
      ++dims;
      sizes[2 - dims] = size;
      strides[2 - dims] = stride;
    }
  }
  return true;
}

// buf[i w + j] = src[i sr + j sc] for i < h, j < w: rows copied or filled where the columns
// are contiguous or expanded, element by element otherwise.
template <typename T>
void gather(const T* src, int64_t sr, int64_t sc, int64_t h, int64_t w, T* buf) {
  for (int64_t i = 0; i < h; ++i) {
    const T* row = src + i * sr;
    T* dst = buf + i * w;
    if (sc == 1) std::memcpy(dst, row, w * sizeof(T));
    else if (sc == 0) std::fill(dst, dst + w, row[0]);
    else for (int64_t j = 0; j < w; ++j) dst[j] = row[j * sc];
  }
}

// The backward for a gradient g of x's shape that is not contiguous (expanded, sliced), with
// the layout (sizes, strides) of strides_2d, its rows no closer than its columns. x is cut
// into pieces of about 32K elements that are contiguous in x (whole rows, or a segment of one
// long row), spread over threads; each piece of g is gathered into a buffer that stays in
// cache and handed to the kernel with its piece of x, so nothing the size of g is written.
template <typename T>
void run_backward_strided(const at::Tensor& x, const at::Tensor& g, at::Tensor& out, double a0,
                          double a1, const int64_t sizes[2], const int64_t strides[2]) {
  Bwd<T> fn = sizeof(T) == 4 ? (Bwd<T>)kernels.bwd32 : (Bwd<T>)kernels.bwd64;
  const int64_t rows = sizes[0], cols = sizes[1], sr = strides[0], sc = strides[1];
  const int64_t target = 1 << 15, band = std::max<int64_t>(1, target / cols);
  const int64_t seg = std::min(cols, target), col_pieces = (cols + seg - 1) / seg;
  const int64_t pieces = (rows + band - 1) / band * col_pieces;
  const T* xp = x.data_ptr<T>();
  const T* gp = g.data_ptr<T>();
  T* op = out.data_ptr<T>();
  int64_t grain = threads(x.numel()) > 1 ? 1 : pieces;
  at::parallel_for(0, pieces, grain, [&](int64_t p0, int64_t p1) {
    std::vector<T> buf(band * seg);
    for (int64_t p = p0; p < p1; ++p) {
      int64_t i0 = p / col_pieces * band, j0 = p % col_pieces * seg;
      int64_t h = std::min(rows - i0, band), w = std::min(cols - j0, seg);
      gather(gp + i0 * sr + j0 * sc, sr, sc, h, w, buf.data());
      int64_t at = i0 * cols + j0;  // h == 1 when w < cols: the piece is contiguous in x
      fn(xp + at, buf.data(), T(0), op + at, h * w, (T)(-2 * a0), (T)(-a1), (T)(4 * a0 * a1), 1);
    }
  });
}

at::Tensor backward_values(const at::Tensor& x, at::Tensor g, double a0, double a1) {
  if (g.scalar_type() != x.scalar_type()) g = g.to(x.scalar_type());
  if (g.sizes() != x.sizes()) g = g.expand_as(x);
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  bool is_float = x.scalar_type() == at::kFloat;
  int64_t sizes[2], strides[2];
  if (g.numel() > 0 && !is_broadcast_scalar(g) && !g.is_contiguous()) {
    // A transposed g (rows closer than columns) is copied whole by ATen, whose blocked
    // transpose beat reading it down its columns piece by piece (gradient_layouts.py).
    if (strides_2d(g, sizes, strides) && (strides[1] <= 1 || strides[0] >= strides[1])) {
      if (is_float) run_backward_strided<float>(x, g, out, a0, a1, sizes, strides);
      else run_backward_strided<double>(x, g, out, a0, a1, sizes, strides);
      return out;
    }
    g = g.contiguous();
  }
  if (is_float) run_backward<float>(x, g, out, a0, a1);
  else run_backward<double>(x, g, out, a0, a1);
  return out;
}

// HTAF'(x) from differentiable ATen ops, for double backward; same formula as the kernels.
at::Tensor derivative(const at::Tensor& x, double a0, double a1) {
  at::Tensor e = at::exp(x.abs() * (-2 * a0));
  at::Tensor one_e = e + 1;
  at::Tensor f = at::exp((1 - e) / one_e * (-a1));
  at::Tensor one_f = f + 1;
  return (e / (one_e * one_e)) * (f / (one_f * one_f)) * (4 * a0 * a1);
}

struct HtafFunction : public torch::autograd::Function<HtafFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double a0, double a1) {
    check_input(x);
    ctx->save_for_backward({x});
    ctx->saved_data["a0"] = a0;
    ctx->saved_data["a1"] = a1;
    return forward_values(x, a0, a1);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor x = ctx->get_saved_variables()[0];
    double a0 = ctx->saved_data["a0"].toDouble();
    double a1 = ctx->saved_data["a1"].toDouble();
    at::Tensor g = grads[0];
    at::Tensor gx;
    if (g.defined())
      gx = at::GradMode::is_enabled() ? g * derivative(x, a0, a1) : backward_values(x, g, a0, a1);
    return {gx, at::Tensor(), at::Tensor()};
  }
};

at::Tensor htaf(const at::Tensor& x, double a0, double a1) {
  return HtafFunction::apply(x, a0, a1);
}

// The exact step (1 for x >= 0, lo below, NaN kept); no gradient of its own.
at::Tensor step(const at::Tensor& x, double lo) {
  check_input(x);
  at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
  int64_t n = x.numel();
  if (x.scalar_type() == at::kFloat)
    kernels.step32(x.data_ptr<float>(), y.data_ptr<float>(), n, (float)lo, threads(n));
  else
    kernels.step64(x.data_ptr<double>(), y.data_ptr<double>(), n, lo, threads(n));
  return y;
}

// A hard estimator: the step forward, grad * rule backward (rule = the estimator's g'(x),
// computed by the caller without a graph, as a straight-through estimator detaches it).
struct StepRuleFunction : public torch::autograd::Function<StepRuleFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& rule,
                            double lo) {
    TORCH_CHECK(rule.sizes() == x.sizes(), "htaf_native: rule must have the shape of x");
    ctx->save_for_backward({rule});
    return step(x, lo);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor rule = ctx->get_saved_variables()[0];
    at::Tensor gx = grads[0].defined() ? grads[0] * rule : at::Tensor();
    return {gx, at::Tensor(), at::Tensor()};
  }
};

at::Tensor step_with_rule(const at::Tensor& x, const at::Tensor& rule, double lo) {
  return StepRuleFunction::apply(x, rule, lo);
}

void set_kernels(int64_t fwd32, int64_t bwd32, int64_t fwd64, int64_t bwd64, int64_t step32,
                 int64_t step64, int64_t parallel_numel) {
  TORCH_CHECK(fwd32 && bwd32 && fwd64 && bwd64 && step32 && step64,
              "htaf_native: null kernel address");
  kernels.fwd32 = reinterpret_cast<Fwd<float>>(fwd32);
  kernels.bwd32 = reinterpret_cast<Bwd<float>>(bwd32);
  kernels.fwd64 = reinterpret_cast<Fwd<double>>(fwd64);
  kernels.bwd64 = reinterpret_cast<Bwd<double>>(bwd64);
  kernels.step32 = reinterpret_cast<Step<float>>(step32);
  kernels.step64 = reinterpret_cast<Step<double>>(step64);
  kernels.parallel_numel = parallel_numel;
}

int64_t abi() { return 2; }

}  // namespace

TORCH_LIBRARY(htaf_native, m) {
  m.def("htaf(Tensor x, float alpha0, float alpha1) -> Tensor", &htaf);
  m.def("step(Tensor x, float lo) -> Tensor", &step);
  m.def("step_with_rule(Tensor x, Tensor rule, float lo) -> Tensor", &step_with_rule);
  m.def("set_kernels(int fwd32, int bwd32, int fwd64, int bwd64, int step32, int step64, "
        "int parallel_numel) -> ()", &set_kernels);
  m.def("abi() -> int", &abi);
}

// Selective scan (Mamba S6) forward and backward on CPU, for training Orochi's Mamba.
//
// Layout (all contiguous): u, delta: (batch, L, D); A: (D, N); B, C: (batch, L, N).
//   h_t[d, n] = exp(delta_t[d] * A[d, n]) * h_{t-1}[d, n] + delta_t[d] * B_t[n] * u_t[d]
//   y_t[d]    = sum_n h_t[d, n] * C_t[n]                    (h_{-1} = 0)
// D skip, gate and softplus are done by the caller in PyTorch.
// Loops over time, vectorised over (D, N), parallel over the batch.
// The backward recomputes the states of one sequence (L * D * N values) and runs the
// reverse scan; only decays exp(delta * A) <= 1 are ever multiplied.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

template <typename T>
static void scan_fwd_one(const T* u, const T* dl, const T* A, const T* B, const T* C,
                         T* y, T* h, T* hs, int64_t L, int64_t D, int64_t N) {
  std::fill(h, h + D * N, T(0));
  for (int64_t t = 0; t < L; ++t) {
    const T* Bt = B + t * N;
    const T* Ct = C + t * N;
    for (int64_t d = 0; d < D; ++d) {
      const T dt = dl[t * D + d];
      const T du = dt * u[t * D + d];
      const T* Ad = A + d * N;
      T* hd = h + d * N;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        const T a = std::exp(dt * Ad[n]);
        const T v = a * hd[n] + du * Bt[n];
        hd[n] = v;
        acc += v * Ct[n];
      }
      y[t * D + d] = acc;
    }
    if (hs) std::copy(h, h + D * N, hs + t * D * N);
  }
}

std::vector<torch::Tensor> scan_forward(torch::Tensor u, torch::Tensor delta, torch::Tensor A,
                                        torch::Tensor B, torch::Tensor C) {
  TORCH_CHECK(u.dim() == 3 && u.is_contiguous() && delta.is_contiguous() && A.is_contiguous() &&
              B.is_contiguous() && C.is_contiguous(), "scan_forward: contiguous (b, L, D) inputs");
  const int64_t bs = u.size(0), L = u.size(1), D = u.size(2), N = A.size(1);
  auto y = torch::empty_like(u);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_forward", [&] {
    const scalar_t* pu = u.data_ptr<scalar_t>();
    const scalar_t* pd = delta.data_ptr<scalar_t>();
    const scalar_t* pA = A.data_ptr<scalar_t>();
    const scalar_t* pB = B.data_ptr<scalar_t>();
    const scalar_t* pC = C.data_ptr<scalar_t>();
    scalar_t* py = y.data_ptr<scalar_t>();
    at::parallel_for(0, bs, 1, [&](int64_t b0, int64_t b1) {
      std::vector<scalar_t> h(D * N);
      for (int64_t b = b0; b < b1; ++b)
        scan_fwd_one(pu + b * L * D, pd + b * L * D, pA, pB + b * L * N, pC + b * L * N,
                     py + b * L * D, h.data(), (scalar_t*)nullptr, L, D, N);
    });
  });
  return {y};
}

template <typename T>
static void scan_bwd_one(const T* u_, const T* d_, const T* pA, const T* B_, const T* C_,
                         const T* dy_, T* du_, T* dd_, T* dA_, T* dB_, T* dC_, T* h, T* hs,
                         T* g, T* ytmp, int64_t L, int64_t D, int64_t N) {
  scan_fwd_one(u_, d_, pA, B_, C_, ytmp, h, hs, L, D, N);
  std::fill(g, g + D * N, T(0));  // g holds a_{t+1} * dL/dh_{t+1}
  for (int64_t t = L - 1; t >= 0; --t) {
    const T* Bt = B_ + t * N;
    const T* Ct = C_ + t * N;
    T* dBt = dB_ + t * N;
    T* dCt = dC_ + t * N;
    const T* ht = hs + t * D * N;
    const T* hp = t > 0 ? hs + (t - 1) * D * N : nullptr;
    for (int64_t d = 0; d < D; ++d) {
      const T dt = d_[t * D + d];
      const T ut = u_[t * D + d];
      const T dyt = dy_[t * D + d];
      const T dtu = dt * ut;
      const T* Ad = pA + d * N;
      const T* htd = ht + d * N;
      T* gd = g + d * N;
      T* dAd = dA_ + d * N;
      T s_ddt = 0, s_du = 0;
      if (hp) {
        const T* hpd = hp + d * N;
#pragma omp simd reduction(+ : s_ddt, s_du)
        for (int64_t n = 0; n < N; ++n) {
          const T a = std::exp(dt * Ad[n]);
          const T gt = gd[n] + dyt * Ct[n];
          dCt[n] += dyt * htd[n];
          const T daa = gt * hpd[n] * a;  // dL/da * a
          s_ddt += daa * Ad[n] + gt * Bt[n] * ut;
          dAd[n] += daa * dt;
          s_du += gt * Bt[n];
          dBt[n] += gt * dtu;
          gd[n] = a * gt;
        }
      } else {
#pragma omp simd reduction(+ : s_ddt, s_du)
        for (int64_t n = 0; n < N; ++n) {
          const T gt = gd[n] + dyt * Ct[n];
          dCt[n] += dyt * htd[n];
          s_ddt += gt * Bt[n] * ut;
          s_du += gt * Bt[n];
          dBt[n] += gt * dtu;
          gd[n] = 0;
        }
      }
      dd_[t * D + d] = s_ddt;
      du_[t * D + d] = s_du * dt;
    }
  }
}

// Returns du, ddelta, dA, dB, dC.
std::vector<torch::Tensor> scan_backward(torch::Tensor u, torch::Tensor delta, torch::Tensor A,
                                         torch::Tensor B, torch::Tensor C, torch::Tensor dy) {
  dy = dy.contiguous();
  const int64_t bs = u.size(0), L = u.size(1), D = u.size(2), N = A.size(1);
  auto du = torch::empty_like(u);
  auto ddelta = torch::empty_like(delta);
  auto dA_b = torch::zeros({bs, D, N}, A.options());
  auto dB = torch::zeros_like(B);
  auto dC = torch::zeros_like(C);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_backward", [&] {
    const scalar_t* pu = u.data_ptr<scalar_t>();
    const scalar_t* pd = delta.data_ptr<scalar_t>();
    const scalar_t* pA = A.data_ptr<scalar_t>();
    const scalar_t* pB = B.data_ptr<scalar_t>();
    const scalar_t* pC = C.data_ptr<scalar_t>();
    const scalar_t* pdy = dy.data_ptr<scalar_t>();
    scalar_t* pdu = du.data_ptr<scalar_t>();
    scalar_t* pdd = ddelta.data_ptr<scalar_t>();
    scalar_t* pdA = dA_b.data_ptr<scalar_t>();
    scalar_t* pdB = dB.data_ptr<scalar_t>();
    scalar_t* pdC = dC.data_ptr<scalar_t>();
    at::parallel_for(0, bs, 1, [&](int64_t b0, int64_t b1) {
      std::vector<scalar_t> h(D * N), hs(L * D * N), g(D * N), ytmp(L * D);
      for (int64_t b = b0; b < b1; ++b)
        scan_bwd_one(pu + b * L * D, pd + b * L * D, pA, pB + b * L * N, pC + b * L * N,
                     pdy + b * L * D, pdu + b * L * D, pdd + b * L * D, pdA + b * D * N,
                     pdB + b * L * N, pdC + b * L * N, h.data(), hs.data(), g.data(),
                     ytmp.data(), L, D, N);
    });
  });
  return {du, ddelta, dA_b.sum(0), dB, dC};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &scan_forward, "selective scan forward (CPU)");
  m.def("backward", &scan_backward, "selective scan backward (CPU)");
}

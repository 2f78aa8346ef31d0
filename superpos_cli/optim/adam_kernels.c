/* Superpositional Adam's fused step on CPU: one pass per tensor that reads theta, g, m, v once
 * and writes theta, m, v once, with f(theta) * g subtracted on each tensor's leading k
 * coordinates (functional.py's module docstring has the formula; the order of operations here
 * is _kernel_source's, which torch.compile traces for other devices).
 *
 * hp (double, 10): decay, l2, 1-b1, b2, 1-b2, 1/(1-b2^t), eps_in, eps_out, lr/(1-b1^t), c; in
 * the float build each is rounded to float first, as torch does with a Python scalar.
 *
 * f, by kind: F_SIN sin(pi theta), F_COS cos(pi theta), F_GIVEN values[i] read from a buffer of
 * k values per tensor (random or plugin f, drawn before the call), F_NONE no term.  The float
 * sine is perturbations._sin_kernel's: exact range reduction, then an odd polynomial; the
 * other cases are libm's (libmvec's vector variants) of pi * theta rounded to the precision.
 *
 * Work goes in blocks of BLOCK coordinates, tensors one after the other, split over threads
 * statically; every coordinate's arithmetic is independent, so any thread count gives the same
 * bits.  Compiled twice by native.py: -DSINGLE (float) and without (double). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "native_real.h"

enum { F_NONE = 0, F_SIN = 1, F_COS = 2, F_GIVEN = 3 };
#define BLOCK 8192
#define PARALLEL_FROM 65536 /* coordinates in a call below which one thread does it all */
/* Blocks dealt to the threads in turn, CHUNK at a time: a thread gets a share of every tensor,
 * so the f terms (on some tensors only) spread evenly. */
#define CHUNK 4

static const real PI = (real)3.14159265358979323846;

#ifdef SINGLE
/* perturbations._sin_kernel's polynomial after the same exact range reduction, n = rint(t),
 * r = t - n in [-1/2, 1/2], sin(pi t) = (-1)^n sin(pi r), with the sign taken from n's low bit
 * and the polynomial in fused multiply-adds (fewer operations in a loop that is otherwise
 * bound by memory; the values differ from _sin_kernel's by float rounding). */
static inline real sin_pi(real t) {
    real n = rintf(t);
    union { float f; uint32_t u; } r = {t - n};
    r.u ^= ((uint32_t)(int32_t)n) << 31; /* n even: +, odd: - */
    real z = r.f * r.f;
    real tail = __builtin_fmaf(__builtin_fmaf(__builtin_fmaf(0.07756049931049347f, z, -0.5982421636581421f), z,
                                              2.550069808959961f), z, -5.167709827423096f);
    return __builtin_fmaf(r.f * z, tail, r.f * 3.1415927410125732f);
}
#else
static inline real sin_pi(real t) { return SIN(t * PI); }
#endif

typedef struct {
    real decay, l2, omb1, b2, omb2, bc2, eps_in, eps_out, step, c;
} Hyper;

/* The Adam update of len coordinates; f's term on the first k of them (0 <= k <= len), f's
 * values (F_GIVEN) at fv[0..k). */
static void update(real *restrict p, const real *restrict g, real *restrict m, real *restrict v,
                   const real *restrict fv, int64_t len, int64_t k, int kind, const Hyper *h) {
    const real decay = h->decay, l2 = h->l2, omb1 = h->omb1, b2 = h->b2, omb2 = h->omb2, bc2 = h->bc2,
               eps_in = h->eps_in, eps_out = h->eps_out, step = h->step, c = h->c;
#define ADAM_BODY                                               \
    real theta = p[i], grad = g[i];                             \
    real gg = grad + l2 * theta;                                \
    real mm = m[i] + omb1 * (gg - m[i]);                        \
    real vv = v[i] * b2 + omb2 * gg * gg;                       \
    real den = SQRT(vv * bc2 + eps_in) + eps_out;               \
    real nw = theta * decay - step * mm / den;                  \
    m[i] = mm;                                                  \
    v[i] = vv;
    if (k > 0) {
        switch (kind) {
        case F_SIN:
#pragma omp simd
            for (int64_t i = 0; i < k; i++) { ADAM_BODY p[i] = nw - c * (sin_pi(theta) * grad); }
            break;
        case F_COS:
#pragma omp simd
            for (int64_t i = 0; i < k; i++) { ADAM_BODY p[i] = nw - c * (COS(theta * PI) * grad); }
            break;
        case F_GIVEN:
#pragma omp simd
            for (int64_t i = 0; i < k; i++) { ADAM_BODY p[i] = nw - c * (fv[i] * grad); }
            break;
        default:
            k = 0;
        }
    }
#pragma omp simd
    for (int64_t i = k; i < len; i++) { ADAM_BODY p[i] = nw; }
#undef ADAM_BODY
}

/* One step over n tensors of numel[t] coordinates each (contiguous), f on their first
 * perturbed[t]; f_values[t] (F_GIVEN only) holds perturbed[t] values.  Returns 0, or -1 when
 * the block table cannot be allocated. */
int adam_step(int n, real *const *params, real *const *grads, real *const *exp_avgs,
              real *const *exp_avg_sqs, real *const *f_values, const int64_t *numel,
              const int64_t *perturbed, int kind, const double *hp, int threads) {
    Hyper h = {(real)hp[0], (real)hp[1], (real)hp[2], (real)hp[3], (real)hp[4],
               (real)hp[5], (real)hp[6], (real)hp[7], (real)hp[8], (real)hp[9]};
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(n + 1)); /* first block of each tensor */
    if (!first) return -1;
    int64_t total = 0, coordinates = 0;
    for (int t = 0; t < n; t++) {
        first[t] = total;
        total += (numel[t] + BLOCK - 1) / BLOCK;
        coordinates += numel[t];
    }
    first[n] = total;
    if (coordinates < PARALLEL_FROM || threads < 1) threads = 1;
    if (threads > total) threads = total > 0 ? (int)total : 1;
#pragma omp parallel for num_threads(threads) schedule(static, CHUNK) if (threads > 1)
    for (int64_t b = 0; b < total; b++) {
        int lo = 0, hi = n - 1; /* the tensor holding block b: first[lo] <= b < first[lo + 1] */
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (first[mid] <= b) lo = mid; else hi = mid - 1;
        }
        int64_t start = (b - first[lo]) * BLOCK;
        int64_t len = numel[lo] - start < BLOCK ? numel[lo] - start : BLOCK;
        int64_t k = perturbed[lo] - start;
        k = k < 0 ? 0 : (k > len ? len : k);
        const real *fv = kind == F_GIVEN && k > 0 ? f_values[lo] + start : 0;
        update(params[lo] + start, grads[lo] + start, exp_avgs[lo] + start, exp_avg_sqs[lo] + start, fv, len, k,
               kind, &h);
    }
    free(first);
    return 0;
}

/* steps[t][0] += 1 in float32 for each of the n step counters (what torch's foreach add of 1
 * does to them), the new counts into values: one call a step instead of a torch op per
 * tensor and an .item() each (~50 us on textcls's 28 tensors).  Always float, in both
 * builds: torch keeps Adam's step counts in float32 whatever the parameters' dtype. */
int add_one_to_steps(int n, float *const *steps, double *values) {
    for (int t = 0; t < n; t++) {
        steps[t][0] += 1.0f;
        values[t] = (double)steps[t][0];
    }
    return 0;
}

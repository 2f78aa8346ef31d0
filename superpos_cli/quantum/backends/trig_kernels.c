/* fourier.TrigPolynomial on CPU in one pass over the scores each way (trig_native.py wraps it):
 *
 *   forward:  y = alpha x + sum_{k<=F} a_k cos(k w) + b_k sin(k w),  w = omega x
 *   backward: grad_x = g (alpha + omega sum_k k (b_k cos kw - a_k sin kw)),
 *             moments[0][k] = sum g cos kw, moments[1][k] = sum g sin kw (the coefficient
 *             gradient)
 *
 * coef is (2, F+1): row 0 the a_k, row 1 the b_k.  cos kw and sin kw come from cos w, sin w
 * (sincos_block) and the recurrence t_{k+1} = 2 cos(w) t_k - t_{k-1}, as fourier's eager
 * _backward_kernel does.  The backward recomputes cos w and sin w from x instead of reading
 * them from memory: that costs less than writing and reading two score-sized tensors.
 *
 * Compiled twice by native.py: -DSINGLE (float) and without (double).  Work goes in blocks of
 * BLOCK elements; the moments are summed per block (in real within the block, per vector
 * lane) and the block sums added in double in block order, so a call gives the same bits on
 * any thread count.  The forward of degrees up to POWER_UP_TO (the paper's circuit: 4) runs
 * Horner's rule in the power basis of cos w; other degrees up to FIXED_UP_TO, and every
 * backward up to it, run loops specialised to the degree (every value in registers), higher
 * ones a generic loop per k over arrays of the block.  Products meant to fuse are written as
 * MADD (the build passes -ffp-contract=off). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "native_real.h"

#define BLOCK 512      /* elements per block: 8 arrays of BLOCK doubles are 32 KiB */
#define MAX_DEGREE 64  /* trig_native.MAX_DEGREE */
#define PARALLEL_FROM 16384 /* fewer elements run on the calling thread alone */

/* cos w and sin w of w = omega x for one block.  float: fourier._sincos's polynomials (Cody-Waite
   reduction by 2 pi in three parts, then sin r = r P(r^2), cos r = Q(r^2) on [-pi, pi]; absolute
   error below 1e-6 for |w| < 1e4), a third of the time of libm's vector cosf and sinf; the rare
   |w| above SINCOS_POLY_UP_TO (where the reduction loses digits) are redone with libm.
   double: libm's vector cos and sin. */
#define SINCOS_POLY_UP_TO 1e4f
static void sincos_block(const real *x, int len, real omega, real *c, real *s) {
#ifdef SINGLE
    int far = 0;
#pragma omp simd reduction(| : far)
    for (int i = 0; i < len; i++) {
        float w = omega * x[i];
        float n = __builtin_rintf(w * 0.15915494309189535f);
        float r = ((w - n * 6.28125f) - n * 0.0019353071693331003f) - n * 1.0253131677018246e-11f;
        float z = r * r;
        /* Horner's rule in fused multiply-adds (the build disables contraction elsewhere) */
        s[i] = MADD(MADD(MADD(MADD(MADD(-2.0362245223282116e-08f, z, 2.699714741538628e-06f), z,
                                        -0.00019808633078355342f), z, 0.008332403376698494f), z,
                              -0.16666552424430847f), z, 0.9999995827674866f) * r;
        c[i] = MADD(MADD(MADD(MADD(MADD(MADD(1.7245092021056507e-09f, z, -2.707903092868946e-07f), z,
                                        2.47698826569831e-05f), z, -0.0013887803070247173f), z,
                              0.04166648909449577f), z, -0.49999988079071045f), z, 1.0f);
        far |= !(__builtin_fabsf(w) <= SINCOS_POLY_UP_TO); /* NaN too: libm gives NaN */
    }
    if (far)
        for (int i = 0; i < len; i++) {
            float w = omega * x[i];
            if (!(__builtin_fabsf(w) <= SINCOS_POLY_UP_TO)) {
                c[i] = cosf(w);
                s[i] = sinf(w);
            }
        }
#else
    real w[BLOCK];
#pragma omp simd
    for (int i = 0; i < len; i++) w[i] = omega * x[i];
#pragma omp simd
    for (int i = 0; i < len; i++) c[i] = COS(w[i]);
#pragma omp simd
    for (int i = 0; i < len; i++) s[i] = SIN(w[i]);
#endif
}

/* Element i of the next term of the recurrence: (t0, t1) <- (t1, cos (k+1) w), likewise u for sin. */
static inline void advance(int i, const real *c, real *t0, real *t1, real *u0, real *u1) {
    real c2 = 2 * c[i];
    real t = c2 * t1[i] - t0[i], u = c2 * u1[i] - u0[i];
    t0[i] = t1[i];
    t1[i] = t;
    u0[i] = u1[i];
    u1[i] = u;
}

static void forward_block(const real *x, real *y, int len, const real *a, const real *b, int degree,
                          real omega, real alpha) {
    real c[BLOCK], s[BLOCK], t0[BLOCK], t1[BLOCK], u0[BLOCK], u1[BLOCK], acc[BLOCK];
    sincos_block(x, len, omega, c, s);
#pragma omp simd
    for (int i = 0; i < len; i++) {
        t0[i] = 1;
        t1[i] = c[i];
        u0[i] = 0;
        u1[i] = s[i];
        acc[i] = a[0];
    }
    if (degree >= 1) {
        const real ak = a[1], bk = b[1];
#pragma omp simd
        for (int i = 0; i < len; i++) acc[i] += ak * c[i] + bk * s[i];
    }
    for (int k = 2; k <= degree; k++) {
        const real ak = a[k], bk = b[k];
#pragma omp simd
        for (int i = 0; i < len; i++) {
            advance(i, c, t0, t1, u0, u1);
            acc[i] += ak * t1[i] + bk * u1[i];
        }
    }
#pragma omp simd
    for (int i = 0; i < len; i++) y[i] = alpha * x[i] + acc[i];
}

/* grad_x for the block; sums (2, F+1) of g cos kw and g sin kw into moments. */
static void backward_block(const real *x, const real *g, real *grad_x, int len, const real *a, const real *b,
                           int degree, real omega, real alpha, double *moments) {
    real c[BLOCK], s[BLOCK], t0[BLOCK], t1[BLOCK], u0[BLOCK], u1[BLOCK], slope[BLOCK];
    double *mc = moments, *ms = moments + degree + 1;
    sincos_block(x, len, omega, c, s);
    double sum0 = 0;
#pragma omp simd reduction(+ : sum0)
    for (int i = 0; i < len; i++) {
        t0[i] = 1;
        t1[i] = c[i];
        u0[i] = 0;
        u1[i] = s[i];
        slope[i] = 0;
        sum0 += (double)g[i];
    }
    mc[0] = sum0;
    ms[0] = 0;
    if (degree >= 1) {
        const real ak = a[1], bk = b[1];
        double sc = 0, ss = 0;
#pragma omp simd reduction(+ : sc, ss)
        for (int i = 0; i < len; i++) {
            slope[i] = bk * c[i] - ak * s[i];
            sc += (double)(g[i] * c[i]);
            ss += (double)(g[i] * s[i]);
        }
        mc[1] = sc;
        ms[1] = ss;
    }
    for (int k = 2; k <= degree; k++) {
        const real kb = k * b[k], ka = k * a[k];
        double sc = 0, ss = 0;
#pragma omp simd reduction(+ : sc, ss)
        for (int i = 0; i < len; i++) {
            advance(i, c, t0, t1, u0, u1);
            slope[i] += kb * t1[i] - ka * u1[i];
            sc += (double)(g[i] * t1[i]);
            ss += (double)(g[i] * u1[i]);
        }
        mc[k] = sc;
        ms[k] = ss;
    }
#pragma omp simd
    for (int i = 0; i < len; i++) grad_x[i] = g[i] * (alpha + omega * slope[i]);
}

/* The same two blocks for a degree known at compile time (FIXED_UP_TO and below): the k
   recurrence written out inside one vector loop over the block, so t, u, the slope and the
   moments stay in registers instead of a load and a store per k and array.  cos and sin
   come from their own loop (a libm call inside this one stopped gcc vectorising it). */
#define FIXED_UP_TO 8


/* Term k >= 2 of the recurrence, written out for k = 2..FIXED_UP_TO: with the degree a
   constant the terms above it vanish, and the loop over the block is straight-line code
   that gcc vectorises (a loop over k inside it, even unrolled by pragma, stopped it). */
#define NEXT_TERM                                                                                             \
    real t = MADD(c2, t1, -t0), u = MADD(c2, u1, -u0);                                                               \
    t0 = t1;                                                                                                  \
    t1 = t;                                                                                                   \
    u0 = u1;                                                                                                  \
    u1 = u;
#define FORWARD_TERM(K)                                                                                       \
    if (degree >= K) {                                                                                        \
        NEXT_TERM                                                                                             \
        acc = MADD(a[K], t, MADD(b[K], u, acc));                                                                     \
    }
#define BACKWARD_TERM(K)                                                                                      \
    if (degree >= K) {                                                                                        \
        NEXT_TERM                                                                                             \
        slope = MADD(kb[K], t, MADD(-ka[K], u, slope));                                                                     \
        mc##K = MADD(gi, t, mc##K);                                                                           \
        ms##K = MADD(gi, u, ms##K);                                                                           \
    }
#define FOR_K(TERM) TERM(2) TERM(3) TERM(4) TERM(5) TERM(6) TERM(7) TERM(8)

static inline __attribute__((always_inline)) void forward_fixed(const real *x, real *y, int len, const real *a,
                                                                const real *b, const int degree, real omega,
                                                                real alpha) {
    real cs[BLOCK], sn[BLOCK];
    sincos_block(x, len, omega, cs, sn);
#pragma omp simd
    for (int i = 0; i < len; i++) {
        real c = cs[i], s = sn[i], c2 = 2 * c;
        real t0 = 1, t1 = c, u0 = 0, u1 = s;
        real acc = a[0] + (a[1] * c + b[1] * s);
        FOR_K(FORWARD_TERM)
        y[i] = alpha * x[i] + acc;
    }
}

/* The forward for degrees up to POWER_UP_TO in the power basis of c = cos w:
   y = alpha x + A(c) + s B(c), A = sum_k a_k T_k = sum_j pa_j c^j, B = sum_k b_k U_{k-1} =
   sum_j pb_j c^j, by Horner's rule: half the operations of the recurrence.  The monomial
   coefficients of T_k grow like 2^k, and with them the rounding; up to degree 4 (the paper's
   circuit) float32 stays within 1e-6 of the recurrence (as fourier.POWER_BASIS_MAX_DEGREE). */
#define POWER_UP_TO 4

static void power_coefficients(const real *a, const real *b, int degree, real *pa, real *pb) {
    double T[POWER_UP_TO + 1][POWER_UP_TO + 1] = {{0}}, U[POWER_UP_TO + 1][POWER_UP_TO + 1] = {{0}};
    T[0][0] = U[0][0] = 1;
    T[1][1] = 1;
    U[1][1] = 2;
    for (int k = 2; k <= POWER_UP_TO; k++)
        for (int j = 0; j <= k; j++) {
            T[k][j] = (j ? 2 * T[k - 1][j - 1] : 0) - T[k - 2][j];
            U[k][j] = (j ? 2 * U[k - 1][j - 1] : 0) - U[k - 2][j];
        }
    for (int j = 0; j <= POWER_UP_TO; j++) {
        double sa = 0, sb = 0;
        for (int k = 0; k <= degree; k++) sa += (double)a[k] * T[k][j];
        for (int k = 1; k <= degree; k++) sb += (double)b[k] * U[k - 1][j];
        pa[j] = (real)sa; /* zero above the degree */
        pb[j] = (real)sb;
    }
}

static void forward_power(const real *x, real *y, int len, const real *pa, const real *pb, real omega, real alpha) {
    real cs[BLOCK], sn[BLOCK];
    sincos_block(x, len, omega, cs, sn);
#pragma omp simd
    for (int i = 0; i < len; i++) {
        real c = cs[i];
        real A = MADD(MADD(MADD(MADD(pa[4], c, pa[3]), c, pa[2]), c, pa[1]), c, pa[0]);
        real B = MADD(MADD(MADD(pb[3], c, pb[2]), c, pb[1]), c, pb[0]);
        y[i] = MADD(alpha, x[i], MADD(sn[i], B, A));
    }
}

static inline __attribute__((always_inline)) void backward_fixed(const real *x, const real *g, real *grad_x,
                                                                 int len, const real *a, const real *b,
                                                                 const int degree, real omega, real alpha,
                                                                 double *moments) {
    real kb[FIXED_UP_TO + 1] = {0}, ka[FIXED_UP_TO + 1] = {0};
    for (int k = 1; k <= degree; k++) {
        kb[k] = k * b[k];
        ka[k] = k * a[k];
    }
    real cs[BLOCK], sn[BLOCK];
    sincos_block(x, len, omega, cs, sn);
    /* the block's sums in real (each vector lane adds BLOCK / lanes terms), the blocks' in double */
    real m0 = 0, mc1 = 0, ms1 = 0, mc2 = 0, ms2 = 0, mc3 = 0, ms3 = 0, mc4 = 0, ms4 = 0;
    real mc5 = 0, ms5 = 0, mc6 = 0, ms6 = 0, mc7 = 0, ms7 = 0, mc8 = 0, ms8 = 0;
#pragma omp simd reduction(+ : m0, mc1, ms1, mc2, ms2, mc3, ms3, mc4, ms4, mc5, ms5, mc6, ms6, mc7, ms7, mc8, ms8)
    for (int i = 0; i < len; i++) {
        real c = cs[i], s = sn[i], c2 = 2 * c, gi = g[i];
        real t0 = 1, t1 = c, u0 = 0, u1 = s;
        real slope = kb[1] * c - ka[1] * s;
        m0 += gi;
        mc1 = MADD(gi, c, mc1);
        ms1 = MADD(gi, s, ms1);
        FOR_K(BACKWARD_TERM)
        grad_x[i] = gi * (alpha + omega * slope);
    }
    const double mc[FIXED_UP_TO + 1] = {m0, mc1, mc2, mc3, mc4, mc5, mc6, mc7, mc8};
    const double ms[FIXED_UP_TO + 1] = {0, ms1, ms2, ms3, ms4, ms5, ms6, ms7, ms8};
    for (int k = 0; k <= degree; k++) {
        moments[k] = mc[k];
        moments[degree + 1 + k] = ms[k];
    }
}

#define DISPATCH(call_fixed, call_generic)                                                                    \
    switch (degree) {                                                                                         \
    case 1: { const int d = 1; call_fixed; } break;                                                           \
    case 2: { const int d = 2; call_fixed; } break;                                                           \
    case 3: { const int d = 3; call_fixed; } break;                                                           \
    case 4: { const int d = 4; call_fixed; } break;                                                           \
    case 5: { const int d = 5; call_fixed; } break;                                                           \
    case 6: { const int d = 6; call_fixed; } break;                                                           \
    case 7: { const int d = 7; call_fixed; } break;                                                           \
    case 8: { const int d = 8; call_fixed; } break;                                                           \
    default: call_generic;                                                                                    \
    }

/* Attention's mask over flat (B, H, T, T) scores (fourier.AngleReadout with a
   quantum.score_mask.ScoreMask): position (b, h, i, j) is masked where key j of batch row b is
   padding (key_pad[b * T + j] != 0, key_pad NULL for none) or, causal, j > i.  The forward
   writes fill there (attention's masked_fill, done in the same pass over memory); the backward
   reads the incoming gradient as 0 there (masked_fill's backward), so both give the bits of the
   unmasked kernel followed by masked_fill. */
struct mask {
    const uint8_t *key_pad;
    int64_t T, rows_per_batch; /* rows_per_batch = H * T */
    int causal;
};

static inline int masking(const struct mask *m) { return m->key_pad != NULL || m->causal; }

/* v[k] = fill for the masked positions lo + k, k < len. */
static void mask_span(real *v, int64_t lo, int len, const struct mask *m, real fill) {
    const int64_t T = m->T, end = lo + len;
    for (int64_t p = lo; p < end;) {
        const int64_t row = p / T, j0 = p - row * T, i = row % T;
        const int64_t stop = (row + 1) * T < end ? (row + 1) * T : end;
        const uint8_t *kp = m->key_pad ? m->key_pad + (row / m->rows_per_batch) * T : NULL;
        real *out = v + (p - lo);
        const int n = (int)(stop - p);
        for (int k = 0; k < n; k++) {
            const int64_t j = j0 + k;
            if ((kp && kp[j]) || (m->causal && j > i)) out[k] = fill;
        }
        p = stop;
    }
}

static int clamp_threads(int threads, int64_t n, int64_t blocks) {
    if (n < PARALLEL_FROM) return 1;
    if (threads > blocks) threads = (int)blocks;
    return threads < 1 ? 1 : threads;
}

/* y (n) from x (n), fill where (key_pad, T, rows_per_batch, causal) masks (struct mask; key_pad
   NULL and causal 0: nothing); returns 0, or -1 for a degree above MAX_DEGREE. */
int trig_forward(const real *x, real *y, int64_t n, const real *coef, int degree, real omega, real alpha,
                 int threads, const uint8_t *key_pad, int64_t T, int64_t rows_per_batch, int causal, real fill) {
    const struct mask m = {key_pad, T, rows_per_batch, causal};
    if (degree < 0 || degree > MAX_DEGREE) return -1;
    const real *a = coef, *b = coef + degree + 1;
    int64_t blocks = (n + BLOCK - 1) / BLOCK;
    threads = clamp_threads(threads, n, blocks);
    real pa[POWER_UP_TO + 1], pb[POWER_UP_TO + 1];
    const int power = degree <= POWER_UP_TO;
    if (power) power_coefficients(a, b, degree, pa, pb);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int64_t lo = blk * BLOCK;
        int len = (int)(n - lo < BLOCK ? n - lo : BLOCK);
        if (power) {
            forward_power(x + lo, y + lo, len, pa, pb, omega, alpha);
        } else {
            DISPATCH(forward_fixed(x + lo, y + lo, len, a, b, d, omega, alpha),
                     forward_block(x + lo, y + lo, len, a, b, degree, omega, alpha))
        }
        if (masking(&m)) mask_span(y + lo, lo, len, &m, fill); /* the block is still in L1 */
    }
    return 0;
}

/* grad_x (n) and moments (2, F+1) from x, g (n), g read as 0 where the mask masks (as
   trig_forward); returns 0, -1 for a degree above MAX_DEGREE, -2 when the block sums cannot be
   allocated. */
int trig_backward(const real *x, const real *g, real *grad_x, double *moments, int64_t n, const real *coef,
                  int degree, real omega, real alpha, int threads, const uint8_t *key_pad, int64_t T,
                  int64_t rows_per_batch, int causal) {
    const struct mask m = {key_pad, T, rows_per_batch, causal};
    if (degree < 0 || degree > MAX_DEGREE) return -1;
    const real *a = coef, *b = coef + degree + 1;
    const int width = 2 * (degree + 1);
    int64_t blocks = (n + BLOCK - 1) / BLOCK;
    double *partial = malloc(sizeof(double) * (size_t)width * (size_t)(blocks ? blocks : 1));
    if (partial == NULL) return -2;
    threads = clamp_threads(threads, n, blocks);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int64_t lo = blk * BLOCK;
        int len = (int)(n - lo < BLOCK ? n - lo : BLOCK);
        double *sums = partial + blk * width;
        real masked[BLOCK];
        const real *gb = g + lo;
        if (masking(&m)) { /* the block's gradient, zero where masked */
            for (int i = 0; i < len; i++) masked[i] = gb[i];
            mask_span(masked, lo, len, &m, 0);
            gb = masked;
        }
        DISPATCH(backward_fixed(x + lo, gb, grad_x + lo, len, a, b, d, omega, alpha, sums),
                 backward_block(x + lo, gb, grad_x + lo, len, a, b, degree, omega, alpha, sums))
    }
    for (int j = 0; j < width; j++) moments[j] = 0;
    for (int64_t blk = 0; blk < blocks; blk++)
        for (int j = 0; j < width; j++) moments[j] += partial[blk * width + j];
    free(partial);
    return 0;
}

/* trig_backward, then the angles' gradient angles[i] = sum_j jacobian[i, j] moments[j] for the
   coefficients' Jacobian (n_angles, 2 (F+1)) (fourier.AngleReadout: one call per backward). */
int trig_backward_angles(const real *x, const real *g, real *grad_x, double *moments, int64_t n, const real *coef,
                         int degree, real omega, real alpha, int threads, const real *jacobian, int n_angles,
                         real *angles, const uint8_t *key_pad, int64_t T, int64_t rows_per_batch, int causal) {
    int status = trig_backward(x, g, grad_x, moments, n, coef, degree, omega, alpha, threads, key_pad, T,
                               rows_per_batch, causal);
    if (status) return status;
    const int width = 2 * (degree + 1);
    for (int i = 0; i < n_angles; i++) {
        double sum = 0;
        for (int j = 0; j < width; j++) sum += (double)jacobian[(size_t)i * width + j] * moments[j];
        angles[i] = (real)sum;
    }
    return 0;
}

/* The shot sampler of shots.py in one pass over the scores: K ~ Binomial(N, P) per element,
 * P = clamp(v - alpha x, 0, 1), out = alpha x + K / N.  shots.py's docstring gives the
 * algorithm and why it is hand-written; shots._reference_estimate is the same algorithm in
 * torch ops (the path without a compiler, and the test's reference).
 *
 * Compiled twice by native.py: -DSINGLE (float) and without (double).  Random bits are
 * splitmix64's outputs mix(seed + k * GOLDEN) at counters k, so every element's draw depends
 * only on (seed, its index), never on the thread count or the block size's split of work:
 *   normals: block b (BLOCK elements) takes the pairs k = b BLOCK / 2 + j, j < BLOCK / 2;
 *            element j of the block is r cos(2 pi u2) of pair j, element BLOCK / 2 + j its
 *            r sin; r = sqrt(-2 log u1).  float: u1 = (bits 40..63 + 1) 2^-24, u2 = bits
 *            16..39 2^-24 of one output; double: u1 = (output(2k) >> 11 + 1) 2^-53, u2 =
 *            (output(2k + 1) >> 11) 2^-53.
 *   uniforms for the inversion: element i takes output i of the second seed, >> 40 2^-24
 *            (float) or >> 11 2^-53 (double).
 * Loops are written for gcc's vectoriser (-O3 -fno-trapping-math, libm's vector variants via
 * "omp declare simd"): plain arrays, no branches, calls in loops of their own. */
#include <math.h>
#include <stdint.h>

#ifdef SINGLE
typedef float real;
#define LOG logf
#define SQRT sqrtf
#define COS cosf
#define SIN sinf
#define EXP expf
#define LOG1P log1pf
#define FLOOR floorf
#define TINY 1e-30f
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
float cosf(float);
#pragma omp declare simd notinbranch
float sinf(float);
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float log1pf(float);
#else
typedef double real;
#define LOG log
#define SQRT sqrt
#define COS cos
#define SIN sin
#define EXP exp
#define LOG1P log1p
#define FLOOR floor
#define TINY 1e-300
#pragma omp declare simd notinbranch
double log(double);
#pragma omp declare simd notinbranch
double cos(double);
#pragma omp declare simd notinbranch
double sin(double);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
double log1p(double);
#endif

#define BLOCK 1024      /* elements per block: shots.BLOCK */
#define MAX_STEPS 256   /* the most inversion steps a call may ask for */
#define STEP_CHUNK 8    /* inversion steps between checks whether every lane is done */
#define GOLDEN 0x9e3779b97f4a7c15ULL

static inline uint64_t splitmix(uint64_t seed, uint64_t k) {
    uint64_t z = seed + k * GOLDEN;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct {
    const real *v, *x;
    real *out;
    int64_t begin, end; /* elements [begin, end), begin a multiple of BLOCK */
    real alpha, shots, exact_below;
    uint64_t normal_seed, uniform_seed;
    int steps;
} Job;

/* BLOCK normals for the block whose first pair is first_pair (not inlined: inlined, gcc
   stopped vectorising it). */
__attribute__((noinline)) static void normals(real *z, int64_t first_pair, uint64_t seed) {
    const real two_pi = (real)6.283185307179586;
    real *zc = z, *zs = z + BLOCK / 2;
#pragma omp simd
    for (int j = 0; j < BLOCK / 2; j++) {
#ifdef SINGLE
        uint64_t h = splitmix(seed, (uint64_t)(first_pair + j));
        real u1 = (real)(int32_t)((h >> 40) + 1) * (real)0x1p-24;
        real u2 = (real)(int32_t)((h >> 16) & 0xFFFFFFu) * (real)0x1p-24;
#else
        uint64_t h1 = splitmix(seed, 2 * (uint64_t)(first_pair + j));
        uint64_t h2 = splitmix(seed, 2 * (uint64_t)(first_pair + j) + 1);
        real u1 = (real)(int64_t)((h1 >> 11) + 1) * 0x1p-53;
        real u2 = (real)(int64_t)(h2 >> 11) * 0x1p-53;
#endif
        real r = SQRT(-2 * LOG(u1));
        zc[j] = r * COS(two_pi * u2);
        zs[j] = r * SIN(two_pi * u2);
    }
}

static real uniform(uint64_t seed, int64_t i) {
    uint64_t h = splitmix(seed, (uint64_t)i);
#ifdef SINGLE
    return (real)(h >> 40) * (real)0x1p-24;
#else
    return (real)(h >> 11) * 0x1p-53;
#endif
}

static void run_job(const Job *job) {
    real z[BLOCK], factor[MAX_STEPS];
    real ratio[BLOCK], pmf[BLOCK], cdf[BLOCK], u[BLOCK], kk[BLOCK]; /* the inversion's lanes */
    int small[BLOCK], flag[BLOCK];
    const real n = job->shots, alpha = job->alpha, exact_below = job->exact_below;
    for (int k = 0; k < job->steps; k++) factor[k] = (n - k) / (k + 1); /* pmf(k + 1) = pmf(k) factor[k] ratio */
    for (int64_t b = job->begin; b < job->end; b += BLOCK) {
        int len = (int)(job->end - b < BLOCK ? job->end - b : BLOCK);
        normals(z, b / 2, job->normal_seed);
        const real *v = job->v + b, *x = job->x + b;
        real *out = job->out + b;
        /* The fourth-order Cornish-Fisher count for every element; flag the small means. */
#pragma omp simd
        for (int i = 0; i < len; i++) {
            real p = v[i] - alpha * x[i];
            p = p < 0 ? 0 : (p > 1 ? 1 : p);
            real mean = p * n, variance = mean * (1 - p);
            real inv_sd = 1 / SQRT(variance > (real)1e-24 ? variance : (real)1e-24);
            real skew = (1 - 2 * p) * inv_sd, kurtosis = (1 - 6 * p * (1 - p)) * (inv_sd * inv_sd);
            real zi = z[i], z2 = zi * zi;
            real q = zi + skew * (real)(1.0 / 6) * (z2 - 1) + kurtosis * (real)(1.0 / 24) * zi * (z2 - 3)
                     - skew * skew * (real)(1.0 / 36) * zi * (2 * z2 - 5);
            real k = FLOOR(mean + variance * inv_sd * q + (real)0.5);
            k = k < 0 ? 0 : (k > n ? n : k);
            out[i] = alpha * x[i] + k / n;
            real tail = mean < n - mean ? mean : n - mean;
            flag[i] = !(tail >= exact_below); /* a small mean, or NaN */
        }
        int count = 0;
        for (int i = 0; i < len; i++) { /* branchless compaction */
            small[count] = i;
            count += flag[i];
        }
        /* Inversion of Binomial(N, q)'s CDF at u for the flagged ones, q = min(P, 1 - P),
           across them: pmf(0) = (1 - q)^N, then STEP_CHUNK steps at a time until u <= cdf in
           every lane (or job->steps). */
        for (int c = 0; c < count; c++) pmf[c] = v[small[c]] - alpha * x[small[c]]; /* P, for now */
#pragma omp simd
        for (int c = 0; c < count; c++) {
            real p = pmf[c];
            p = p < 0 ? 0 : (p > 1 ? 1 : p);
            real q = p > (real)0.5 ? 1 - p : p;
            ratio[c] = q / (1 - q);
            cdf[c] = -q;
        }
#pragma omp simd
        for (int c = 0; c < count; c++) { /* a loop of its own: calls keep gcc from if-converting the one above */
            pmf[c] = EXP(n * LOG1P(cdf[c]));
            cdf[c] = pmf[c];
        }
        for (int c = 0; c < count; c++) {
            u[c] = uniform(job->uniform_seed, b + small[c]);
            kk[c] = 0;
        }
        for (int step = 0; step < job->steps; step += STEP_CHUNK) {
            int last = step + STEP_CHUNK < job->steps ? step + STEP_CHUNK : job->steps, open = 0;
            for (int s = step; s < last; s++) {
#pragma omp simd
                for (int c = 0; c < count; c++) {
                    kk[c] += u[c] > cdf[c] ? 1 : 0;
                    real next = pmf[c] * factor[s] * ratio[c];
                    pmf[c] = next < TINY ? 0 : next; /* no subnormals: they cost ~100 cycles an op */
                    cdf[c] += pmf[c];
                }
            }
#pragma omp simd reduction(| : open)
            for (int c = 0; c < count; c++) open |= u[c] > cdf[c];
            if (!open) break;
        }
        for (int c = 0; c < count; c++) {
            int i = small[c];
            real p = v[i] - alpha * x[i];
            real clamped = p < 0 ? 0 : (p > 1 ? 1 : p);
            out[i] = p != p ? p : alpha * x[i] + (clamped > (real)0.5 ? n - kk[c] : kk[c]) / n;
        }
    }
}

/* out[i] for i < size, on `threads` threads of OpenMP's pool: torch's own, since torch has
   loaded libgomp.so.1 before this library opens (a pool of our own would compete with
   torch's spinning threads for the cores). */
int sample_estimate(const real *v, const real *x, real *out, int64_t size, real alpha, real shots,
                    real exact_below, int steps, uint64_t normal_seed, uint64_t uniform_seed, int threads) {
    int64_t blocks = (size + BLOCK - 1) / BLOCK;
    if (steps > MAX_STEPS) steps = MAX_STEPS;
    if (threads > blocks) threads = (int)blocks;
    if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; t++) {
        int64_t lo = blocks * t / threads * BLOCK, hi = blocks * (t + 1) / threads * BLOCK;
        Job job = {v, x, out, lo, hi < size ? hi : size, alpha, shots, exact_below, normal_seed, uniform_seed, steps};
        run_job(&job);
    }
    return 0;
}

/* The precision of a kernel built by native.py: float with -DSINGLE, double without; cos and
 * sin declared with their vector variants (libmvec, "omp declare simd"), SQRT the square root,
 * and MADD a fused multiply-add (the build passes -ffp-contract=off, so products fuse only
 * where written). */
#ifndef SUPERPOS_NATIVE_REAL_H
#define SUPERPOS_NATIVE_REAL_H

#ifdef SINGLE
typedef float real;
#define COS cosf
#define SIN sinf
#define SQRT sqrtf
#define MADD __builtin_fmaf
#pragma omp declare simd notinbranch
float cosf(float);
#pragma omp declare simd notinbranch
float sinf(float);
#else
typedef double real;
#define COS cos
#define SIN sin
#define SQRT sqrt
#define MADD __builtin_fma
#pragma omp declare simd notinbranch
double cos(double);
#pragma omp declare simd notinbranch
double sin(double);
#endif

#endif

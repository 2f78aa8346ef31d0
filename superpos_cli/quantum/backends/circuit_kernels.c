/* coefficients._simulate in C: the readout coefficients of G * P circuits (every angle set with
 * its P - 1 parameter-shifted copies), one call instead of ~30 numpy ops (circuit_native.py
 * wraps it; coefficients.py's docstring gives the method).
 *
 * Per circuit (g, p), amplitudes as (slots, dim) complex, slots the Fourier frequencies in x:
 *   state = initial                                   (layer 0's encoding already applied)
 *   for each layer l:
 *       if l > 0 encodes: amplitude b moves from slot j to j + weight[b]      (slots += n)
 *       state <- state @ U_l^T, U_l = kron(M_0 .. M_{n-1}), qubit 0 the most significant bit,
 *               M_q = sum_a prod_a(half angles of (theta, phi)[l, q] + shift[p]) gate_map[l, a]
 *       if l + 1 < depth: state <- state @ inner[l]   (CNOTs, change of basis: dense dim x dim)
 *   real readout: out = Re(state.flat @ readout)       (readout stored (width, slots * dim) complex)
 *   prob readout: s = state @ last (slots x n); with s0 the group's unshifted circuit,
 *       data = s0 s0^H (p = 0) or s s0^H + (s s0^H)^H, out = data.flat (re, im) @ readout
 *       (readout stored (width, slots^2 * 2) real)
 *
 * All G * P circuits advance together: amplitudes are stored split (re, im) as
 * [slot][basis][circuit] with the circuit innermost, so every loop below is a vector loop over
 * the circuits (the numpy path also runs the circuits along its last axis).  The constants are
 * numpy's interleaved (re, im) complex arrays; complex arithmetic is written out.
 * Compiled twice by native.py: -DSINGLE (float) and without (double). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "native_real.h"

#define AT(j, b) (((size_t)(j) * dim + (b)) * nc) /* first circuit of amplitude (slot j, basis b) */

/* out (G, P, width): the readout coefficients of every circuit, those of the shifted circuits
   (p > 0) halved, so that out[g, 1:] is the Jacobian (d psi / d angle = psi(angle + pi) / 2);
   angles (G, 2, depth, n),
   shifts (2, depth, n, P); initial (slots0, dim), inner (depth - 1, dim, dim), last (dim, n)
   complex; readout (width, slots_max * dim) complex (real) or (width, 2 slots_max^2) real (prob).
   Returns 0, or -1 when the buffers cannot be allocated. */
int simulate(int n, int depth, int slots0, int slots_max, int width, int prob, const int32_t *encodes,
             const int32_t *weight, const real *gate_map, const real *inner, const real *last,
             const real *initial, const real *readout, const real *angles, const real *shifts, int G, int P,
             real *out) {
    const int dim = 1 << n;
    const int nc = G * P;
    /* amplitudes (slots, dim) per circuit; the prob readout's data (slots, slots) reuses sr, si */
    const size_t cells = (size_t)slots_max * (dim > slots_max ? dim : slots_max) * nc;
    real *sr = calloc(cells, sizeof(real)), *si = calloc(cells, sizeof(real));
    real *tr = calloc(cells, sizeof(real)), *ti = calloc(cells, sizeof(real));
    real *gates = malloc(sizeof(real) * (size_t)n * 8 * nc); /* [qubit][entry (re, im of (k, l))][circuit] */
    real *acc = malloc(sizeof(real) * (size_t)nc);
    real *trig = malloc(sizeof(real) * 6 * (size_t)nc); /* half angles theta, phi; then their cos, sin */
    int status = 0;
    if (!sr || !si || !tr || !ti || !gates || !acc || !trig) {
        status = -1;
        goto done;
    }
    for (int j = 0; j < slots0; j++)
        for (int b = 0; b < dim; b++) {
            real re = initial[2 * (j * dim + b)], im = initial[2 * (j * dim + b) + 1];
            for (int c = 0; c < nc; c++) {
                sr[AT(j, b) + c] = re;
                si[AT(j, b) + c] = im;
            }
        }
    int slots = slots0;
    for (int l = 0; l < depth; l++) {
        if (l > 0 && encodes[l]) { /* amplitude b: slot j -> j + weight[b] */
            memset(tr, 0, sizeof(real) * cells);
            memset(ti, 0, sizeof(real) * cells);
            for (int j = 0; j < slots; j++)
                for (int b = 0; b < dim; b++) {
                    memcpy(tr + AT(j + weight[b], b), sr + AT(j, b), sizeof(real) * nc);
                    memcpy(ti + AT(j + weight[b], b), si + AT(j, b), sizeof(real) * nc);
                }
            real *swap = sr;
            sr = tr, tr = swap;
            swap = si, si = ti, ti = swap;
            slots += n;
        }
        const real *map = gate_map + (size_t)l * 32; /* (4 products, 8 entries) */
        for (int q = 0; q < n; q++) {
            real *gq = gates + (size_t)q * 8 * nc;
            /* (theta, phi)[l, q] plus circuit p's shift, halved; then (cos, sin) of both in
               vector loops of their own (libm's vector variants) */
            for (int c = 0; c < nc; c++) {
                int g = c / P, p = c % P;
                const real *ang = angles + (size_t)g * 2 * depth * n;
                trig[c] = (ang[l * n + q] + shifts[((size_t)l * n + q) * P + p]) * (real)0.5;
                trig[nc + c] = (ang[(depth + l) * n + q] + shifts[((size_t)(depth + l) * n + q) * P + p]) * (real)0.5;
            }
            real *ct = trig + 2 * nc, *st = trig + 3 * nc, *cp = trig + 4 * nc, *sp = trig + 5 * nc;
#pragma omp simd
            for (int c = 0; c < nc; c++) ct[c] = COS(trig[c]);
#pragma omp simd
            for (int c = 0; c < nc; c++) st[c] = SIN(trig[c]);
#pragma omp simd
            for (int c = 0; c < nc; c++) cp[c] = COS(trig[nc + c]);
#pragma omp simd
            for (int c = 0; c < nc; c++) sp[c] = SIN(trig[nc + c]);
            for (int e = 0; e < 8; e++) {
                const real m0 = map[e], m1 = map[8 + e], m2 = map[16 + e], m3 = map[24 + e];
                real *ge = gq + (size_t)e * nc;
#pragma omp simd
                for (int c = 0; c < nc; c++)
                    ge[c] = cp[c] * ct[c] * m0 + cp[c] * st[c] * m1 + sp[c] * ct[c] * m2 + sp[c] * st[c] * m3;
            }
        }
        /* state @ U^T, one qubit at a time (qubit 0 the most significant bit) */
        for (int q = 0; q < n; q++) {
            const real *m = gates + (size_t)q * 8 * nc;
            const int bit = 1 << (n - 1 - q);
            for (int j = 0; j < slots; j++)
                for (int b = 0; b < dim; b++) {
                    if (b & bit) continue;
                    real *ar = sr + AT(j, b), *ai = si + AT(j, b), *br = sr + AT(j, b | bit), *bi = si + AT(j, b | bit);
#pragma omp simd
                    for (int c = 0; c < nc; c++) {
                        real xr = ar[c], xi = ai[c], yr = br[c], yi = bi[c];
                        real m0r = m[c], m0i = m[nc + c], m1r = m[2 * nc + c], m1i = m[3 * nc + c];
                        real m2r = m[4 * nc + c], m2i = m[5 * nc + c], m3r = m[6 * nc + c], m3i = m[7 * nc + c];
                        ar[c] = m0r * xr - m0i * xi + m1r * yr - m1i * yi;
                        ai[c] = m0r * xi + m0i * xr + m1r * yi + m1i * yr;
                        br[c] = m2r * xr - m2i * xi + m3r * yr - m3i * yi;
                        bi[c] = m2r * xi + m2i * xr + m3r * yi + m3i * yr;
                    }
                }
        }
        if (l + 1 < depth) { /* state @ inner[l], the matrix shared by every circuit */
            const real *f = inner + 2 * (size_t)l * dim * dim;
            for (int j = 0; j < slots; j++)
                for (int col = 0; col < dim; col++) {
                    real *orr = tr + AT(j, col), *oi = ti + AT(j, col);
                    for (int c = 0; c < nc; c++) orr[c] = oi[c] = 0;
                    for (int k = 0; k < dim; k++) {
                        real fr = f[2 * (k * dim + col)], fi = f[2 * (k * dim + col) + 1];
                        if (fr == 0 && fi == 0) continue; /* CNOT-only folds are permutations */
                        const real *xr = sr + AT(j, k), *xi = si + AT(j, k);
#pragma omp simd
                        for (int c = 0; c < nc; c++) {
                            orr[c] += xr[c] * fr - xi[c] * fi;
                            oi[c] += xr[c] * fi + xi[c] * fr;
                        }
                    }
                }
            real *swap = sr;
            sr = tr, tr = swap;
            swap = si, si = ti, ti = swap;
        }
    }
    if (!prob) { /* out[c, w] = Re(sum_i state_i readout[w, i]) */
        const int used = slots * dim;
        for (int w = 0; w < width; w++) {
            for (int c = 0; c < nc; c++) acc[c] = 0;
            const real *r = readout + 2 * (size_t)w * used;
            for (int i = 0; i < used; i++) {
                real rr = r[2 * i], ri = r[2 * i + 1];
                if (rr == 0 && ri == 0) continue;
                const real *xr = sr + (size_t)i * nc, *xi = si + (size_t)i * nc;
#pragma omp simd
                for (int c = 0; c < nc; c++) acc[c] += xr[c] * rr - xi[c] * ri;
            }
            for (int c = 0; c < nc; c++) out[(size_t)c * width + w] = c % P ? (real)0.5 * acc[c] : acc[c];
        }
        goto done;
    }
    /* prob: s = state @ last (slots, n) per circuit, into tr/ti as [slot][k][circuit] */
    for (int j = 0; j < slots; j++)
        for (int k = 0; k < n; k++) {
            real *orr = tr + ((size_t)j * n + k) * nc, *oi = ti + ((size_t)j * n + k) * nc;
            for (int c = 0; c < nc; c++) orr[c] = oi[c] = 0;
            for (int b = 0; b < dim; b++) {
                real fr = last[2 * (b * n + k)], fi = last[2 * (b * n + k) + 1];
                if (fr == 0 && fi == 0) continue;
                const real *xr = sr + AT(j, b), *xi = si + AT(j, b);
#pragma omp simd
                for (int c = 0; c < nc; c++) {
                    orr[c] += xr[c] * fr - xi[c] * fi;
                    oi[c] += xr[c] * fi + xi[c] * fr;
                }
            }
        }
    /* data[j, j'] = sum_k s[j, k] conj(s0[j', k]) (s0: the group's circuit 0), then
       data + data^H for the shifted circuits; out = data (re, im interleaved) @ readout.
       sr/si (free now) hold data as [j][j'][circuit]. */
    for (int g = 0; g < G; g++) {
        const int c0 = g * P;
        for (int j = 0; j < slots; j++)
            for (int jp = 0; jp < slots; jp++) {
                real *dr = sr + ((size_t)j * slots + jp) * nc + c0, *di = si + ((size_t)j * slots + jp) * nc + c0;
                for (int p = 0; p < P; p++) dr[p] = di[p] = 0;
                for (int k = 0; k < n; k++) {
                    const real *xr = tr + ((size_t)j * n + k) * nc + c0, *xi = ti + ((size_t)j * n + k) * nc + c0;
                    real yr = tr[((size_t)jp * n + k) * nc + c0], yi = -ti[((size_t)jp * n + k) * nc + c0];
#pragma omp simd
                    for (int p = 0; p < P; p++) {
                        dr[p] += xr[p] * yr - xi[p] * yi;
                        di[p] += xr[p] * yi + xi[p] * yr;
                    }
                }
            }
        for (int j = 0; j < slots; j++) /* p >= 1: data + data^H, pairs (j, j') and (j', j) together */
            for (int jp = j; jp < slots; jp++) {
                real *ur = sr + ((size_t)j * slots + jp) * nc + c0, *ui = si + ((size_t)j * slots + jp) * nc + c0;
                real *vr = sr + ((size_t)jp * slots + j) * nc + c0, *vi = si + ((size_t)jp * slots + j) * nc + c0;
                for (int p = 1; p < P; p++) {
                    real hr = ur[p] + vr[p], hi = ui[p] - vi[p];
                    ur[p] = hr;
                    ui[p] = hi;
                    vr[p] = hr;
                    vi[p] = -hi;
                }
            }
    }
    {
        const int pairs = slots * slots;
        for (int w = 0; w < width; w++) {
            for (int c = 0; c < nc; c++) acc[c] = 0;
            const real *r = readout + 2 * (size_t)w * pairs; /* (re, im) weights of data[i] */
            for (int i = 0; i < pairs; i++) {
                real rr = r[2 * i], ri = r[2 * i + 1];
                const real *xr = sr + (size_t)i * nc, *xi = si + (size_t)i * nc;
                if (rr != 0)
#pragma omp simd
                    for (int c = 0; c < nc; c++) acc[c] += xr[c] * rr;
                if (ri != 0)
#pragma omp simd
                    for (int c = 0; c < nc; c++) acc[c] += xi[c] * ri;
            }
            for (int c = 0; c < nc; c++) out[(size_t)c * width + w] = c % P ? (real)0.5 * acc[c] : acc[c];
        }
    }
done:
    free(sr);
    free(si);
    free(tr);
    free(ti);
    free(gates);
    free(acc);
    free(trig);
    return status;
}

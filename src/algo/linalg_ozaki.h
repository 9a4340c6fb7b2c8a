/*
 * linalg_ozaki.h — the constants of the Ozaki scheme II GEMM variant
 * (ozaki_int8), shared by the CPU backend and the CUDA module (which links
 * nothing from the core, hence static definitions in a header).
 *
 * The scheme: each row of op(A) and column of op(B) is scaled by a power
 * of two so that its entries, truncated to integers, have at most p bits;
 * the integer product A'B' is computed exactly modulo n pairwise-coprime
 * moduli m_i <= 256 (each residue centred into int8, one int8 GEMM with
 * exact int32 sums per modulus) and rebuilt by the Chinese remainder
 * theorem. It is exact as long as every |sum_k a'_k b'_k| < M / 2 with
 * M = prod m_i; fli_ozaki_bits picks the largest p that guarantees it for
 * dot products of length K. The error is then that of truncating the
 * operands to p bits relative to their row / column maxima.
 */
#ifndef FL_ALGO_LINALG_OZAKI_H
#define FL_ALGO_LINALG_OZAKI_H

#include <math.h>
#include <stdint.h>

#define FLI_OZAKI_MAX_MODULI 20
#define FLI_OZAKI_MIN_MODULI 2
#define FLI_OZAKI_DEFAULT_MODULI 16

/* Pairwise coprime, largest first: 2^8, 3*5*17, 11*23, 251, 13*19, then
 * primes and 7*31. */
static const int32_t fli_ozaki_moduli[FLI_OZAKI_MAX_MODULI] = {
    256, 255, 253, 251, 247, 241, 239, 233, 229, 227, 223, 217, 211, 199, 197, 193, 191, 181, 179, 173};

/* Bits each integer operand keeps for dot products of length K with the
 * first n moduli: the largest p with K 2^(2p) < M / 2, at most 62 (int64),
 * or 0 when even p = 1 does not fit (too few moduli for this K). */
static inline int fli_ozaki_bits(int64_t K, int n)
{
    double log2m = 0;
    for (int i = 0; i < n && i < FLI_OZAKI_MAX_MODULI; i++)
        log2m += log2((double)fli_ozaki_moduli[i]);
    const double room = log2m - 1 - log2((double)(K > 1 ? K : 1)) - 1e-9;
    int p = (int)floor(room / 2);
    if (p > 62)
        p = 62;
    return p < 1 ? 0 : p;
}

#endif

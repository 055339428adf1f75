/* Sparse rows (CSR) against dense centers: the steps of a Lloyd pass over sparse data whose
 * cost grows with the stored values (included by lloyd_impl.h once per type; the exact
 * re-decision of near ties runs in torch on the scores).
 *
 *   tk_spmm:          out[i, :] = sum over the stored values (j, v) of row i of v * ct[j, :],
 *                     with ct the (D, K) transposed centers. Each row is independent of every
 *                     other (its values added in stored order, per center), so the result does
 *                     not depend on the thread count or on how rows are split into calls.
 *                     Centers go through register tiles of up to 8 SIMD vectors: each stored
 *                     value costs one load and one FMA per vector, and the row's products stay
 *                     in registers until the tile is done.
 *   tk_sparse_assign: tk_spmm, then for each group of rows, while its products are in cache,
 *                     the scores (||c||^2 - 2 x.c, or -x.c for unit rows), the best center
 *                     (lowest index on ties), the distance to it (the score plus ||x||^2, or
 *                     plus 1, clamped at zero), and whether the runner-up is within the
 *                     rounding slack of the best (such rows are re-decided exactly by the
 *                     caller): the same arithmetic, in the same order, as the torch engine's.
 *   tk_divide_rows:   out[p] = val[p] / div[i] for the stored values p of row i (unit rows for
 *                     cosine: division, not a product with the reciprocal, as torch divides).
 *   tk_sparse_sums:   sums[labels[i], j] += w_i * v in float64, row by row, in stored order (as
 *                     torch's sequential index_add_ does); each thread owns a range of clusters
 *                     and walks every row, so the sums do not depend on the thread count.
 *
 * Row pointers and column indices are int32 or int64 (scipy uses either): ``idx64`` says which.
 */

/* What tk_sparse_assign does after the products of a group of rows (NULL for tk_spmm). */
typedef struct {
    const T *csq;  /* squared center norms (Euclidean), or NULL (unit rows: scores are -x.c) */
    const T *xsq;  /* squared row norms (Euclidean) */
    T csq_max, slack_eps;
    int64_t *labels;
    T *dist;
    uint8_t *near;
} SUF(sparse_epilogue);

typedef struct {
    int64_t row0, row1, k, d;
    const void *crow, *col;
    int idx64;
    const T *val, *ct;
    T *out;
    const SUF(sparse_epilogue) * epi;
    int64_t near_count;
} SUF(spmm_args);

/* Stored values ahead whose rows of centers are prefetched: the columns of a row are scattered
 * over the vocabulary, so each value's tile of centers is a cache miss without it. */
#define SP_AHEAD 8

static inline __attribute__((always_inline)) void SUF(prefetch_tile)(const T *r, const int nv) {
    for (int b = 0; b < nv * VBYTES; b += 64) __builtin_prefetch((const char *)r + b);
}

/* Products of one row with nv (1..8, a constant after inlining) vectors of centers starting at
 * center kb, accumulated in registers, stored to o[kb..]. */
static inline __attribute__((always_inline)) void SUF(spmm_tile)(
    const int nv, const int64_t p0, const int64_t p1, const T *val, const void *col, int idx64,
    const T *ct, int64_t k, int64_t kb, T *o) {
    typedef SUF(vec) V;
    V acc[8];
    for (int u = 0; u < nv; u++) acc[u] = (V){0};
    if (idx64) {
        const int64_t *c = (const int64_t *)col;
        for (int64_t p = p0; p < p1; p++) {
            if (p + SP_AHEAD < p1) SUF(prefetch_tile)(ct + c[p + SP_AHEAD] * k + kb, nv);
            const T v = val[p];
            const T *r = ct + c[p] * k + kb;
            for (int u = 0; u < nv; u++) acc[u] += SUF(vload)(r + u * SUF(VL)) * v;
        }
    } else {
        const int32_t *c = (const int32_t *)col;
        for (int64_t p = p0; p < p1; p++) {
            if (p + SP_AHEAD < p1) SUF(prefetch_tile)(ct + (int64_t)c[p + SP_AHEAD] * k + kb, nv);
            const T v = val[p];
            const T *r = ct + (int64_t)c[p] * k + kb;
            for (int u = 0; u < nv; u++) acc[u] += SUF(vload)(r + u * SUF(VL)) * v;
        }
    }
    memcpy(o + kb, acc, (size_t)nv * sizeof(V));
}

static int64_t SUF(crow_at)(const void *crow, int idx64, int64_t i) {
    return idx64 ? ((const int64_t *)crow)[i] : (int64_t)((const int32_t *)crow)[i];
}

/* Rows per group: a group's rows are swept once per tile of centers, so the tile's columns of
 * ct are reused by every row of the group while they are in cache. */
#define SP_GROUP_ROWS 64

/* Rows [g, g1): products -> scores in place, best center, distance, near-tie flag; returns the
 * number of rows flagged. Mirrors torch_engine's assign: scores ``csq - 2 p`` (the product by
 * -2 is exact), runner-up = the least score of the other centers, slack = eps (||x||^2 +
 * max ||c||^2) (unit rows: 2 eps), near when runner-up - best <= slack. */
static int64_t SUF(sparse_assign_rows)(const SUF(sparse_epilogue) * e, int64_t g, int64_t g1, int64_t k,
                                T *out) {
    int64_t flagged = 0;
    for (int64_t i = g; i < g1; i++) {
        T *s = out + i * k;
        if (e->csq != NULL)
            for (int64_t j = 0; j < k; j++) s[j] = e->csq[j] + (T)-2 * s[j];
        else
            for (int64_t j = 0; j < k; j++) s[j] = -s[j];
        T best = s[0], second = (T)INFINITY;
        int64_t label = 0;
        for (int64_t j = 1; j < k; j++) {
            const T v = s[j];
            if (v < best) {
                second = best;
                best = v;
                label = j;
            } else if (v < second) {
                second = v;
            }
        }
        T slack, d;
        if (e->csq != NULL) {
            slack = e->slack_eps * (e->xsq[i] + e->csq_max);
            d = best + e->xsq[i];
        } else {
            slack = e->slack_eps;
            d = best + (T)1;
        }
        const int near = (second - best) <= slack;
        e->labels[i] = label;
        e->dist[i] = d > 0 ? d : (T)0;
        e->near[i] = (uint8_t)near;
        flagged += near;
    }
    return flagged;
}

static void SUF(spmm_rows)(SUF(spmm_args) * a) {
    const int64_t k = a->k, vl = SUF(VL);
    for (int64_t g = a->row0; g < a->row1; g += SP_GROUP_ROWS) {
        const int64_t g1 = g + SP_GROUP_ROWS < a->row1 ? g + SP_GROUP_ROWS : a->row1;
        int64_t kb = 0;
        for (; kb + 8 * vl <= k; kb += 8 * vl)
            for (int64_t i = g; i < g1; i++)
                SUF(spmm_tile)(8, SUF(crow_at)(a->crow, a->idx64, i),
                               SUF(crow_at)(a->crow, a->idx64, i + 1), a->val, a->col, a->idx64,
                               a->ct, k, kb, a->out + i * k);
        const int nv = (int)((k - kb) / vl);
        for (int64_t i = g; i < g1; i++) {
            const int64_t p0 = SUF(crow_at)(a->crow, a->idx64, i);
            const int64_t p1 = SUF(crow_at)(a->crow, a->idx64, i + 1);
            T *o = a->out + i * k;
            switch (nv) { /* the whole vectors left, in one sweep of the row */
#define TK_TILE_CASE(NV)                                                                        \
    case NV:                                                                                    \
        SUF(spmm_tile)(NV, p0, p1, a->val, a->col, a->idx64, a->ct, k, kb, o);                  \
        break;
                TK_TILE_CASE(1)
                TK_TILE_CASE(2)
                TK_TILE_CASE(3)
                TK_TILE_CASE(4)
                TK_TILE_CASE(5)
                TK_TILE_CASE(6)
                TK_TILE_CASE(7)
#undef TK_TILE_CASE
                default:
                    break;
            }
            const int64_t kt = kb + nv * vl;
            if (kt < k) { /* fewer centers than a vector: one at a time */
                const int64_t rest = k - kt;
                T acc[32];
                for (int64_t t = 0; t < rest; t++) acc[t] = 0;
                for (int64_t p = p0; p < p1; p++) {
                    const int64_t j = a->idx64 ? ((const int64_t *)a->col)[p]
                                               : (int64_t)((const int32_t *)a->col)[p];
                    const T v = a->val[p];
                    const T *r = a->ct + j * k + kt;
                    for (int64_t t = 0; t < rest; t++) acc[t] += r[t] * v;
                }
                memcpy(o + kt, acc, (size_t)rest * sizeof(T));
            }
        }
        if (a->epi != NULL) a->near_count += SUF(sparse_assign_rows)(a->epi, g, g1, k, a->out);
    }
}

static void *SUF(spmm_worker)(void *p) {
    SUF(spmm_rows)((SUF(spmm_args) *)p);
    return NULL;
}

/* Rows [0, n) split between up to nthreads threads so that each gets about the same number of
 * stored values: thread t takes rows [bounds[t], bounds[t + 1]); returns the thread count. */
static int SUF(split_rows)(int64_t n, const void *crow, int idx64, int nthreads, int64_t *bounds) {
    const int64_t first = SUF(crow_at)(crow, idx64, 0);
    const int64_t total = SUF(crow_at)(crow, idx64, n) - first;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 64) nthreads = 64;
    if (total < 4096 * (int64_t)nthreads) nthreads = 1; /* too little work to share */
    int64_t row = 0;
    bounds[0] = 0;
    for (int t = 0; t < nthreads; t++) {
        /* the first row whose stored values start at or after this thread's share */
        int64_t stop = n;
        if (t + 1 < nthreads) {
            const int64_t target = first + total * (t + 1) / nthreads;
            int64_t lo = row, hi = n;
            while (lo < hi) {
                const int64_t mid = lo + (hi - lo) / 2;
                if (SUF(crow_at)(crow, idx64, mid) < target)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            stop = lo;
        }
        bounds[t + 1] = stop;
        row = stop;
    }
    return nthreads;
}

static int64_t SUF(spmm_run)(int64_t n, int64_t d, int64_t k, const void *crow, const void *col,
                             int idx64, const T *val, const T *ct, T *out,
                             const SUF(sparse_epilogue) * epi, int nthreads) {
    SUF(spmm_args) args[64];
    int64_t bounds[65];
    nthreads = SUF(split_rows)(n, crow, idx64, nthreads, bounds);
    for (int t = 0; t < nthreads; t++)
        args[t] = (SUF(spmm_args)){bounds[t], bounds[t + 1], k, d, crow, col, idx64, val, ct,
                                   out, epi, 0};
    tk_parallel(SUF(spmm_worker), args, sizeof(args[0]), nthreads);
    int64_t flagged = 0;
    for (int t = 0; t < nthreads; t++) flagged += args[t].near_count;
    return flagged;
}

/* out (n, k) = rows (n x d, CSR: crow, col, val) @ ct (d, k), on up to nthreads threads, the
 * rows split so that each thread gets about the same number of stored values. */
void SUF(tk_spmm)(int64_t n, int64_t d, int64_t k, const void *crow, const void *col, int idx64,
                  const T *val, const T *ct, T *out, int nthreads) {
    SUF(spmm_run)(n, d, k, crow, col, idx64, val, ct, out, NULL, nthreads);
}

/* The assignment of n CSR rows to k >= 1 centers (see the header): scores (n, k) are written,
 * labels, dist and near filled; returns the number of near rows. csq and xsq are NULL for unit
 * rows (cosine). */
int64_t SUF(tk_sparse_assign)(int64_t n, int64_t d, int64_t k, const void *crow, const void *col,
                              int idx64, const T *val, const T *ct, const T *csq, double csq_max,
                              const T *xsq, double slack_eps, T *scores, int64_t *labels,
                              T *dist, uint8_t *near, int nthreads) {
    const SUF(sparse_epilogue) epi = {csq, xsq, (T)csq_max, (T)slack_eps, labels, dist, near};
    return SUF(spmm_run)(n, d, k, crow, col, idx64, val, ct, scores, &epi, nthreads);
}

typedef struct {
    int64_t row0, row1;
    const void *crow;
    int idx64;
    const T *val, *div;
    T *out;
} SUF(divide_args);

static void *SUF(divide_worker)(void *p) {
    const SUF(divide_args) *a = (const SUF(divide_args) *)p;
    for (int64_t i = a->row0; i < a->row1; i++) {
        const int64_t p0 = SUF(crow_at)(a->crow, a->idx64, i);
        const int64_t p1 = SUF(crow_at)(a->crow, a->idx64, i + 1);
        const T q = a->div[i];
        for (int64_t p = p0; p < p1; p++) a->out[p] = a->val[p] / q;
    }
    return NULL;
}

/* out[p] = val[p] / div[i] for every stored value p of row i (out may not alias val). */
void SUF(tk_divide_rows)(int64_t n, const void *crow, int idx64, const T *val, const T *div,
                         T *out, int nthreads) {
    SUF(divide_args) args[64];
    int64_t bounds[65];
    nthreads = SUF(split_rows)(n, crow, idx64, nthreads, bounds);
    for (int t = 0; t < nthreads; t++)
        args[t] = (SUF(divide_args)){bounds[t], bounds[t + 1], crow, idx64, val, div, out};
    tk_parallel(SUF(divide_worker), args, sizeof(args[0]), nthreads);
}

typedef struct {
    int64_t n, d, k0, k1;
    const void *crow, *col;
    int idx64;
    const T *val, *w;
    const int64_t *labels;
    double *sums;
} SUF(sums_args);

/* v * w rounded to double before it is added (never fused into an FMA with the addition), as
 * torch multiplies, then adds. */
static inline double SUF(rounded_product)(T v, double w) {
    volatile double product = (double)v * w;
    return product;
}

/* The rows labelled in [k0, k1), in row order: each cluster's sums see the same additions in
 * the same order whatever the number of threads. */
static void *SUF(sums_worker)(void *p) {
    const SUF(sums_args) *a = (const SUF(sums_args) *)p;
    for (int64_t i = 0; i < a->n; i++) {
        const int64_t l = a->labels[i];
        if (l < a->k0 || l >= a->k1) continue;
        const int64_t p0 = SUF(crow_at)(a->crow, a->idx64, i);
        const int64_t p1 = SUF(crow_at)(a->crow, a->idx64, i + 1);
        double *s = a->sums + l * a->d;
        const double wi = a->w == NULL ? 1.0 : (double)a->w[i];
        if (a->idx64) {
            const int64_t *c = (const int64_t *)a->col;
            if (a->w == NULL)
                for (int64_t q = p0; q < p1; q++) s[c[q]] += (double)a->val[q];
            else
                for (int64_t q = p0; q < p1; q++) s[c[q]] += SUF(rounded_product)(a->val[q], wi);
        } else {
            const int32_t *c = (const int32_t *)a->col;
            if (a->w == NULL)
                for (int64_t q = p0; q < p1; q++) s[c[q]] += (double)a->val[q];
            else
                for (int64_t q = p0; q < p1; q++) s[c[q]] += SUF(rounded_product)(a->val[q], wi);
        }
    }
    return NULL;
}

/* sums (K, d, float64) += the rows, each times its weight (w may be NULL), in row order; the
 * clusters are split between up to nthreads threads. */
void SUF(tk_sparse_sums)(int64_t n, int64_t d, int64_t k, const void *crow, const void *col,
                         int idx64, const T *val, const T *w, const int64_t *labels,
                         double *sums, int nthreads) {
    SUF(sums_args) args[64];
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 64) nthreads = 64;
    if (nthreads > k) nthreads = (int)k;
    for (int t = 0; t < nthreads; t++)
        args[t] = (SUF(sums_args)){n, d, k * t / nthreads, k * (t + 1) / nthreads, crow, col,
                                   idx64, val, w, labels, sums};
    tk_parallel(SUF(sums_worker), args, sizeof(args[0]), nthreads);
}

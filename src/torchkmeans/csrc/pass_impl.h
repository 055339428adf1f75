/* The Lloyd pass (assignment, pruning, accumulation: tk_pass), per type: a template included
 * by lloyd_impl.h with T, SUF(name), T_EPS, TI and the AVX_* names defined. */

typedef struct {
    int64_t n, d, k;
    const T *x;
    int64_t ldx;
    const T *w;
    const T *shift;
    const T *c;    /* shifted centers (GEMM identity) */
    const T *craw; /* centers as given (exact distances) */
    const T *csq;
    T csq_max;
    const int64_t *prev;
    const T *gaps;
    const double *lower_in;
    double *lower_out;
    double drift;
    int64_t *labels;
    T *dist;
    double *sums, *weights, *counts, *inertia;
    /* per thread */
    int exact;
    int thread, nthreads;
    int64_t row0, row1;
    int64_t changed;
    /* fused accumulation: rows of global stripe s (rows [s B, (s + 1) B)) are summed into
     * partials + (s - stripe0) * k * (d + 3), each from zero, in row order */
    int64_t base_row, stripe, stripe0;
    double *partials;
} SUF(tk_args);

/* SIMD vectors of T and the matching integer lanes (GCC/Clang vector extensions, lowered to
 * whatever the target has). */
typedef T SUF(vec) __attribute__((vector_size(VBYTES)));
typedef TI SUF(ivec) __attribute__((vector_size(VBYTES)));
enum { SUF(VL) = VBYTES / sizeof(T) };

static inline SUF(vec) SUF(vload)(const T *p) {
    SUF(vec) v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* a < b ? a : b, a > b ? a : b and m ? a : b lane by lane: one instruction each on AVX. */
#if defined(__AVX__) && VBYTES == 32
static inline SUF(vec) SUF(vmin)(SUF(vec) a, SUF(vec) b) { return (SUF(vec))AVX_MIN(a, b); }
static inline SUF(vec) SUF(vmax)(SUF(vec) a, SUF(vec) b) { return (SUF(vec))AVX_MAX(a, b); }
static inline SUF(ivec) SUF(iblend)(SUF(ivec) m, SUF(ivec) a, SUF(ivec) b) {
    return (SUF(ivec))AVX_BLEND((AVX_VEC)b, (AVX_VEC)a, (AVX_VEC)m);
}
#else
static inline SUF(vec) SUF(vmin)(SUF(vec) a, SUF(vec) b) {
    const SUF(ivec) m = a < b;
    return (SUF(vec))((m & (SUF(ivec))a) | (~m & (SUF(ivec))b));
}
static inline SUF(vec) SUF(vmax)(SUF(vec) a, SUF(vec) b) {
    const SUF(ivec) m = a > b;
    return (SUF(vec))((m & (SUF(ivec))a) | (~m & (SUF(ivec))b));
}
static inline SUF(ivec) SUF(iblend)(SUF(ivec) m, SUF(ivec) a, SUF(ivec) b) {
    return (m & a) | (~m & b);
}
#endif

static inline SUF(ivec) SUF(iload)(const TI *p) {
    SUF(ivec) v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Score a group of g rows (g a multiple of VL * RV), held transposed (feature, row) in xt
 * with row stride ld,
 * against centers [k0, k1), updating each row's best score, its center and the second-best
 * score. Rows run along the SIMD lanes; centers are visited in increasing index, CT at a time,
 * and a center replaces the best only when strictly better, so ties keep the lowest index. */
static inline __attribute__((always_inline)) void SUF(score_block)(
    const SUF(tk_args) *a, const T *xt, int64_t ld, int64_t g, int64_t k0, int64_t k1, T *bv,
    TI *bi, T *sv, const int exact, const int64_t d) {
    const T *cen = exact ? a->craw : a->c;
    enum { VL = SUF(VL) };
    typedef SUF(vec) V;
    typedef SUF(ivec) I;
    for (int64_t r0 = 0; r0 < g; r0 += VL * RV) {
        V best[RV], second[RV];
        I idx[RV];
        for (int v = 0; v < RV; v++) {
            best[v] = SUF(vload)(bv + r0 + v * VL);
            second[v] = SUF(vload)(sv + r0 + v * VL);
            idx[v] = SUF(iload)(bi + r0 + v * VL);
        }
        int64_t k = k0;
        for (; k < k1; k += CT) {
            const int ct = k1 - k < CT ? (int)(k1 - k) : CT;
            V acc[CT][RV];
            for (int c = 0; c < CT; c++)
                for (int v = 0; v < RV; v++) acc[c][v] = (V){0};
            const T *cp[CT];
            for (int c = 0; c < CT; c++) cp[c] = cen + (k + (c < ct ? c : 0)) * d;
            for (int64_t j = 0; j < d; j++) {
                V xv[RV];
                for (int v = 0; v < RV; v++) xv[v] = SUF(vload)(xt + j * ld + r0 + v * VL);
                for (int c = 0; c < CT; c++) {
                    const T cj = cp[c][j];
                    for (int v = 0; v < RV; v++) {
                        if (exact) {
                            const V t = xv[v] - cj;
                            acc[c][v] += t * t;
                        } else {
                            acc[c][v] += xv[v] * cj;
                        }
                    }
                }
            }
            for (int c = 0; c < ct; c++) {
                const I kv = (I){0} + (TI)(k + c);
                const T off = exact ? (T)0 : a->csq[k + c];
                for (int v = 0; v < RV; v++) {
                    const V s = exact ? acc[c][v] : off - 2 * acc[c][v];
                    const V b = best[v];
                    /* second = min(second, max(s, best)); best = min(s, best) (strict: an
                     * equal score keeps the earlier center); idx follows best */
                    const I lt = s < b;
                    second[v] = SUF(vmin)(SUF(vmax)(s, b), second[v]);
                    best[v] = SUF(vmin)(s, b);
                    idx[v] = SUF(iblend)(lt, kv, idx[v]);
                }
            }
        }
        for (int v = 0; v < RV; v++) {
            memcpy(bv + r0 + v * VL, &best[v], sizeof(V));
            memcpy(sv + r0 + v * VL, &second[v], sizeof(V));
            memcpy(bi + r0 + v * VL, &idx[v], sizeof(I));
        }
    }
}

/* ||a - b||^2 (or ||a||^2 without b) with SIMD partial sums folded in a fixed order: the value
 * depends only on the vectors, never on where they sit. */
static inline __attribute__((always_inline)) T SUF(sqdiff)(const T *a, const T *b, int64_t d,
                                                           const int with_b) {
    enum { VL = SUF(VL) };
    typedef SUF(vec) V;
    T s = 0;
    int64_t j = 0;
    if (d >= 2 * VL) {
        V acc0 = (V){0}, acc1 = (V){0};
        for (; j + 2 * VL <= d; j += 2 * VL) {
            V t0 = SUF(vload)(a + j), t1 = SUF(vload)(a + j + VL);
            if (with_b) {
                t0 -= SUF(vload)(b + j);
                t1 -= SUF(vload)(b + j + VL);
            }
            acc0 += t0 * t0;
            acc1 += t1 * t1;
        }
        acc0 += acc1;
        T lanes[VL];
        memcpy(lanes, &acc0, sizeof(acc0));
        for (int l = 0; l < VL; l++) s += lanes[l];
    }
    for (; j < d; j++) {
        const T t = with_b ? a[j] - b[j] : a[j];
        s += t * t;
    }
    return s;
}

static inline T SUF(sqdist)(const T *a, const T *b, int64_t d) { return SUF(sqdiff)(a, b, d, 1); }

static inline T SUF(sqnorm)(const T *a, int64_t d) { return SUF(sqdiff)(a, a, d, 0); }

/* Add row i to the statistics s (weight, count, inertia, then d sums of the shifted row). */
static inline __attribute__((always_inline)) void SUF(add_row)(const SUF(tk_args) *a,
                                                               double *restrict s, int64_t i,
                                                               const int64_t d, int with_sums) {
    const T *sh = a->shift;
    const double wi = a->w ? (double)a->w[i] : 1.0;
    s[0] += wi;
    s[1] += wi > 0 ? 1.0 : 0.0;
    s[2] += a->w ? (double)a->dist[i] * wi : (double)a->dist[i];
    if (!with_sums) return;
    const T *restrict src = a->x + i * a->ldx;
    double *restrict sr = s + 3;
    if (a->w && sh) {
        for (int64_t j = 0; j < d; j++) sr[j] += (double)(T)(src[j] - sh[j]) * wi;
    } else if (a->w) {
        for (int64_t j = 0; j < d; j++) sr[j] += (double)src[j] * wi;
    } else if (sh) {
        for (int64_t j = 0; j < d; j++) sr[j] += (double)(T)(src[j] - sh[j]);
    } else {
        for (int64_t j = 0; j < d; j++) sr[j] += (double)src[j];
    }
}

/* Add rows [r0, r1) to their stripes' partial statistics (fused accumulation), in row order. */
static inline __attribute__((always_inline)) void SUF(add_to_stripes)(const SUF(tk_args) *a,
                                                                      int64_t r0, int64_t r1,
                                                                      const int64_t d) {
    const int64_t width = d + 3;
    for (int64_t i = r0; i < r1; i++) {
        const int64_t stripe = (a->base_row + i) / a->stripe - a->stripe0;
        double *restrict s = a->partials + (stripe * a->k + a->labels[i]) * width;
        SUF(add_row)(a, s, i, d, 1);
    }
}

/* The assignment of a thread's rows (inlined with a constant d for small dimensions). */
static inline __attribute__((always_inline)) void SUF(assign_rows)(SUF(tk_args) *a,
                                                                   const int64_t d) {
    enum { STEP = SUF(VL) * RV };
    int64_t gm = GROUP_BYTES / (int64_t)(d * sizeof(T));
    gm = gm / STEP * STEP;
    if (gm < STEP) gm = STEP;
    if (gm > 512) gm = 512;
    /* centers per sweep of a group: their coordinates stay in cache */
    int64_t kblock = CENTER_BYTES / (int64_t)(d * sizeof(T));
    if (kblock < CT) kblock = CT;
    T *xb = (T *)malloc((size_t)(gm * d) * sizeof(T));
    T *xt = (T *)malloc((size_t)(gm * d) * sizeof(T));
    T *bv = (T *)malloc((size_t)gm * sizeof(T));
    T *sv = (T *)malloc((size_t)gm * sizeof(T));
    TI *bi = (TI *)malloc((size_t)gm * sizeof(TI));
    int64_t *rows = (int64_t *)malloc((size_t)gm * sizeof(int64_t));
    if (!xb || !xt || !bv || !sv || !bi || !rows) {
        a->changed = -1;
        goto done;
    }
    const T eps = (T)(T_EPS * 4.0 * (d > 1 ? sqrt((double)d) : 1.0));
    const double up2 = (1.0 + TK_PRUNE_MARGIN) * (1.0 + TK_PRUNE_MARGIN);
    const T zero_shift[1] = {0};
    int64_t changed = 0;
    int64_t i = a->row0;
    while (i < a->row1) {
        /* gather the rows to score, transposed to (feature, row) with stride gm */
        const int64_t group_begin = i;
        int64_t g = 0;
        for (; i < a->row1 && g < gm; i++) {
            const T *src = a->x + i * a->ldx;
            if (a->gaps) {
                const int64_t q = a->prev[i];
                if (q >= 0) {
                    /* Hamerly: keep the label when the distance to the previous center is
                     * below the row's lower bound and the center's half gap */
                    const T e = SUF(sqdist)(src, a->craw + q * d, d);
                    const double lo = a->lower_in[i] - a->drift;
                    const double gp = (double)a->gaps[q];
                    const double m = lo > gp ? lo : gp;
                    if (m > 0 && (double)e * up2 < m * m) {
                        if (a->labels != a->prev) a->labels[i] = q;
                        a->dist[i] = e;
                        continue;
                    }
                }
            }
            /* exact scoring reads rows as given; the GEMM identity reads them shifted */
            const T *sh = a->shift && !a->exact ? a->shift : zero_shift;
            const int64_t shs = a->shift && !a->exact ? 1 : 0;
            for (int64_t j = 0; j < d; j++) xt[j * gm + g] = src[j] - sh[j * shs];
            if (!a->exact)
                for (int64_t j = 0; j < d; j++) xb[g * d + j] = src[j] - sh[j * shs];
            rows[g++] = i;
        }
        if (g == 0) {
            if (a->partials) SUF(add_to_stripes)(a, group_begin, i, d);
            continue;
        }
        const int64_t gp = (g + STEP - 1) / STEP * STEP;
        for (int64_t j = 0; j < d; j++)
            for (int64_t r = g; r < gp; r++) xt[j * gm + r] = xt[j * gm];
        for (int64_t r = 0; r < gp; r++) {
            bv[r] = (T)INFINITY;
            sv[r] = (T)INFINITY;
            bi[r] = 0;
        }
        for (int64_t k0 = 0; k0 < a->k; k0 += kblock) {
            const int64_t k1 = k0 + kblock < a->k ? k0 + kblock : a->k;
            if (a->exact)
                SUF(score_block)(a, xt, gm, gp, k0, k1, bv, bi, sv, 1, d);
            else
                SUF(score_block)(a, xt, gm, gp, k0, k1, bv, bi, sv, 0, d);
        }
        if (a->exact) {
            /* scores are exact distances: the second bounds the others (vectorized roots) */
            for (int64_t r = 0; r < g; r++) sv[r] = (T)sqrt(sv[r]);
            for (int64_t r = 0; r < g; r++) {
                const int64_t row = rows[r];
                int64_t k = (int64_t)bi[r];
                if (k < 0 || k >= a->k) k = 0;
                if (a->prev) changed += a->prev[row] != k;
                a->labels[row] = k;
                /* the distance recomputed by the function the pruned rows use, so a pruned
                 * pass gives the same values, bit for bit, as a full one */
                a->dist[row] = SUF(sqdist)(a->x + row * a->ldx, a->craw + k * d, d);
                if (a->lower_out) a->lower_out[row] = (double)sv[r] * (1.0 - TK_PRUNE_MARGIN) + a->drift;
            }
            if (a->partials) SUF(add_to_stripes)(a, group_begin, i, d);
            continue;
        }
        for (int64_t r = 0; r < g; r++) {
            const T *xs = xb + r * d;
            const int64_t row = rows[r];
            const T *src = a->x + row * a->ldx;
            const T best = bv[r], second = sv[r];
            int64_t k = (int64_t)bi[r];
            if (k < 0 || k >= a->k) k = 0;
            double lower;
            const T x_sq = SUF(sqnorm)(xs, d);
            const T slack = eps * (x_sq + a->csq_max);
            if (second - best <= slack) {
                /* near tie: decide from exact distances, lowest index first */
                T be = (T)INFINITY;
                for (int64_t kk = 0; kk < a->k; kk++) {
                    const T e = SUF(sqdist)(src, a->craw + kk * d, d);
                    if (e < be) {
                        be = e;
                        k = kk;
                    }
                }
                lower = 0.0;
            } else {
                const T low = second + x_sq - 2 * slack;
                lower = low > 0 ? sqrt((double)low) : 0.0;
            }
            if (a->prev) changed += a->prev[row] != k;
            a->labels[row] = k;
            a->dist[row] = SUF(sqdist)(src, a->craw + k * d, d);
            if (a->lower_out) a->lower_out[row] = lower * (1.0 - TK_PRUNE_MARGIN) + a->drift;
        }
        if (a->partials) SUF(add_to_stripes)(a, group_begin, i, d);
    }
    a->changed = changed;
done:
    free(xb);
    free(xt);
    free(bv);
    free(sv);
    free(bi);
    free(rows);
}

static void *SUF(assign_worker)(void *arg) {
    SUF(tk_args) *a = (SUF(tk_args) *)arg;
    switch (a->d) {
    case 1: SUF(assign_rows)(a, 1); break;
    case 2: SUF(assign_rows)(a, 2); break;
    case 3: SUF(assign_rows)(a, 3); break;
    case 4: SUF(assign_rows)(a, 4); break;
    case 8: SUF(assign_rows)(a, 8); break;
    default: SUF(assign_rows)(a, a->d); break;
    }
    return NULL;
}

/* The row loop of accumulate_worker (inlined with a constant d for small dimensions). */
static inline __attribute__((always_inline)) void SUF(accumulate_rows)(
    const SUF(tk_args) *a, double *acc, int64_t k0, int64_t nk, int64_t width, const int64_t d) {
    const int branchless = d <= ACC_SCRATCH_D;
    for (int64_t i = 0; i < a->n; i++) {
        const int64_t q = a->labels[i] - k0;
        const int own = q >= 0 && q < nk;
        if (!own && !branchless) continue;
        double *restrict s = acc + (own ? q : nk) * width;
        SUF(add_row)(a, s, i, d, a->sums != NULL);
    }
}

/* Sums of the rows of the clusters this thread owns (a contiguous range), in row order, kept
 * in a private copy (no cache line shared between threads) that starts from, and is written
 * back to, the running totals, so the order of additions is that of one sequential pass. */
static void *SUF(accumulate_worker)(void *arg) {
    SUF(tk_args) *a = (SUF(tk_args) *)arg;
    const int64_t d = a->d;
    const int64_t k0 = a->k * a->thread / a->nthreads, k1 = a->k * (a->thread + 1) / a->nthreads;
    const int64_t nk = k1 - k0, width = 3 + (a->sums ? d : 0);
    /* one extra slot: rows of other clusters go there when d is small (no branch per row) */
    double *acc = (double *)malloc((size_t)((nk + 1) * width) * sizeof(double));
    if (!acc) {
        a->changed = -1;
        return NULL;
    }
    for (int64_t q = 0; q < nk; q++) {
        double *s = acc + q * width;
        s[0] = a->weights[k0 + q];
        s[1] = a->counts[k0 + q];
        s[2] = a->inertia[k0 + q];
        if (a->sums) memcpy(s + 3, a->sums + (k0 + q) * d, (size_t)d * sizeof(double));
    }
    memset(acc + nk * width, 0, (size_t)width * sizeof(double));
    /* small dimensions: the row loop compiled for each d (unrolled, no per-row loop setup) */
    switch (a->sums ? d : 0) {
    case 1: SUF(accumulate_rows)(a, acc, k0, nk, width, 1); break;
    case 2: SUF(accumulate_rows)(a, acc, k0, nk, width, 2); break;
    case 3: SUF(accumulate_rows)(a, acc, k0, nk, width, 3); break;
    case 4: SUF(accumulate_rows)(a, acc, k0, nk, width, 4); break;
    case 8: SUF(accumulate_rows)(a, acc, k0, nk, width, 8); break;
    default: SUF(accumulate_rows)(a, acc, k0, nk, width, d); break;
    }
    for (int64_t q = 0; q < nk; q++) {
        const double *s = acc + q * width;
        a->weights[k0 + q] = s[0];
        a->counts[k0 + q] = s[1];
        a->inertia[k0 + q] = s[2];
        if (a->sums) memcpy(a->sums + (k0 + q) * d, s + 3, (size_t)d * sizeof(double));
    }
    free(acc);
    return NULL;
}

/* Fold the stripes' partials into the running totals, stripe after stripe, for the clusters
 * this thread owns (a contiguous range). */
static void *SUF(merge_worker)(void *arg) {
    SUF(tk_args) *a = (SUF(tk_args) *)arg;
    const int64_t d = a->d, width = d + 3, nst = a->row1; /* row1: the number of stripes */
    const int64_t k0 = a->k * a->thread / a->nthreads, k1 = a->k * (a->thread + 1) / a->nthreads;
    for (int64_t st = 0; st < nst; st++) {
        for (int64_t q = k0; q < k1; q++) {
            const double *p = a->partials + (st * a->k + q) * width;
            a->weights[q] += p[0];
            a->counts[q] += p[1];
            a->inertia[q] += p[2];
            double *restrict sq = a->sums + q * d;
            for (int64_t j = 0; j < d; j++) sq[j] += p[3 + j];
        }
    }
    return NULL;
}

/* One pass over n rows: labels, exact distances, optional bounds, and per-cluster statistics
 * added to sums (may be NULL), weights, counts and inertia. Returns the number of rows whose
 * label differs from prev (0 without prev), or -1 when memory ran out. */
int64_t SUF(tk_pass)(int64_t n, int64_t d, int64_t k, const T *x, int64_t ldx, const T *w,
                     const T *shift, const T *c, const T *craw, const T *csq, double csq_max, int exact, const int64_t *prev, const T *gaps,
                     double *lower, double drift, int64_t *labels, T *dist, double *sums,
                     double *weights, double *counts, double *inertia, int assign_threads,
                     int sum_threads, int64_t base_row, int64_t stripe) {
    SUF(tk_args) base;
    memset(&base, 0, sizeof(base));
    base.n = n;
    base.d = d;
    base.k = k;
    base.x = x;
    base.ldx = ldx;
    base.w = w;
    base.shift = shift;
    base.c = c;
    base.craw = craw;
    base.csq = csq;
    base.csq_max = (T)csq_max;
    base.exact = exact;
    base.prev = prev;
    base.gaps = gaps;
    base.lower_in = lower;
    base.lower_out = lower;
    base.drift = drift;
    base.labels = labels;
    base.dist = dist;
    base.sums = sums;
    base.weights = weights;
    base.counts = counts;
    base.inertia = inertia;
    int nt = assign_threads < 1 ? 1 : (assign_threads > 64 ? 64 : assign_threads);
    if (n < nt) nt = n > 0 ? (int)n : 1;
    SUF(tk_args) args[64];
    if (sums && stripe > 0 && n > 0) {
        /* fused: statistics are summed per stripe of global rows while the rows are in cache,
         * then folded stripe after stripe: the same order whatever the threads or calls */
        const int64_t s0 = base_row / stripe, s1 = (base_row + n - 1) / stripe;
        const int64_t nst = s1 - s0 + 1;
        double *partials = (double *)calloc((size_t)(nst * k * (d + 3)), sizeof(double));
        if (!partials) return -1;
        if (nst < nt) nt = (int)nst;
        for (int t = 0; t < nt; t++) {
            /* thread t takes whole stripes */
            const int64_t a0 = nst * t / nt, a1 = nst * (t + 1) / nt;
            const int64_t r0 = (s0 + a0) * stripe - base_row, r1 = (s0 + a1) * stripe - base_row;
            args[t] = base;
            args[t].thread = t;
            args[t].nthreads = nt;
            args[t].row0 = r0 < 0 ? 0 : r0;
            args[t].row1 = r1 > n ? n : r1;
            args[t].base_row = base_row;
            args[t].stripe = stripe;
            args[t].stripe0 = s0;
            args[t].partials = partials;
        }
        tk_parallel(SUF(assign_worker), args, sizeof(args[0]), nt);
        int64_t changed = 0;
        int failed = 0;
        for (int t = 0; t < nt; t++) {
            if (args[t].changed < 0) failed = 1;
            changed += args[t].changed;
        }
        int st = sum_threads < 1 ? 1 : (sum_threads > 64 ? 64 : sum_threads);
        if (k < st) st = (int)k;
        for (int t = 0; t < st && !failed; t++) {
            args[t] = base;
            args[t].thread = t;
            args[t].nthreads = st;
            args[t].row1 = nst;
            args[t].partials = partials;
        }
        if (!failed) tk_parallel(SUF(merge_worker), args, sizeof(args[0]), st);
        free(partials);
        return failed ? -1 : changed;
    }
    for (int t = 0; t < nt; t++) {
        args[t] = base;
        args[t].thread = t;
        args[t].nthreads = nt;
        args[t].row0 = n * t / nt;
        args[t].row1 = n * (t + 1) / nt;
    }
    tk_parallel(SUF(assign_worker), args, sizeof(args[0]), nt);
    int64_t changed = 0;
    for (int t = 0; t < nt; t++) {
        if (args[t].changed < 0) return -1;
        changed += args[t].changed;
    }
    int st = sum_threads < 1 ? 1 : (sum_threads > 64 ? 64 : sum_threads);
    if (k < st) st = (int)k;
    for (int t = 0; t < st; t++) {
        args[t] = base;
        args[t].thread = t;
        args[t].nthreads = st;
    }
    tk_parallel(SUF(accumulate_worker), args, sizeof(args[0]), st);
    for (int t = 0; t < st; t++)
        if (args[t].changed < 0) return -1;
    return changed;
}

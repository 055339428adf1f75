/* The passes over the data outside Lloyd iterations (data moments for the tolerance, the
 * canonical row order and greedy k-means++: tk_moments, tk_order, tk_kpp, tk_kpp_all), per
 * type: a template included by lloyd_impl.h after loop_impl.h. */

/* ---- data moments ---------------------------------------------------------------------- */

/* Weighted sums about the point first, in float64 and in row order: total += w,
 * s1 += w (x - first), s2 += w (x - first)^2 (w = 1 without weights). Added to the running
 * values, so calls over consecutive blocks make one sequential pass. */
void SUF(tk_moments)(int64_t n, int64_t d, const T *x, int64_t ldx, const T *w,
                     const double *first, double *s1, double *s2, double *total) {
    double t = *total;
    for (int64_t i = 0; i < n; i++) {
        const T *row = x + i * ldx;
        if (w) {
            const double wi = (double)w[i];
            t += wi;
            for (int64_t j = 0; j < d; j++) {
                const double y = (double)row[j] - first[j];
                s1[j] += y * wi;
                s2[j] += y * y * wi;
            }
        } else {
            t += 1.0;
            for (int64_t j = 0; j < d; j++) {
                const double y = (double)row[j] - first[j];
                s1[j] += y;
                s2[j] += y * y;
            }
        }
    }
    *total = t;
}

/* ---- canonical order --------------------------------------------------------------------- */

/* The canonical order of the rows (see _init.py): sorted by their dot product with dir
 * (float64, features in order), ties by index, by a stable LSD radix sort of the keys' bit
 * patterns (mapped so that unsigned order is numeric order; -0.0 counts as 0.0). Returns 0, or
 * -1 when memory ran out. */
int SUF(tk_order)(int64_t n, int64_t d, const T *x, int64_t ldx, const double *dir,
                  int64_t *order) {
    if (n <= 0) return 0;
    uint64_t *key = (uint64_t *)malloc((size_t)n * sizeof(uint64_t));
    uint64_t *key2 = (uint64_t *)malloc((size_t)n * sizeof(uint64_t));
    int64_t *order2 = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    int status = -1;
    if (!key || !key2 || !order2) goto done;
    for (int64_t i = 0; i < n; i++) {
        const T *row = x + i * ldx;
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += (double)row[j] * dir[j];
        if (s == 0) s = 0.0;
        uint64_t b;
        memcpy(&b, &s, sizeof(b));
        key[i] = (b >> 63) ? ~b : (b | 0x8000000000000000ULL);
        order[i] = i;
    }
    int64_t *src_order = order, *dst_order = order2;
    for (int shift = 0; shift < 64; shift += 8) {
        int64_t count[256];
        memset(count, 0, sizeof(count));
        for (int64_t i = 0; i < n; i++) count[(key[i] >> shift) & 255]++;
        if (n > 0 && count[(key[0] >> shift) & 255] == n) continue; /* one digit: no move */
        int64_t at = 0;
        for (int b = 0; b < 256; b++) {
            const int64_t c = count[b];
            count[b] = at;
            at += c;
        }
        for (int64_t i = 0; i < n; i++) {
            const int64_t p = count[(key[i] >> shift) & 255]++;
            key2[p] = key[i];
            dst_order[p] = src_order[i];
        }
        uint64_t *tk = key;
        key = key2;
        key2 = tk;
        int64_t *to = src_order;
        src_order = dst_order;
        dst_order = to;
    }
    if (src_order != order) memcpy(order, src_order, (size_t)n * sizeof(int64_t));
    status = 0;
done:
    free(key);
    free(key2);
    free(order2); /* (the pointers were swapped, the buffers stay ours and the caller's) */
    return status;
}

/* ---- k-means++ ------------------------------------------------------------------------- */

typedef struct {
    int64_t d, m, kc, new_id;
    const T *x;
    int64_t ldx;
    const T *w;
    const T *cand;
    const double *cc; /* (m, kc) squared distances candidate -> chosen center, with margin */
    double *closest;
    int64_t *assign;
    int mode;
    int64_t row0, row1;
    double *gain; /* (stripes, m): gains of each stripe of TK_STRIPE_ROWS rows */
    const int64_t *pos; /* with mass: each row's canonical position */
    double *mass;       /* w_i closest_i by canonical position, kept up to date (or NULL) */
} SUF(kpp_args);

/* Row i's closest distance changed to cl: its mass at its canonical position follows. */
static inline void SUF(kpp_mass)(const SUF(kpp_args) *a, int64_t i, double cl) {
    if (a->mass) a->mass[a->pos[i]] = a->w ? cl * (double)a->w[i] : cl;
}

static void *SUF(kpp_worker)(void *arg) {
    SUF(kpp_args) *a = (SUF(kpp_args) *)arg;
    const int64_t d = a->d, m = a->m, kc = a->kc;
    for (int64_t i = a->row0; i < a->row1; i++) {
        const T *xr = a->x + i * a->ldx;
        if (a->mode == 2) {
            a->closest[i] = (double)SUF(sqdist)(xr, a->cand, d);
            a->assign[i] = a->new_id;
            SUF(kpp_mass)(a, i, a->closest[i]);
            continue;
        }
        const double cl = a->closest[i];
        const double *cc = a->cc + a->assign[i];
        if (a->mode == 1) {
            if (cc[0] >= cl) continue;
            const double dd = (double)SUF(sqdist)(xr, a->cand, d);
            if (dd < cl) {
                a->closest[i] = dd;
                a->assign[i] = a->new_id;
                SUF(kpp_mass)(a, i, dd);
            }
            continue;
        }
        const double wi = a->w ? (double)a->w[i] : 1.0;
        for (int64_t j = 0; j < m; j++) {
            /* triangle inequality: a candidate at least 2 sqrt(cl) from the row's center is
             * at least sqrt(cl) from the row */
            if (cc[j * kc] >= cl) continue;
            const double dd = (double)SUF(sqdist)(xr, a->cand + j * d, d);
            if (dd < cl) a->gain[(i / TK_STRIPE_ROWS) * m + j] += wi * (cl - dd);
        }
    }
    return NULL;
}

/* One step of greedy k-means++ over n rows, given each row's squared distance to its closest
 * chosen center (closest) and that center's index (assign):
 *   mode 0: gain[j] = sum_i w_i max(0, closest_i - ||x_i - cand_j||^2) for the m candidates;
 *   mode 1: add cand (one row) as center new_id: closest and assign updated in place;
 *   mode 2: the first center: closest_i = ||x_i - cand||^2, assign_i = new_id.
 * centers (kc rows) are the chosen centers, for the triangle-inequality pruning. With pos and
 * mass, mass[pos[i]] = w_i closest_i follows every change of closest. Returns 0, or -1 when
 * memory ran out. */
static int SUF(kpp_step)(int64_t n, int64_t d, const T *x, int64_t ldx, const T *w,
                         const T *cand, int64_t m, const T *centers, int64_t kc, double *closest,
                         int64_t *assign, int64_t new_id, int mode, double *gain, int nthreads,
                         const int64_t *pos, double *mass) {
    double *cc = NULL;
    if (mode != 2) {
        cc = (double *)malloc((size_t)(m * kc) * sizeof(double));
        if (!cc) return -1;
        /* skip threshold: 4 (1 + margin) ||cand - center||^2 >= closest, margin for rounding */
        for (int64_t j = 0; j < m; j++)
            for (int64_t q = 0; q < kc; q++)
                cc[j * kc + q] =
                    (double)SUF(sqdist)(cand + j * d, centers + q * d, d) * 0.25 * (1.0 - 1e-3);
    }
    /* gains are summed per stripe of rows, then stripe after stripe: the same value whatever
     * the number of threads; threads take whole stripes */
    const int64_t nst = n > 0 ? (n + TK_STRIPE_ROWS - 1) / TK_STRIPE_ROWS : 1;
    int nt = nthreads < 1 ? 1 : (nthreads > 64 ? 64 : nthreads);
    if (nst < nt) nt = (int)nst;
    double *gains = (double *)calloc((size_t)(nst * (m > 0 ? m : 1)), sizeof(double));
    if (!gains) {
        free(cc);
        return -1;
    }
    const SUF(kpp_args) base = {.d = d, .m = m, .kc = kc, .new_id = new_id, .x = x, .ldx = ldx,
                                .w = w, .cand = cand, .cc = cc, .closest = closest,
                                .assign = assign, .mode = mode, .gain = gains, .pos = pos,
                                .mass = mass};
    SUF(kpp_args) args[64];
    for (int t = 0; t < nt; t++) {
        const int64_t r0 = nst * t / nt * TK_STRIPE_ROWS, r1 = nst * (t + 1) / nt * TK_STRIPE_ROWS;
        args[t] = base;
        args[t].row0 = r0 < n ? r0 : n;
        args[t].row1 = r1 < n ? r1 : n;
    }
    tk_parallel(SUF(kpp_worker), args, sizeof(args[0]), nt);
    if (mode == 0)
        for (int64_t j = 0; j < m; j++) {
            double s = 0;
            for (int64_t st = 0; st < nst; st++) s += gains[st * m + j];
            gain[j] = s;
        }
    free(gains);
    free(cc);
    return 0;
}

int SUF(tk_kpp)(int64_t n, int64_t d, const T *x, int64_t ldx, const T *w, const T *cand,
                int64_t m, const T *centers, int64_t kc, double *closest, int64_t *assign,
                int64_t new_id, int mode, double *gain, int nthreads) {
    return SUF(kpp_step)(n, d, x, ldx, w, cand, m, centers, kc, closest, assign, new_id, mode,
                         gain, nthreads, NULL, NULL);
}

/* Inverse-CDF draw: the first index whose cumulative mass exceeds u * total (the last index
 * when rounding puts the target at the total). */
static int64_t SUF(draw)(const double *cumulative, int64_t n, double u) {
    const double target = u * cumulative[n - 1];
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (cumulative[mid] > target)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < n ? lo : n - 1;
}

/* Cumulative weights in canonical order (1, 2, 3, ... without weights). */
static void SUF(by_weight)(int64_t n, const T *w, const int64_t *order, double *cumulative) {
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        total += w ? (double)w[order[i]] : 1.0;
        cumulative[i] = w ? total : (double)(i + 1);
    }
}

/* Greedy k-means++ in one call: the steps of tk_kpp driven by the draws of the Python loop it
 * replaces (_init.py). order is the canonical order of the rows (cumulative masses run over
 * it), u holds the 1 + (k - 1) t uniform draws in [0, 1) in the order they are used. A center
 * is the candidate of lowest potential, the first drawn within a relative rtol of it. When
 * every row of positive weight sits on a center, candidates are drawn by weight alone.
 * Writes k centers and their row indices. Returns 0, or -1 when memory ran out. */
int SUF(tk_kpp_all)(int64_t n, int64_t d, const T *x, int64_t ldx, const T *w,
                    const int64_t *order, const double *u, int64_t k, int64_t t, T *centers,
                    int64_t *indices, double rtol, int nthreads, int64_t thread_work) {
    double *closest = (double *)malloc((size_t)n * sizeof(double));
    double *cumulative = (double *)malloc((size_t)n * sizeof(double));
    double *mass = (double *)malloc((size_t)n * sizeof(double));
    int64_t *pos = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    int64_t *assign = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    double *gain = (double *)malloc((size_t)(t > 0 ? t : 1) * sizeof(double));
    T *cand = (T *)malloc((size_t)((t > 0 ? t : 1) * d) * sizeof(T));
    int64_t *cand_index = (int64_t *)malloc((size_t)(t > 0 ? t : 1) * sizeof(int64_t));
    int status = -1;
    if (!closest || !cumulative || !mass || !pos || !assign || !gain || !cand || !cand_index)
        goto done;
    /* the masses w_i closest_i are kept by canonical position (pos: the inverse of order), so
     * the cumulative sums read them in sequence; a step rewrites only the rows it changes */
    for (int64_t i = 0; i < n; i++) pos[order[i]] = i;
    const int one = 1;
    SUF(by_weight)(n, w, order, cumulative);
    int64_t first = order[SUF(draw)(cumulative, n, u[0])];
    memcpy(centers, x + first * ldx, (size_t)d * sizeof(T));
    indices[0] = first;
    int many = n * d >= thread_work ? nthreads : one;
    if (SUF(kpp_step)(n, d, x, ldx, w, centers, 1, centers, 0, closest, assign, 0, 2, gain, many,
                      pos, mass))
        goto done;
    for (int64_t c = 1; c < k; c++) {
        double total = 0;
        for (int64_t i = 0; i < n; i++) {
            total += mass[i];
            cumulative[i] = total;
        }
        const double *draws = u + 1 + (c - 1) * t;
        /* every row of positive weight on a center: draw by weight alone */
        if (!(total > 0)) SUF(by_weight)(n, w, order, cumulative);
        const double *cdf = cumulative;
        for (int64_t j = 0; j < t; j++) {
            cand_index[j] = order[SUF(draw)(cdf, n, draws[j])];
            memcpy(cand + j * d, x + cand_index[j] * ldx, (size_t)d * sizeof(T));
        }
        many = n * d * t >= thread_work ? nthreads : one;
        if (SUF(kpp_step)(n, d, x, ldx, w, cand, t, centers, c, closest, assign, 0, 0, gain, many,
                          NULL, NULL))
            goto done;
        double low = INFINITY;
        for (int64_t j = 0; j < t; j++)
            if (total - gain[j] < low) low = total - gain[j];
        int64_t best = 0;
        while (best < t - 1 && !(total - gain[best] <= low + rtol * fabs(low))) best++;
        many = n * d >= thread_work ? nthreads : one;
        if (SUF(kpp_step)(n, d, x, ldx, w, cand + best * d, 1, centers, c, closest, assign, c, 1,
                          gain, many, pos, mass))
            goto done;
        memcpy(centers + c * d, cand + best * d, (size_t)d * sizeof(T));
        indices[c] = cand_index[best];
    }
    status = 0;
done:
    free(closest);
    free(cumulative);
    free(mass);
    free(pos);
    free(assign);
    free(gain);
    free(cand);
    free(cand_index);
    return status;
}

/* the template's parameters, for the next inclusion */

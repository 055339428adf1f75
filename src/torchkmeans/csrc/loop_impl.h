/* The Lloyd loop around the pass (tk_prepare, tk_gaps, tk_update, tk_lloyd), per type: a
 * template included by lloyd_impl.h after pass_impl.h. */

/* ---- the Lloyd loop --------------------------------------------------------------------- */

/* The layout of centers for a pass: shift = their mean (summed in float64, in center order),
 * c = centers - shift and csq = ||c||^2. Returns the largest csq. */
double SUF(tk_prepare)(int64_t k, int64_t d, const T *centers, T *shift, T *c, T *csq) {
    for (int64_t j = 0; j < d; j++) {
        double s = 0;
        for (int64_t q = 0; q < k; q++) s += (double)centers[q * d + j];
        shift[j] = (T)(s / (double)k);
    }
    double top = 0;
    for (int64_t q = 0; q < k; q++) {
        for (int64_t j = 0; j < d; j++) c[q * d + j] = centers[q * d + j] - shift[j];
        csq[q] = SUF(sqnorm)(c + q * d, d);
        if ((double)csq[q] > top) top = (double)csq[q];
    }
    return top;
}

/* Half the distance from each center to its nearest other center (Hamerly's s), as a bound
 * that never exceeds the true value: one assignment pass with the centers as rows, whose lower
 * bound on the distance to every center but the nearest (the center itself, at distance zero,
 * or a duplicate of it) is the gap. c, csq and csq_max as tk_prepare gives them. Returns 0, or
 * -1 when memory ran out. */
int SUF(tk_gaps)(int64_t k, int64_t d, const T *centers, const T *shift, const T *c,
                 const T *csq, double csq_max, int exact, T *gaps, int nthreads) {
    double *scratch = (double *)malloc((size_t)(4 * k) * sizeof(double));
    int64_t *labels = (int64_t *)malloc((size_t)k * sizeof(int64_t));
    T *dist = (T *)malloc((size_t)k * sizeof(T));
    int status = -1;
    if (scratch && labels && dist) {
        double *lower = scratch, *stats = scratch + k;
        memset(stats, 0, (size_t)(3 * k) * sizeof(double));
        if (SUF(tk_pass)(k, d, k, centers, d, NULL, shift, c, centers, csq, csq_max, exact,
                         NULL, NULL, lower, 0.0, labels, dist, NULL, stats, stats + k,
                         stats + 2 * k, nthreads, 1, 0, 0) >= 0) {
            for (int64_t q = 0; q < k; q++)
                gaps[q] = k > 1 ? (T)(lower[q] * 0.5 * (1.0 - 4.0 * T_EPS)) : (T)INFINITY;
            status = 0;
        }
    }
    free(scratch);
    free(labels);
    free(dist);
    return status;
}

/* The update step: fresh = weighted means of the statistics, shifted back (a cluster without
 * rows or weight, or whose mean is not finite, keeps its center). out[0]: the squared center
 * shift summed over centers, out[1]: the largest squared shift of one center, out[2]: the
 * inertia summed over clusters. */
void SUF(tk_update)(int64_t k, int64_t d, const double *sums, const double *weights,
                    const double *counts, const double *inertia, const T *shift,
                    const T *centers, T *fresh, double *out) {
    double largest = 0, shift2 = 0, total = 0;
    for (int64_t q = 0; q < k; q++) {
        T *nq = fresh + q * d;
        const T *oq = centers + q * d;
        int keep = !(counts[q] > 0 && weights[q] > 0);
        for (int64_t j = 0; j < d && !keep; j++) {
            nq[j] = (T)(sums[q * d + j] / weights[q]) + shift[j];
            if (!isfinite(nq[j])) keep = 1;
        }
        if (keep) memcpy(nq, oq, (size_t)d * sizeof(T));
        double s = 0;
        for (int64_t j = 0; j < d; j++) {
            const double t = (double)(T)(nq[j] - oq[j]);
            s += t * t;
        }
        shift2 += s;
        if (s > largest) largest = s;
    }
    for (int64_t q = 0; q < k; q++) total += inertia[q];
    out[0] = shift2;
    out[1] = largest;
    out[2] = total;
}

static double SUF(seconds)(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Lloyd iterations over n rows held in memory, the whole loop in one call (small problems,
 * where a call per pass would cost more than the pass).
 *
 * mode 0: up to iters iterations from centers (updated in place); mode 1: the same, but the
 * first iteration's pass was done by an earlier call that stopped with status 2 (its
 * statistics are in sums..inertia, its changed count in given_changed, and given_relocated
 * clusters were refilled since); mode 2: one assignment pass, no update (weights, counts,
 * inertia and labels only). An iteration is: the pass (pruned with Hamerly's bounds when lower
 * is given and *bounds_valid), the weighted means (a cluster without rows or weight, or with a
 * mean that is not finite, keeps its center), the drift of the bounds, and the stop rule:
 * no label changed and nothing refilled, or squared center shift <= tol. hist gets 5 values
 * per completed iteration: inertia, center shift, changed, relocated, seconds.
 *
 * *status: 0 iters iterations done; 1 stopped by the rule; 2 the pass of the next iteration left
 * a cluster empty (statistics, labels and distances of that pass kept, centers unchanged, the
 * changed count in hist of that iteration). Returns the iterations completed, -1 when memory
 * ran out. */
int64_t SUF(tk_lloyd)(int64_t n, int64_t d, int64_t k, const T *x, int64_t ldx, const T *w,
                      T *centers, int64_t *labels, T *dist, double *lower, double *drift,
                      int64_t *bounds_valid, int exact, int assign_threads, int sum_threads,
                      int64_t stripe, int mode, int64_t iters, double tol, int64_t given_changed,
                      int64_t given_relocated, double *sums, double *weights, double *counts,
                      double *inertia, double *hist, int64_t *status) {
    T *buf = (T *)malloc((size_t)(d + 2 * k * d + 2 * k) * sizeof(T));
    if (!buf) return -1;
    T *shift = buf, *c = shift + d, *fresh = c + k * d, *csq = fresh + k * d, *gaps = csq + k;
    int64_t done = 0;
    *status = TK_STATUS_RAN;
    if (mode == TK_MODE_ASSIGN) iters = 1;
    while (done < iters) {
        const double t0 = SUF(seconds)();
        const double csq_max = SUF(tk_prepare)(k, d, centers, shift, c, csq);
        /* (finishing: the pass was done, no gaps needed) */
        const int prune = lower && *bounds_valid && mode != TK_MODE_FINISH;
        if (prune && SUF(tk_gaps)(k, d, centers, shift, c, csq, csq_max, exact, gaps, 1) != 0) {
            done = -1;
            break;
        }
        int64_t changed = given_changed, relocated = given_relocated;
        if (mode != TK_MODE_FINISH) {
            memset(weights, 0, (size_t)k * sizeof(double));
            memset(counts, 0, (size_t)k * sizeof(double));
            memset(inertia, 0, (size_t)k * sizeof(double));
            if (mode == TK_MODE_ITERATE) memset(sums, 0, (size_t)(k * d) * sizeof(double));
            changed = SUF(tk_pass)(n, d, k, x, ldx, w, shift, c, centers, csq, csq_max, exact,
                                   labels, prune ? gaps : NULL, lower, *drift, labels, dist,
                                   mode == TK_MODE_ITERATE ? sums : NULL, weights, counts, inertia,
                                   assign_threads, sum_threads, 0, mode == TK_MODE_ITERATE ? stripe : 0);
            if (changed < 0) {
                done = -1;
                break;
            }
            if (lower) *bounds_valid = 1;
            if (!w) memcpy(counts, weights, (size_t)k * sizeof(double));
            if (mode == TK_MODE_ASSIGN) {
                hist[2] = (double)changed;
                break;
            }
            relocated = 0;
            int64_t empty = 0;
            for (int64_t q = 0; q < k; q++) empty += counts[q] == 0;
            if (empty) {
                hist[TK_HISTORY_FIELDS * done + 2] = (double)changed;
                *status = TK_STATUS_EMPTY;
                break;
            }
        }
        mode = TK_MODE_ITERATE;
        double out[3];
        SUF(tk_update)(k, d, sums, weights, counts, inertia, shift, centers, fresh, out);
        if (lower) *drift += sqrt(out[1]) * (1.0 + TK_PRUNE_MARGIN);
        memcpy(centers, fresh, (size_t)(k * d) * sizeof(T));
        double *h = hist + TK_HISTORY_FIELDS * done;
        h[0] = out[2];
        h[1] = out[0];
        h[2] = (double)changed;
        h[3] = (double)relocated;
        h[4] = SUF(seconds)() - t0;
        done++;
        given_changed = given_relocated = 0;
        if ((changed == 0 && relocated == 0) || out[0] <= tol) {
            *status = TK_STATUS_STOPPED;
            break;
        }
    }
    free(buf);
    return done;
}

/**
 * Eigenvalues of a symmetric matrix: Householder reduction to tridiagonal form, then the QL
 * algorithm with implicit shifts (as in Numerical Recipes' `tred2`/`tqli`, eigenvalues only),
 * O(n³) in f64.
 */

/** Eigenvalues of the symmetric `n`×`n` matrix `a` (row-major, left untouched), largest first. */
export function symmetricEigenvalues(a: ArrayLike<number>, n: number): Float64Array {
  const m = Float64Array.from(a);
  const d = new Float64Array(n); // diagonal
  const e = new Float64Array(n); // sub-diagonal, e[i] couples i-1 and i
  // Householder: zero row i left of its sub-diagonal, for i = n-1 down to 1.
  for (let i = n - 1; i > 0; i--) {
    const l = i - 1;
    let h = 0;
    if (l > 0) {
      let scale = 0;
      for (let k = 0; k <= l; k++) scale += Math.abs(m[i * n + k]);
      if (scale === 0) {
        e[i] = m[i * n + l];
      } else {
        for (let k = 0; k <= l; k++) {
          m[i * n + k] /= scale;
          h += m[i * n + k] ** 2;
        }
        const f = m[i * n + l];
        const g = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
        e[i] = scale * g;
        h -= f * g;
        m[i * n + l] = f - g;
        let ff = 0;
        for (let j = 0; j <= l; j++) {
          let gg = 0;
          for (let k = 0; k <= j; k++) gg += m[j * n + k] * m[i * n + k];
          for (let k = j + 1; k <= l; k++) gg += m[k * n + j] * m[i * n + k];
          e[j] = gg / h;
          ff += e[j] * m[i * n + j];
        }
        const hh = ff / (h + h);
        for (let j = 0; j <= l; j++) {
          const fj = m[i * n + j];
          const gj = e[j] - hh * fj;
          e[j] = gj;
          for (let k = 0; k <= j; k++) m[j * n + k] -= fj * e[k] + gj * m[i * n + k];
        }
      }
    } else {
      e[i] = m[i * n + l];
    }
    d[i] = h;
  }
  for (let i = 0; i < n; i++) d[i] = m[i * n + i];
  // QL with implicit shifts on the tridiagonal (d, e).
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  if (n > 0) e[n - 1] = 0;
  for (let l = 0; l < n; l++) {
    for (let iter = 0;; iter++) {
      let mm = l;
      for (; mm < n - 1; mm++) {
        const dd = Math.abs(d[mm]) + Math.abs(d[mm + 1]);
        if (Math.abs(e[mm]) <= Number.EPSILON * dd) break;
      }
      if (mm === l) break;
      if (iter === 60) throw new Error("symmetricEigenvalues: no convergence");
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[mm] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1, c = 1, p = 0;
      let i = mm - 1;
      for (; i >= l; i--) {
        let f = s * e[i];
        const b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          d[i + 1] -= p;
          e[mm] = 0;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        f = 0;
      }
      if (r === 0 && i >= l) continue;
      d[l] -= p;
      e[l] = g;
      e[mm] = 0;
    }
  }
  return d.sort().reverse();
}

//! Control chart constants for subgroups of 2–25.
//!
//! d2 and d3 are the tables R's qcc uses (`qcc.options("exp.R.unscaled")` and
//! `"se.R.unscaled"`), digit for digit: agreeing with qcc to 1e-9 needs its rounding, not a
//! more precise integral. c4 is computed exactly from the gamma function, as qcc does. The
//! derived factors follow Montgomery, *Introduction to Statistical Quality Control*, App. VI:
//! A2 = 3/(d2√n), A3 = 3/(c4√n), D3 = max(0, 1 − 3d3/d2), D4 = 1 + 3d3/d2,
//! B3 = max(0, 1 − 3√(1−c4²)/c4), B4 = 1 + 3√(1−c4²)/c4.

/// Smallest subgroup size.
pub const MIN_SUBGROUP: usize = 2;
/// Largest subgroup size.
pub const MAX_SUBGROUP: usize = 25;

const D2: [f64; 26] = [
    f64::NAN,
    f64::NAN,
    1.128,
    1.693,
    2.059,
    2.326,
    2.534,
    2.704,
    2.847,
    2.970,
    3.078,
    3.173,
    3.258,
    3.336,
    3.407,
    3.472,
    3.532,
    3.588,
    3.640,
    3.689,
    3.735,
    3.778,
    3.819,
    3.858,
    3.895,
    3.931,
];

const D3: [f64; 26] = [
    f64::NAN,
    f64::NAN,
    0.8525033,
    0.8883697,
    0.8798108,
    0.8640855,
    0.8480442,
    0.8332108,
    0.8198378,
    0.8078413,
    0.7970584,
    0.7873230,
    0.7784873,
    0.7704257,
    0.7630330,
    0.7562217,
    0.7499188,
    0.7440627,
    0.7386021,
    0.7334929,
    0.7286980,
    0.7241851,
    0.7199267,
    0.7158987,
    0.7120802,
    0.7084528,
];

/// The constants for one subgroup size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constants {
    /// Subgroup size.
    pub n: usize,
    /// E[R/σ].
    pub d2: f64,
    /// sd[R/σ].
    pub d3: f64,
    /// E[s/σ].
    pub c4: f64,
    /// X̄ limits from R̄: X̄ ± A2·R̄.
    pub a2: f64,
    /// X̄ limits from s̄: X̄ ± A3·s̄.
    pub a3: f64,
    /// R chart lower limit factor.
    pub d3_lower: f64,
    /// R chart upper limit factor.
    pub d4_upper: f64,
    /// S chart lower limit factor.
    pub b3: f64,
    /// S chart upper limit factor.
    pub b4: f64,
}

/// Γ(k/2) for k ≥ 1, exactly from Γ(1/2) = √π, Γ(1) = 1 and Γ(x+1) = xΓ(x).
fn gamma_half(k: usize) -> f64 {
    let (mut g, mut x) = if k.is_multiple_of(2) {
        (1.0, 1.0)
    } else {
        (std::f64::consts::PI.sqrt(), 0.5)
    };
    while x < k as f64 / 2.0 {
        g *= x;
        x += 1.0;
    }
    g
}

/// c4(n) = √(2/(n−1)) · Γ(n/2) / Γ((n−1)/2).
pub fn c4(n: usize) -> f64 {
    (2.0 / (n as f64 - 1.0)).sqrt() * gamma_half(n) / gamma_half(n - 1)
}

/// The constants for subgroup size `n`, or None outside 2..=25.
pub fn constants(n: usize) -> Option<Constants> {
    if !(MIN_SUBGROUP..=MAX_SUBGROUP).contains(&n) {
        return None;
    }
    let (d2, d3, c4) = (D2[n], D3[n], c4(n));
    let root_n = (n as f64).sqrt();
    let s = (1.0 - c4 * c4).sqrt();
    Some(Constants {
        n,
        d2,
        d3,
        c4,
        a2: 3.0 / (d2 * root_n),
        a3: 3.0 / (c4 * root_n),
        d3_lower: (1.0 - 3.0 * d3 / d2).max(0.0),
        d4_upper: 1.0 + 3.0 * d3 / d2,
        b3: (1.0 - 3.0 * s / c4).max(0.0),
        b4: 1.0 + 3.0 * s / c4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Montgomery, Introduction to Statistical Quality Control (6th ed.), Appendix VI, to the
    /// printed precision.
    #[test]
    fn constants_match_the_published_table() {
        // n, A2, A3, c4, B3, B4, d2, D3, D4
        type Row = (usize, f64, f64, f64, f64, f64, f64, f64, f64);
        let table: [Row; 6] = [
            (2, 1.880, 2.659, 0.7979, 0.0, 3.267, 1.128, 0.0, 3.267),
            (5, 0.577, 1.427, 0.9400, 0.0, 2.089, 2.326, 0.0, 2.114),
            (7, 0.419, 1.182, 0.9594, 0.118, 1.882, 2.704, 0.076, 1.924),
            (10, 0.308, 0.975, 0.9727, 0.284, 1.716, 3.078, 0.223, 1.777),
            (15, 0.223, 0.789, 0.9823, 0.428, 1.572, 3.472, 0.347, 1.653),
            (25, 0.153, 0.606, 0.9896, 0.565, 1.435, 3.931, 0.459, 1.541),
        ];
        for (n, a2, a3, c4, b3, b4, d2, d3l, d4u) in table {
            let k = constants(n).unwrap();
            let close = |got: f64, want: f64, what: &str| {
                assert!(
                    (got - want).abs() <= 0.0011,
                    "n={n} {what}: {got} vs {want}"
                );
            };
            close(k.a2, a2, "A2");
            close(k.a3, a3, "A3");
            close(k.c4, c4, "c4");
            close(k.b3, b3, "B3");
            close(k.b4, b4, "B4");
            close(k.d2, d2, "d2");
            close(k.d3_lower, d3l, "D3");
            close(k.d4_upper, d4u, "D4");
        }
        assert!(constants(1).is_none() && constants(26).is_none());
    }

    #[test]
    fn c4_is_exact() {
        // c4(2) = √(2/π), c4(3) = √π/2.
        assert!((c4(2) - (2.0 / std::f64::consts::PI).sqrt()).abs() < 1e-15);
        assert!((c4(3) - std::f64::consts::PI.sqrt() / 2.0).abs() < 1e-15);
    }
}

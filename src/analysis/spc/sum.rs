//! Sums and means as R computes them. R accumulates `sum()` and `mean()` in long double, and
//! `mean()` adds a second correction pass; a naive f64 sum differs in the last bit, which a
//! CUSUM then amplifies. Neumaier's compensated summation gives the same correctly rounded
//! results in f64, allocation-free.

/// Neumaier compensated sum.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sum {
    sum: f64,
    compensation: f64,
}

impl Sum {
    /// Adds a value.
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// The sum.
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Compensated sum of a slice.
pub fn sum(values: &[f64]) -> f64 {
    let mut s = Sum::default();
    values.iter().for_each(|v| s.add(*v));
    s.value()
}

/// R's `mean()`: sum / n, corrected by the mean of the residuals.
pub fn mean(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let m = sum(values) / n;
    let mut r = Sum::default();
    values.iter().for_each(|v| r.add(v - m));
    m + r.value() / n
}

/// R's `sd()`: the square root of the two-pass sample variance.
pub fn sd(values: &[f64]) -> f64 {
    let m = mean(values);
    let mut s = Sum::default();
    values.iter().for_each(|v| s.add((v - m) * (v - m)));
    (s.value() / (values.len() as f64 - 1.0)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensated_sums_keep_the_low_bits() {
        assert_eq!(sum(&[1e16, 1.0, -1e16]), 1.0);
        assert_eq!(mean(&[0.1, 0.2, 0.3]), 0.2);
        assert!((sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) - 2.138089935299395).abs() < 1e-15);
    }
}

//! Side-by-side measurement for the benches: every side runs once per round, the order
//! rotating between rounds, and each side's cost is reported as a ratio to the first side's in
//! the same round (the machine's noise cancels in the ratio), median and spread over rounds.
#![allow(dead_code)]

use std::time::Instant;

/// Median, minimum and maximum.
pub fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// One side of a comparison: a name and the work of one round, returning how many items it
/// did (the cost reported is nanoseconds per item).
pub struct Side<'a> {
    pub name: String,
    pub run: Box<dyn FnMut() -> u64 + 'a>,
}

impl<'a> Side<'a> {
    pub fn new(name: impl Into<String>, run: impl FnMut() -> u64 + 'a) -> Self {
        Self {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// Runs `sides` for `rounds` alternating rounds (after one warm-up round) and prints, per
/// side, its median ns per item with spread and its ratio to the first side. Returns the
/// median ratios, the first side's being 1.
pub fn compare(title: &str, rounds: usize, sides: &mut [Side<'_>]) -> Vec<f64> {
    let n = sides.len();
    for s in sides.iter_mut() {
        (s.run)();
    }
    let mut ns = vec![Vec::with_capacity(rounds); n];
    let mut ratio = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        let mut this = vec![0.0; n];
        for k in 0..n {
            let i = (k + round) % n;
            let started = Instant::now();
            let items = (sides[i].run)().max(1);
            this[i] = started.elapsed().as_nanos() as f64 / items as f64;
        }
        for i in 0..n {
            ns[i].push(this[i]);
            ratio[i].push(this[i] / this[0]);
        }
    }
    println!("{title} ({rounds} alternating rounds; ns per item, median [min–max])");
    let mut medians = Vec::with_capacity(n);
    for i in 0..n {
        let (m, lo, hi) = median(ns[i].clone());
        let (r, rlo, rhi) = median(ratio[i].clone());
        println!(
            "  {:<40} {m:>12.2} ns [{lo:.2}–{hi:.2}]   {r:>7.2}× [{rlo:.2}–{rhi:.2}]",
            sides[i].name
        );
        medians.push(r);
    }
    medians
}

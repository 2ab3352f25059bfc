//! Western Electric rules 1–4 and Nelson rules 1–8, evaluated point by point in O(1).
//!
//! Semantics follow R qcc's `rules.R`, which quality engineers compare against:
//!
//! | rule | Western Electric | Nelson |
//! |---|---|---|
//! | beyond 3σ | 1 | 1 |
//! | 2 of 3 beyond 2σ, same side | 2 | 5 |
//! | 4 of 5 beyond 1σ, same side | 3 | 6 |
//! | 8 in a row on one side of the center | 4 | — |
//! | 9 in a row on one side of the center | — | 2 |
//! | 6 in a row steadily increasing or decreasing | — | 3 |
//! | 14 in a row alternating up and down | — | 4 |
//! | 15 in a row within 1σ (inclusive) | — | 7 |
//! | 8 in a row beyond 1σ, on both sides | — | 8 |
//!
//! A rule flags the point that completes its pattern, and every following point for as long as
//! the pattern holds (a run of 10 above the center flags points 9 and 10 under Nelson 2). For
//! "2 of 3" and "4 of 5" the flagged point must itself be beyond the limit. Points exactly on
//! the center line break runs; limits compare strictly (beyond means `>` / `<`).

use serde::{Deserialize, Serialize};

/// Which rule numbers apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleSet {
    /// Western Electric rules 1–4.
    WesternElectric,
    /// Nelson rules 1–8.
    Nelson,
}

impl RuleSet {
    /// Highest rule number in the set.
    pub fn rules(self) -> u8 {
        match self {
            RuleSet::WesternElectric => 4,
            RuleSet::Nelson => 8,
        }
    }
}

/// Rule numbers violated at one point, as bits (bit 1 = rule 1, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Violations(pub u16);

impl Violations {
    /// Whether rule `n` is violated.
    pub fn has(self, n: u8) -> bool {
        self.0 & (1 << n) != 0
    }
    /// No rule violated.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The violated rule numbers, ascending.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (1..=8).filter(move |n| self.has(*n))
    }
    fn set(&mut self, n: u8, on: bool) {
        if on {
            self.0 |= 1 << n;
        }
    }
}

/// The center and the k-sigma limits of a chart, k = 1, 2, 3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Zones {
    /// Center line.
    pub center: f64,
    /// Lower limits at 1, 2 and 3 sigma.
    pub lower: [f64; 3],
    /// Upper limits at 1, 2 and 3 sigma.
    pub upper: [f64; 3],
}

/// Streaming rule state of one chart.
#[derive(Debug, Clone)]
pub struct RuleState {
    set: RuleSet,
    enabled: u16,
    count: u64,
    previous: Option<f64>,
    previous_diff: f64,
    /// The last five points' zone flags, newest in bit 0.
    beyond2_above: u8,
    beyond2_below: u8,
    beyond1_above: u8,
    beyond1_below: u8,
    run_above: u32,
    run_below: u32,
    run_up: u32,
    run_down: u32,
    run_alternating: u32,
    run_inside1: u32,
    run_outside1: u32,
    last_above1: u64,
    last_below1: u64,
}

impl RuleState {
    /// A fresh state for `set`, with the rule numbers in `enabled` switched on (all when None).
    pub fn new(set: RuleSet, enabled: Option<&[u8]>) -> Self {
        let all = (1..=set.rules()).fold(0u16, |m, r| m | (1 << r));
        let enabled = match enabled {
            Some(rules) => rules.iter().fold(0u16, |m, r| m | (1 << r)) & all,
            None => all,
        };
        Self {
            set,
            enabled,
            count: 0,
            previous: None,
            previous_diff: 0.0,
            beyond2_above: 0,
            beyond2_below: 0,
            beyond1_above: 0,
            beyond1_below: 0,
            run_above: 0,
            run_below: 0,
            run_up: 0,
            run_down: 0,
            run_alternating: 0,
            run_inside1: 0,
            run_outside1: 0,
            last_above1: 0,
            last_below1: 0,
        }
    }

    /// The rule set.
    pub fn set(&self) -> RuleSet {
        self.set
    }

    /// Evaluates the next point.
    pub fn push(&mut self, x: f64, z: &Zones) -> Violations {
        self.count += 1;
        let i = self.count;
        let shift = |bits: u8, on: bool| (bits << 1) | u8::from(on);
        self.beyond2_above = shift(self.beyond2_above, x > z.upper[1]);
        self.beyond2_below = shift(self.beyond2_below, x < z.lower[1]);
        let above1 = x > z.upper[0];
        let below1 = x < z.lower[0];
        self.beyond1_above = shift(self.beyond1_above, above1);
        self.beyond1_below = shift(self.beyond1_below, below1);

        let bump = |run: u32, on: bool| if on { run + 1 } else { 0 };
        self.run_above = bump(self.run_above, x - z.center > 0.0);
        self.run_below = bump(self.run_below, x - z.center < 0.0);
        let diff = self.previous.map(|p| x - p);
        self.run_up = bump(self.run_up, diff.is_some_and(|d| d > 0.0));
        self.run_down = bump(self.run_down, diff.is_some_and(|d| d < 0.0));
        let alternates = i >= 3 && diff.is_some_and(|d| d * self.previous_diff < 0.0);
        self.run_alternating = bump(self.run_alternating, alternates);
        self.run_inside1 = bump(self.run_inside1, x >= z.lower[0] && x <= z.upper[0]);
        self.run_outside1 = bump(self.run_outside1, above1 || below1);
        if above1 {
            self.last_above1 = i;
        }
        if below1 {
            self.last_below1 = i;
        }
        self.previous_diff = diff.unwrap_or(0.0);
        self.previous = Some(x);

        let window = |bits: u8, len: u32, need: u32| {
            i >= u64::from(len) && (bits & ((1 << len) - 1)).count_ones() >= need && bits & 1 == 1
        };
        let beyond3 = x > z.upper[2] || x < z.lower[2];
        let two_of_three = window(self.beyond2_above, 3, 2) || window(self.beyond2_below, 3, 2);
        let four_of_five = window(self.beyond1_above, 5, 4) || window(self.beyond1_below, 5, 4);
        let mut v = Violations::default();
        match self.set {
            RuleSet::WesternElectric => {
                v.set(1, beyond3);
                v.set(2, two_of_three);
                v.set(3, four_of_five);
                v.set(4, self.run_above >= 8 || self.run_below >= 8);
            }
            RuleSet::Nelson => {
                v.set(1, beyond3);
                v.set(2, self.run_above >= 9 || self.run_below >= 9);
                v.set(3, self.run_up >= 5 || self.run_down >= 5);
                v.set(4, self.run_alternating >= 12);
                v.set(5, two_of_three);
                v.set(6, four_of_five);
                v.set(7, self.run_inside1 >= 15);
                let recent = |last: u64| last > 0 && last + 8 > i;
                v.set(
                    8,
                    self.run_outside1 >= 8 && recent(self.last_above1) && recent(self.last_below1),
                );
            }
        }
        Violations(v.0 & self.enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Center 0, sigma 1.
    const Z: Zones = Zones {
        center: 0.0,
        lower: [-1.0, -2.0, -3.0],
        upper: [1.0, 2.0, 3.0],
    };

    fn flagged(set: RuleSet, rule: u8, xs: &[f64]) -> Vec<usize> {
        let mut s = RuleState::new(set, None);
        xs.iter()
            .enumerate()
            .filter(|(_, x)| s.push(**x, &Z).has(rule))
            .map(|(i, _)| i + 1)
            .collect()
    }

    use RuleSet::{Nelson, WesternElectric as We};

    #[test]
    fn beyond_three_sigma() {
        assert_eq!(
            flagged(We, 1, &[0.0, 3.2, -3.5, 3.0, -3.0]),
            vec![2, 3],
            "exactly 3σ is not beyond"
        );
        assert_eq!(flagged(Nelson, 1, &[3.01]), vec![1]);
    }

    #[test]
    fn two_of_three_beyond_two_sigma() {
        // qcc's own test case: 2.5, 1.0, 2.6 flags the third point.
        assert_eq!(flagged(We, 2, &[0.0, 2.5, 1.0, 2.6, 0.0]), vec![4]);
        // Just misses: the completing point is not itself beyond 2σ.
        assert!(flagged(We, 2, &[2.5, 2.6, 1.0]).is_empty());
        // Just misses: opposite sides.
        assert!(flagged(Nelson, 5, &[2.5, 0.0, -2.6]).is_empty());
        assert_eq!(flagged(Nelson, 5, &[0.0, -2.5, -2.1]), vec![3]);
    }

    #[test]
    fn four_of_five_beyond_one_sigma() {
        assert_eq!(flagged(We, 3, &[0.0, 1.2, 1.3, 0.2, 1.4, 1.5]), vec![6]);
        assert!(
            flagged(We, 3, &[1.2, 1.3, 0.2, 1.4, 0.5]).is_empty(),
            "last point inside"
        );
        assert!(
            flagged(Nelson, 6, &[1.2, 1.3, 0.2, 0.3, 1.5]).is_empty(),
            "only 3 of 5"
        );
    }

    #[test]
    fn runs_on_one_side() {
        let eight = [0.5; 8];
        assert_eq!(flagged(We, 4, &eight), vec![8]);
        assert!(flagged(We, 4, &eight[..7]).is_empty());
        let mut ten = vec![-0.5; 10];
        assert_eq!(flagged(Nelson, 2, &ten), vec![9, 10]);
        ten[4] = 0.0;
        assert!(
            flagged(Nelson, 2, &ten).is_empty(),
            "a point on the center breaks the run"
        );
    }

    #[test]
    fn trends_of_six() {
        assert_eq!(flagged(Nelson, 3, &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5]), vec![6]);
        assert!(
            flagged(Nelson, 3, &[0.0, 0.1, 0.2, 0.2, 0.4, 0.5]).is_empty(),
            "a tie breaks it"
        );
        assert_eq!(
            flagged(Nelson, 3, &[0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1]),
            vec![6, 7]
        );
    }

    #[test]
    fn fourteen_alternating() {
        let zigzag: Vec<f64> = (0..14)
            .map(|i| if i % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        assert_eq!(flagged(Nelson, 4, &zigzag), vec![14]);
        assert!(flagged(Nelson, 4, &zigzag[..13]).is_empty());
    }

    #[test]
    fn fifteen_within_one_sigma() {
        let mut quiet = vec![0.5; 15];
        quiet[3] = 1.0; // on the 1σ line counts as within
        assert_eq!(flagged(Nelson, 7, &quiet), vec![15]);
        quiet[3] = 1.01;
        assert!(flagged(Nelson, 7, &quiet).is_empty());
    }

    #[test]
    fn eight_beyond_one_sigma_on_both_sides() {
        let both = [1.5, -1.5, 1.5, -1.5, 1.5, -1.5, 1.5, -1.5];
        assert_eq!(flagged(Nelson, 8, &both), vec![8]);
        assert!(flagged(Nelson, 8, &[1.5; 8]).is_empty(), "one side only");
        assert!(flagged(Nelson, 8, &both[..7]).is_empty());
    }

    #[test]
    fn rules_can_be_switched_off() {
        let mut s = RuleState::new(Nelson, Some(&[2, 3]));
        assert!(s.push(5.0, &Z).is_empty(), "rule 1 is off");
    }
}

//! Aggregation methods over the values of one bucket (reference §1.4).
//!
//! Sums are sequential (Gnocchi sums buckets with `numpy.bincount`, which
//! adds in order); percentiles follow NumPy's default `linear` method.
//! NaN propagates through every method except `count`, `first` and `last`.

use super::policy::BaseMethod;

/// Computes `method` over `values` (a bucket's values in time order, at
/// least one). `scratch` caches the sum, minimum and maximum and a sorted
/// copy between the calls of one bucket; [`BucketScratch::reset`] it before the next bucket.
///
/// Returns `None` where Gnocchi yields no point: `std` of one value.
pub fn aggregate(method: BaseMethod, values: &[f64], scratch: &mut BucketScratch) -> Option<f64> {
    debug_assert!(!values.is_empty());
    let n = values.len();
    Some(match method {
        BaseMethod::Mean => scratch.stats(values).sum / n as f64,
        BaseMethod::Sum => scratch.stats(values).sum,
        BaseMethod::Count => n as f64,
        BaseMethod::Min => scratch.stats(values).min(),
        BaseMethod::Max => scratch.stats(values).max(),
        BaseMethod::First => values[0],
        BaseMethod::Last => values[n - 1],
        BaseMethod::Std => {
            if n < 2 {
                return None;
            }
            let mean = scratch.stats(values).sum / n as f64;
            let ss = values
                .iter()
                .fold(0.0, |acc, v| acc + (v - mean) * (v - mean));
            (ss / (n - 1) as f64).sqrt()
        }
        BaseMethod::Median => percentile(scratch.sorted(values), 50),
        BaseMethod::Pct(q) => percentile(scratch.sorted(values), q),
    })
}

/// Sum, minimum and maximum of a bucket, from one pass.
#[derive(Debug, Clone, Copy)]
struct Stats {
    /// Sequential sum, in time order.
    sum: f64,
    /// The first of the smallest and of the largest values (`<`/`>`
    /// against the best so far, so of 0.0 and -0.0 the earlier stays).
    min: f64,
    max: f64,
    /// Whether a value is NaN (then min and max are NaN).
    nan: bool,
}

impl Stats {
    fn of(values: &[f64]) -> Stats {
        let (mut sum, mut min, mut max, mut nan) = (0.0, values[0], values[0], false);
        for &v in values {
            sum += v;
            nan |= v.is_nan();
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        Stats { sum, min, max, nan }
    }

    fn min(&self) -> f64 {
        if self.nan { f64::NAN } else { self.min }
    }

    fn max(&self) -> f64 {
        if self.nan { f64::NAN } else { self.max }
    }
}

/// What the methods of one bucket share: its sum, minimum and maximum (one
/// pass) and its sorted values, each computed at most once. [`BucketScratch::reset`] before the next
/// bucket (or the next set of values of the same bucket).
#[derive(Debug, Default)]
pub struct BucketScratch {
    stats: Option<Stats>,
    sorted: Vec<f64>,
    sorted_ready: bool,
}

impl BucketScratch {
    /// Forgets the cached sum, extremes and order (keeps the buffer).
    pub fn reset(&mut self) {
        self.stats = None;
        self.sorted_ready = false;
    }

    /// Sum, minimum and maximum of `values`.
    fn stats(&mut self, values: &[f64]) -> Stats {
        *self.stats.get_or_insert_with(|| Stats::of(values))
    }

    /// `values` sorted by [`f64::total_cmp`].
    fn sorted(&mut self, values: &[f64]) -> &[f64] {
        if !self.sorted_ready {
            self.sorted.clear();
            self.sorted.extend_from_slice(values);
            self.sorted.sort_by(f64::total_cmp);
            self.sorted_ready = true;
        }
        &self.sorted
    }
}

/// NumPy's `percentile(v, q, method="linear")` over sorted `v`: virtual
/// index `q/100 × (n−1)`, linear interpolation between its neighbours.
/// `median` is `q = 50`: the middle value, or the mean of the two middle
/// ones.
fn percentile(v: &[f64], q: u8) -> f64 {
    if v.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let n = v.len();
    if q == 50 && n.is_multiple_of(2) {
        return (v[n / 2 - 1] + v[n / 2]) / 2.0;
    }
    let index = f64::from(q) / 100.0 * (n - 1) as f64;
    let lo = index.floor();
    let t = index - lo;
    let lo = lo as usize;
    let hi = (lo + 1).min(n - 1);
    let (a, b) = (v[lo], v[hi]);
    if t == 0.0 {
        return a;
    }
    let diff = b - a;
    // NumPy's _lerp: from the nearer end, for monotonicity.
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(m: BaseMethod, v: &[f64]) -> Option<f64> {
        aggregate(m, v, &mut BucketScratch::default())
    }

    #[test]
    fn min_max_of_infinities_and_of_one_value() {
        assert_eq!(
            agg(BaseMethod::Min, &[3.0, f64::NEG_INFINITY, 1.0]),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(
            agg(BaseMethod::Max, &[f64::INFINITY, 2.0]),
            Some(f64::INFINITY)
        );
        assert_eq!(agg(BaseMethod::Min, &[5.0]), Some(5.0));
    }

    #[test]
    fn reference_b_percentiles() {
        assert_eq!(agg(BaseMethod::Pct(74), &[3.0, 5.0, 6.0]), Some(5.48));
        assert_eq!(agg(BaseMethod::Pct(95), &[3.0, 5.0, 6.0]), Some(5.9));
    }

    #[test]
    fn reference_c_std_of_one_value_is_no_point() {
        assert_eq!(agg(BaseMethod::Std, &[9.0]), None);
        assert_eq!(
            agg(BaseMethod::Std, &[3.0, 6.0, 5.0]),
            Some(1.5275252316519465)
        );
    }

    #[test]
    fn signed_zeros_keep_the_first_and_one_scratch_serves_every_method() {
        let bits = |m, v: &[f64]| agg(m, v).unwrap().to_bits();
        for v in [[0.0, -0.0], [-0.0, 0.0]] {
            // Neither zero is below or above the other: the first stays.
            assert_eq!(bits(BaseMethod::Min, &v), v[0].to_bits());
            assert_eq!(bits(BaseMethod::Max, &v), v[0].to_bits());
        }
        // Sum, mean, min, max, std over one scratch, as a bucket's methods
        // run: the same as each on its own.
        let v = [0.1, 0.2, 0.3, -5.0, 7.5];
        let mut scratch = BucketScratch::default();
        for m in [
            BaseMethod::Sum,
            BaseMethod::Mean,
            BaseMethod::Min,
            BaseMethod::Max,
            BaseMethod::Std,
        ] {
            assert_eq!(aggregate(m, &v, &mut scratch), agg(m, &v), "{m:?}");
        }
        // Sequential: ((((0.1 + 0.2) + 0.3) + -5.0) + 7.5).
        assert_eq!(
            agg(BaseMethod::Sum, &v),
            Some(((0.1 + 0.2) + 0.3 - 5.0) + 7.5)
        );
        assert_eq!(agg(BaseMethod::Min, &v), Some(-5.0));
        assert_eq!(agg(BaseMethod::Max, &v), Some(7.5));
    }

    #[test]
    fn nan_propagates() {
        assert!(agg(BaseMethod::Min, &[f64::NAN, 1.0]).unwrap().is_nan());
        assert!(agg(BaseMethod::Max, &[f64::NAN, 1.0]).unwrap().is_nan());
        assert!(agg(BaseMethod::Max, &[1.0, f64::NAN]).unwrap().is_nan());
        assert!(
            agg(BaseMethod::Median, &[1.0, f64::NAN, 2.0])
                .unwrap()
                .is_nan()
        );
        assert_eq!(agg(BaseMethod::Count, &[1.0, f64::NAN]), Some(2.0));
        assert_eq!(agg(BaseMethod::Last, &[f64::NAN, 2.0]), Some(2.0));
    }
}

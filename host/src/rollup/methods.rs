//! Aggregation methods over the values of one bucket (reference §1.4).
//!
//! Sums are sequential (Gnocchi sums buckets with `numpy.bincount`, which
//! adds in order); percentiles follow NumPy's default `linear` method.
//! NaN propagates through every method except `count`, `first` and `last`.

use super::policy::BaseMethod;

/// Computes `method` over `values` (a bucket's values in time order, at
/// least one). `sorted` caches a sorted copy between the calls of one
/// bucket; pass `None` on the first call for a bucket.
///
/// Returns `None` where Gnocchi yields no point: `std` of one value.
pub fn aggregate(
    method: BaseMethod,
    values: &[f64],
    sorted: &mut Vec<f64>,
    sorted_ready: &mut bool,
) -> Option<f64> {
    debug_assert!(!values.is_empty());
    let n = values.len();
    let sum = || values.iter().fold(0.0, |acc, v| acc + v);
    Some(match method {
        BaseMethod::Mean => sum() / n as f64,
        BaseMethod::Sum => sum(),
        BaseMethod::Count => n as f64,
        BaseMethod::Min => extreme(values, f64::min),
        BaseMethod::Max => extreme(values, f64::max),
        BaseMethod::First => values[0],
        BaseMethod::Last => values[n - 1],
        BaseMethod::Std => {
            if n < 2 {
                return None;
            }
            let mean = sum() / n as f64;
            let ss = values
                .iter()
                .fold(0.0, |acc, v| acc + (v - mean) * (v - mean));
            (ss / (n - 1) as f64).sqrt()
        }
        BaseMethod::Median => percentile(sorted_values(values, sorted, sorted_ready), 50),
        BaseMethod::Pct(q) => percentile(sorted_values(values, sorted, sorted_ready), q),
    })
}

fn extreme(values: &[f64], pick: fn(f64, f64) -> f64) -> f64 {
    if values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    values
        .iter()
        .copied()
        .reduce(pick)
        .expect("non-empty bucket")
}

fn sorted_values<'a>(values: &[f64], sorted: &'a mut Vec<f64>, ready: &mut bool) -> &'a [f64] {
    if !*ready {
        sorted.clear();
        sorted.extend_from_slice(values);
        sorted.sort_by(f64::total_cmp);
        *ready = true;
    }
    sorted
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
        let (mut s, mut ready) = (Vec::new(), false);
        aggregate(m, v, &mut s, &mut ready)
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
    fn nan_propagates() {
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

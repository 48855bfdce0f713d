//! `threshold`: Aodh's threshold rule as a wasmeter `alarm-rule` component.
//!
//! Parameters (per alarm, passed with every `evaluate` call):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `comparison_operator` | `lt` `le` `eq` `ne` `ge` `gt` | `eq` (Aodh's default) |
//! | `threshold` | the value compared with, a float | required |
//! | `evaluation_periods` | how many of the most recent aggregates are compared, 1..100 | `1` |
//!
//! For each series, the last `evaluation_periods` aggregates are compared
//! with `op(value, threshold)`. Semantics: Aodh's `ThresholdEvaluator`
//! (reference §2.3, steps 4 and 5):
//! - fewer points than `evaluation_periods`: `insufficient-data`, with the
//!   reason "N datapoints are unknown" (N = `evaluation_periods`);
//! - every point breaches: `alarm`; none: `ok`;
//! - some: equivocal, and the state is the trend, from the last point.
//!
//! The host owns the state machine, the reason strings and the history.

use wasmeter_guest::alarm::{Evaluation, SeriesAggregates, State};
use wasmeter_guest::{AlarmRule, Error, Settings};

/// Aodh's comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `>`
    Gt,
}

impl Operator {
    /// Parses Aodh's operator names.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "lt" => Operator::Lt,
            "le" => Operator::Le,
            "eq" => Operator::Eq,
            "ne" => Operator::Ne,
            "ge" => Operator::Ge,
            "gt" => Operator::Gt,
            _ => return None,
        })
    }

    /// True when `value` breaches `threshold` ("outside").
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::Lt => value < threshold,
            Operator::Le => value <= threshold,
            Operator::Eq => value == threshold,
            Operator::Ne => value != threshold,
            Operator::Ge => value >= threshold,
            Operator::Gt => value > threshold,
        }
    }
}

/// One alarm's rule parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// The comparison.
    pub operator: Operator,
    /// What values are compared with.
    pub threshold: f64,
    /// How many recent points must agree.
    pub evaluation_periods: usize,
}

impl Rule {
    /// Reads the parameters.
    ///
    /// # Errors
    /// `invalid-settings` naming the parameter: an unknown operator, a
    /// missing or non-numeric threshold, periods outside 1..100.
    pub fn from_params(params: &Settings) -> Result<Self, Error> {
        let op = params.get("comparison_operator").unwrap_or("eq");
        let operator = Operator::parse(op).ok_or_else(|| {
            Error::invalid_settings(format!(
                "comparison_operator: {op:?} is not one of lt, le, eq, ne, ge, gt"
            ))
        })?;
        let threshold = params.f64("threshold")?;
        let periods = params.u64_or("evaluation_periods", 1)?;
        if !(1..=100).contains(&periods) {
            return Err(Error::invalid_settings(format!(
                "evaluation_periods: {periods} is outside 1..100"
            )));
        }
        Ok(Rule {
            operator,
            threshold,
            evaluation_periods: periods as usize,
        })
    }

    /// Evaluates one series' aggregates (oldest first).
    pub fn evaluate(&self, values: &[f64]) -> Evaluation {
        let n = self.evaluation_periods;
        if values.len() < n {
            return Evaluation {
                state: State::InsufficientData,
                equivocal: false,
                points: values.len() as u32,
                outside: 0,
                most_recent: values.last().copied(),
                reason: format!("{n} datapoints are unknown"),
            };
        }
        let recent = &values[values.len() - n..];
        let outside = recent
            .iter()
            .filter(|v| self.operator.breaches(**v, self.threshold))
            .count();
        let last_breaches = self.operator.breaches(recent[n - 1], self.threshold);
        let equivocal = outside != 0 && outside != n;
        Evaluation {
            state: if last_breaches {
                State::Alarm
            } else {
                State::Ok
            },
            equivocal,
            points: n as u32,
            outside: outside as u32,
            most_recent: Some(recent[n - 1]),
            reason: String::new(),
        }
    }
}

struct Threshold;

impl AlarmRule for Threshold {
    fn init(_settings: Settings) -> Result<Self, Error> {
        Ok(Threshold)
    }

    fn evaluate(
        &mut self,
        params: Settings,
        input: Vec<SeriesAggregates>,
    ) -> Result<Vec<Evaluation>, Error> {
        let rule = Rule::from_params(&params)?;
        Ok(input.iter().map(|s| rule.evaluate(&s.values)).collect())
    }
}

wasmeter_guest::export_alarm_rule!(Threshold);

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(op: Operator, threshold: f64, n: usize) -> Rule {
        Rule {
            operator: op,
            threshold,
            evaluation_periods: n,
        }
    }

    #[test]
    fn all_outside_is_alarm() {
        let e = rule(Operator::Gt, 80.0, 5).evaluate(&[81.0, 82.0, 83.0, 84.0, 85.0]);
        assert_eq!(
            (e.state, e.equivocal, e.points, e.outside),
            (State::Alarm, false, 5, 5)
        );
        assert_eq!(e.most_recent, Some(85.0));
    }

    #[test]
    fn mixed_is_equivocal_with_the_last_point_as_trend() {
        // 80 is not > 80.
        let e = rule(Operator::Gt, 80.0, 5).evaluate(&[80.0, 81.0, 82.0, 83.0, 84.0]);
        assert_eq!((e.state, e.equivocal, e.outside), (State::Alarm, true, 4));
        let e = rule(Operator::Le, 10.0, 4).evaluate(&[11.0, 10.0, 9.0, 8.0]);
        assert_eq!((e.state, e.equivocal, e.outside), (State::Alarm, true, 3));
    }

    #[test]
    fn only_the_last_periods_count() {
        let e = rule(Operator::Le, 10.0, 4).evaluate(&[11.0, 10.0, 9.0, 8.0, 7.0, 6.0]);
        assert_eq!(
            (e.state, e.equivocal, e.points, e.outside),
            (State::Alarm, false, 4, 4)
        );
        assert_eq!(e.most_recent, Some(6.0));
    }

    #[test]
    fn too_few_points_are_unknown() {
        let e = rule(Operator::Gt, 80.0, 5).evaluate(&[90.0, 91.0]);
        assert_eq!(e.state, State::InsufficientData);
        assert_eq!(e.reason, "5 datapoints are unknown");
        assert_eq!(e.most_recent, Some(91.0));
    }

    #[test]
    fn parameters_are_checked() {
        let p = |kv: &[(&str, &str)]| {
            Settings::from(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        let r = Rule::from_params(&p(&[("threshold", "3")])).unwrap();
        assert_eq!((r.operator, r.evaluation_periods), (Operator::Eq, 1));
        assert!(
            Rule::from_params(&p(&[("threshold", "3"), ("comparison_operator", "gte")])).is_err()
        );
        assert!(Rule::from_params(&p(&[])).is_err());
        assert!(Rule::from_params(&p(&[("threshold", "1"), ("evaluation_periods", "0")])).is_err());
    }
}

//! Aodh's threshold state machine and reason strings (reference §2.3,
//! steps 4–8), as pure functions of the current state and a rule's
//! outcome.

use serde_json::{Value, json};

use super::AlarmState;

/// What a threshold rule concluded about one series (or one aggregated
/// series) at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every point breaches (`Alarm`) or none does (`Ok`).
    Decided {
        /// `Ok` or `Alarm`.
        state: AlarmState,
        /// Points compared.
        points: u32,
        /// Points breaching the threshold.
        outside: u32,
        /// The newest point compared.
        most_recent: Option<f64>,
    },
    /// Some points breach, some do not: no new state, only a trend (from
    /// the last point).
    Equivocal {
        /// `Alarm` if the last point breaches, else `Ok`.
        trend: AlarmState,
        /// Points compared.
        points: u32,
        /// Points breaching the threshold.
        outside: u32,
        /// The newest point compared.
        most_recent: Option<f64>,
    },
    /// Too few points, no data at the granularity, or the rule failed.
    Unknown {
        /// Aodh's reason: "N datapoints are unknown", "No datapoint for
        /// granularity G", or the plugin's failure.
        reason: String,
        /// Points there were.
        points: u32,
        /// The newest point, if any.
        most_recent: Option<f64>,
    },
}

/// A state refresh: what the alarm becomes and why (Aodh's `_refresh`).
#[derive(Debug, Clone, PartialEq)]
pub struct Refresh {
    /// The state before.
    pub previous: AlarmState,
    /// The state after.
    pub current: AlarmState,
    /// Aodh's reason string.
    pub reason: String,
    /// Aodh's reason data (`{type, disposition, count, most_recent}` for
    /// threshold rules).
    pub reason_data: Value,
}

impl Refresh {
    /// True for a transition (recorded in history); false for a repeat
    /// notification (`repeat_actions`), which changes nothing stored.
    pub fn changed(&self) -> bool {
        self.previous != self.current
    }
}

/// Python's `repr` of a float, as Aodh's reason strings print it: `85.0`,
/// `3.48`, `1e-07`, `1e+16`, `nan`, `inf`; `None` for no value.
pub fn python_float(v: Option<f64>) -> String {
    let Some(v) = v else {
        return "None".to_owned();
    };
    if v.is_nan() {
        return "nan".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Shortest round-trip digits in exponent form, Python style.
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{v}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

fn reason_data(disposition: &str, count: u32, most_recent: Option<f64>) -> Value {
    json!({
        "type": "threshold",
        "disposition": disposition,
        "count": count,
        "most_recent": most_recent,
    })
}

/// Aodh's `_reason`: for `ok` the count is the points inside, otherwise
/// the points outside.
fn reason(
    current: AlarmState,
    state: AlarmState,
    points: u32,
    outside: u32,
    most_recent: Option<f64>,
) -> (String, Value) {
    let (disposition, count) = if state == AlarmState::Ok {
        ("inside", points - outside)
    } else {
        ("outside", outside)
    };
    let lead = if current != state {
        format!("Transition to {state}")
    } else {
        format!("Remaining as {state}")
    };
    (
        format!(
            "{lead} due to {count} samples {disposition} threshold, most recent: {}",
            python_float(most_recent)
        ),
        reason_data(disposition, count, most_recent),
    )
}

/// Aodh's `_transition_alarm`: what the alarm does given its `current`
/// state, `repeat_actions`, its `evaluation_periods` and the rule's
/// `outcome`. `None`: nothing changes and nothing is notified.
///
/// - equivocal: from `insufficient data`, move to the trend; else with
///   `repeat_actions` re-notify the current state; else nothing;
/// - unknown, when not already `insufficient data`: move there with the
///   outcome's reason;
/// - a decided state (or unknown while unknown): refresh when it differs
///   from the current state, or with `repeat_actions`.
pub fn threshold_transition(
    current: AlarmState,
    repeat_actions: bool,
    evaluation_periods: u32,
    outcome: &Outcome,
) -> Option<Refresh> {
    let unknown = current == AlarmState::InsufficientData;
    let refresh = |state, (reason, reason_data): (String, Value)| Refresh {
        previous: current,
        current: state,
        reason,
        reason_data,
    };
    match outcome {
        Outcome::Equivocal {
            trend,
            points,
            outside,
            most_recent,
        } => {
            if !unknown && !repeat_actions {
                return None;
            }
            let state = if unknown { *trend } else { current };
            Some(refresh(
                state,
                reason(current, state, *points, *outside, *most_recent),
            ))
        }
        Outcome::Unknown {
            reason: why,
            points,
            most_recent,
        } => {
            if !unknown {
                Some(refresh(
                    AlarmState::InsufficientData,
                    (
                        why.clone(),
                        reason_data("unknown", evaluation_periods, *most_recent),
                    ),
                ))
            } else if repeat_actions {
                // Aodh's evaluate() passes 0 as the outside count for an
                // InsufficientDataError.
                Some(refresh(
                    AlarmState::InsufficientData,
                    reason(current, current, *points, 0, *most_recent),
                ))
            } else {
                None
            }
        }
        Outcome::Decided {
            state,
            points,
            outside,
            most_recent,
        } => {
            if *state == current && !repeat_actions {
                return None;
            }
            Some(refresh(
                *state,
                reason(current, *state, *points, *outside, *most_recent),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlarmState::*;

    /// The comparison the `threshold` plugin makes, for these tests only
    /// (the plugin itself is tested through Wasm in `tests/e2e`).
    fn outcome(values: &[f64], periods: usize, breach: impl Fn(f64) -> bool) -> Outcome {
        if values.len() < periods {
            return Outcome::Unknown {
                reason: format!("{periods} datapoints are unknown"),
                points: values.len() as u32,
                most_recent: values.last().copied(),
            };
        }
        let recent = &values[values.len() - periods..];
        let outside = recent.iter().filter(|v| breach(**v)).count() as u32;
        let most_recent = recent.last().copied();
        let points = periods as u32;
        if outside == 0 || outside == points {
            Outcome::Decided {
                state: if outside == 0 { Ok } else { Alarm },
                points,
                outside,
                most_recent,
            }
        } else {
            Outcome::Equivocal {
                trend: if breach(recent[periods - 1]) {
                    Alarm
                } else {
                    Ok
                },
                points,
                outside,
                most_recent,
            }
        }
    }

    fn gt80(v: f64) -> bool {
        v > 80.0
    }
    fn le10(v: f64) -> bool {
        v <= 10.0
    }

    #[test]
    fn ok_to_alarm_with_81_to_85() {
        let o = outcome(&[81.0, 82.0, 83.0, 84.0, 85.0], 5, gt80);
        let r = threshold_transition(Ok, false, 5, &o).unwrap();
        assert_eq!((r.previous, r.current), (Ok, Alarm));
        assert_eq!(
            r.reason,
            "Transition to alarm due to 5 samples outside threshold, most recent: 85.0"
        );
        assert_eq!(
            r.reason_data,
            json!({"type": "threshold", "disposition": "outside", "count": 5, "most_recent": 85.0})
        );
        assert!(r.changed());
    }

    #[test]
    fn alarm_to_ok_with_80_down_to_76() {
        let o = outcome(&[80.0, 79.0, 78.0, 77.0, 76.0], 5, gt80);
        let r = threshold_transition(Alarm, false, 5, &o).unwrap();
        assert_eq!((r.previous, r.current), (Alarm, Ok));
        assert_eq!(
            r.reason,
            "Transition to ok due to 5 samples inside threshold, most recent: 76.0"
        );
    }

    #[test]
    fn equivocal_from_ok_changes_nothing() {
        let o = outcome(&[80.0, 81.0, 82.0, 83.0, 84.0], 5, gt80);
        assert!(matches!(o, Outcome::Equivocal { trend: Alarm, .. }));
        assert_eq!(threshold_transition(Ok, false, 5, &o), None);
        // Nor from alarm with a falling trend.
        let o = outcome(&[85.0, 84.0, 83.0, 82.0, 80.0], 5, gt80);
        assert_eq!(threshold_transition(Alarm, false, 5, &o), None);
    }

    #[test]
    fn from_insufficient_data_with_81_to_85() {
        let o = outcome(&[81.0, 82.0, 83.0, 84.0, 85.0], 5, gt80);
        let r = threshold_transition(InsufficientData, false, 5, &o).unwrap();
        assert_eq!((r.previous, r.current), (InsufficientData, Alarm));
        // Equivocal from unknown moves to the trend.
        let o = outcome(&[80.0, 81.0, 82.0, 83.0, 84.0], 5, gt80);
        let r = threshold_transition(InsufficientData, false, 5, &o).unwrap();
        assert_eq!(r.current, Alarm);
        assert_eq!(
            r.reason,
            "Transition to alarm due to 4 samples outside threshold, most recent: 84.0"
        );
    }

    #[test]
    fn empty_result_moves_to_insufficient_data() {
        let o = Outcome::Unknown {
            reason: "No datapoint for granularity 60".into(),
            points: 0,
            most_recent: None,
        };
        let r = threshold_transition(Ok, false, 5, &o).unwrap();
        assert_eq!((r.previous, r.current), (Ok, InsufficientData));
        assert_eq!(r.reason, "No datapoint for granularity 60");
        assert_eq!(
            r.reason_data,
            json!({"type": "threshold", "disposition": "unknown", "count": 5, "most_recent": null})
        );
        // Already unknown: nothing, unless repeat_actions.
        assert_eq!(threshold_transition(InsufficientData, false, 5, &o), None);
        let r = threshold_transition(InsufficientData, true, 5, &o).unwrap();
        assert!(!r.changed());
        assert_eq!(
            r.reason,
            "Remaining as insufficient data due to 0 samples outside threshold, most recent: None"
        );
        // With some (too few) points, still 0 outside, the last point shown.
        let o = outcome(&[90.0, 91.0], 5, gt80);
        let r = threshold_transition(InsufficientData, true, 5, &o).unwrap();
        assert_eq!(
            r.reason,
            "Remaining as insufficient data due to 0 samples outside threshold, most recent: 91.0"
        );
    }

    #[test]
    fn too_few_points() {
        let o = outcome(&[90.0, 91.0], 5, gt80);
        let r = threshold_transition(Alarm, false, 5, &o).unwrap();
        assert_eq!(r.current, InsufficientData);
        assert_eq!(r.reason, "5 datapoints are unknown");
        assert_eq!(
            r.reason_data,
            json!({"type": "threshold", "disposition": "unknown", "count": 5, "most_recent": 91.0})
        );
    }

    #[test]
    fn by_metrics_only_the_last_four_of_six() {
        let o = outcome(&[11.0, 10.0, 9.0, 8.0, 7.0, 6.0], 4, le10);
        let r = threshold_transition(Ok, false, 4, &o).unwrap();
        assert_eq!(r.current, Alarm);
        assert_eq!(
            r.reason,
            "Transition to alarm due to 4 samples outside threshold, most recent: 6.0"
        );
    }

    #[test]
    fn by_metrics_repeat_actions_mixed_remains_ok() {
        let o = outcome(&[11.0, 10.0, 9.0, 8.0], 4, le10);
        let r = threshold_transition(Ok, true, 4, &o).unwrap();
        assert_eq!((r.previous, r.current), (Ok, Ok));
        assert!(!r.changed());
        assert_eq!(
            r.reason,
            "Remaining as ok due to 1 samples inside threshold, most recent: 8.0"
        );
    }

    #[test]
    fn by_metrics_repeat_actions_remains_alarm() {
        let o = outcome(&[10.0, 9.0, 8.0, 7.0], 4, le10);
        let r = threshold_transition(Alarm, true, 4, &o).unwrap();
        assert!(!r.changed());
        assert_eq!(
            r.reason,
            "Remaining as alarm due to 4 samples outside threshold, most recent: 7.0"
        );
        // Without repeat_actions, an unchanged state notifies nothing.
        assert_eq!(threshold_transition(Alarm, false, 4, &o), None);
    }

    #[test]
    fn floats_print_as_python_does() {
        assert_eq!(python_float(Some(85.0)), "85.0");
        assert_eq!(python_float(Some(3.48)), "3.48");
        assert_eq!(python_float(Some(-0.5)), "-0.5");
        assert_eq!(python_float(Some(1e-7)), "1e-07");
        assert_eq!(python_float(Some(1.5e16)), "1.5e+16");
        assert_eq!(python_float(Some(123456789.0)), "123456789.0");
        assert_eq!(python_float(Some(0.0001)), "0.0001");
        assert_eq!(python_float(Some(f64::NAN)), "nan");
        assert_eq!(python_float(None), "None");
    }
}

//! `{{name}}`: a wasmeter alarm rule. Alarms when every point is above the
//! parameter `threshold`, is ok when none is, and is equivocal otherwise
//! (trending to the last point's state). No points: insufficient data.

use wasmeter_guest::alarm::{Evaluation, SeriesAggregates, State};
use wasmeter_guest::{AlarmRule, Error, Settings};

struct Plugin;

impl AlarmRule for Plugin {
    fn init(_settings: Settings) -> Result<Self, Error> {
        Ok(Plugin)
    }

    fn evaluate(
        &mut self,
        params: Settings,
        input: Vec<SeriesAggregates>,
    ) -> Result<Vec<Evaluation>, Error> {
        let threshold = params.f64("threshold")?;
        Ok(input
            .iter()
            .map(|s| {
                let points = s.values.len() as u32;
                let outside = s.values.iter().filter(|v| **v > threshold).count() as u32;
                let last = s.values.last().copied();
                let equivocal = outside != 0 && outside != points;
                let state = match last {
                    None => State::InsufficientData,
                    Some(v) if equivocal => {
                        if v > threshold { State::Alarm } else { State::Ok }
                    }
                    Some(_) if outside == points => State::Alarm,
                    Some(_) => State::Ok,
                };
                Evaluation {
                    state,
                    equivocal,
                    points,
                    outside,
                    most_recent: last,
                    reason: if points == 0 { "no datapoints".into() } else { String::new() },
                }
            })
            .collect())
    }
}

wasmeter_guest::export_alarm_rule!(Plugin);

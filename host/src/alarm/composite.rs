//! Aodh's composite rules (reference §2.4): `and` / `or` trees of
//! threshold rules, with Aodh's lazy first pass and its re-labelling of
//! equivocal leaves in the second.

use serde_json::{Map, Value, json};

use super::state::{Outcome, Refresh};
use super::{AlarmState, CompositeRule};

/// One evaluated leaf of a composite rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositeLeaf {
    /// The leaf's rule, as Aodh reports it in `causative_rules`.
    pub rule: Value,
    /// What the leaf's threshold rule concluded.
    pub outcome: Outcome,
}

#[derive(Clone, Copy, Default)]
struct Target {
    evaluated: bool,
    state: Option<AlarmState>,
    trend: Option<AlarmState>,
}

struct Eval<'a> {
    leaves: &'a [CompositeLeaf],
    targets: Vec<Target>,
}

impl Eval<'_> {
    fn touch(&mut self, i: usize) -> Option<AlarmState> {
        let t = &mut self.targets[i];
        if !t.evaluated {
            t.evaluated = true;
            match &self.leaves[i].outcome {
                Outcome::Decided { state, .. } => t.state = Some(*state),
                Outcome::Equivocal { trend, .. } => t.trend = Some(*trend),
                Outcome::Unknown { .. } => t.state = Some(AlarmState::InsufficientData),
            }
        }
        t.state
    }

    /// Aodh's alarm form: `and` → all children alarm, `or` → any.
    fn alarm(&mut self, rule: &CompositeRule, next: &mut usize) -> bool {
        self.walk(rule, next, AlarmState::Alarm, true)
    }

    /// Aodh's ok form, the dual: `and` → any child ok, `or` → every child.
    fn ok(&mut self, rule: &CompositeRule, next: &mut usize) -> bool {
        self.walk(rule, next, AlarmState::Ok, false)
    }

    /// Short-circuits like Python's `all` / `any`, but still advances the
    /// leaf counter over the children it skips.
    fn walk(
        &mut self,
        rule: &CompositeRule,
        next: &mut usize,
        want: AlarmState,
        and_is_all: bool,
    ) -> bool {
        match rule {
            CompositeRule::Leaf(_) => {
                let i = *next;
                *next += 1;
                self.touch(i) == Some(want)
            }
            CompositeRule::And(children) | CompositeRule::Or(children) => {
                let all = matches!(rule, CompositeRule::And(_)) == and_is_all;
                let mut result = all;
                let mut decided = false;
                for c in children {
                    if decided {
                        *next += leaf_count(c);
                        continue;
                    }
                    let v = self.walk(c, next, want, and_is_all);
                    if all && !v {
                        result = false;
                        decided = true;
                    } else if !all && v {
                        result = true;
                        decided = true;
                    }
                }
                result
            }
        }
    }

    /// One `_evaluate_sufficient`: re-label equivocal leaves, then alarm
    /// first, ok second.
    fn sufficient(&mut self, rule: &CompositeRule, current: AlarmState) -> Option<AlarmState> {
        for t in &mut self.targets {
            if let Some(trend) = t.trend {
                t.state = Some(if current == AlarmState::InsufficientData {
                    trend
                } else if trend == AlarmState::Alarm {
                    AlarmState::Ok
                } else {
                    AlarmState::Alarm
                });
            }
        }
        if self.alarm(rule, &mut 0) {
            Some(AlarmState::Alarm)
        } else if self.ok(rule, &mut 0) {
            Some(AlarmState::Ok)
        } else {
            None
        }
    }
}

fn leaf_count(rule: &CompositeRule) -> usize {
    match rule {
        CompositeRule::Leaf(_) => 1,
        CompositeRule::And(c) | CompositeRule::Or(c) => c.iter().map(leaf_count).sum(),
    }
}

/// Aodh's composition form: `(rule1 and (rule2 or rule3))`.
fn form(rule: &CompositeRule, next: &mut usize) -> String {
    match rule {
        CompositeRule::Leaf(_) => {
            *next += 1;
            format!("rule{next}")
        }
        CompositeRule::And(c) | CompositeRule::Or(c) => {
            let op = if matches!(rule, CompositeRule::And(_)) {
                " and "
            } else {
                " or "
            };
            let parts: Vec<String> = c.iter().map(|c| form(c, next)).collect();
            format!("({})", parts.join(op))
        }
    }
}

/// Evaluates a composite rule whose leaves (depth first, as
/// [`CompositeRule::leaves`]) concluded `leaves`, for an alarm currently in
/// `current`. `None`: nothing changes and nothing is notified.
///
/// Reasons as Aodh: "Composite rule alarm with composition form:
/// (rule1 and rule2) transition to alarm, due to rules: rule1, rule2
/// outside their threshold."; reason data `{type: composite,
/// composition_form, causative_rules: {ruleN: rule}}`.
pub fn evaluate_composite(
    rule: &CompositeRule,
    current: AlarmState,
    repeat_actions: bool,
    leaves: &[CompositeLeaf],
) -> Option<Refresh> {
    let mut e = Eval {
        leaves,
        targets: vec![Target::default(); leaves.len()],
    };
    let mut verdict = e.sufficient(rule, current);
    if verdict.is_none() {
        for i in 0..leaves.len() {
            e.touch(i);
        }
        verdict = e.sufficient(rule, current);
    }
    let state = verdict.unwrap_or(AlarmState::InsufficientData);
    if state == current && (verdict.is_none() || !repeat_actions) {
        return None;
    }
    let expression = form(rule, &mut 0);
    let mut causes = Map::new();
    let mut names = Vec::new();
    for (i, t) in e.targets.iter().enumerate() {
        if t.state == Some(state) {
            let name = format!("rule{}", i + 1);
            causes.insert(name.clone(), leaves[i].rule.clone());
            names.push(name);
        }
    }
    names.sort();
    let description = match state {
        AlarmState::Alarm => "outside their threshold.",
        AlarmState::Ok => "inside their threshold.",
        AlarmState::InsufficientData => "state evaluated to unknown.",
    };
    let lead = if state != current {
        format!("transition to {state}")
    } else {
        format!("remaining as {state}")
    };
    Some(Refresh {
        previous: current,
        current: state,
        reason: format!(
            "Composite rule alarm with composition form: {expression} {lead}, due to rules: {} {description}",
            names.join(", ")
        ),
        reason_data: json!({
            "type": "composite",
            "composition_form": expression,
            "causative_rules": causes,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{Selection, ThresholdRule};
    use crate::plugin::PluginSource;
    use crate::rollup::{AggregationMethod, BaseMethod};
    use AlarmState::*;
    use std::time::Duration;

    fn leaf() -> CompositeRule {
        CompositeRule::Leaf(ThresholdRule {
            plugin: PluginSource::Builtin("threshold".into()),
            metric: "cpu.util".into(),
            resource_id: "*".into(),
            aggregation_method: AggregationMethod::parse("mean").unwrap(),
            granularity: Duration::from_secs(60),
            evaluation_periods: 1,
            additional_ingestion_lag: Duration::ZERO,
            selection: Selection::Aggregated(BaseMethod::Mean),
            params: vec![],
        })
    }

    fn decided(s: AlarmState) -> CompositeLeaf {
        CompositeLeaf {
            rule: json!({}),
            outcome: Outcome::Decided {
                state: s,
                points: 1,
                outside: u32::from(s == Alarm),
                most_recent: Some(1.0),
            },
        }
    }
    fn trend(s: AlarmState) -> CompositeLeaf {
        CompositeLeaf {
            rule: json!({}),
            outcome: Outcome::Equivocal {
                trend: s,
                points: 2,
                outside: 1,
                most_recent: Some(1.0),
            },
        }
    }
    fn unknown() -> CompositeLeaf {
        CompositeLeaf {
            rule: json!({}),
            outcome: Outcome::Unknown {
                reason: "1 datapoints are unknown".into(),
                points: 0,
                most_recent: None,
            },
        }
    }

    #[test]
    fn and_alarms_when_every_child_alarms() {
        let rule = CompositeRule::And(vec![leaf(), leaf()]);
        let r = evaluate_composite(&rule, Ok, false, &[decided(Alarm), decided(Alarm)]).unwrap();
        assert_eq!(r.current, Alarm);
        assert_eq!(
            r.reason,
            "Composite rule alarm with composition form: (rule1 and rule2) transition to alarm, due to rules: rule1, rule2 outside their threshold."
        );
        assert_eq!(r.reason_data["composition_form"], "(rule1 and rule2)");
        assert_eq!(
            r.reason_data["causative_rules"].as_object().unwrap().len(),
            2
        );
    }

    #[test]
    fn and_is_ok_when_any_child_is_ok() {
        let rule = CompositeRule::And(vec![leaf(), leaf()]);
        let r = evaluate_composite(&rule, Alarm, false, &[decided(Alarm), decided(Ok)]).unwrap();
        assert_eq!(r.current, Ok);
        assert_eq!(
            r.reason,
            "Composite rule alarm with composition form: (rule1 and rule2) transition to ok, due to rules: rule2 inside their threshold."
        );
    }

    #[test]
    fn or_alarms_when_any_child_alarms_and_nested_forms() {
        let rule = CompositeRule::And(vec![leaf(), CompositeRule::Or(vec![leaf(), leaf()])]);
        let leaves = [decided(Alarm), decided(Ok), decided(Alarm)];
        let r = evaluate_composite(&rule, Ok, false, &leaves).unwrap();
        assert_eq!(r.current, Alarm);
        assert_eq!(
            r.reason_data["composition_form"],
            "(rule1 and (rule2 or rule3))"
        );
        assert_eq!(
            r.reason,
            "Composite rule alarm with composition form: (rule1 and (rule2 or rule3)) transition to alarm, due to rules: rule1, rule3 outside their threshold."
        );
    }

    #[test]
    fn unknown_and_alarm_is_insufficient_data() {
        let rule = CompositeRule::And(vec![leaf(), leaf()]);
        let r = evaluate_composite(&rule, Ok, false, &[unknown(), decided(Alarm)]).unwrap();
        assert_eq!(r.current, InsufficientData);
        assert_eq!(
            r.reason,
            "Composite rule alarm with composition form: (rule1 and rule2) transition to insufficient data, due to rules: rule1 state evaluated to unknown."
        );
        // Already insufficient: nothing.
        assert_eq!(
            evaluate_composite(&rule, InsufficientData, true, &[unknown(), decided(Alarm)]),
            None
        );
        // `unknown or ok` too.
        let rule = CompositeRule::Or(vec![leaf(), leaf()]);
        let r = evaluate_composite(&rule, Alarm, false, &[unknown(), decided(Ok)]).unwrap();
        assert_eq!(r.current, InsufficientData);
    }

    #[test]
    fn equivocal_leaves_take_their_trend_from_insufficient_data() {
        let rule = CompositeRule::And(vec![leaf(), leaf()]);
        let r = evaluate_composite(
            &rule,
            InsufficientData,
            false,
            &[trend(Alarm), decided(Alarm)],
        )
        .unwrap();
        assert_eq!(r.current, Alarm);
    }

    #[test]
    fn equivocal_leaves_are_inverted_otherwise() {
        // From ok, a trending-alarm leaf counts as ok: `and` is then ok
        // (remaining, so nothing without repeat_actions).
        let rule = CompositeRule::And(vec![leaf(), leaf()]);
        assert_eq!(
            evaluate_composite(&rule, Ok, false, &[trend(Alarm), decided(Alarm)]),
            None
        );
        let r = evaluate_composite(&rule, Ok, true, &[trend(Alarm), decided(Alarm)]).unwrap();
        assert_eq!((r.previous, r.current), (Ok, Ok));
        assert_eq!(
            r.reason,
            "Composite rule alarm with composition form: (rule1 and rule2) remaining as ok, due to rules: rule1 inside their threshold."
        );
        // From alarm, a trending-ok leaf counts as alarm: `or` stays alarm.
        let rule = CompositeRule::Or(vec![leaf(), leaf()]);
        assert_eq!(
            evaluate_composite(&rule, Alarm, false, &[trend(Ok), decided(Ok)]),
            None
        );
        // From alarm, a trending-alarm leaf counts as ok: `or` of it and an
        // ok leaf becomes ok.
        let r = evaluate_composite(&rule, Alarm, false, &[trend(Alarm), decided(Ok)]).unwrap();
        assert_eq!(r.current, Ok);
    }

    #[test]
    fn the_first_pass_short_circuits() {
        // `or`: the first leaf alarms, so the second (equivocal) is never
        // looked at and is not a cause.
        let rule = CompositeRule::Or(vec![leaf(), leaf()]);
        let r = evaluate_composite(&rule, Ok, false, &[decided(Alarm), trend(Alarm)]).unwrap();
        assert_eq!(r.current, Alarm);
        assert_eq!(
            r.reason_data["causative_rules"].as_object().unwrap().len(),
            1
        );
    }
}

//! Local health (Lifeguard's local health multiplier): how far this node trusts its own sense
//! of its peers' silence.
//!
//! A node that is itself slow (its machine overloaded, its event queue behind) hears
//! heartbeats late and finds live peers silent. Its suspicions then load the mesh further:
//! probes, new connections, verdicts gossiped to every node. Each suspicion of this node's
//! that ends with the peer alive counts against it; while the count is up, it waits that many
//! times longer before it suspects a silent peer or declares a suspect dead. The count falls
//! back one step each decay period without a false alarm. A peer whose connection is refused
//! everywhere (a killed process) is still dead at once: refusals are not silence.
//!
//! 200 in-process nodes on 2 cores, without it: in 4 minutes of forming, 31 147 suspicions of
//! silence and 28 469 deaths, of which 11 605 came back alive with their next heartbeat. With
//! it, 215 deaths in the first two minutes instead of 18 879; the process being CPU-bound at
//! that size, the storm still comes, later (`docs/benchmarks.md`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The highest multiplier is `1 + MAX_SCORE` (Lifeguard's default maximum is 8).
pub const MAX_SCORE: u32 = 8;

#[derive(Debug)]
pub struct Health {
    decay: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    score: u32,
    /// False alarms since the start.
    false_alarms: u64,
    /// When the score last changed (a false alarm, or a step of decay).
    changed: Instant,
}

impl Health {
    /// The score falls one step per `decay` without a false alarm.
    pub fn new(decay: Duration) -> Self {
        Self {
            decay,
            state: Mutex::new(State {
                score: 0,
                false_alarms: 0,
                changed: Instant::now(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("health lock is never poisoned")
    }

    /// A peer this node suspected turned out alive (one it found dead and hears from again
    /// may have restarted, which is no false alarm).
    pub fn false_alarm(&self, now: Instant) {
        let mut state = self.state();
        Self::decayed(&mut state, self.decay, now);
        state.score = (state.score + 1).min(MAX_SCORE);
        state.false_alarms += 1;
        state.changed = now;
    }

    /// False alarms since the start.
    pub fn false_alarms(&self) -> u64 {
        self.state().false_alarms
    }

    /// How many times longer than usual this node waits before it judges a peer by silence:
    /// 1 when healthy.
    pub fn multiplier(&self, now: Instant) -> u32 {
        let mut state = self.state();
        Self::decayed(&mut state, self.decay, now);
        1 + state.score
    }

    fn decayed(state: &mut State, decay: Duration, now: Instant) {
        if decay.is_zero() {
            state.score = 0;
            return;
        }
        let steps = now.saturating_duration_since(state.changed).as_nanos() / decay.as_nanos();
        if steps >= u128::from(state.score) {
            state.score = 0;
            state.changed = now;
        } else if steps > 0 {
            // Fewer steps than the score (at most `MAX_SCORE`): the cast cannot truncate.
            let steps = steps as u32;
            state.score -= steps;
            state.changed += decay * steps;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn false_alarms_raise_the_multiplier_up_to_its_cap_and_it_decays_step_by_step() {
        let decay = Duration::from_secs(5);
        let health = Health::new(decay);
        let t0 = Instant::now();
        assert_eq!(
            health.multiplier(t0),
            1,
            "a healthy node waits the usual time"
        );
        health.false_alarm(t0);
        health.false_alarm(t0);
        assert_eq!(health.multiplier(t0), 3);
        for _ in 0..20 {
            health.false_alarm(t0);
        }
        assert_eq!(health.multiplier(t0), 1 + MAX_SCORE, "capped");
        // One step per decay period without a false alarm.
        assert_eq!(health.multiplier(t0 + decay), MAX_SCORE);
        assert_eq!(health.multiplier(t0 + decay * 3 + decay / 2), MAX_SCORE - 2);
        assert_eq!(health.multiplier(t0 + decay * 100), 1, "back to healthy");
    }

    #[test]
    fn a_false_alarm_after_a_quiet_spell_starts_from_the_decayed_score() {
        let decay = Duration::from_secs(5);
        let health = Health::new(decay);
        let t0 = Instant::now();
        for _ in 0..4 {
            health.false_alarm(t0);
        }
        // Two periods later the score is 2; one more alarm makes it 3.
        health.false_alarm(t0 + decay * 2);
        assert_eq!(health.multiplier(t0 + decay * 2), 4);
    }
}

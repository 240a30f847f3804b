//! The task slots of a session cluster, shared among the jobs that rescale in place when
//! their plans ask for more than is free.
//!
//! The rule: a scale-down gives its slots back first; then, the job furthest behind its
//! target first, each job gets the slots it needs to keep up with its arrivals; what is left
//! goes, in the same order, towards what each plan wants. No job is taken below what it
//! holds (or, scaling down, below its plan), so no job is starved to feed another, and a
//! job's share changes only when the jobs' own plans or the free slots do: no oscillation.

use crate::scaling::JobDecision;

/// One job's claim on the cluster's task slots (one slot sharing group: its widest vertex).
#[derive(Debug, Clone, PartialEq)]
pub struct SlotAsk {
    pub job_id: String,
    pub job_name: String,
    /// Slots it holds now.
    pub held: u32,
    /// Slots it needs to keep up with its arrivals (every vertex at 100% busy), at most `wanted`.
    pub keep_up: u32,
    /// Slots its recommended parallelism needs.
    pub wanted: u32,
    /// How far its load is over what it can do now: its highest utilization at the target rate.
    pub behind: f64,
}

impl SlotAsk {
    /// The claim a decision makes.
    pub fn of_decision(job_id: &str, job_name: &str, decision: &JobDecision) -> SlotAsk {
        let widest = |p: &dyn Fn(&crate::scaling::VertexDecision) -> u32| {
            decision.vertices.iter().map(p).max().unwrap_or(0)
        };
        let wanted = widest(&|v| v.recommended);
        let keep_up = widest(&|v| {
            let e = &v.evidence;
            let needed = v.current as f64 * e.arrival_rate / e.true_rate;
            if needed.is_finite() && needed > 0.0 {
                needed.ceil() as u32
            } else {
                v.current
            }
        });
        let behind = decision
            .vertices
            .iter()
            .map(|v| v.evidence.expected_utilization)
            .filter(|u| u.is_finite())
            .fold(0.0, f64::max);
        SlotAsk {
            job_id: job_id.to_string(),
            job_name: job_name.to_string(),
            held: widest(&|v| v.current),
            keep_up: keep_up.clamp(1, wanted.max(1)),
            wanted,
            behind,
        }
    }

    /// Slots it would take beyond what it holds.
    pub fn more(&self) -> u32 {
        self.wanted.saturating_sub(self.held)
    }
}

/// Slots each job may use, in the order of `asks`, with `free` slots free in the cluster now.
pub fn share(free: u32, asks: &[SlotAsk]) -> Vec<u32> {
    // Scale-downs first: what they give back is free for the others.
    let mut grants: Vec<u32> = asks.iter().map(|a| a.held.min(a.wanted)).collect();
    let given_back: u32 = asks.iter().map(|a| a.held.saturating_sub(a.wanted)).sum();
    let mut pool = free + given_back;
    let mut order: Vec<usize> = (0..asks.len()).collect();
    order.sort_by(|&a, &b| {
        asks[b]
            .behind
            .total_cmp(&asks[a].behind)
            .then_with(|| asks[a].job_id.cmp(&asks[b].job_id))
    });
    for level in [|a: &SlotAsk| a.keep_up, |a: &SlotAsk| a.wanted] {
        for &i in &order {
            let extra = level(&asks[i]).saturating_sub(grants[i]).min(pool);
            grants[i] += extra;
            pool -= extra;
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(job: &str, held: u32, keep_up: u32, wanted: u32, behind: f64) -> SlotAsk {
        SlotAsk {
            job_id: job.into(),
            job_name: job.into(),
            held,
            keep_up,
            wanted,
            behind,
        }
    }

    #[test]
    fn enough_free_slots_give_every_plan_what_it_wants() {
        let asks = [ask("a", 1, 2, 3, 2.0), ask("b", 1, 2, 2, 1.5)];
        assert_eq!(share(3, &asks), vec![3, 2]);
    }

    #[test]
    fn the_job_furthest_behind_keeps_up_first_and_nobody_is_starved_below_keeping_up() {
        // 3 free slots; a wants 4 (keeps up at 3), b wants 3 (keeps up at 2), c wants 2
        // (keeps up at 2). Furthest behind: c, then a, then b.
        let asks = [
            ask("a", 1, 3, 4, 2.2),
            ask("b", 1, 2, 3, 1.4),
            ask("c", 1, 2, 2, 3.0),
        ];
        let grants = share(3, &asks);
        assert_eq!(grants, vec![3, 1, 2], "c keeps up, then a; b waits");
        // Free slots run out before b keeps up: b holds what it has, never less.
        assert!(grants
            .iter()
            .zip(&asks)
            .all(|(g, a)| *g >= a.held.min(a.wanted)));
    }

    #[test]
    fn a_scale_down_frees_its_slots_for_the_others_first() {
        let asks = [ask("shrinking", 4, 1, 2, 0.3), ask("growing", 1, 3, 3, 2.5)];
        assert_eq!(share(0, &asks), vec![2, 3]);
    }

    #[test]
    fn the_same_asks_get_the_same_shares_so_nothing_oscillates() {
        let asks = [ask("a", 1, 2, 3, 2.0), ask("b", 1, 2, 3, 2.0)];
        let first = share(2, &asks);
        assert_eq!(first, vec![2, 2], "ties go by job id: each keeps up");
        // Granted and applied: the next round's asks hold what they got and share nothing new.
        let applied = [ask("a", 2, 2, 3, 1.4), ask("b", 2, 2, 3, 1.4)];
        assert_eq!(share(0, &applied), vec![2, 2]);
    }
}

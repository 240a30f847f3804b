//! A session cluster's task slots among the jobs that rescale in place (AT129): the rule is
//! `autotune_model::slots::share`; here the jobs' claims meet the free slots and the plan is
//! said, once per change, when the claims exceed them.

use std::collections::HashMap;

use autotune_model::scaling::Code;
use autotune_model::slots::{share, SlotAsk};
use autotune_model::text::quoted;

use crate::announce::Announcer;

#[derive(Debug, Default)]
pub struct SlotPlan {
    /// The plan last said; `None`: the claims fit.
    said: Option<String>,
}

impl SlotPlan {
    /// The slots each claiming job may take, with `free` slots free now.
    pub fn shares(
        &mut self,
        mut claims: Vec<SlotAsk>,
        free: u32,
        announcer: &Announcer,
    ) -> HashMap<String, u32> {
        claims.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        let shares = share(free, &claims);
        self.say(&claims, &shares, free, announcer);
        claims.into_iter().map(|c| c.job_id).zip(shares).collect()
    }

    fn say(&mut self, claims: &[SlotAsk], shares: &[u32], free: u32, announcer: &Announcer) {
        let short = claims.iter().zip(shares).any(|(c, s)| *s < c.wanted);
        let plan = short.then(|| {
            claims
                .iter()
                .zip(shares)
                .map(|(c, s)| {
                    format!(
                        "job={} ({}) {s} of {} (keeps up at {})",
                        quoted(&c.job_name),
                        c.job_id,
                        c.wanted,
                        c.keep_up
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        });
        if plan == self.said {
            return;
        }
        self.said = plan;
        let Some(plan) = &self.said else {
            return;
        };
        let asked: u32 = claims.iter().map(SlotAsk::more).sum();
        announcer.info(&format!(
            "AUTOTUNE {} cluster jobs={} slots-free={free} slots-asked={asked} | {plan}: scale-downs give their slots back first, then the job furthest behind its target first gets what keeps it up, then what its plan wants",
            Code::ClusterSlotPlan,
            claims.len()
        ));
    }
}

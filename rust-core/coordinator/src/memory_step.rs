//! The memory half of a round: the TaskManagers' windows and the job graphs at their current
//! and recommended parallelism, into one plan, said and written when it changes. The plan is
//! the job's where one job runs; in a session cluster, whose jobs share the TaskManagers and
//! one configuration, it is the cluster's, said once for all of them.

use std::time::Duration;

use autotune_model::memory::{self, MemoryPlan, PoolWindow};
use autotune_model::metrics::POOL_WINDOW_METRIC;
use autotune_model::scaling::Code;
use autotune_model::text::quoted;

use crate::announce::Announcer;
use crate::outputs::JobFiles;
use crate::pools::{JobGraph, MemoryView};
use crate::settings::LoopSettings;

/// Windows shorter than this many samples are not planned on.
const MIN_MEMORY_SAMPLES: u32 = 3;

/// What the loop remembers about one job's memory between rounds.
#[derive(Debug, Default)]
pub struct JobMemory {
    /// The last plan said: a plan close to it is not said again.
    pub plan: Option<MemoryPlan>,
    /// Told that the TaskManagers are measured over REST only (once).
    told_measured_by_rest: bool,
}

/// Whose plan it is: one job's, or a session cluster's (every job on its TaskManagers).
pub enum PlanScope<'a> {
    Job { id: &'a str, name: &'a str },
    Cluster { jobs: usize },
}

impl PlanScope<'_> {
    /// How its lines name it.
    fn shown(&self) -> String {
        match self {
            PlanScope::Job { id, name } => format!("job={} ({id})", quoted(name)),
            PlanScope::Cluster { jobs } => format!("cluster jobs={jobs}"),
        }
    }
}

/// What one memory plan is made from.
pub struct PlanRequest<'a> {
    pub scope: PlanScope<'a>,
    /// The graphs of the jobs on the TaskManagers.
    pub jobs: &'a [JobGraph<'a>],
    pub view: &'a MemoryView,
    pub at_ms: i64,
    /// The decision window: pool windows shorter than it are not planned on.
    pub window: Duration,
}

/// The memory step of a round: the job's TaskManager memory planned by the model, said and
/// written when it changed; `Ok(None)` when there is nothing new to say.
pub fn step(
    job: &mut JobMemory,
    settings: &LoopSettings,
    request: PlanRequest<'_>,
    files: &mut JobFiles,
    announcer: &Announcer,
) -> Result<Option<MemoryPlan>, String> {
    let PlanRequest {
        scope,
        jobs,
        view,
        at_ms,
        window,
    } = request;
    let job_ref = scope.shown();
    if view.measured_by_rest && !job.told_measured_by_rest {
        job.told_measured_by_rest = true;
        announcer.info(&format!(
            "AUTOTUNE {} {job_ref} | no TaskManager publishes {POOL_WINDOW_METRIC} (the plugin is not in their plugins/autotune/): their pools are measured from Flink's own metrics over REST, which do not show the live heap, so the heap is kept as it is",
            Code::MemoryNotMeasured,
        ));
    }
    if !view.windows.iter().any(|w| long_enough(w, window)) {
        return Ok(None);
    }
    let memory_settings = view.settings(settings.memory.margin, settings.memory.heap_headroom);
    let planned = view
        .inputs(jobs, &memory_settings)
        .and_then(|inputs| memory::plan(&inputs, &memory_settings));
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            log::debug!("AUTOTUNE COORDINATOR no memory plan for {job_ref}: {e}");
            return Ok(None);
        }
    };
    if job.plan.as_ref().is_some_and(|last| plan.close_to(last)) {
        return Ok(None);
    }
    for line in plan.log_lines(&job_ref) {
        announcer.info(&line);
    }
    let written = match scope {
        PlanScope::Job { id, name } => files
            .recommend(id, name, at_ms, |r| r.memory = plan.config_keys())
            .and_then(|_| {
                files.history(
                    id,
                    &serde_json::json!({ "at_ms": at_ms, "job_id": id, "job_name": name, "memory": plan }),
                )
            }),
        PlanScope::Cluster { jobs } => files.recommend_cluster(jobs, at_ms, plan.config_keys()),
    };
    files.settle(written, at_ms, announcer);
    job.plan = Some(plan.clone());
    Ok(Some(plan))
}

/// Plan on windows as long as the decision window (or as long as they get): peaks of a few
/// seconds after a start say little.
fn long_enough(w: &PoolWindow, window: Duration) -> bool {
    w.samples >= MIN_MEMORY_SAMPLES && (w.full || w.window_seconds >= 0.9 * window.as_secs_f64())
}

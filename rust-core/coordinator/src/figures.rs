//! The coordinator's figures as Flink metrics: what each job's last decision found, per vertex
//! and per job, for the reporters a cluster already has (Prometheus, JMX, Datadog ...). The
//! loop writes them here; the plugin's shim reads those that changed once per report and
//! serves them as gauges in the job's own metric group. `watch` has no metric groups and
//! leaves them unread.

use std::collections::BTreeMap;
use std::sync::Mutex;

use autotune_model::diagnosis::Severity;
use autotune_model::memory::MemoryPlan;

use crate::scaling_step::Decided;

/// One figure: the job, the group below the job's `autotune` group (`vertex` = its id,
/// `severity` = a severity; none for the job's own), and the metric's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FigureKey {
    pub job_id: String,
    pub group: Option<(&'static str, String)>,
    pub name: &'static str,
}

/// The figures of every live job, and a version that moves when any of them does.
#[derive(Debug, Default)]
pub struct Figures {
    board: Mutex<Board>,
}

#[derive(Debug, Default)]
struct Board {
    version: u64,
    values: BTreeMap<FigureKey, f64>,
}

impl Figures {
    /// Sets these figures of a job (the others it has keep their values).
    pub fn publish(&self, figures: Vec<(FigureKey, f64)>) {
        let mut board = self.lock();
        let mut changed = false;
        for (key, value) in figures {
            let old = board.values.insert(key, value);
            changed |= old.map(f64::to_bits) != Some(value.to_bits());
        }
        if changed {
            board.version += 1;
        }
    }

    /// The figures of jobs that are gone are dropped (their metric groups close with them).
    pub fn retain_jobs(&self, live: impl Fn(&str) -> bool) {
        let mut board = self.lock();
        let before = board.values.len();
        board.values.retain(|k, _| live(&k.job_id));
        if board.values.len() != before {
            board.version += 1;
        }
    }

    /// Every figure, when they changed since `version`: (the version now, the figures).
    pub fn since(&self, version: u64) -> Option<(u64, Vec<(FigureKey, f64)>)> {
        let board = self.lock();
        (board.version != version).then(|| {
            let all = board.values.iter().map(|(k, v)| (k.clone(), *v)).collect();
            (board.version, all)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Each vertex's figures of a decision: its parallelism now and recommended, its true
/// processing rate, the rate it must sustain, how busy it is, and whether it is the bottleneck.
pub fn of_decision(decided: &Decided) -> Vec<(FigureKey, f64)> {
    let job_id = &decided.snapshot.job_id;
    let decision = &decided.decision;
    let mut figures = Vec::new();
    for (i, v) in decision.vertices.iter().enumerate() {
        let key = |name| FigureKey {
            job_id: job_id.clone(),
            group: Some(("vertex", v.id.clone())),
            name,
        };
        let e = &v.evidence;
        let bottleneck = decision.bottleneck == Some(i);
        figures.extend([
            (key("parallelism"), f64::from(v.current)),
            (key("recommendedParallelism"), f64::from(v.recommended)),
            (key("trueProcessingRate"), e.true_rate),
            (key("targetRate"), e.arrival_rate + e.catch_up_rate),
            (key("utilization"), e.busy),
            (key("bottleneck"), if bottleneck { 1.0 } else { 0.0 }),
        ]);
    }
    figures
}

/// What a job's figures say of it as a whole.
pub struct JobFigures<'a> {
    pub job_id: &'a str,
    /// Rescales applied in place, and rolled back.
    pub rescales: (u64, u64),
    /// The TaskManager memory plan in force for it (its own, or the session cluster's).
    pub memory: Option<&'a MemoryPlan>,
    /// Its diagnosis findings, by severity.
    pub findings: Vec<(Severity, usize)>,
}

/// The job's own figures: rescales applied and rolled back, the memory plan's process size,
/// and its findings by severity (every severity, 0 when none).
pub fn of_job(job: JobFigures<'_>) -> Vec<(FigureKey, f64)> {
    let key = |group, name| FigureKey {
        job_id: job.job_id.to_string(),
        group,
        name,
    };
    let mut figures = vec![
        (key(None, "rescalesApplied"), job.rescales.0 as f64),
        (key(None, "rescalesRolledBack"), job.rescales.1 as f64),
        (
            key(None, "taskManagerProcessBytes"),
            job.memory
                .map_or(f64::NAN, |p| p.recommended.process_total() as f64),
        ),
    ];
    for severity in [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ] {
        let count = job
            .findings
            .iter()
            .filter(|(s, _)| *s == severity)
            .map(|(_, n)| n)
            .sum::<usize>();
        figures.push((
            key(Some(("severity", severity.to_string())), "findings"),
            count as f64,
        ));
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(job: &str, name: &'static str) -> FigureKey {
        FigureKey {
            job_id: job.into(),
            group: None,
            name,
        }
    }

    #[test]
    fn the_version_moves_only_when_a_figure_does() {
        let figures = Figures::default();
        assert!(figures.since(0).is_none(), "nothing yet");
        figures.publish(vec![(key("a", "rescalesApplied"), 1.0)]);
        let (v1, all) = figures.since(0).unwrap();
        assert_eq!(all, vec![(key("a", "rescalesApplied"), 1.0)]);
        figures.publish(vec![(key("a", "rescalesApplied"), 1.0)]);
        assert!(figures.since(v1).is_none(), "unchanged");
        figures.publish(vec![(key("a", "taskManagerProcessBytes"), f64::NAN)]);
        let (v2, _) = figures.since(v1).unwrap();
        figures.publish(vec![(key("a", "taskManagerProcessBytes"), f64::NAN)]);
        assert!(figures.since(v2).is_none(), "NaN is NaN");
        figures.publish(vec![(key("b", "rescalesApplied"), 0.0)]);
        figures.retain_jobs(|id| id == "b");
        let (_, all) = figures.since(v2).unwrap();
        assert_eq!(all, vec![(key("b", "rescalesApplied"), 0.0)]);
    }
}

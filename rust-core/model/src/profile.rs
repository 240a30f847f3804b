//! Flame-graph samples of a vertex's task threads, as folded stacks (Brendan Gregg's
//! collapsed format: `root;...;leaf count`), bounded in depth, in distinct stacks and in
//! size wherever they are kept: in a TaskManager's gauge, in the coordinator while it merges
//! the subtasks of every TaskManager, and in the files it writes.
//!
//! When sampling is due is decided here too ([`SamplingSchedule`]): a TaskManager samples
//! the task threads of a vertex that its own windows show saturated, at most once per
//! decision, so a profile is ready when the coordinator names that vertex the bottleneck.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The frame that stands for the part of a deep stack that was cut off, at its root.
pub const TRUNCATED_FRAME: &str = "[truncated]";
/// The stack that stands for every stack left out to stay within size, with their samples.
pub const OTHER_STACKS_FRAME: &str = "[other stacks]";

/// How large a profile may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileLimits {
    /// Frames kept per stack, the leaf side (where the time is spent).
    pub max_depth: usize,
    /// Characters kept of one frame's name.
    pub max_frame_chars: usize,
    /// Bytes of the profile as JSON, about: its frames and stacks.
    pub max_bytes: usize,
}

impl ProfileLimits {
    /// One TaskManager's profile of one vertex, in its gauge. Flink's JobManager keeps every
    /// gauge value it fetches, so this is small: 4 vertices of 32 KiB per TaskManager.
    pub const GAUGE: ProfileLimits = ProfileLimits {
        max_depth: 256,
        max_frame_chars: 200,
        max_bytes: 32 * 1024,
    };
    /// A vertex's merged profile, as the coordinator keeps and writes it.
    pub const MERGED: ProfileLimits = ProfileLimits {
        max_depth: 256,
        max_frame_chars: 200,
        max_bytes: 1024 * 1024,
    };
}

/// Profiles a TaskManager keeps in its gauge (the most recently sampled vertices).
pub const MAX_PROFILES_PER_TASKMANAGER: usize = 4;

/// One vertex's sampled stacks, on one TaskManager or merged over all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub job_id: String,
    pub vertex_id: String,
    pub vertex_name: String,
    /// When sampling ended (epoch ms); a merge keeps the newest.
    pub at_ms: i64,
    /// Thread samples: a round over 3 threads counts 3.
    pub samples: u64,
    /// Task threads sampled (subtasks).
    pub threads: u32,
    /// TaskManagers the samples come from.
    pub taskmanagers: u32,
    /// Time the sampling calls took, in total and the longest one (µs): what sampling costs
    /// the task threads, which the JVM stops at a safepoint to read their stacks.
    pub sampling_us: u64,
    pub sampling_max_us: u64,
    /// Distinct frame names; stacks refer to them by index.
    pub frames: Vec<String>,
    /// Root-first frame indexes of each distinct stack, and its samples.
    pub stacks: Vec<(Vec<u32>, u64)>,
}

/// What sampling a vertex's task threads gave, before it is folded into a [`Profile`].
#[derive(Debug, Clone, Default)]
pub struct Sampled<'a> {
    pub job_id: &'a str,
    pub vertex_id: &'a str,
    pub vertex_name: &'a str,
    pub at_ms: i64,
    /// One folded stack per thread sample (`root;...;leaf`); several may be equal.
    pub stacks: &'a [String],
    pub threads: u32,
    pub sampling_us: u64,
    pub sampling_max_us: u64,
}

impl Profile {
    /// Folds one TaskManager's samples into a bounded profile.
    pub fn fold(sampled: &Sampled<'_>, limits: ProfileLimits) -> Profile {
        let mut counts: HashMap<Vec<String>, u64> = HashMap::new();
        for stack in sampled.stacks {
            *counts
                .entry(bounded_stack(stack.split(';'), limits))
                .or_default() += 1;
        }
        let mut profile = Profile::from_counts(counts, limits);
        profile.job_id = sampled.job_id.to_string();
        profile.vertex_id = sampled.vertex_id.to_string();
        profile.vertex_name = sampled.vertex_name.to_string();
        profile.at_ms = sampled.at_ms;
        profile.samples = sampled.stacks.len() as u64;
        profile.threads = sampled.threads;
        profile.taskmanagers = 1;
        profile.sampling_us = sampled.sampling_us;
        profile.sampling_max_us = sampled.sampling_max_us;
        profile
    }

    /// A bounded profile of folded stacks (`root;...;leaf`) with their samples; the caller
    /// fills in what it describes.
    pub fn from_folded<'a>(
        stacks: impl IntoIterator<Item = (&'a str, u64)>,
        limits: ProfileLimits,
    ) -> Profile {
        let mut counts: HashMap<Vec<String>, u64> = HashMap::new();
        let mut samples = 0;
        for (stack, count) in stacks {
            *counts
                .entry(bounded_stack(stack.split(';'), limits))
                .or_default() += count;
            samples += count;
        }
        Profile {
            samples,
            ..Profile::from_counts(counts, limits)
        }
    }

    /// Merges profiles of one vertex (its subtasks on several TaskManagers) into one.
    pub fn merge<'a>(
        profiles: impl IntoIterator<Item = &'a Profile>,
        limits: ProfileLimits,
    ) -> Option<Profile> {
        let mut counts: HashMap<Vec<String>, u64> = HashMap::new();
        let mut merged: Option<Profile> = None;
        for p in profiles {
            for (names, count) in p.named_stacks() {
                *counts
                    .entry(bounded_stack(names.into_iter(), limits))
                    .or_default() += count;
            }
            match merged.as_mut() {
                None => merged = Some(p.clone()),
                Some(m) => {
                    m.at_ms = m.at_ms.max(p.at_ms);
                    m.samples += p.samples;
                    m.threads += p.threads;
                    m.taskmanagers += p.taskmanagers;
                    m.sampling_us += p.sampling_us;
                    m.sampling_max_us = m.sampling_max_us.max(p.sampling_max_us);
                }
            }
        }
        let mut merged = merged?;
        let bounded = Profile::from_counts(counts, limits);
        merged.frames = bounded.frames;
        merged.stacks = bounded.stacks;
        Some(merged)
    }

    /// The stacks with their frame names, root first.
    pub fn named_stacks(&self) -> impl Iterator<Item = (Vec<&str>, u64)> + '_ {
        self.stacks.iter().map(|(ids, count)| {
            let names = ids
                .iter()
                .map(|&i| self.frames.get(i as usize).map_or("?", String::as_str))
                .collect();
            (names, *count)
        })
    }

    /// The profile in Brendan Gregg's collapsed format, the most sampled stacks first:
    /// what `inferno`, `flamegraph.pl` and speedscope read.
    pub fn folded(&self) -> String {
        let mut stacks: Vec<(Vec<&str>, u64)> = self.named_stacks().collect();
        stacks.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut text = String::new();
        for (names, count) in stacks {
            text.push_str(&names.join(";"));
            text.push(' ');
            text.push_str(&count.to_string());
            text.push('\n');
        }
        text
    }

    /// Where the time goes, by the code that spends it: each sample counts for its innermost
    /// frame of the job's own code (a user function, Flink SQL's generated code or one of its
    /// functions), or for its leaf when no such frame is on the stack. The job's code comes
    /// first, then Flink's and the JDK's plumbing, each by share of the samples.
    pub fn top_frames(&self, n: usize) -> Vec<TopFrame> {
        let total: u64 = self.stacks.iter().map(|(_, c)| c).sum();
        if total == 0 {
            return Vec::new();
        }
        let mut by_frame: HashMap<(&str, bool), u64> = HashMap::new();
        for (names, count) in self.named_stacks() {
            let cause = names
                .iter()
                .rev()
                .find(|f| is_job_code(f))
                .map(|f| (*f, true))
                .or_else(|| names.last().map(|f| (*f, false)));
            if let Some(cause) = cause {
                *by_frame.entry(cause).or_default() += count;
            }
        }
        let mut top: Vec<TopFrame> = by_frame
            .into_iter()
            .map(|((frame, job_code), count)| TopFrame {
                frame: frame.to_string(),
                share: count as f64 / total as f64,
                job_code,
            })
            .collect();
        top.sort_by(|a, b| {
            b.job_code
                .cmp(&a.job_code)
                .then(b.share.total_cmp(&a.share))
                .then_with(|| a.frame.cmp(&b.frame))
        });
        top.truncate(n);
        top
    }

    /// Interns the stacks' frames; when the whole does not fit in `limits.max_bytes`, the
    /// least sampled stacks are counted together as [`OTHER_STACKS_FRAME`].
    fn from_counts(counts: HashMap<Vec<String>, u64>, limits: ProfileLimits) -> Profile {
        let mut stacks: Vec<(Vec<String>, u64)> = counts.into_iter().collect();
        stacks.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut frames: Vec<String> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut kept: Vec<(Vec<u32>, u64)> = Vec::new();
        // Room for the stack that stands for the rest.
        let mut bytes = json_bytes(OTHER_STACKS_FRAME) + 32;
        let mut left_out = 0u64;
        for (names, count) in stacks {
            let new_frames: usize = names
                .iter()
                .filter(|n| !index.contains_key(*n))
                .map(|n| json_bytes(n))
                .sum();
            // Each index as up to 6 characters, the count and brackets.
            let cost = new_frames + names.len() * 6 + 24;
            if bytes + cost > limits.max_bytes {
                left_out += count;
                continue;
            }
            bytes += cost;
            let ids = names
                .into_iter()
                .map(|n| {
                    *index.entry(n.clone()).or_insert_with(|| {
                        frames.push(n);
                        (frames.len() - 1) as u32
                    })
                })
                .collect();
            kept.push((ids, count));
        }
        if left_out > 0 {
            frames.push(OTHER_STACKS_FRAME.to_string());
            kept.push((vec![(frames.len() - 1) as u32], left_out));
        }
        Profile {
            job_id: String::new(),
            vertex_id: String::new(),
            vertex_name: String::new(),
            at_ms: 0,
            samples: 0,
            threads: 0,
            taskmanagers: 0,
            sampling_us: 0,
            sampling_max_us: 0,
            frames,
            stacks: kept,
        }
    }
}

/// A frame and the share of the samples it accounts for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopFrame {
    pub frame: String,
    pub share: f64,
    /// The job's own code (not Flink's or the JDK's plumbing).
    pub job_code: bool,
}

/// Packages whose frames are plumbing around the job's code, not its cause. Flink's own SQL
/// functions are the job's code: a costly `REGEXP_REPLACE` is where a SQL job spends its time.
const PLUMBING: &[&str] = &[
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "scala.",
    "kotlin.",
    "akka.",
    "org.apache.pekko.",
    "org.apache.flink.",
    "[",
];
const JOB_CODE_IN_FLINK: &[&str] = &[
    "org.apache.flink.table.runtime.functions.",
    "org.apache.flink.table.functions.",
];

/// Whether a frame (`package.Class.method`) is the job's own code.
pub fn is_job_code(frame: &str) -> bool {
    JOB_CODE_IN_FLINK.iter().any(|p| frame.starts_with(p))
        || !PLUMBING.iter().any(|p| frame.starts_with(p))
}

/// A stack's frames, each sanitized and cut to length, the leaf side kept when too deep.
fn bounded_stack<'a>(frames: impl Iterator<Item = &'a str>, limits: ProfileLimits) -> Vec<String> {
    let frames: Vec<&str> = frames.filter(|f| !f.is_empty()).collect();
    let cut = frames.len().saturating_sub(limits.max_depth);
    let mut stack = Vec::with_capacity(frames.len().min(limits.max_depth) + 1);
    if cut > 0 {
        stack.push(TRUNCATED_FRAME.to_string());
    }
    stack.extend(
        frames[cut..]
            .iter()
            .map(|f| sanitize_frame(f, limits.max_frame_chars)),
    );
    stack
}

/// A frame name the folded format can carry: no separators, no line breaks, bounded.
fn sanitize_frame(frame: &str, max_chars: usize) -> String {
    frame
        .chars()
        .take(max_chars)
        .map(|c| match c {
            ';' => ':',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// Bytes of a string in JSON, about (quotes, comma, escapes).
fn json_bytes(s: &str) -> usize {
    s.len() + 3 + s.chars().filter(|c| matches!(c, '"' | '\\')).count()
}

/// A vertex whose task threads a TaskManager should sample now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplingTarget {
    pub job_id: Arc<str>,
    pub vertex_id: Arc<str>,
    pub vertex_name: Arc<str>,
}

impl SamplingTarget {
    /// The start of the names of its task threads: Flink names each
    /// `<task name> (<subtask>/<parallelism>)#<attempt>`.
    pub fn thread_prefix(&self) -> String {
        format!("{} (", self.vertex_name)
    }
}

/// A vertex's hottest subtask on this TaskManager, as its windows show it.
#[derive(Debug, Clone, PartialEq)]
pub struct VertexLoad {
    pub target: SamplingTarget,
    /// Busy share of its hottest local subtask over the recent rounds.
    pub busy: f64,
}

/// A vertex is sampled when its hottest local subtask was busy at least this share of the
/// recent rounds: a bottleneck is busy, and sampling an idle vertex tells nothing.
pub const SATURATED_BUSY: f64 = 0.5;
/// Vertices sampled in one go at most (the busiest first).
pub const VERTICES_PER_ROUND: usize = 2;

/// How often within a sampling interval a TaskManager looks at its vertices' loads: a vertex
/// that turns saturated is sampled at most a quarter interval late, and `report()` reads the
/// loads a few times per decision instead of every round.
pub const CHECKS_PER_INTERVAL: i64 = 4;

/// When each vertex was last sampled on this TaskManager.
#[derive(Debug, Clone, Default)]
pub struct SamplingSchedule {
    last: HashMap<(Arc<str>, Arc<str>), i64>,
    next_check_ms: i64,
}

impl SamplingSchedule {
    /// The saturated vertices not sampled in the last `every_ms`, the busiest first; they
    /// count as sampled from now on. `loads` is read only when it is time to look.
    pub fn due(
        &mut self,
        loads: impl FnOnce() -> Vec<VertexLoad>,
        now_ms: i64,
        every_ms: i64,
    ) -> Vec<SamplingTarget> {
        if now_ms < self.next_check_ms {
            return Vec::new();
        }
        let loads = loads();
        // Too few rounds to judge any vertex yet: look again at the next round.
        let judged = !loads.is_empty();
        let mut saturated: Vec<VertexLoad> = loads
            .into_iter()
            .filter(|l| l.busy >= SATURATED_BUSY)
            .filter(|l| {
                self.last
                    .get(&(l.target.job_id.clone(), l.target.vertex_id.clone()))
                    .is_none_or(|&at| now_ms - at >= every_ms)
            })
            .collect();
        saturated.sort_by(|a, b| b.busy.total_cmp(&a.busy));
        // Vertices left for the next round are looked at again in the next round.
        self.next_check_ms = if !judged || saturated.len() > VERTICES_PER_ROUND {
            now_ms
        } else {
            now_ms + every_ms / CHECKS_PER_INTERVAL
        };
        saturated.truncate(VERTICES_PER_ROUND);
        // Vertices of jobs long gone are forgotten.
        self.last
            .retain(|_, at| now_ms - *at < 10 * every_ms.max(1));
        saturated
            .into_iter()
            .map(|l| {
                self.last.insert(
                    (l.target.job_id.clone(), l.target.vertex_id.clone()),
                    now_ms,
                );
                l.target
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled<'a>(stacks: &'a [String], at_ms: i64) -> Sampled<'a> {
        Sampled {
            job_id: "j",
            vertex_id: "v",
            vertex_name: "Work",
            at_ms,
            stacks,
            threads: 1,
            sampling_us: 10,
            sampling_max_us: 4,
        }
    }

    fn stacks(lines: &[(&str, usize)]) -> Vec<String> {
        lines
            .iter()
            .flat_map(|(s, n)| std::iter::repeat_n(s.to_string(), *n))
            .collect()
    }

    const SPIN: &str = "java.lang.Thread.run;org.apache.flink.runtime.taskmanager.Task.run;org.apache.flink.streaming.runtime.tasks.OneInputStreamTask.processInput;dev.example.Work.map;dev.example.Work.spin;java.lang.System.nanoTime";
    const SERIALIZE: &str = "java.lang.Thread.run;org.apache.flink.runtime.taskmanager.Task.run;org.apache.flink.runtime.io.network.api.writer.RecordWriter.emit;org.apache.flink.api.java.typeutils.runtime.TupleSerializer.serialize";

    #[test]
    fn folding_counts_equal_stacks_and_names_the_job_code_first() {
        let lines = stacks(&[(SPIN, 80), (SERIALIZE, 20)]);
        let p = Profile::fold(&sampled(&lines, 5), ProfileLimits::GAUGE);
        assert_eq!(p.samples, 100);
        assert_eq!(p.stacks.len(), 2);
        let folded = p.folded();
        assert!(folded.starts_with(&format!("{SPIN} 80\n")), "{folded}");
        assert!(folded.ends_with(&format!("{SERIALIZE} 20\n")), "{folded}");
        let top = p.top_frames(5);
        // The spin's leaf is the JDK's nanoTime: the cause is the job's frame above it.
        assert_eq!(top[0].frame, "dev.example.Work.spin");
        assert!(top[0].job_code && (top[0].share - 0.8).abs() < 1e-9);
        assert_eq!(
            top[1].frame,
            "org.apache.flink.api.java.typeutils.runtime.TupleSerializer.serialize"
        );
        assert!(!top[1].job_code);
    }

    #[test]
    fn flink_sql_functions_and_generated_code_are_the_jobs_code() {
        assert!(is_job_code(
            "org.apache.flink.table.runtime.functions.SqlFunctionUtils.regexpReplace"
        ));
        assert!(is_job_code("StreamExecCalc$23.processElement"));
        assert!(!is_job_code("java.util.regex.Pattern$Curly.match"));
        assert!(!is_job_code(
            "org.apache.flink.streaming.runtime.io.StreamTaskNetworkInput.emitNext"
        ));
    }

    #[test]
    fn merging_subtasks_of_several_taskmanagers_adds_their_samples() {
        let a = stacks(&[(SPIN, 60)]);
        let b = stacks(&[(SPIN, 30), (SERIALIZE, 10)]);
        let pa = Profile::fold(&sampled(&a, 100), ProfileLimits::GAUGE);
        let pb = Profile::fold(&sampled(&b, 200), ProfileLimits::GAUGE);
        let m = Profile::merge([&pa, &pb], ProfileLimits::MERGED).unwrap();
        assert_eq!((m.samples, m.threads, m.taskmanagers), (100, 2, 2));
        assert_eq!(m.at_ms, 200);
        assert_eq!(m.sampling_max_us, 4);
        assert!(m.folded().starts_with(&format!("{SPIN} 90\n")));
        assert_eq!(Profile::merge([], ProfileLimits::MERGED), None);
    }

    #[test]
    fn deep_stacks_keep_their_leaf_side() {
        let deep: Vec<String> = (0..1_000).map(|i| format!("dev.example.R.f{i}")).collect();
        let lines = vec![deep.join(";")];
        let p = Profile::fold(&sampled(&lines, 1), ProfileLimits::GAUGE);
        let (names, _) = p.named_stacks().next().unwrap();
        assert_eq!(names.len(), ProfileLimits::GAUGE.max_depth + 1);
        assert_eq!(names[0], TRUNCATED_FRAME);
        assert_eq!(*names.last().unwrap(), "dev.example.R.f999");
    }

    #[test]
    fn hostile_frame_names_cannot_break_the_folded_format() {
        let lines = vec![format!("a;b\nc\"d;{}", "x".repeat(5_000))];
        let p = Profile::fold(&sampled(&lines, 1), ProfileLimits::GAUGE);
        let folded = p.folded();
        assert_eq!(folded.lines().count(), 1);
        let (frames, count) = folded.trim_end().rsplit_once(' ').unwrap();
        assert_eq!(count, "1");
        assert_eq!(frames.split(';').count(), 3);
        assert!(frames.split(';').all(|f| f.chars().count() <= 200));
    }

    /// A vertex with 100 subtasks, each with its own deep stacks: every profile stays within
    /// its limits, the samples left out are still counted, and the merge too stays bounded.
    #[test]
    fn thousands_of_distinct_deep_stacks_stay_within_the_limits() {
        let profiles: Vec<Profile> = (0..100)
            .map(|subtask| {
                let lines: Vec<String> = (0..100)
                    .map(|sample| {
                        (0..1_000)
                            .map(|depth| {
                                format!("dev.example.Deep{subtask}.f{}", (depth * sample) % 977)
                            })
                            .collect::<Vec<_>>()
                            .join(";")
                    })
                    .collect();
                Profile::fold(&sampled(&lines, subtask), ProfileLimits::GAUGE)
            })
            .collect();
        for p in &profiles {
            let json = serde_json_size(p);
            assert!(json <= ProfileLimits::GAUGE.max_bytes, "{json} bytes");
            assert_eq!(p.stacks.iter().map(|(_, c)| c).sum::<u64>(), 100);
        }
        let merged = Profile::merge(&profiles, ProfileLimits::MERGED).unwrap();
        assert!(serde_json_size(&merged) <= ProfileLimits::MERGED.max_bytes);
        assert!(merged.folded().len() <= 2 * ProfileLimits::MERGED.max_bytes);
        assert_eq!(merged.stacks.iter().map(|(_, c)| c).sum::<u64>(), 10_000);
        assert_eq!(merged.samples, 10_000);
        assert_eq!(merged.threads, 100);
    }

    fn serde_json_size(p: &Profile) -> usize {
        serde_json::to_string(p).unwrap().len()
    }

    fn load(vertex: &str, busy: f64) -> VertexLoad {
        VertexLoad {
            target: SamplingTarget {
                job_id: "j".into(),
                vertex_id: vertex.into(),
                vertex_name: vertex.into(),
            },
            busy,
        }
    }

    #[test]
    fn saturated_vertices_are_sampled_once_per_interval_busiest_first() {
        let mut schedule = SamplingSchedule::default();
        let read = std::cell::Cell::new(0);
        let loads = || {
            read.set(read.get() + 1);
            vec![
                load("a", 0.6),
                load("b", 0.95),
                load("c", 0.2),
                load("d", 0.7),
            ]
        };
        let first = schedule.due(loads, 0, 60_000);
        let names: Vec<&str> = first.iter().map(|t| t.vertex_id.as_ref()).collect();
        assert_eq!(names, ["b", "d"]);
        assert_eq!(first[0].thread_prefix(), "b (");
        // The next round takes the one left; then nothing until the interval has passed.
        let second = schedule.due(loads, 5_000, 60_000);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].vertex_id.as_ref(), "a");
        assert!(schedule.due(loads, 30_000, 60_000).is_empty());
        assert_eq!(schedule.due(loads, 60_000, 60_000).len(), 2);
        assert_eq!(read.get(), 4);
        // Between two looks (a quarter interval), the loads are not read at all.
        assert!(schedule.due(loads, 61_000, 60_000).is_empty());
        assert!(schedule.due(loads, 70_000, 60_000).is_empty());
        assert_eq!(read.get(), 4);
    }
}

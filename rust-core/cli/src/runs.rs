//! The commands that run the plugin's loop: `watch` (the loop as a process), `analyze` (one
//! round of it) and `replay` (its decisions on recorded windows). Each only schedules the
//! coordinator crate's loop and says where its lines and files go.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autotune_coordinator::recording::Recording;
use autotune_coordinator::rest::FlinkRest;
use autotune_coordinator::rounds::{Coordinator, JobRound};
use autotune_coordinator::settings::LoopSettings;
use autotune_coordinator::sink::{MemorySink, Sink};
use autotune_coordinator::stop::StopFlag;
use autotune_model::options::Options;
use autotune_model::text::one_line;

use crate::flags::LoopFlags;

/// Decides on every window of a recording, in order, as the loop did.
fn replay_windows(
    file: &Path,
    options: &Options,
    sink: Arc<dyn Sink>,
) -> Result<Vec<JobRound>, String> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("reading standard input: {e}"))?
    } else {
        fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?
    };
    let target = Target {
        rest: "http://replay.invalid".into(),
        job: None,
        timeout: Duration::from_secs(1),
    };
    let mut coordinator = Coordinator::new(settings(&target, options, sink.as_ref()), sink);
    let mut reports = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = format!("{} line {}", file.display(), n + 1);
        let recording: Recording =
            serde_json::from_str(line).map_err(|e| format!("{at}: not a recording: {e}"))?;
        recording.check().map_err(|e| format!("{at}: {e}"))?;
        reports.push(
            coordinator
                .decide_window(&recording)
                .map_err(|e| format!("{at}: {e}"))?,
        );
    }
    if reports.is_empty() {
        return Err(format!("{} holds no recording", file.display()));
    }
    Ok(reports)
}

/// `report`: the page of each job whose files are in `path` (a job's folder, or the output
/// folder with one per job), or of the jobs of a recording (replayed first, beside nothing
/// of the plugin's). Prints each page written.
pub fn report(path: &Path, out: Option<&Path>, flags: &LoopFlags) -> Result<(), String> {
    if path.is_dir() {
        let jobs = job_dirs(path)?;
        if jobs.is_empty() {
            return Err(format!(
                "{} holds no job's files (decisions.jsonl)",
                path.display()
            ));
        }
        for job in jobs {
            write_page(&job, out)?;
        }
        return Ok(());
    }
    // A recording: decided again in a folder of its own, so nothing of the plugin's changes.
    let scratch =
        std::env::temp_dir().join(format!("flink-autotune-report-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let options = flags.options(&[
        ("diagnosis", "false".to_string()),
        ("output-dir", scratch.display().to_string()),
    ])?;
    let replayed = replay_windows(path, &options, MemorySink::new());
    let written = replayed.and_then(|_| {
        let beside = path.with_extension("report.html");
        job_dirs(&scratch)?.iter().try_for_each(|job| {
            // The flame graphs the plugin wrote beside the recording belong on the page.
            copy_flame_graphs(
                &path.with_file_name("flamegraphs"),
                &job.join("flamegraphs"),
            )?;
            write_page(job, Some(out.unwrap_or(&beside)))
        })
    });
    let _ = fs::remove_dir_all(&scratch);
    written
}

fn copy_flame_graphs(from: &Path, to: &Path) -> Result<(), String> {
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    for file in entries.filter_map(Result::ok).map(|e| e.path()) {
        if let Some(name) = file.file_name() {
            fs::copy(&file, to.join(name))
                .map_err(|e| format!("cannot copy {}: {e}", file.display()))?;
        }
    }
    Ok(())
}

/// Folders holding a job's history: `path` itself, or its sub-folders.
fn job_dirs(path: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    if path.join("decisions.jsonl").is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = fs::read_dir(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut jobs: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("decisions.jsonl").is_file())
        .collect();
    jobs.sort();
    Ok(jobs)
}

fn write_page(job: &Path, out: Option<&Path>) -> Result<(), String> {
    let written = match out {
        None => autotune_coordinator::page::write(job),
        Some(out) => autotune_coordinator::page::render(job)
            .and_then(|html| fs::write(out, html).map(|_| out.to_path_buf())),
    };
    let path = written.map_err(|e| format!("report of {}: {e}", job.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// The cluster a command talks to.
pub struct Target {
    pub rest: String,
    /// Only this job.
    pub job: Option<String>,
    pub timeout: Duration,
}

/// `analyze`'s own spelling of the decision window and the poll interval.
pub struct AnalyzeWindow {
    pub duration: Option<Duration>,
    pub interval: Option<Duration>,
}

/// Where `watch` writes the per-job files when `--output-dir` is not given.
const WATCH_OUTPUT_DIR: &str = "autotune";

/// `AUTOTUNE` lines to standard output, one at a time as they are said.
struct StdoutSink;

impl Sink for StdoutSink {
    fn say(&self, _level: log::Level, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", one_line(line));
        let _ = out.flush();
    }
}

/// `AUTOTUNE` lines to standard error, when standard output carries JSON.
struct StderrSink;

impl Sink for StderrSink {
    fn say(&self, _level: log::Level, line: &str) {
        eprintln!("{}", one_line(line));
    }
}

fn settings(target: &Target, options: &Options, sink: &dyn Sink) -> LoopSettings {
    let mut settings = LoopSettings::from_options(
        options,
        target.rest.trim_end_matches('/').to_string(),
        options.output_dir.clone(),
        sink,
    );
    settings.only_job = target.job.clone();
    settings.rest_timeout = target.timeout;
    settings
}

/// The loop until Ctrl-C (or `duration`): what the plugin does inside the JobManager.
pub fn watch(target: Target, duration: Option<Duration>, flags: &LoopFlags) -> Result<(), String> {
    let options = flags.options(&[("output-dir", WATCH_OUTPUT_DIR.to_string())])?;
    let sink: Arc<dyn Sink> = Arc::new(StdoutSink);
    let settings = settings(&target, &options, sink.as_ref());
    let stop = StopFlag::new();
    let on_interrupt = stop.clone();
    ctrlc::set_handler(move || on_interrupt.stop())
        .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    if let Some(duration) = duration {
        let timer = stop.clone();
        std::thread::spawn(move || {
            if timer.sleep(duration) {
                timer.stop();
            }
        });
    }
    Coordinator::new(settings, sink).run(&stop);
    Ok(())
}

/// One round of the loop, for a job that runs now: no stabilization wait unless asked for.
pub fn analyze(
    target: Target,
    window: AnalyzeWindow,
    flags: &LoopFlags,
    json: bool,
    record: Option<&Path>,
) -> Result<(), String> {
    let options = flags.options(&[("stabilization", "0".to_string())])?;
    let sink: Arc<dyn Sink> = if json {
        Arc::new(StderrSink)
    } else {
        Arc::new(StdoutSink)
    };
    let mut settings = settings(&target, &options, sink.as_ref());
    // analyze's own flags may ask for windows shorter than the plugin allows.
    settings.decision_window = window.duration.unwrap_or(settings.decision_window);
    settings.poll = window.interval.unwrap_or(settings.poll);
    let mut coordinator = Coordinator::new(settings, sink);
    let reports = coordinator.round(&StopFlag::new())?;
    let decided: Vec<&JobRound> = reports.iter().filter(|r| r.decided.is_some()).collect();
    if let Some(job) = &target.job {
        if decided.is_empty() {
            return Err(why_no_decision(&target, job, &reports));
        }
    }
    if decided.is_empty() {
        return Err(format!("no running job at {}", target.rest));
    }
    if let Some(path) = record {
        let mut text = String::new();
        for recording in decided.iter().filter_map(|r| r.recording.as_ref()) {
            text.push_str(&serde_json::to_string(recording).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if json {
        print_documents(&decided)?;
    }
    Ok(())
}

/// Why the job asked for got no decision: what the round said, or its state.
fn why_no_decision(target: &Target, job: &str, reports: &[JobRound]) -> String {
    if let Some(why) = reports
        .iter()
        .find(|r| r.job_id == job)
        .and_then(|r| r.no_decision.clone())
    {
        // Reasons from a window already name the job ("job ... is not running (gone)").
        return if why.contains(job) {
            why
        } else {
            format!("job {job}: {why}")
        };
    }
    let state = match FlinkRest::new(&target.rest, target.timeout).job(job) {
        Ok(details) => details.state,
        Err(e) if e.is_not_found() => "gone".to_string(),
        Err(e) => return e.to_string(),
    };
    format!("job {job} is not running ({state})")
}

fn print_documents(reports: &[&JobRound]) -> Result<(), String> {
    let documents: Vec<serde_json::Value> = reports
        .iter()
        .filter_map(|r| {
            let d = r.decided.as_ref()?;
            Some(serde_json::json!({ "snapshot": d.snapshot, "decision": d.decision, "memory": r.memory }))
        })
        .collect();
    let text = serde_json::to_string_pretty(&documents).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// Every window of the recording, in order, through the loop's decision step: a window
/// whose decision is the last one again says nothing, as in the plugin.
pub fn replay(file: &Path, flags: &LoopFlags, json: bool) -> Result<(), String> {
    let options = flags.options(&[("diagnosis", "false".to_string())])?;
    let sink: Arc<dyn Sink> = if json {
        MemorySink::new()
    } else {
        Arc::new(StdoutSink)
    };
    let reports = replay_windows(file, &options, sink)?;
    if json {
        print_documents(&reports.iter().collect::<Vec<_>>())?;
    }
    Ok(())
}

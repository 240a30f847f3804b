//! What a decision leaves on disk, per job under the output folder:
//! `<job id>/recommended-config.yaml` (flat Flink keys, valid in flink-conf.yaml and
//! config.yaml, replaced atomically) and `<job id>/decisions.jsonl` (one line per decision
//! that changed something or found something).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use autotune_model::scaling::{JobDecision, JobSnapshot};

use crate::collect::Recording;

/// A recording file is rotated (to `recording.jsonl.1`) beyond this size: bounded disk use.
pub const RECORDING_LIMIT: u64 = 32 * 1024 * 1024;

/// Writes the job's recommended configuration; returns the file written.
pub fn write_recommendation(
    dir: &Path,
    job: &JobSnapshot,
    decision: &JobDecision,
    at_ms: i64,
) -> io::Result<PathBuf> {
    let job_dir = dir.join(&job.job_id);
    fs::create_dir_all(&job_dir)?;
    let path = job_dir.join("recommended-config.yaml");
    let text = format!(
        "# flink-autotune recommendation for job \"{}\" ({}), decided at {} (epoch ms).\n\
         # Flat Flink keys: merge into flink-conf.yaml or config.yaml, or pass with -D when resubmitting.\n\
         pipeline.jobvertex-parallelism-overrides: {}\n",
        job.job_name,
        job.job_id,
        at_ms,
        decision.parallelism_overrides()
    );
    // Readers never see half a file: write beside it, then rename over it.
    let tmp = job_dir.join(".recommended-config.yaml.tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Appends the decision to the job's history when it says something (a change or a finding).
pub fn append_history(
    dir: &Path,
    job: &JobSnapshot,
    decision: &JobDecision,
    at_ms: i64,
) -> io::Result<bool> {
    let says_something = decision.changes().next().is_some()
        || !decision.findings.is_empty()
        || decision.vertices.iter().any(|v| !v.findings.is_empty());
    if !says_something {
        return Ok(false);
    }
    let job_dir = dir.join(&job.job_id);
    fs::create_dir_all(&job_dir)?;
    let line = serde_json::json!({ "at_ms": at_ms, "job_id": job.job_id, "job_name": job.job_name, "decision": decision });
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(job_dir.join("decisions.jsonl"))?;
    writeln!(file, "{line}")?;
    Ok(true)
}

/// Appends one decision window to `<job id>/recording.jsonl` (the `replay` format).
pub fn append_recording(dir: &Path, recording: &Recording) -> io::Result<PathBuf> {
    let job_dir = dir.join(&recording.shape.job_id);
    fs::create_dir_all(&job_dir)?;
    let path = job_dir.join("recording.jsonl");
    if fs::metadata(&path)
        .map(|m| m.len() > RECORDING_LIMIT)
        .unwrap_or(false)
    {
        fs::rename(&path, job_dir.join("recording.jsonl.1"))?;
    }
    let line = serde_json::to_string(recording).map_err(io::Error::other)?;
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    writeln!(file, "{line}")?;
    Ok(path)
}

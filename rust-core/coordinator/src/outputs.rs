//! What a decision leaves on disk, per job under the output folder:
//! `<job id>/recommended-config.yaml` (flat Flink keys, valid in flink-conf.yaml and
//! config.yaml, replaced atomically) and `<job id>/decisions.jsonl` (a line with every
//! window's figures, and one per decision that changed something or found something).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, HashMap};

use autotune_model::scaling::ScalingHistory;

use crate::announce::Announcer;
use crate::recording::Recording;

/// What the scaling model remembers of a job, under its folder.
pub const SCALING_HISTORY: &str = "scaling-history.json";

/// History and recording files rotate (to `<name>.1`) beyond this size: bounded disk use.
pub const FILE_LIMIT: u64 = 32 * 1024 * 1024;

/// Everything recommended for one job: what its config file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recommendation {
    pub job_id: String,
    pub job_name: String,
    /// `pipeline.jobvertex-parallelism-overrides`, once the scaling model has decided.
    pub parallelism_overrides: Option<String>,
    /// `taskmanager.memory.*`, once the memory model has decided.
    pub memory: Vec<(&'static str, String)>,
    /// Keys that fix what the diagnosis found (known failures, checkpoint advice).
    pub diagnosis: BTreeMap<String, String>,
}

/// Every job's recommendation and where its files go: the one place that updates them.
#[derive(Debug, Default)]
pub struct JobFiles {
    /// `None`: nothing is written (lines only).
    pub dir: Option<PathBuf>,
    recommendations: HashMap<String, Recommendation>,
    /// The session cluster's own recommendation.
    cluster: ClusterRecommendation,
    /// Writing fails (said once): when it works again, every config file is written anew.
    failing: bool,
}

impl JobFiles {
    pub fn new(dir: Option<PathBuf>) -> Self {
        JobFiles {
            dir,
            recommendations: HashMap::new(),
            cluster: ClusterRecommendation::default(),
            failing: false,
        }
    }

    /// Changes the job's recommendation and rewrites its config file.
    pub fn recommend(
        &mut self,
        job_id: &str,
        job_name: &str,
        at_ms: i64,
        change: impl FnOnce(&mut Recommendation),
    ) -> io::Result<()> {
        let r = self.recommendations.entry(job_id.to_string()).or_default();
        r.job_id = job_id.to_string();
        r.job_name = job_name.to_string();
        change(r);
        match &self.dir {
            Some(dir) => write_recommendation(dir, r, at_ms).map(|_| ()),
            None => Ok(()),
        }
    }

    /// The session cluster's memory plan, in `<output dir>/recommended-config.yaml`: its jobs
    /// share the TaskManagers and one configuration, so no job's own file holds memory keys.
    pub fn recommend_cluster(
        &mut self,
        jobs: usize,
        at_ms: i64,
        memory: Vec<(&'static str, String)>,
    ) -> io::Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        for r in self.recommendations.values_mut() {
            if !std::mem::take(&mut r.memory).is_empty() {
                write_recommendation(&dir, r, at_ms)?;
            }
        }
        self.cluster.jobs = jobs;
        self.cluster.memory = memory;
        write_cluster_recommendation(&dir, &self.cluster, at_ms)
    }

    /// The task slots a session cluster's jobs need in all, when it has fewer: a comment of
    /// the cluster's config file (how many TaskManagers run is no Flink key).
    pub fn recommend_cluster_slots(
        &mut self,
        jobs: usize,
        at_ms: i64,
        slots: String,
    ) -> io::Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        self.cluster.jobs = jobs;
        self.cluster.slots = Some(slots);
        write_cluster_recommendation(&dir, &self.cluster, at_ms)
    }

    /// Appends one JSON document to the job's history.
    pub fn history(&self, job_id: &str, line: &serde_json::Value) -> io::Result<()> {
        match &self.dir {
            Some(dir) => append_line(
                &job_dir(dir, job_id)?.join("decisions.jsonl"),
                &line.to_string(),
                FILE_LIMIT,
            ),
            None => Ok(()),
        }
    }

    /// The job's scaling history as kept by [`JobFiles::keep_scaling_history`]; `None` when
    /// nothing is kept (no folder, or a job seen for the first time).
    pub fn scaling_history(&self, job_id: &str) -> io::Result<Option<ScalingHistory>> {
        let Some(path) = self.scaling_history_path(job_id)? else {
            return Ok(None);
        };
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keeps what the scaling model remembers of the job (pending scale-downs, the last
    /// scale-up, how the vertices scaled), replaced whole after every decision.
    pub fn keep_scaling_history(&self, job_id: &str, history: &ScalingHistory) -> io::Result<()> {
        let Some(path) = self.scaling_history_path(job_id)? else {
            return Ok(());
        };
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder)?;
        }
        let json = serde_json::to_vec(history).map_err(io::Error::other)?;
        replace_file(&path, &json)
    }

    /// `<output folder>/<job id>/scaling-history.json`; `None` when nothing is written.
    fn scaling_history_path(&self, job_id: &str) -> io::Result<Option<PathBuf>> {
        self.dir
            .as_deref()
            .map(|dir| job_dir(dir, job_id).map(|folder| folder.join(SCALING_HISTORY)))
            .transpose()
    }

    /// Forgets the jobs that are gone. Their folders stay, the newest [`KEPT_JOB_FOLDERS`]
    /// of them: a session cluster that runs job after job for months keeps a bounded folder.
    /// Returns the folders removed, for the caller to say.
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) -> io::Result<usize> {
        let before = self.recommendations.len();
        self.recommendations.retain(|id, _| live(id));
        match &self.dir {
            Some(dir) if self.recommendations.len() < before => {
                prune_job_folders(dir, KEPT_JOB_FOLDERS, &live)
            }
            _ => Ok(0),
        }
    }

    /// Takes what a write gave: a failure is said once (a full or read-only disk never stops
    /// a decision, nor the job); when writing works again it is said too, and every job's
    /// config file is written anew, so none stays as it was before the trouble.
    pub fn settle(&mut self, result: io::Result<()>, at_ms: i64, announcer: &Announcer) {
        match result {
            Ok(()) if self.failing => {
                let rewritten = match &self.dir {
                    Some(dir) => self
                        .recommendations
                        .values()
                        .try_for_each(|r| write_recommendation(dir, r, at_ms).map(|_| ())),
                    None => Ok(()),
                };
                if rewritten.is_ok() {
                    self.failing = false;
                    announcer.info(&format!(
                        "AUTOTUNE COORDINATOR writing under {} again",
                        self.dir_shown()
                    ));
                }
            }
            Ok(()) => {}
            Err(e) if !self.failing => {
                self.failing = true;
                announcer.warn(&format!("AUTOTUNE COORDINATOR {}", self.cannot_write(e)));
            }
            Err(e) => log::debug!("AUTOTUNE COORDINATOR still cannot write: {e}"),
        }
    }

    /// Where the job's scaling history is kept, for a line that names it.
    pub fn scaling_history_shown(&self, job_id: &str) -> String {
        match self.scaling_history_path(job_id) {
            Ok(Some(path)) => path.display().to_string(),
            _ => String::new(),
        }
    }

    fn dir_shown(&self) -> String {
        self.dir
            .as_deref()
            .map_or_else(String::new, |d| d.display().to_string())
    }

    /// What the reader is told when writing fails.
    pub fn cannot_write(&self, e: io::Error) -> String {
        format!(
            "cannot write under {}: {e}; decisions go on in the log, the files follow when writing works again (or set metrics.reporter.autotune.output-dir)",
            self.dir_shown()
        )
    }
}

/// A job's folder under the output folder. Only a job id that is one plain name is taken: ids
/// come from the REST API, but also from recordings a user hands to `replay` and `report`,
/// and `../` in one must not write outside the folder.
pub fn job_dir(dir: &Path, job_id: &str) -> io::Result<PathBuf> {
    let plain = !job_id.is_empty()
        && job_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !plain {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "job id {} is not a Flink job id: no folder is made for it",
                autotune_model::text::quoted(job_id)
            ),
        ));
    }
    Ok(dir.join(job_id))
}

/// The folders of jobs that are gone are kept up to this many, the newest.
pub const KEPT_JOB_FOLDERS: usize = 100;

/// Removes the oldest folders of jobs that are not live beyond `keep` (by last change); only
/// folders named like a Flink job id are touched.
pub fn prune_job_folders(
    dir: &Path,
    keep: usize,
    live: &dyn Fn(&str) -> bool,
) -> io::Result<usize> {
    let mut gone: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0), // nothing written yet
        entries => entries?,
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Only what Flink names a job (32 hex digits): the folder may hold a user's own.
        let is_job = entry.file_type()?.is_dir()
            && name.len() == 32
            && name.chars().all(|c| c.is_ascii_hexdigit());
        if is_job && !live(&name) {
            gone.push((entry.metadata()?.modified()?, entry.path()));
        }
    }
    gone.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    let mut removed = 0;
    for (_, path) in gone.iter().skip(keep) {
        fs::remove_dir_all(path)?;
        removed += 1;
    }
    Ok(removed)
}

/// What a session cluster is recommended as a whole (`<output dir>/recommended-config.yaml`).
#[derive(Debug, Default)]
struct ClusterRecommendation {
    jobs: usize,
    /// `taskmanager.memory.*`, once the memory model has planned for the cluster.
    memory: Vec<(&'static str, String)>,
    /// The task slots its jobs need, when it has fewer.
    slots: Option<String>,
}

fn write_cluster_recommendation(
    dir: &Path,
    r: &ClusterRecommendation,
    at_ms: i64,
) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut text = format!(
        "# flink-autotune recommendation for the session cluster ({} jobs), updated at {}.\n\
         # Flat Flink keys: merge into the cluster's flink-conf.yaml or config.yaml and restart its TaskManagers.\n",
        r.jobs,
        crate::readable_time(at_ms)
    );
    if let Some(slots) = &r.slots {
        text.push_str(&format!("# Task slots: {slots}.\n"));
    }
    if !r.memory.is_empty() {
        text.push_str(
            "# TaskManager memory: every pool and both totals, consistent with each other.\n",
        );
        for (key, value) in &r.memory {
            text.push_str(&format!("{key}: {value}\n"));
        }
    }
    replace_file(&dir.join("recommended-config.yaml"), text.as_bytes())
}

/// Writes the job's recommended configuration; returns the file written.
pub fn write_recommendation(dir: &Path, r: &Recommendation, at_ms: i64) -> io::Result<PathBuf> {
    let job_dir = job_dir(dir, &r.job_id)?;
    fs::create_dir_all(&job_dir)?;
    let path = job_dir.join("recommended-config.yaml");
    // The name is quoted and escaped: a newline in it must not end the comment and become
    // keys of the file users merge into their configuration.
    let mut text = format!(
        "# flink-autotune recommendation for job {} ({}), updated at {}.\n\
         # Flat Flink keys: merge into flink-conf.yaml or config.yaml, or pass with -D when resubmitting.\n",
        autotune_model::text::quoted(&r.job_name),
        r.job_id,
        crate::readable_time(at_ms)
    );
    if let Some(overrides) = &r.parallelism_overrides {
        text.push_str(&format!(
            "pipeline.jobvertex-parallelism-overrides: {overrides}\n"
        ));
    }
    if !r.memory.is_empty() {
        text.push_str(
            "# TaskManager memory: every pool and both totals, consistent with each other.\n",
        );
        for (key, value) in &r.memory {
            text.push_str(&format!("{key}: {value}\n"));
        }
    }
    let diagnosis: Vec<_> = r
        .diagnosis
        .iter()
        // The memory plan sizes every pool together: it wins over a single finding's key.
        .filter(|(k, _)| !r.memory.iter().any(|(m, _)| m == k))
        .collect();
    if !diagnosis.is_empty() {
        text.push_str(
            "# Finding: keys that fix what was found (see the AUTOTUNE AT3xx and AT4xx lines).\n",
        );
        for (key, value) in diagnosis {
            text.push_str(&format!("{key}: {value}\n"));
        }
    }
    replace_file(&path, text.as_bytes())?;
    Ok(path)
}

/// Replaces a file's content so that readers never see half of it: written beside it, then
/// renamed over it.
pub fn replace_file(path: &Path, content: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} is not a file", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let replaced = fs::write(&tmp, content).and_then(|()| fs::rename(&tmp, path));
    if replaced.is_err() {
        // A full disk leaves half of it: gone, so the folder holds only whole files.
        let _ = fs::remove_file(&tmp);
    }
    replaced
}

/// Appends one decision window to `<job id>/recording.jsonl` (the `replay` format).
pub fn append_recording(dir: &Path, recording: &Recording) -> io::Result<PathBuf> {
    let path = job_dir(dir, &recording.shape.job_id)?.join("recording.jsonl");
    let line = serde_json::to_string(recording).map_err(io::Error::other)?;
    append_line(&path, &line, FILE_LIMIT)?;
    Ok(path)
}

/// Appends a line; a file past `limit` bytes first moves to `<name>.1` (replacing the older
/// one), so a job that runs for months keeps at most two files' worth.
pub fn append_line(path: &Path, line: &str, limit: u64) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    if fs::metadata(path).map(|m| m.len() > limit).unwrap_or(false) {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        fs::rename(path, PathBuf::from(rotated))?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let whole_lines = file.metadata()?.len();
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let appended = file.write_all(&bytes);
    if appended.is_err() {
        // A full disk may take part of the line: cut back to the whole lines, so a reader
        // never meets half a JSON document and the next line starts where it should.
        let _ = file.set_len(whole_lines);
    }
    appended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_past_their_limit() {
        let dir = std::env::temp_dir().join(format!("autotune-rotate-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("job").join("decisions.jsonl");
        for i in 0..10 {
            append_line(&path, &format!("{{\"n\":{i}}}"), 20).unwrap();
        }
        let current = fs::read_to_string(&path).unwrap();
        let older = fs::read_to_string(dir.join("job").join("decisions.jsonl.1")).unwrap();
        assert!(
            current.len() <= 40 && older.len() <= 40,
            "{current:?} {older:?}"
        );
        assert!(current.ends_with("{\"n\":9}\n"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_hostile_job_name_stays_in_its_comment_and_a_hostile_id_makes_no_folder() {
        let dir = std::env::temp_dir().join(format!("autotune-hostile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let r = Recommendation {
            job_id: "0123456789abcdef0123456789abcdef".into(),
            job_name: "orders\npipeline.jobvertex-parallelism-overrides: evil:99\r\n# ok".into(),
            parallelism_overrides: Some("v1:2".into()),
            ..Recommendation::default()
        };
        let path = write_recommendation(&dir, &r, 0).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(": ").map(|(k, _)| k))
            .collect();
        assert_eq!(keys, ["pipeline.jobvertex-parallelism-overrides"], "{text}");
        assert!(
            text.contains("v1:2") && !text.contains(": evil:99\n"),
            "{text}"
        );
        for id in ["../../etc", "a/b", "", "..", "x\\y", "id with space"] {
            let hostile = Recommendation {
                job_id: id.into(),
                ..Recommendation::default()
            };
            let err = write_recommendation(&dir, &hostile, 0).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{id:?}");
        }
        let made: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(made, [std::ffi::OsString::from(&r.job_id)]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn folders_of_gone_jobs_are_kept_up_to_a_bound_the_newest() {
        let dir = std::env::temp_dir().join(format!("autotune-prune-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let id = |i: usize| format!("{i:032x}");
        for i in 0..8 {
            fs::create_dir_all(dir.join(id(i))).unwrap();
            fs::write(dir.join(id(i)).join("decisions.jsonl"), "{}\n").unwrap();
            // Distinct times: the filesystem's clock may be coarse.
            let at = std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(1_000 + i as u64);
            fs::File::open(dir.join(id(i)))
                .unwrap()
                .set_modified(at)
                .unwrap();
        }
        fs::write(dir.join("notes.txt"), "mine").unwrap();
        fs::create_dir_all(dir.join("backup")).unwrap();
        let live = |job: &str| job == id(0);
        assert_eq!(
            prune_job_folders(&dir.join("none yet"), 3, &live).unwrap(),
            0
        );
        assert_eq!(prune_job_folders(&dir, 3, &live).unwrap(), 4);
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // The live job's folder, the 3 newest gone ones, and what is not a job's.
        assert_eq!(
            left,
            [
                id(0),
                id(5),
                id(6),
                id(7),
                "backup".into(),
                "notes.txt".into()
            ]
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Flame graphs of the bottleneck: the coordinator reads what the TaskManagers sampled of the
//! vertex's task threads (their `AutotuneProfiles` gauge), merges the subtasks, and writes
//! `<job id>/flamegraphs/<vertex id>-<time>.folded` and `.svg`, keeping the newest few per
//! vertex. `flink-autotune flamegraph` writes Flink's own flame graph through [`write`] too.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use autotune_model::codes::Code;
use autotune_model::metrics::PROFILES_METRIC;
use autotune_model::profile::{Profile, ProfileLimits, TopFrame};
use autotune_model::text::quoted;

use crate::announce::Announcer;
use crate::rest::FlinkRest;

/// Flame graphs kept per vertex: older ones are removed.
pub const KEEP_PER_VERTEX: usize = 5;

/// Files written for one flame graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub folded: PathBuf,
    pub svg: PathBuf,
}

/// What the loop remembers between decisions: the newest profile written per vertex, and
/// the vertices it said it has none of.
#[derive(Debug, Default)]
pub struct FlameGraphs {
    written: HashMap<(String, String), i64>,
    told_none: HashSet<(String, String)>,
}

/// The bottleneck named by a decision.
pub struct Bottleneck<'a> {
    pub job_id: &'a str,
    pub job_name: &'a str,
    pub vertex_id: &'a str,
    pub vertex_name: &'a str,
}

impl FlameGraphs {
    /// After a decision that names `b` the bottleneck: writes its flame graph when the
    /// TaskManagers sampled it since the last one written, and says so (AT111). Returns
    /// whether it wrote one; a failed write is the caller's to say, with the other files'.
    pub fn after_decision(
        &mut self,
        rest: &FlinkRest,
        dir: Option<&Path>,
        b: &Bottleneck<'_>,
        announcer: &Announcer,
    ) -> io::Result<bool> {
        let Some(dir) = dir else { return Ok(false) };
        let key = (b.job_id.to_string(), b.vertex_id.to_string());
        let since = self.written.get(&key).copied().unwrap_or(i64::MIN);
        let profiles = match sampled_profiles(rest, b.job_id, b.vertex_id) {
            Ok(p) => p,
            Err(e) => {
                log::debug!("AUTOTUNE COORDINATOR flame-graph samples not read: {e}");
                return Ok(false);
            }
        };
        let newest = profiles.iter().map(|p| p.at_ms).max();
        let Some(merged) = Profile::merge(
            profiles.iter().filter(|p| p.at_ms > since),
            ProfileLimits::MERGED,
        ) else {
            if newest.is_none() && self.told_none.insert(key) {
                announcer.info(&format!(
                    "AUTOTUNE COORDINATOR no flame graph yet of vertex {} ({}) of job {} ({}): no TaskManager published samples of it (a TaskManager samples a vertex that stays at least 50% busy there, once per decision, when the plugin runs there with flamegraph: true)",
                    quoted(b.vertex_name),
                    b.vertex_id,
                    quoted(b.job_name),
                    b.job_id
                ));
            }
            return Ok(false);
        };
        let files = job_graphs(dir, b.job_id).and_then(|graphs| write(&graphs, &merged))?;
        self.written.insert(key, merged.at_ms);
        announcer.info(&at111_line(b, &merged, &files));
        Ok(true)
    }

    /// Forgets the jobs that are gone (their files stay).
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.written.retain(|(job, _), _| live(job));
        self.told_none.retain(|(job, _)| live(job));
    }
}

/// Every TaskManager's published profiles of the vertex (one per TaskManager that ran it).
fn sampled_profiles(
    rest: &FlinkRest,
    job_id: &str,
    vertex_id: &str,
) -> Result<Vec<Profile>, crate::rest::RestError> {
    let mut found = Vec::new();
    for tm in rest.taskmanagers()? {
        let json = match rest.taskmanager_metric(&tm.id, PROFILES_METRIC) {
            Ok(Some(json)) if !json.is_empty() => json,
            Ok(_) => continue,
            Err(e) if e.is_not_found() => continue, // left since the listing
            Err(e) => return Err(e),
        };
        match serde_json::from_str::<Vec<Profile>>(&json) {
            Ok(profiles) => found.extend(
                profiles
                    .into_iter()
                    .filter(|p| p.job_id == job_id && p.vertex_id == vertex_id),
            ),
            Err(e) => log::debug!(
                "AUTOTUNE COORDINATOR unreadable flame-graph samples of {}: {e}",
                tm.id
            ),
        }
    }
    Ok(found)
}

/// `AUTOTUNE AT111 FLAMEGRAPH`: where the flame graph is and the code that burns the time.
fn at111_line(b: &Bottleneck<'_>, p: &Profile, files: &Written) -> String {
    format!(
        "AUTOTUNE {} job={} ({}) vertex={} ({}) samples={} threads={} taskmanagers={} sampling-max={}us top-frames={} svg={} folded={}",
        Code::FlameGraph,
        quoted(b.job_name),
        b.job_id,
        quoted(b.vertex_name),
        b.vertex_id,
        p.samples,
        p.threads,
        p.taskmanagers,
        p.sampling_max_us,
        describe_top(&p.top_frames(5)),
        files.svg.display(),
        files.folded.display()
    )
}

/// `frame 87% (job code), frame 5% (flink/jdk)`, the job's code first.
pub fn describe_top(top: &[TopFrame]) -> String {
    let listed: Vec<String> = top
        .iter()
        .map(|t| {
            format!(
                "{} {:.0}%{}",
                t.frame,
                t.share * 100.0,
                if t.job_code { "" } else { " (flink/jdk)" }
            )
        })
        .collect();
    format!("[{}]", listed.join(", "))
}

/// Where a job's flame graphs go: `<output dir>/<job id>/flamegraphs/`.
pub fn job_graphs(dir: &Path, job_id: &str) -> std::io::Result<PathBuf> {
    Ok(crate::outputs::job_dir(dir, job_id)?.join("flamegraphs"))
}

/// Writes the profile as `<vertex id>-<time>.folded` and `.svg` into `graphs`, then removes
/// all but the newest [`KEEP_PER_VERTEX`] of the vertex.
pub fn write(graphs: &Path, p: &Profile) -> io::Result<Written> {
    fs::create_dir_all(graphs)?;
    let stem = format!("{}-{}", file_safe(&p.vertex_id), crate::file_time(p.at_ms));
    let folded_text = p.folded();
    let svg = render_svg(p, &folded_text)?;
    let written = Written {
        folded: graphs.join(format!("{stem}.folded")),
        svg: graphs.join(format!("{stem}.svg")),
    };
    crate::outputs::replace_file(&written.folded, folded_text.as_bytes())?;
    crate::outputs::replace_file(&written.svg, &svg)?;
    prune(graphs, &file_safe(&p.vertex_id), KEEP_PER_VERTEX)?;
    Ok(written)
}

/// The interactive SVG of a folded profile (self-contained: its script and style inline).
pub fn render_svg(p: &Profile, folded: &str) -> io::Result<Vec<u8>> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!(
        "{} ({}): {} samples of {} task threads",
        p.vertex_name, p.vertex_id, p.samples, p.threads
    );
    options.subtitle = Some(format!(
        "job {} at {}; flink-autotune",
        p.job_id,
        crate::readable_time(p.at_ms)
    ));
    options.count_name = "samples".to_string();
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .map_err(io::Error::other)?;
    Ok(svg)
}

/// The vertex's flame graphs, newest first (their names sort by time).
pub fn of_vertex(graphs: &Path, vertex: &str) -> io::Result<Vec<PathBuf>> {
    let prefix = format!("{vertex}-");
    let mut svgs = svg_files(graphs, &prefix)?;
    svgs.sort();
    svgs.reverse();
    Ok(svgs)
}

/// The newest flame graph of any vertex: the latest bottleneck's.
pub fn newest(graphs: &Path) -> io::Result<Option<PathBuf>> {
    let time = |p: &PathBuf| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.rsplit_once('-'))
            .map(|(_, t)| t.to_string())
    };
    Ok(svg_files(graphs, "")?.into_iter().max_by_key(time))
}

fn svg_files(graphs: &Path, prefix: &str) -> io::Result<Vec<PathBuf>> {
    Ok(match fs::read_dir(graphs) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "svg")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    })
}

fn prune(graphs: &Path, vertex: &str, keep: usize) -> io::Result<()> {
    for old in of_vertex(graphs, vertex)?.into_iter().skip(keep) {
        fs::remove_file(&old)?;
        let _ = fs::remove_file(old.with_extension("folded"));
    }
    Ok(())
}

/// A vertex id as a file name (Flink's are hex; anything else is made safe).
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use autotune_model::profile::Sampled;

    fn profile(at_ms: i64, stacks: &[String]) -> Profile {
        Profile::fold(
            &Sampled {
                job_id: "job",
                vertex_id: "cbc357ccb763df2852fee8c4fc7d55f2",
                vertex_name: "Work -> Sink",
                at_ms,
                stacks,
                threads: 2,
                sampling_us: 900,
                sampling_max_us: 40,
            },
            ProfileLimits::GAUGE,
        )
    }

    #[test]
    fn writes_folded_and_svg_and_keeps_the_newest_few() {
        let dir = std::env::temp_dir().join(format!("autotune-flame-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let stacks = vec!["java.lang.Thread.run;dev.example.Work.spin".to_string(); 10];
        let mut last = None;
        for i in 0..7 {
            let p = profile(1_700_000_000_000 + i * 60_000, &stacks);
            last = Some(write(&job_graphs(&dir, "job").unwrap(), &p).unwrap());
        }
        let last = last.unwrap();
        let graphs = job_graphs(&dir, "job").unwrap();
        assert_eq!(
            of_vertex(&graphs, "cbc357ccb763df2852fee8c4fc7d55f2")
                .unwrap()
                .len(),
            KEEP_PER_VERTEX
        );
        assert_eq!(fs::read_dir(&graphs).unwrap().count(), 2 * KEEP_PER_VERTEX);
        assert_eq!(
            of_vertex(&graphs, "cbc357ccb763df2852fee8c4fc7d55f2").unwrap()[0],
            last.svg
        );
        assert_eq!(
            fs::read_to_string(&last.folded).unwrap(),
            "java.lang.Thread.run;dev.example.Work.spin 10\n"
        );
        let svg = fs::read_to_string(&last.svg).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("dev.example.Work.spin"),
            "{svg:.300}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_line_names_the_jobs_code_first() {
        let top = vec![
            TopFrame {
                frame: "dev.example.Work.spin".into(),
                share: 0.87,
                job_code: true,
            },
            TopFrame {
                frame: "java.lang.Object.wait".into(),
                share: 0.05,
                job_code: false,
            },
        ];
        assert_eq!(
            describe_top(&top),
            "[dev.example.Work.spin 87%, java.lang.Object.wait 5% (flink/jdk)]"
        );
    }
}

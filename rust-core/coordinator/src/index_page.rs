//! The cluster's page, `<output dir>/index.html`: every live job in one table (its state, its
//! bottleneck, parallelism now → recommended, slots, how old its last decision is, findings by
//! severity, a link to its own page) and the cluster's slots, used against needed. Read from
//! each job's files, as the job's page is; rewritten by the coordinator after each poll that
//! decided something. Static and self-contained, like the job's page.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use autotune_model::duration;
use minijinja::{context, Environment, Value};
use serde::Serialize;
use serde_json::Value as Json;

use crate::outputs::{job_dir, replace_file};
use crate::page::{read_history, short, text};

const TEMPLATE: &str = include_str!("index.html.j2");
/// Bytes of each job's history read: its newest decision and findings, not its past.
const HISTORY_TAIL: u64 = 64 * 1024;
/// Characters of a job's name shown in its cell.
const NAME_CHARS: usize = 80;
/// Severities in the order the page lists them; the models' findings are advice.
const SEVERITIES: [&str; 5] = ["critical", "error", "warning", "info", "advice"];

/// A live job as the JobManager lists it, with the task slots the coordinator counts for it
/// (`None`: its graph not read yet).
pub struct ListedJob<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub state: &'a str,
    pub slots_held: Option<u32>,
    pub slots_needed: Option<u32>,
}

/// The cluster's task slots, from the JobManager's overview.
#[derive(Clone, Copy)]
pub struct ClusterSlots {
    pub total: u32,
    pub available: u32,
}

/// Renders the cluster's page from every listed job's files and writes `index.html`.
pub fn write(
    dir: &Path,
    jobs: &[ListedJob<'_>],
    slots: Option<ClusterSlots>,
    now_ms: i64,
) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let rows = jobs
        .iter()
        .map(|job| JobRow::read(dir, job, now_ms))
        .collect::<io::Result<Vec<_>>>()?;
    let needed: u32 = rows.iter().filter_map(|r| r.slots_needed).sum();
    let mut env = Environment::new();
    env.add_template("index.html", TEMPLATE)
        .map_err(io::Error::other)?;
    let html = env
        .get_template("index.html")
        .and_then(|t| {
            t.render(context! {
                jobs => Value::from_serialize(&rows),
                slots_total => slots.map(|s| s.total),
                slots_used => slots.map(|s| s.total.saturating_sub(s.available)),
                slots_needed => needed,
                updated => crate::readable_time(now_ms),
            })
        })
        .map_err(io::Error::other)?;
    let path = dir.join("index.html");
    replace_file(&path, html.as_bytes())?;
    Ok(path)
}

/// One job's line of the table.
#[derive(Debug, Serialize)]
struct JobRow {
    id: String,
    /// The name cut to a table cell's length; `full_name` in its tooltip.
    name: String,
    full_name: String,
    state: String,
    bottleneck: String,
    /// Vertices whose recommendation differs, as `name now→recommended`.
    changes: Vec<String>,
    /// A window of it was decided on.
    window_seen: bool,
    slots_now: Option<u32>,
    slots_needed: Option<u32>,
    /// How long ago the job was last decided on, or why not yet.
    decided: String,
    /// `(severity, count)`, most severe first.
    findings: Vec<(String, usize)>,
    /// The job's own page, relative to the index, once written.
    page: Option<String>,
}

impl JobRow {
    fn read(dir: &Path, job: &ListedJob<'_>, now_ms: i64) -> io::Result<JobRow> {
        // A job id that cannot name a folder has no files: listed, with nothing decided.
        let folder = job_dir(dir, job.id).ok();
        let history = match &folder {
            Some(folder) => read_history(&folder.join("decisions.jsonl"), HISTORY_TAIL)?,
            None => Vec::new(),
        };
        // Every decided window is kept with each vertex's parallelism and recommendation; a
        // decision document only when what is said changed.
        let newest = history.iter().rev().find(|h| h.get("window").is_some());
        let window = newest.map(|h| &h["window"]);
        let vertices = window
            .and_then(|w| w["vertices"].as_array())
            .cloned()
            .unwrap_or_default();
        let decision = history.iter().rev().find_map(|h| h.get("decision"));
        Ok(JobRow {
            id: job.id.to_string(),
            name: short(job.name, NAME_CHARS),
            full_name: job.name.to_string(),
            state: job.state.to_string(),
            bottleneck: window
                .and_then(|w| w["bottleneck"].as_u64())
                .and_then(|b| vertices.get(b as usize))
                .map(|v| text(v, "name"))
                .unwrap_or_default(),
            changes: vertices
                .iter()
                .filter(|v| v["parallelism"] != v["recommended"])
                .map(|v| {
                    format!(
                        "{} {}→{}",
                        text(v, "name"),
                        v["parallelism"],
                        v["recommended"]
                    )
                })
                .collect(),
            window_seen: window.is_some(),
            slots_now: job.slots_held,
            slots_needed: job.slots_needed,
            decided: newest
                .and_then(|h| h["at_ms"].as_i64())
                .map_or_else(|| "not yet".to_string(), |at| age(now_ms - at)),
            findings: by_severity(&history, decision),
            page: folder
                .filter(|f| f.join("report.html").is_file())
                .map(|_| format!("{}/report.html", job.id)),
        })
    }
}

/// How long ago, to the second.
fn age(ms: i64) -> String {
    match Duration::from_secs((ms.max(0) / 1000) as u64) {
        d if d.is_zero() => "just now".into(),
        d => format!("{} ago", duration::format(d)),
    }
}

/// Findings counted by severity: each known failure once (its code), and the models' findings
/// of the newest decision as advice.
fn by_severity(history: &[Json], decision: Option<&Json>) -> Vec<(String, usize)> {
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    for f in history.iter().filter_map(|h| h.get("finding")) {
        failures.insert(text(f, "code"), text(f, "severity").to_lowercase());
    }
    let advice = decision.map_or(0, |d| {
        let on_vertices = d["vertices"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v["findings"].as_array().map_or(0, Vec::len));
        d["findings"].as_array().map_or(0, Vec::len) + on_vertices.sum::<usize>()
    });
    SEVERITIES
        .iter()
        .map(|severity| {
            let n = match *severity {
                "advice" => advice,
                s => failures.values().filter(|f| *f == s).count(),
            };
            (severity.to_string(), n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("autotune-index-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A job's history: a window, the decision on it (Work 1→3, the bottleneck, one model
    /// finding) and a known failure (critical).
    fn decided_job(dir: &Path, id: &str, name: &str, at_ms: i64) {
        let folder = dir.join(id);
        std::fs::create_dir_all(&folder).unwrap();
        let lines = [
            serde_json::json!({"at_ms": at_ms, "job_id": id, "job_name": name, "window": {"edges": [[0, 1]],
                "bottleneck": 1, "vertices": [
                    {"id": "src", "name": "Source: Kafka", "parallelism": 1, "recommended": 1},
                    {"id": "work", "name": "Work", "parallelism": 1, "recommended": 3}]}}),
            serde_json::json!({"at_ms": at_ms, "job_id": id, "job_name": name, "decision": {
                "bottleneck": 1, "findings": [], "slots_needed": 3, "vertices": [
                    {"id": "src", "name": "Source: Kafka", "current": 1, "recommended": 1, "findings": []},
                    {"id": "work", "name": "Work", "current": 1, "recommended": 3,
                     "findings": [{"code": "AT110", "message": "limits the job"}]}]}}),
            serde_json::json!({"at_ms": at_ms, "job_id": id, "job_name": name, "finding": {
                "code": "AT300", "severity": "critical", "title": "Task heap exhausted", "count": 1}}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(folder.join("decisions.jsonl"), text).unwrap();
        std::fs::write(folder.join("report.html"), "<html></html>").unwrap();
    }

    #[test]
    fn every_live_job_is_a_row_with_its_decision_and_the_slots_it_needs() {
        let dir = temp_dir("rows");
        let decided = "0123456789abcdef0123456789abcdef";
        let fresh = "fedcba9876543210fedcba9876543210";
        decided_job(&dir, decided, "orders <&>", 1_000_000);
        let jobs = [
            ListedJob {
                id: decided,
                name: "orders <&>",
                state: "RUNNING",
                slots_held: Some(1),
                slots_needed: Some(3),
            },
            // Not decided on yet: it needs what it holds.
            ListedJob {
                id: fresh,
                name: "payments",
                state: "RESTARTING",
                slots_held: Some(2),
                slots_needed: Some(2),
            },
            ListedJob {
                id: "../../etc",
                name: "hostile",
                state: "RUNNING",
                slots_held: None,
                slots_needed: None,
            },
        ];
        let slots = ClusterSlots {
            total: 4,
            available: 2,
        };
        let path = write(&dir, &jobs, Some(slots), 1_000_000 + 95_000).unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        let row = |id: &str| {
            let start = html
                .find(&format!("data-job-id=\"{}\"", id.replace('/', "&#x2f;")))
                .unwrap();
            html[start..start + html[start..].find("</tr>").unwrap()].to_string()
        };
        let orders = row(decided);
        assert!(orders.contains("orders &lt;&amp;&gt;"), "{orders}");
        assert!(
            orders.contains(&format!("href=\"{decided}&#x2f;report.html\"")),
            "{orders}"
        );
        assert!(
            orders.contains("<td class=\"bottleneck\">Work</td>"),
            "{orders}"
        );
        assert!(orders.contains("Work 1→3"), "{orders}");
        assert!(orders.contains("1 / 3"), "{orders}");
        assert!(orders.contains("95s ago"), "{orders}");
        assert!(
            orders.contains("1 critical") && orders.contains("1 advice"),
            "{orders}"
        );
        let payments = row(fresh);
        assert!(
            payments.contains("RESTARTING")
                && payments.contains("not yet")
                && payments.contains("no decision yet")
                && payments.contains("2 / 2"),
            "{payments}"
        );
        assert!(!payments.contains("href="), "{payments}");
        // A hostile id is listed without its files and writes nothing outside the folder.
        assert!(html.contains("hostile"));
        // 2 of 4 slots used; the recommendation and the undecided job's slots need 5.
        assert!(html.contains(
            "<span class=\"used-count\">2</span> of <span class=\"total-count\">4</span>"
        ));
        assert!(html.contains("<span class=\"needed-count\">5</span>"));
        assert!(html.contains("1 more than the cluster has"), "{html}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

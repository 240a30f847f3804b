//! One page per job, `<output dir>/<job id>/report.html`: a view of the job's files (its
//! history `decisions.jsonl` and its newest flame graph), so the coordinator after each
//! decision and `flink-autotune report` offline render the same page from the same data.
//! Static and self-contained: inline CSS and SVG, no network needed to view it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use minijinja::{context, Environment, Value};
use serde::Serialize;
use serde_json::Value as Json;

use crate::flamegraphs;

/// Windows drawn at most (the newest).
const MAX_WINDOWS: usize = 120;
/// Decisions listed at most (the newest).
const MAX_DECISIONS: usize = 30;
const TEMPLATE: &str = include_str!("page.html.j2");
/// Bytes of the history read for the page: a decision every minute for hours, not the
/// 32 MiB a long-running job's history may hold.
const HISTORY_TAIL: u64 = 2 * 1024 * 1024;

/// Renders the job's page from the files in `job_dir` and writes `report.html` there.
pub fn write(job_dir: &Path) -> io::Result<PathBuf> {
    let html = render(job_dir)?;
    let path = job_dir.join("report.html");
    crate::outputs::replace_file(&path, html.as_bytes())?;
    Ok(path)
}

/// The page of the job whose files are in `job_dir`.
pub fn render(job_dir: &Path) -> io::Result<String> {
    let history = read_history(&job_dir.join("decisions.jsonl"), HISTORY_TAIL)?;
    let story = Story::from_history(&history);
    let flame = flamegraphs::newest(&job_dir.join("flamegraphs"))?;
    let flame_svg = match &flame {
        Some(path) => Some(fs::read_to_string(path)?),
        None => None,
    };
    // The flame graph keeps its own script and style in a frame of its own, sized to it; as
    // an SVG document (a data URL), not HTML, so that it lays out as inferno drew it.
    let flame_height = (flame_svg.as_deref().and_then(svg_height).unwrap_or(400.0) + 20.0) as u32;
    let flame_svg = flame_svg.map(|svg| BASE64.encode(svg));
    let mut env = Environment::new();
    env.add_template("report.html", TEMPLATE)
        .map_err(io::Error::other)?;
    let template = env.get_template("report.html").map_err(io::Error::other)?;
    template
        .render(context! {
            story => Value::from_serialize(&story),
            flame_file => flame.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
            flame_svg => flame_svg,
            flame_height => flame_height,
        })
        .map_err(io::Error::other)
}

/// The history's newest documents (its last `tail` bytes), oldest first; unreadable lines
/// (and the first, cut one) are skipped.
pub(crate) fn read_history(path: &Path, tail: u64) -> io::Result<Vec<Json>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(tail)))?;
    let mut bytes = Vec::new();
    file.take(tail).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The height an SVG document asks for (`<svg ... height="N"`).
fn svg_height(svg: &str) -> Option<f64> {
    let tag = &svg[svg.find("<svg")?..];
    let tag = &tag[..tag.find('>')?];
    let value = tag.split("height=\"").nth(1)?.split('"').next()?;
    value.trim_end_matches("px").parse().ok()
}

/// What the page shows, read from the history.
#[derive(Debug, Default, Serialize)]
struct Story {
    job_id: String,
    job_name: String,
    updated: String,
    /// The newest window: the job graph as it was last seen.
    graph: Option<Graph>,
    charts: Vec<Chart>,
    memory: Vec<PoolRow>,
    findings: Vec<FindingRow>,
    decisions: Vec<DecisionRow>,
    /// Rescales applied and seen through, newest first: what each cost (AT132).
    rescales: Vec<RescaleRow>,
    windows: usize,
}

#[derive(Debug, Serialize)]
struct RescaleRow {
    at: String,
    changes: String,
    downtime: String,
    estimate: String,
}

#[derive(Debug, Serialize)]
struct Graph {
    width: f64,
    height: f64,
    boxes: Vec<VertexBox>,
    arrows: Vec<[f64; 4]>,
    bottleneck: Option<String>,
}

#[derive(Debug, Serialize)]
struct VertexBox {
    id: String,
    name: String,
    /// The name as the box has room for it.
    label: String,
    x: f64,
    y: f64,
    parallelism: u64,
    recommended: u64,
    busy: String,
    backpressure: String,
    bottleneck: bool,
}

#[derive(Debug, Serialize)]
struct Chart {
    title: String,
    max: String,
    lines: Vec<ChartLine>,
}

#[derive(Debug, Serialize)]
struct ChartLine {
    label: String,
    points: String,
    color: &'static str,
}

#[derive(Debug, Serialize)]
struct PoolRow {
    pool: String,
    current: String,
    recommended: String,
    evidence: String,
}

#[derive(Debug, Serialize)]
struct FindingRow {
    code: String,
    place: String,
    message: String,
    fix: String,
}

#[derive(Debug, Serialize)]
struct DecisionRow {
    at: String,
    changes: String,
    codes: String,
}

const BOX_W: f64 = 220.0;
const BOX_H: f64 = 84.0;
const GAP_X: f64 = 60.0;
const GAP_Y: f64 = 24.0;
const CHART_W: f64 = 640.0;
const CHART_H: f64 = 160.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

impl Story {
    fn from_history(history: &[Json]) -> Story {
        let mut story = Story::default();
        let windows: Vec<&Json> = history
            .iter()
            .filter(|h| h.get("window").is_some())
            .collect();
        let windows = &windows[windows.len().saturating_sub(MAX_WINDOWS)..];
        story.windows = windows.len();
        if let Some(last) = history.last() {
            story.job_id = text(last, "job_id");
            story.job_name = text(last, "job_name");
            story.updated = last["at_ms"]
                .as_i64()
                .map(crate::readable_time)
                .unwrap_or_default();
        }
        story.graph = windows.last().map(|w| graph(&w["window"]));
        story.charts = charts(windows);
        if let Some(memory) = history.iter().rev().find_map(|h| h.get("memory")) {
            story.memory = pools(memory);
            story
                .findings
                .extend(coded(&memory["findings"], "TaskManagers"));
        }
        if let Some(decision) = history.iter().rev().find_map(|h| h.get("decision")) {
            story.findings.extend(coded(&decision["findings"], "job"));
            for v in decision["vertices"].as_array().into_iter().flatten() {
                story
                    .findings
                    .extend(coded(&v["findings"], &text(v, "name")));
            }
        }
        // Each known failure once, its newest sighting.
        let mut failures: BTreeMap<String, &Json> = BTreeMap::new();
        for h in history {
            if let Some(f) = h.get("finding") {
                failures.insert(text(f, "code"), f);
            }
        }
        story.findings.extend(failures.values().map(|f| failure(f)));
        story.decisions = history
            .iter()
            .filter(|h| h.get("decision").is_some())
            .rev()
            .take(MAX_DECISIONS)
            .map(decision_row)
            .collect();
        story.rescales = history
            .iter()
            .rev()
            .filter_map(rescale_row)
            .take(MAX_DECISIONS)
            .collect();
        story
    }
}

/// A rescale seen through (what it cost, AT132) or rolled back (why, AT135), as a row.
fn rescale_row(h: &serde_json::Value) -> Option<RescaleRow> {
    let (r, rolled_back) = match (h.get("rescale"), h.get("rollback")) {
        (Some(r), _) => (r, false),
        (None, Some(r)) => (r, true),
        (None, None) => return None,
    };
    // As the decisions table writes a change.
    let changes = r["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {}→{}", text(c, "name"), c["from"], c["to"]))
        .collect::<Vec<_>>()
        .join(", ");
    let seconds = |key: &str| format!("{:.1} s", r[key].as_f64().unwrap_or(f64::NAN));
    Some(RescaleRow {
        at: h["at_ms"]
            .as_i64()
            .map(crate::readable_time)
            .unwrap_or_default(),
        changes: match rolled_back {
            true => format!("{changes}: rolled back, {}", text(r, "why")),
            false => changes,
        },
        downtime: if rolled_back {
            String::new()
        } else {
            seconds("downtime_s")
        },
        estimate: if rolled_back {
            String::new()
        } else {
            seconds("estimate_s")
        },
    })
}

pub(crate) fn short(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

pub(crate) fn text(v: &Json, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn percent(v: &Json) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{:.0}%", x * 100.0))
}

/// Vertices in columns by their depth in the graph, each column top to bottom.
fn graph(window: &Json) -> Graph {
    let vertices = window["vertices"].as_array().cloned().unwrap_or_default();
    let edges: Vec<(usize, usize)> = window["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e[0].as_u64()? as usize, e[1].as_u64()? as usize)))
        .filter(|(a, b)| *a < vertices.len() && *b < vertices.len())
        .collect();
    // Vertices come in topological order: a vertex's depth is one more than its inputs'.
    let mut depth = vec![0usize; vertices.len()];
    for i in 0..vertices.len() {
        depth[i] = edges
            .iter()
            .filter(|(_, to)| *to == i)
            .map(|(from, _)| depth[*from] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut row_in_column: BTreeMap<usize, usize> = BTreeMap::new();
    let bottleneck = window["bottleneck"].as_u64().map(|b| b as usize);
    let boxes: Vec<VertexBox> = vertices
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let row = row_in_column.entry(depth[i]).or_default();
            let b = VertexBox {
                id: text(v, "id"),
                name: text(v, "name"),
                label: short(&text(v, "name"), 30),
                x: 10.0 + depth[i] as f64 * (BOX_W + GAP_X),
                y: 10.0 + *row as f64 * (BOX_H + GAP_Y),
                parallelism: v["parallelism"].as_u64().unwrap_or(0),
                recommended: v["recommended"].as_u64().unwrap_or(0),
                busy: percent(&v["busy_max"]),
                backpressure: percent(&v["backpressure"]),
                bottleneck: bottleneck == Some(i),
            };
            *row += 1;
            b
        })
        .collect();
    let arrows = edges
        .iter()
        .map(|(a, b)| {
            let (from, to) = (&boxes[*a], &boxes[*b]);
            [
                from.x + BOX_W,
                from.y + BOX_H / 2.0,
                to.x - 4.0,
                to.y + BOX_H / 2.0,
            ]
        })
        .collect();
    let width = boxes.iter().map(|b| b.x + BOX_W + 10.0).fold(0.0, f64::max);
    let height = boxes.iter().map(|b| b.y + BOX_H + 10.0).fold(0.0, f64::max);
    Graph {
        width,
        height,
        bottleneck: bottleneck.and_then(|b| boxes.get(b)).map(|b| b.id.clone()),
        boxes,
        arrows,
    }
}

/// Records/s the job needs and can do, and the sources' backlog, window by window.
fn charts(windows: &[&Json]) -> Vec<Chart> {
    let series = |label: String, pick: &dyn Fn(&Json) -> Option<f64>| -> (String, Vec<f64>) {
        (
            label,
            windows
                .iter()
                .map(|w| pick(&w["window"]).unwrap_or(f64::NAN))
                .collect(),
        )
    };
    let Some(last) = windows.last() else {
        return Vec::new();
    };
    let names: Vec<String> = last["window"]["vertices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| text(v, "name"))
        .collect();
    let vertex = |w: &Json, name: &str, key: &str| {
        w["vertices"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == name)?[key]
            .as_f64()
    };
    let mut rates = Vec::new();
    let mut backlog = Vec::new();
    for name in &names {
        let is_source = windows
            .iter()
            .any(|w| vertex(&w["window"], name, "pending_records").is_some());
        rates.push(series(format!("{name}: records in/s"), &|w| {
            vertex(w, name, "records_in_rate")
        }));
        if is_source {
            rates.push(series(format!("{name}: arrivals/s"), &|w| {
                vertex(w, name, "arrival_rate")
            }));
            backlog.push(series(format!("{name}: backlog (records)"), &|w| {
                vertex(w, name, "pending_records")
            }));
        }
    }
    let bottleneck_capacity = |w: &Json| {
        let b = w["bottleneck"].as_u64()? as usize;
        w["vertices"].get(b)?["true_rate"].as_f64()
    };
    rates.push(series(
        "bottleneck: can do records/s".into(),
        &bottleneck_capacity,
    ));
    [("Records per second", rates), ("Source backlog", backlog)]
        .into_iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(title, s)| chart(title, s))
        .collect()
}

fn chart(title: &str, series: Vec<(String, Vec<f64>)>) -> Chart {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let scale = if max > 0.0 { max * 1.1 } else { 1.0 };
    let lines = series
        .into_iter()
        .enumerate()
        .map(|(i, (label, values))| {
            let step = CHART_W / (values.len().max(2) - 1) as f64;
            let points: Vec<String> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(x, v)| {
                    format!(
                        "{:.1},{:.1}",
                        x as f64 * step,
                        CHART_H - v / scale * CHART_H
                    )
                })
                .collect();
            ChartLine {
                label,
                points: points.join(" "),
                color: COLORS[i % COLORS.len()],
            }
        })
        .collect();
    Chart {
        title: title.to_string(),
        max: format!("{:.0}", scale),
        lines,
    }
}

fn pools(memory: &Json) -> Vec<PoolRow> {
    memory["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| PoolRow {
            pool: text(p, "pool"),
            current: mebibytes(&p["current"]),
            recommended: mebibytes(&p["recommended"]),
            evidence: text(p, "evidence"),
        })
        .collect()
}

fn mebibytes(v: &Json) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |b| format!("{:.0} MiB", b / 1024.0 / 1024.0))
}

/// Findings of the models: a code and a sentence (the fix is in the sentence).
fn coded(findings: &Json, place: &str) -> Vec<FindingRow> {
    findings
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| FindingRow {
            code: text(f, "code"),
            place: place.to_string(),
            message: text(f, "message"),
            fix: String::new(),
        })
        .collect()
}

/// A known failure of the diagnosis: its evidence and the keys that fix it.
fn failure(f: &Json) -> FindingRow {
    let keys: Vec<String> = f["config"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}: {}", text(s, "key"), text(s, "value")))
        .collect();
    FindingRow {
        code: text(f, "code"),
        place: format!(
            "{} (seen {}x)",
            text(f, "title"),
            f["count"].as_u64().unwrap_or(1)
        ),
        message: text(f, "evidence"),
        fix: if keys.is_empty() {
            text(f, "fix")
        } else {
            keys.join("\n")
        },
    }
}

fn decision_row(h: &Json) -> DecisionRow {
    let d = &h["decision"];
    let vertices = d["vertices"].as_array().cloned().unwrap_or_default();
    let changes: Vec<String> = vertices
        .iter()
        .filter(|v| v["current"] != v["recommended"])
        .map(|v| format!("{} {}→{}", text(v, "name"), v["current"], v["recommended"]))
        .collect();
    let mut codes: Vec<String> = vertices
        .iter()
        .flat_map(|v| v["findings"].as_array().cloned().unwrap_or_default())
        .chain(d["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| text(&f, "code"))
        .collect();
    codes.sort();
    codes.dedup();
    DecisionRow {
        at: h["at_ms"]
            .as_i64()
            .map(crate::readable_time)
            .unwrap_or_default(),
        changes: if changes.is_empty() {
            "keep".into()
        } else {
            changes.join(", ")
        },
        codes: codes.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> String {
        let window = |at: i64, pending: f64, p: u32| {
            serde_json::json!({"at_ms": at, "job_id": "j1", "job_name": "orders <&>", "window": {
                "vertices": [
                    {"id": "src", "name": "Source: Kafka", "parallelism": 1, "recommended": 1, "true_rate": 9000.0,
                     "arrival_rate": 900.0, "catch_up_rate": 0.0, "records_in_rate": 880.0, "busy_max": 0.1,
                     "backpressure": 0.6, "pending_records": pending},
                    {"id": "work", "name": "Work", "parallelism": p, "recommended": 3, "true_rate": 700.0,
                     "arrival_rate": 900.0, "catch_up_rate": 0.0, "records_in_rate": 690.0, "busy_max": 0.98,
                     "backpressure": 0.0, "pending_records": null}],
                "edges": [[0, 1]], "bottleneck": 1}})
            .to_string()
        };
        let decision = serde_json::json!({"at_ms": 2000, "job_id": "j1", "job_name": "orders <&>", "decision": {
            "bottleneck": 1, "findings": [], "slots_needed": 4, "vertices": [
                {"id": "src", "name": "Source: Kafka", "current": 1, "recommended": 1, "findings": []},
                {"id": "work", "name": "Work", "current": 1, "recommended": 3,
                 "findings": [{"code": "AT110", "message": "limits the job: 98% busy"}]}]}});
        let failure = serde_json::json!({"at_ms": 3000, "job_id": "j1", "job_name": "orders <&>", "finding": {
            "code": "AT300", "title": "Task heap exhausted", "count": 2, "evidence": "java.lang.OutOfMemoryError: Java heap space",
            "config": [{"key": "taskmanager.memory.task.heap.size", "value": "2g", "basis": "measured"}]}});
        let rescale = serde_json::json!({"at_ms": 4000, "job_id": "j1", "job_name": "orders <&>", "rescale": {
            "requested_ms": 2100, "running_ms": 14400, "downtime_s": 12.3, "estimate_s": 12.3,
            "changes": [{"name": "Work", "from": 1, "to": 3}]}});
        let rollback = serde_json::json!({"at_ms": 5000, "job_id": "j1", "job_name": "orders <&>", "rollback": {
            "requested_ms": 4500, "why": "the job failed over 2 times since the rescale", "hold_s": 3600,
            "changes": [{"name": "Work", "from": 4, "to": 3}]}});
        [
            window(1000, 5000.0, 1),
            decision.to_string(),
            window(2000, 4000.0, 1),
            failure.to_string(),
            rescale.to_string(),
            rollback.to_string(),
            "not json".into(),
        ]
        .join("\n")
    }

    #[test]
    fn the_page_shows_the_graph_the_figures_the_findings_and_the_flame_graph() {
        let dir = std::env::temp_dir().join(format!("autotune-report-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("flamegraphs")).unwrap();
        fs::write(dir.join("decisions.jsonl"), history()).unwrap();
        fs::write(
            dir.join("flamegraphs").join("work-20261128T100000Z.svg"),
            "<?xml version=\"1.0\"?><!DOCTYPE svg><svg width=\"1200\" height=\"310\"><text>dev.example.Work.spin</text></svg>",
        )
        .unwrap();
        let page = fs::read_to_string(write(&dir).unwrap()).unwrap();
        // Names are escaped; the graph marks the bottleneck with its recommendation.
        assert!(page.contains("<h1>orders &lt;&amp;&gt;</h1>"), "{page}");
        assert!(page.contains("class=\"vertex bottleneck\" data-vertex-id=\"work\""));
        assert!(page.contains("parallelism 1 → 3"));
        assert!(page.contains("2 decision windows"));
        assert!(page.contains("Source: Kafka: backlog (records)"));
        assert!(page.contains("<code>AT110</code>") && page.contains("<code>AT300</code>"));
        // A model's finding says its fix in its sentence; the column says so.
        assert!(page.contains("in the evidence"), "{page}");
        assert!(page.contains("taskmanager.memory.task.heap.size: 2g"));
        assert!(page.contains("Work 1→3"));
        // What the rescale cost, as the job's decisions kept it.
        assert!(page.contains("<td>Work 1→3</td><td>12.3 s</td>"), "{page}");
        assert!(
            page.contains(
                "<td>Work 4→3: rolled back, the job failed over 2 times since the rescale</td>"
            ),
            "{page}"
        );
        // The flame graph is in a frame of its own (its style and script stay there), escaped.
        assert!(page.contains("id=\"flamegraph\""), "{page}");
        assert!(page.contains("height=\"330\""), "{page}");
        let data = page.split("data:image/svg+xml;base64,").nth(1).unwrap();
        let svg = BASE64.decode(&data[..data.find('"').unwrap()]).unwrap();
        assert!(String::from_utf8(svg)
            .unwrap()
            .contains("<text>dev.example.Work.spin</text>"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_job_without_history_gets_a_page_that_says_so() {
        let dir =
            std::env::temp_dir().join(format!("autotune-report-empty-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let page = render(&dir).unwrap();
        assert!(
            page.contains("No decision window yet.")
                && page.contains("No flame graph of the bottleneck yet.")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Follows one log file the way `tail -F` does: only what is new is read, a rotated file is
//! read to its end before the new one, a truncated file starts over, and every poll reads a
//! bounded amount. A log that grows faster than it is read is skipped ahead, never buffered.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use autotune_model::diagnosis::logtext::{LogReader, Record};

/// A file at most this large when following starts is read from its beginning (the process's
/// startup banner and configuration); a larger one from this far before its end.
pub const READ_BACK: u64 = 4 * 1024 * 1024;
/// A line longer than this is cut (a log line with a whole payload in it).
pub const MAX_LINE: usize = 64 * 1024;
/// Behind by more than this: skip to the last [`READ_BACK`] bytes and say how much was skipped.
pub const MAX_LAG: u64 = 64 * 1024 * 1024;

#[cfg(unix)]
fn identity(meta: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(meta: &fs::Metadata) -> (u64, u64) {
    (
        0,
        meta.created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64),
    )
}

/// What one poll found.
#[derive(Debug, Default)]
pub struct Polled {
    pub records: Vec<Record>,
    pub bytes: u64,
    /// Bytes skipped because the log grew faster than it was read.
    pub skipped: u64,
}

#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    file: Option<File>,
    identity: Option<(u64, u64)>,
    offset: u64,
    partial: Vec<u8>,
    reader: LogReader,
    started: bool,
    /// Reading starts mid-line: drop bytes up to the next line break.
    skip_to_line_start: bool,
}

impl LogFollower {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LogFollower {
            path: path.into(),
            file: None,
            identity: None,
            offset: 0,
            partial: Vec::new(),
            reader: LogReader::new(),
            started: false,
            skip_to_line_start: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self, from_start: bool) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        self.offset = if from_start || meta.len() <= READ_BACK {
            0
        } else {
            meta.len() - READ_BACK
        };
        self.identity = Some(identity(&meta));
        self.file = Some(file);
        // Starting mid-file: the first line is probably partial, and is dropped.
        self.partial.clear();
        if self.offset > 0 {
            self.skip_to_line_start = true;
        }
        Ok(true)
    }

    /// Reads what is new, at most `max_bytes`; returns the records completed by it. A record
    /// still open when nothing new came is complete too (Flink writes an event at once).
    pub fn poll(&mut self, max_bytes: u64) -> io::Result<Polled> {
        let mut polled = Polled::default();
        if self.file.is_none() {
            let first = !self.started;
            self.started = true;
            // A file that appears later (or after rotation) is new: read it from its start.
            if !self.open(!first)? {
                return Ok(polled);
            }
        }
        // Far behind: jump close to the end first (checked before reading, or a log that grows
        // faster than the budget would never get here).
        if let Ok(meta) = fs::metadata(&self.path) {
            if Some(identity(&meta)) == self.identity && meta.len() > self.offset + MAX_LAG {
                let to = meta.len() - READ_BACK;
                polled.skipped = to - self.offset;
                self.offset = to;
                self.partial.clear();
                self.skip_to_line_start = true;
                polled.records.extend(self.reader.finish());
            }
        }
        self.read_available(max_bytes, &mut polled)?;
        if polled.bytes < max_bytes {
            // At the end of the open file: has it been rotated or truncated?
            match fs::metadata(&self.path) {
                Ok(meta) if Some(identity(&meta)) != self.identity => {
                    // Rotated: the old file was read to its end above; the new one from its start.
                    self.finish_partial(&mut polled);
                    if self.open(true)? {
                        self.read_available(max_bytes - polled.bytes, &mut polled)?;
                    }
                }
                Ok(meta) if meta.len() < self.offset => {
                    // Truncated in place (copytruncate).
                    self.finish_partial(&mut polled);
                    self.offset = 0;
                    self.read_available(max_bytes - polled.bytes, &mut polled)?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // rotated away, not yet recreated
                Err(e) => return Err(e),
            }
        }
        // A quiet log completes its open record, unless a line is still half written.
        if polled.bytes == 0 && self.partial.is_empty() {
            polled.records.extend(self.reader.finish());
        }
        Ok(polled)
    }

    /// Everything still held: at the end of the process.
    pub fn flush(&mut self) -> Vec<Record> {
        let mut polled = Polled::default();
        self.finish_partial(&mut polled);
        polled.records.extend(self.reader.finish());
        polled.records
    }

    fn finish_partial(&mut self, polled: &mut Polled) {
        if !self.partial.is_empty() {
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            polled.records.extend(self.reader.push(&line));
        }
    }

    fn read_available(&mut self, max_bytes: u64, polled: &mut Polled) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut budget = max_bytes;
        while budget > 0 {
            let want = chunk.len().min(budget as usize);
            let n = file.read(&mut chunk[..want])?;
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            polled.bytes += n as u64;
            budget -= n as u64;
            let mut data = &chunk[..n];
            if self.skip_to_line_start {
                match data.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        data = &data[i + 1..];
                        self.skip_to_line_start = false;
                    }
                    None => continue,
                }
            }
            for piece in data.split_inclusive(|&b| b == b'\n') {
                let complete = piece.last() == Some(&b'\n');
                let room = MAX_LINE.saturating_sub(self.partial.len());
                self.partial
                    .extend_from_slice(&piece[..piece.len().min(room)]);
                if complete {
                    let line = String::from_utf8_lossy(&self.partial).into_owned();
                    self.partial.clear();
                    polled.records.extend(self.reader.push(&line));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("autotune-follow-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn append(path: &Path, text: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn line(n: usize, message: &str) -> String {
        format!(
            "2024-05-14 10:21:{:02},000 INFO  org.example.Thing [] - {message}\n",
            n % 60
        )
    }

    fn messages(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.message.clone()).collect()
    }

    #[test]
    fn only_new_lines_are_read_and_rotation_loses_nothing() {
        let d = dir("rotate");
        let log = d.join("taskexecutor.log");
        append(&log, &line(1, "one"));
        let mut f = LogFollower::new(&log);
        // The last record is complete once a poll finds nothing new (the log is quiet).
        assert!(f.poll(1 << 20).unwrap().records.is_empty());
        assert_eq!(messages(&f.poll(1 << 20).unwrap().records), ["one"]);
        assert!(
            f.poll(1 << 20).unwrap().records.is_empty(),
            "nothing is read twice"
        );
        append(&log, &line(2, "two"));
        append(&log, "java.lang.OutOfMemoryError: Java heap space\n");
        // Rotation: the old file gets one more line, then moves away; a new file starts.
        append(&log, &line(3, "three"));
        fs::rename(&log, d.join("taskexecutor.log.1")).unwrap();
        append(&log, &line(4, "four"));
        let mut all = Vec::new();
        for _ in 0..4 {
            all.extend(f.poll(1 << 20).unwrap().records);
        }
        assert_eq!(messages(&all), ["two", "three", "four"]);
        assert_eq!(all[0].chain[0].message, "Java heap space");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncation_starts_over_and_a_missing_file_is_waited_for() {
        let d = dir("truncate");
        let log = d.join("jobmanager.log");
        let mut f = LogFollower::new(&log);
        assert!(
            f.poll(1 << 20).unwrap().records.is_empty(),
            "no file yet is no error"
        );
        append(
            &log,
            &line(1, "first run, a long line to be longer than what follows"),
        );
        f.poll(1 << 20).unwrap();
        assert_eq!(f.poll(1 << 20).unwrap().records.len(), 1);
        fs::write(&log, line(2, "after truncate")).unwrap();
        f.poll(1 << 20).unwrap();
        assert_eq!(messages(&f.flush()), ["after truncate"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reads_are_bounded_and_a_flood_is_skipped() {
        let d = dir("bounded");
        let log = d.join("flood.log");
        let big: String = (0..2000).map(|i| line(i, &"x".repeat(200))).collect();
        append(&log, &big);
        let mut f = LogFollower::new(&log);
        let p = f.poll(64 * 1024).unwrap();
        assert!(p.bytes <= 64 * 1024);
        let mut total = p.records.len();
        while let Ok(p) = f.poll(64 * 1024) {
            if p.bytes == 0 {
                total += p.records.len();
                break;
            }
            total += p.records.len();
        }
        assert_eq!(total, 2000, "every line once, across bounded polls");
        // Far behind: skipped to near the end, said, and reading goes on from there.
        let mut big = fs::OpenOptions::new().append(true).open(&log).unwrap();
        let chunk = line(1, &"z".repeat(1000)).repeat(1024);
        for _ in 0..(MAX_LAG as usize / chunk.len() + 2) {
            big.write_all(chunk.as_bytes()).unwrap();
        }
        let p = f.poll(64 * 1024).unwrap();
        assert!(p.skipped > MAX_LAG - READ_BACK, "skipped {}", p.skipped);
        // A line longer than MAX_LINE is cut, not kept whole.
        append(&log, &format!("{}\n", "y".repeat(3 * MAX_LINE)));
        let p = f.poll(1 << 30).unwrap();
        assert!(p.records.iter().all(|r| r.message.len() <= MAX_LINE));
        fs::remove_dir_all(&d).unwrap();
    }
}

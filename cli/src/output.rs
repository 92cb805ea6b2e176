//! Where results go: text for people, JSON for scripts, both to stdout.

use std::io::{self, BufWriter, Stdout, Write};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Exit, Failure};

/// Standard output, buffered; a closed pipe (`| head`) ends the command quietly.
pub struct Out {
    json: bool,
    stdout: BufWriter<Stdout>,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            stdout: BufWriter::new(io::stdout()),
        }
    }

    /// Whether the answer is JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// One line of text.
    pub fn line(&mut self, text: impl AsRef<str>) -> Result<(), Failure> {
        writeln!(self.stdout, "{}", text.as_ref()).map_err(written)
    }

    /// One JSON document, on one line.
    pub fn value(&mut self, value: &impl Serialize) -> Result<(), Failure> {
        serde_json::to_writer(&mut self.stdout, value)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(self.stdout))
            .map_err(written)
    }

    /// The answer: `value` as JSON, or `text` for people.
    pub fn answer(&mut self, value: &impl Serialize, text: impl AsRef<str>) -> Result<(), Failure> {
        if self.json {
            self.value(value)
        } else {
            self.line(text)
        }
    }

    pub fn flush(&mut self) -> Result<(), Failure> {
        self.stdout.flush().map_err(written)
    }
}

/// A failed write to stdout: a closed pipe is no error worth a word.
pub fn written(error: io::Error) -> Failure {
    if error.kind() == io::ErrorKind::BrokenPipe {
        Failure::new(Exit::Ok, String::new())
    } else {
        Failure::input(format!("cannot write the output: {error}"))
    }
}

/// `1h 2m 3s`, `450ms`: how long something has left, for people.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (days, hours, minutes, seconds) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
        .into_iter()
        .skip_while(|(value, _)| *value == 0)
        .take(2)
        .filter(|(value, _)| *value != 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect();
    parts.join(" ")
}

/// Bytes for people: `512 B`, `12.3 KiB`, `1.1 MiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(human(Duration::from_millis(450)), "450ms");
        assert_eq!(human(Duration::from_secs(3723)), "1h 2m");
        assert_eq!(human(Duration::from_secs(86_400 + 5)), "1d");
        assert_eq!(human(Duration::from_secs(61)), "1m 1s");
        assert_eq!(bytes(100), "100 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}

//! `export` and `import`: every live revocation as JSON lines, and back.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};

use serde::Serialize;
use tower_jwt_revoke::store::Record;

use super::Context;
use crate::args::{Export, Import};
use crate::error::{Exit, Failure};
use crate::output::written;

/// How many keys one `SCAN` step of `export` looks at.
const STEP: usize = 1000;

/// The longest line `import` reads: a record is about 200 bytes, so anything near this
/// is not one, and a file without line breaks must not be read into memory whole.
const MAX_LINE_LEN: usize = 64 * 1024;

pub async fn export(context: &mut Context, export: Export) -> Result<Exit, Failure> {
    context.require_in_use().await?;
    let mut sink: Box<dyn Write> = match &export.output {
        Some(path) => Box::new(BufWriter::new(File::create(path).map_err(|error| {
            Failure::input(format!("cannot create {}: {error}", path.display()))
        })?)),
        None => Box::new(BufWriter::new(io::stdout())),
    };
    let mut count = 0u64;
    let mut cursor = 0;
    loop {
        let page = context.store.scan_page(cursor, STEP).await?;
        for record in &page.records {
            serde_json::to_writer(&mut sink, record)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(sink))
                .map_err(written)?;
            count += 1;
        }
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    sink.flush().map_err(written)?;
    // The records went to stdout, or to the file: the summary goes to stderr, or to
    // stdout when there is room for it.
    let summary = format!("exported {count} revocations");
    match &export.output {
        Some(path) => {
            #[derive(Serialize)]
            struct Exported {
                exported: u64,
            }
            let text = format!("{summary} to {}", path.display());
            context.out.answer(&Exported { exported: count }, text)?;
        }
        None => {
            let _ = writeln!(io::stderr(), "{summary}");
        }
    }
    Ok(Exit::Ok)
}

pub async fn import(context: &mut Context, import: Import) -> Result<Exit, Failure> {
    let input = import.input.filter(|path| path.as_os_str() != "-");
    let reader: Box<dyn BufRead> = match &input {
        Some(path) => Box::new(BufReader::new(File::open(path).map_err(|error| {
            Failure::input(format!("cannot open {}: {error}", path.display()))
        })?)),
        None => Box::new(BufReader::new(io::stdin())),
    };
    // Everything is read and checked before anything is written: a damaged file
    // restores nothing rather than part of it.
    let records = read_records(reader)?;
    let (mut restored, mut expired) = (0u64, 0u64);
    for record in &records {
        if context.store.restore(record).await? {
            restored += 1;
        } else {
            expired += 1;
        }
    }
    #[derive(Serialize)]
    struct Imported {
        restored: u64,
        expired: u64,
    }
    let text = format!("restored {restored} revocations; skipped {expired} expired since the export");
    context.out.answer(&Imported { restored, expired }, text)?;
    Ok(Exit::Ok)
}

/// Every record of a backup, each checked as [`Record::problem`] would at restore time;
/// the first bad line fails the whole import, named by its number.
fn read_records(mut reader: impl BufRead) -> Result<Vec<Record>, Failure> {
    let mut records = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        // One byte past the cap tells a line at the cap from a longer one.
        let read = reader
            .by_ref()
            .take(MAX_LINE_LEN as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|error| Failure::input(format!("cannot read line {number}: {error}")))?;
        if read == 0 {
            break;
        }
        if line.len() > MAX_LINE_LEN {
            return Err(Failure::input(format!(
                "line {number}: longer than {MAX_LINE_LEN} bytes, not a revocation record"
            )));
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| Failure::input(format!("line {number}: not UTF-8 text")))?;
        if text.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(text)
            .map_err(|error| Failure::input(format!("line {number}: not a revocation record: {error}")))?;
        if let Some(problem) = record.problem() {
            return Err(Failure::input(format!("line {number}: {problem}")));
        }
        records.push(record);
    }
    Ok(records)
}
